import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    counter = df.EntityId("Counter", context.get_input() or "myCounter")
    context.signal_entity(counter, "add", 3)
    value = yield context.call_entity(counter, "add", 4)
    return value


main = df.Orchestrator.create(orchestrator_function)
