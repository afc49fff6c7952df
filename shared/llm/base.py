"""The LLM client interface and its error tree.

Errors (all :class:`LLMError`):

* :class:`LLMRequestRejected`: a 4xx other than 408/429 (bad request, auth, content filter, unknown
  model). Retrying cannot help; the message carries the status and the provider's explanation.
* :class:`LLMRateLimited`: still 429 after the bounded retries, or a ``Retry-After`` longer than allowed.
* :class:`LLMTimeout`: every attempt timed out.
* :class:`LLMUnavailable`: 5xx or connection failures after the bounded retries.
* :class:`LLMBadResponse`: the model answered with something that is not the JSON object asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class LLMError(Exception):
    """Base of all LLM client failures."""


class LLMRequestRejected(LLMError):
    """The provider refused the request (non-retryable 4xx)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"LLM request rejected with HTTP {status_code}: {message}")
        self.status_code = status_code


class LLMRateLimited(LLMError):
    """Rate limited beyond what the client will wait for."""


class LLMTimeout(LLMError):
    """The provider did not answer within the timeout, on every attempt."""


class LLMUnavailable(LLMError):
    """Server errors or connection failures on every attempt."""


class LLMBadResponse(LLMError):
    """The completion is not the JSON object the task asked for."""


@dataclass(frozen=True)
class LLMRequest:
    """One chat completion asking for a JSON object.

    ``task`` names what is asked (``classify``, ``plan_queries``, ``research``, ``synthesize``,
    ``plan_actions``, ``execute_action``); the offline provider dispatches on it, the real one only
    logs it. ``user`` is the task's input as JSON text.
    """

    task: str
    system: str
    user: str
    max_tokens: int = 800


@dataclass(frozen=True)
class LLMResponse:
    """The completion text and the token usage the provider reported."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class LLMClient(Protocol):
    """Anything that completes an :class:`LLMRequest`."""

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Return the completion or raise an :class:`LLMError`."""
        ...
