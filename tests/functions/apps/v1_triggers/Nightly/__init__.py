import azure.durable_functions as df
import azure.functions as func


async def main(mytimer: func.TimerRequest, starter: str) -> None:
    client = df.DurableOrchestrationClient(starter)
    await client.start_new("Ticked", None, "nightly")
