import azure.durable_functions as df
import azure.functions as func
from shared_code.timers import describe


async def main(mytimer: func.TimerRequest, starter: str) -> None:
    client = df.DurableOrchestrationClient(starter)
    await client.start_new("Ticked", None, describe(mytimer))
