"""Indexing a Functions app and invoking its functions (protocol §1.1, §4, §5.1, §6, §7)."""

from durablehost.functions.context import InvocationContext
from durablehost.functions.index import (
    ActivityFunction,
    BindingInfo,
    EntityFunction,
    FunctionIndex,
    FunctionInfo,
    HttpFunction,
    OrchestratorFunction,
)
from durablehost.functions.invoke import (
    ActivityFailure,
    ActivityOutcome,
    ActivitySuccess,
    OrchestratorResult,
    build_http_request,
    call_activity,
    call_entity,
    call_http_function,
    call_orchestrator,
)
from durablehost.functions.loader import load_app

__all__ = [
    "ActivityFailure",
    "ActivityFunction",
    "ActivityOutcome",
    "ActivitySuccess",
    "BindingInfo",
    "EntityFunction",
    "FunctionIndex",
    "FunctionInfo",
    "HttpFunction",
    "InvocationContext",
    "OrchestratorFunction",
    "OrchestratorResult",
    "build_http_request",
    "call_activity",
    "call_entity",
    "call_http_function",
    "call_orchestrator",
    "load_app",
]
