import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    r1 = yield context.call_activity("AddOne", 0)
    context.set_custom_status(f"{r1} ->")
    r2 = yield context.call_activity("AddOne", r1)
    context.set_custom_status(f"{r1} -> {r2} ->")
    r3 = yield context.call_activity("AddOne", r2)
    context.set_custom_status(f"{r1} -> {r2} -> {r3}")
    return r3


main = df.Orchestrator.create(orchestrator_function)
