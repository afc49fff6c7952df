import azure.durable_functions as df
import azure.functions as func


async def main(msg: func.QueueMessage, starter: str) -> None:
    client = df.DurableOrchestrationClient(starter)
    await client.start_new("Received", None, {"archived": msg.get_body().decode()})
