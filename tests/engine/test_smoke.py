import azure.durable_functions as df

from durablehost.testing import DurableTestHost


async def test_chain_completes_with_results_in_order(basic_host: DurableTestHost) -> None:
    instance_id = await basic_host.client.start_new("chain", client_input=["A", "B"])
    status = await basic_host.wait_for_completion(instance_id)
    assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed, status.output
    assert status.output == ["Hello A!", "Hello B!"]
