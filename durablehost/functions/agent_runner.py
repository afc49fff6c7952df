"""Orchestrators of the SDK's OpenAI Agents integration share one process-wide runner: their episodes must
not overlap.

``@app.durable_openai_agent_orchestrator`` (azure-functions-durable 1.7.0,
``openai_agents/orchestrator_generator.py``) builds, on every episode, a ``DurableOpenAIRunner`` bound to
that episode's context and hands it to openai-agents' ``set_default_agent_runner``, which stores it in the
module global ``agents.run.DEFAULT_AGENT_RUNNER`` (openai-agents 0.10.5; "experimental and not part of the
public API"). ``Runner.run_sync(agent, …)``, as the integration's samples call it, then reads that global.
When two such episodes run at once on worker threads, the second ``set_default_agent_runner`` can land
between the first episode's own call and its ``Runner.run_sync``: the first orchestration then runs its
agent on the second one's runner, whose model calls go through the second context (its ``TaskTracker``
calls ``call_activity`` there): the second orchestration records the first's model call among its own
actions, the first yields a task its context never scheduled, and both fail as non-deterministic on
their next replay (or one completes with no answer). Eight agents fanned out as sub-orchestrations went
wrong that way in 4 or 5 runs out of 5 (tests/agents/test_agent_runner_race.py).

The Functions Python worker runs sync functions, orchestrators included, on a thread pool
(azure-fidelity-notes §3) and the extension dispatches up to ``maxConcurrentOrchestratorFunctions`` at a
time, so Azure has the same race. durablehost runs the episodes of these orchestrators one at a time
instead (``UserCode.run_orchestrator(one_at_a_time=True)``): the runner a ``Runner.run_sync`` reads is
then always its own episode's. Making the global per-thread instead would mean replacing
``agents.run.DEFAULT_AGENT_RUNNER`` by a proxy and the name ``set_default_agent_runner`` inside the SDK's
module, two private attributes of two packages whose APIs move fast; serialising touches neither, and
costs nothing measurable, since episodes are pure Python that the GIL runs one at a time anyway while the
model calls, activities, still run in parallel: a fan-out of 16 weather agents completed in 1.00 s one at
a time and 1.02 s concurrently, of 32 in 1.70 s and 1.80 s (medians; ``bench/agent_episodes.py``).
``--fidelity azure`` keeps Azure's concurrency, and the race.

An orchestrator is recognised by the SDK's own generator function in the closure of the function that
``Orchestrator.create`` registered (``handle.orchestrator_function``): nothing is imported for an app that
does not use the integration.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_GENERATOR_MODULE = "azure.durable_functions.openai_agents.orchestrator_generator"
_GENERATOR = "durable_openai_agent_orchestrator_generator"


def shares_process_wide_runner(handle: Callable[..., Any]) -> bool:
    """Whether ``handle`` (an orchestrator's SDK handle) runs a ``durable_openai_agent_orchestrator``."""
    module = sys.modules.get(_GENERATOR_MODULE)  # imported by the decorator, if the app used it
    generator = getattr(module, _GENERATOR, None)
    if generator is None:
        return False
    registered = getattr(handle, "orchestrator_function", None)
    cells = getattr(registered, "__closure__", None) or ()
    return any(_contents(cell) is generator for cell in cells)


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None
