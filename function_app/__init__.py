"""The agent app's composition root: one ``DFApp`` with every blueprint registered.

Functions register under their Python names; orchestrators call activities and sub-orchestrators by
those names. HTTP routes need a function key (``AuthLevel.FUNCTION``) since they start or change work.
"""

import azure.durable_functions as df
import azure.functions as func

from activities import (
    agent,
    agent_model,
    agent_tools,
    booking,
    classification,
    notifications,
    request_actions,
    research,
)
from function_app import approvals, starters, status
from orchestrators import agent_budget, agent_research, request_approval
from orchestrators import booking as booking_saga
from orchestrators import research as research_flow

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    # orchestrators
    request_approval.bp,
    research_flow.bp,
    booking_saga.bp,
    agent_budget.bp,
    agent_research.bp,
    # activities
    classification.bp,
    notifications.bp,
    request_actions.bp,
    research.bp,
    booking.bp,
    agent.bp,
    agent_model.bp,
    agent_tools.bp,
    # HTTP triggers
    starters.bp,
    approvals.bp,
    status.bp,
):
    app.register_functions(blueprint)
