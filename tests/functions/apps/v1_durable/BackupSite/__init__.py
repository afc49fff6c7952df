import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    files = yield context.call_activity("ListFiles", context.get_input())
    sizes = yield context.task_all([context.call_activity("MeasureFile", f) for f in files])
    return {"files": len(files), "bytes": sum(sizes)}


main = df.Orchestrator.create(orchestrator_function)
