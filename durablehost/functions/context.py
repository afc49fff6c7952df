"""The ``func.Context`` durablehost passes to a ``context`` parameter that is not a binding.

The Python worker passes such a parameter its invocation context (protocol §1.1, §4); azure-functions
only ships the abstract class, so the host supplies a concrete one. There is no distributed tracing and no
function-level retry policy here, so those parts are empty.
"""

from __future__ import annotations

import threading
import uuid
from typing import cast

import azure.functions as func
from azure.functions import _abc


class _NoTraceContext(_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoRpcException(_abc.RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _NoRetryContext(_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> _abc.RpcException:
        return _NoRpcException()


class InvocationContext(func.Context):
    def __init__(self, function_name: str, function_directory: str, invocation_id: str | None = None) -> None:
        self._invocation_id = invocation_id or str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        # The worker hands out a threading.local carrying the invocation id, for logging from user threads.
        self._thread_local = threading.local()
        self._thread_local.invocation_id = self._invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # The ABC annotates a type, but the worker returns a threading.local instance; user code relies on
        # the instance (`ctx.thread_local_storage.invocation_id = …`), so do what the worker does.
        return cast(type[threading.local], self._thread_local)

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> _abc.TraceContext:
        return _NoTraceContext()

    @property
    def retry_context(self) -> _abc.RetryContext:
        return _NoRetryContext()
