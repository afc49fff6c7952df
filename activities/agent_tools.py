"""Activities that durable agents call as tools (``context.create_activity_tool``).

The integration builds each tool's JSON schema from the function's signature and docstring, and hands
the model's ``{"<input name>": value}`` argument to the activity, so a tool takes one plainly typed
parameter named like its input binding. What a tool returns reaches the model as text, so it returns
JSON text rather than an object.

Orchestrators import this module for the function objects only (the integration reads their names and
signatures); the import-linter contract that keeps LLM clients out of orchestrators ignores this one
edge (pyproject.toml).
"""

from __future__ import annotations

import json

import azure.durable_functions as df

from activities.research import research_one

bp = df.Blueprint()


@bp.activity_trigger(input_name="query")
def research_topic(query: str) -> str:
    """Research one web-search query. Returns JSON with the status, the findings and their sources."""
    return json.dumps(research_one(0, query, query))
