from datetime import timedelta

import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    hours = (context.get_input() or {}).get("hours", 72)
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=hours))
    decision = context.wait_for_external_event("Approval")
    winner = yield context.task_any([decision, deadline])
    if winner == decision:
        deadline.cancel()
        return "approved" if decision.result.get("approved") else "rejected"
    return "expired"


main = df.Orchestrator.create(orchestrator_function)
