import azure.durable_functions as df

from ..shared_code.points import Point  # noqa: TID252 - relative, as in Azure's samples


def orchestrator_function(context: df.DurableOrchestrationContext):
    start: Point = context.get_input()
    moved = yield context.call_activity("MovePoint", Point(start.x + 1, start.y + 1))
    return {"start": [start.x, start.y], "moved": [moved.x, moved.y], "type": type(moved).__name__}


main = df.Orchestrator.create(orchestrator_function)
