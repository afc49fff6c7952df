import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    # Spelled differently from the folder: sub-orchestrator names are case-insensitive too.
    greetings = yield context.call_sub_orchestrator("HELLOSEQUENCE", context.get_input())
    return {"child": greetings}


main = df.Orchestrator.create(orchestrator_function)
