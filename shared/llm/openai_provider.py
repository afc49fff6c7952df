"""The real LLM provider: chat completions through the ``openai`` package.

Works with Azure OpenAI (``LLM_PROVIDER=azure``: ``AzureOpenAI`` with endpoint, API version and the
deployment name as model) and with any OpenAI-compatible endpoint (``LLM_PROVIDER=openai``: base URL).

The SDK's own retries are switched off (``max_retries=0``) so that the policy is ours and visible:
up to ``LLM_MAX_RETRIES`` retries after 429, 408, 409, 5xx, connection errors and timeouts; a 429 waits
what ``Retry-After``/``retry-after-ms`` says (refusing to wait longer than
``LLM_MAX_RETRY_AFTER_SECONDS``), the others back off exponentially from one second. Other 4xx
fail at once with :class:`LLMRequestRejected`.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

import openai

from shared.llm.base import (
    LLMBadResponse,
    LLMError,
    LLMRateLimited,
    LLMRequest,
    LLMRequestRejected,
    LLMResponse,
    LLMTimeout,
    LLMUnavailable,
)
from shared.settings import LLMSettings

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({408, 409, 429})
_MAX_BACKOFF_SECONDS = 30.0


def retry_after_seconds(headers: Any) -> float | None:
    """Parse ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent or bad."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            logger.warning("ignoring unparsable retry-after-ms header %r", raw_ms)
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass  # not seconds: try the HTTP-date form below
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        logger.warning("ignoring unparsable Retry-After header %r", raw)
        return None
    return max(0.0, parsed.timestamp() - time.time())


def _build_sdk_client(settings: LLMSettings) -> openai.OpenAI:
    if settings.provider == "azure":
        return openai.AzureOpenAI(
            azure_endpoint=settings.endpoint,
            api_key=settings.api_key,
            api_version=settings.api_version,
            timeout=settings.timeout_seconds,
            max_retries=0,
        )
    return openai.OpenAI(
        base_url=settings.endpoint,
        api_key=settings.api_key,
        timeout=settings.timeout_seconds,
        max_retries=0,
    )


class OpenAIChatClient:
    """LLMClient over ``chat.completions`` with JSON-object responses."""

    def __init__(
        self,
        settings: LLMSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        sdk_client: openai.OpenAI | None = None,
    ) -> None:
        self._settings = settings
        self._sleep = sleep
        self._client = sdk_client or _build_sdk_client(settings)

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Send the request, retrying transient failures within the configured bounds."""
        attempts = self._settings.max_retries + 1
        last_error: LLMError | None = None
        for attempt in range(1, attempts + 1):
            try:
                return self._complete_once(request)
            except openai.APITimeoutError:
                last_error = LLMTimeout(
                    f"LLM call {request.task!r} timed out after {self._settings.timeout_seconds:g}s "
                    f"({attempt} of {attempts} attempts)"
                )
                delay = self._backoff(attempt)
            except openai.APIConnectionError as exc:
                last_error = LLMUnavailable(f"cannot reach the LLM endpoint: {exc}")
                delay = self._backoff(attempt)
            except openai.APIStatusError as exc:
                delay, last_error = self._classify_status_error(exc, attempt)
            if attempt < attempts:
                logger.warning("LLM call %s failed (%s); retrying in %.2fs", request.task, last_error, delay)
                self._sleep(delay)
        if last_error is None:  # the loop runs at least once, so this means a logic error
            raise RuntimeError("LLM retry loop ended without an attempt")
        raise last_error

    def _complete_once(self, request: LLMRequest) -> LLMResponse:
        completion = self._client.chat.completions.create(
            model=self._settings.model,
            messages=[
                {"role": "system", "content": request.system},
                {"role": "user", "content": request.user},
            ],
            max_tokens=request.max_tokens,
            response_format={"type": "json_object"},
        )
        if not completion.choices or completion.choices[0].message.content is None:
            raise LLMBadResponse(f"LLM returned no content for {request.task!r}")
        usage = completion.usage
        return LLMResponse(
            text=completion.choices[0].message.content,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            model=completion.model or self._settings.model,
        )

    def _classify_status_error(self, exc: openai.APIStatusError, attempt: int) -> tuple[float, LLMError]:
        status = exc.status_code
        if status == 429:
            wait = retry_after_seconds(exc.response.headers)
            delay = self._backoff(attempt) if wait is None else wait
            if delay > self._settings.max_retry_after_seconds:
                raise LLMRateLimited(
                    f"LLM rate limited; Retry-After {delay:g}s exceeds "
                    f"LLM_MAX_RETRY_AFTER_SECONDS={self._settings.max_retry_after_seconds:g}"
                ) from exc
            return delay, LLMRateLimited(f"LLM still rate limited (HTTP 429) after {attempt} attempts")
        if status in _RETRYABLE_STATUS or status >= 500:
            return self._backoff(attempt), LLMUnavailable(f"LLM endpoint failed with HTTP {status}: {exc}")
        raise LLMRequestRejected(status, str(exc)) from exc

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(_MAX_BACKOFF_SECONDS, 2 ** (attempt - 1)))
