import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for city in cities:
        # The folder is SayHello: Azure matches activity names case-insensitively.
        results.append((yield context.call_activity("sayhello", city)))
    return results


main = df.Orchestrator.create(orchestrator_function)
