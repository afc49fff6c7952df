import azure.durable_functions as df
import azure.functions as func

from ..shared_code.orders import parse_order  # noqa: TID252 - relative, as in Azure's samples


async def main(msg: func.QueueMessage, starter: str) -> None:
    # A message that is no order raises: the host retries it, then moves it to the poison queue.
    order = parse_order(msg.get_body().decode())
    client = df.DurableOrchestrationClient(starter)
    await client.start_new("Received", None, {**order, "dequeue_count": msg.dequeue_count})
