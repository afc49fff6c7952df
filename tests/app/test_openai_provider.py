"""The real LLM provider against a local stand-in for a chat-completions endpoint (aiohttp on a free
loopback port, in a background thread because the client is synchronous)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from shared.llm import (
    LLMRateLimited,
    LLMRequest,
    LLMRequestRejected,
    LLMTimeout,
    OpenAIChatClient,
    complete_json,
)
from shared.settings import LLMSettings


@dataclass
class StandIn:
    """A scripted chat-completions server: each request pops the next scripted reply."""

    base_url: str = ""
    replies: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        reply = self.replies.pop(0) if self.replies else {"content": "{}"}
        if "delay" in reply:
            await asyncio.sleep(reply["delay"])
        if "status" in reply:
            return web.json_response(
                {"error": {"message": reply.get("message", "error"), "type": "test"}},
                status=reply["status"],
                headers=reply.get("headers", {}),
            )
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": reply["content"]},
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", server.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _client(server: StandIn, sleeps: list[float], **overrides: Any) -> OpenAIChatClient:
    settings = LLMSettings(
        provider="openai",
        endpoint=f"{server.base_url}/v1",
        api_key="test-key",
        model="test-model",
        timeout_seconds=5.0,
        max_retries=2,
        max_retry_after_seconds=30.0,
    )
    return OpenAIChatClient(replace(settings, **overrides), sleep=sleeps.append)


REQUEST = LLMRequest(task="classify", system="sys", user='{"text": "hi"}', max_tokens=50)


def test_success_returns_text_and_usage(stand_in: StandIn) -> None:
    stand_in.replies = [{"content": '{"intent": "general_inquiry"}'}]
    sleeps: list[float] = []
    response = _client(stand_in, sleeps).complete(REQUEST)
    assert json.loads(response.text) == {"intent": "general_inquiry"}
    assert (response.prompt_tokens, response.completion_tokens, response.total_tokens) == (11, 7, 18)
    assert response.model == "test-model"
    sent = stand_in.requests[0]
    assert sent["headers"]["Authorization"] == "Bearer test-key"
    assert sent["body"]["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": '{"text": "hi"}'},
    ]
    assert sent["body"]["response_format"] == {"type": "json_object"}
    assert sleeps == []


def test_429_waits_retry_after_then_succeeds(stand_in: StandIn) -> None:
    stand_in.replies = [
        {"status": 429, "headers": {"Retry-After": "3"}, "message": "slow down"},
        {"content": '{"ok": true}'},
    ]
    sleeps: list[float] = []
    answer, tokens = complete_json(_client(stand_in, sleeps), "classify", "sys", {"text": "hi"})
    assert answer == {"ok": True}
    assert tokens == 18
    assert sleeps == [3.0]
    assert len(stand_in.requests) == 2


def test_retry_after_ms_is_preferred(stand_in: StandIn) -> None:
    stand_in.replies = [
        {"status": 429, "headers": {"retry-after-ms": "250", "Retry-After": "9"}},
        {"content": "{}"},
    ]
    sleeps: list[float] = []
    _client(stand_in, sleeps).complete(REQUEST)
    assert sleeps == [0.25]


def test_429_beyond_the_allowed_wait_fails_at_once(stand_in: StandIn) -> None:
    stand_in.replies = [{"status": 429, "headers": {"Retry-After": "120"}}]
    sleeps: list[float] = []
    with pytest.raises(LLMRateLimited, match="Retry-After 120s exceeds LLM_MAX_RETRY_AFTER_SECONDS=30"):
        _client(stand_in, sleeps).complete(REQUEST)
    assert sleeps == [] and len(stand_in.requests) == 1


def test_429_on_every_attempt_is_bounded(stand_in: StandIn) -> None:
    stand_in.replies = [{"status": 429, "headers": {"Retry-After": "1"}}] * 3
    sleeps: list[float] = []
    with pytest.raises(LLMRateLimited, match="after 3 attempts"):
        _client(stand_in, sleeps).complete(REQUEST)
    assert sleeps == [1.0, 1.0]
    assert len(stand_in.requests) == 3


def test_400_is_not_retried(stand_in: StandIn) -> None:
    stand_in.replies = [{"status": 400, "message": "max_tokens is too large"}]
    sleeps: list[float] = []
    with pytest.raises(LLMRequestRejected, match=r"HTTP 400.*max_tokens is too large") as caught:
        _client(stand_in, sleeps).complete(REQUEST)
    assert caught.value.status_code == 400
    assert len(stand_in.requests) == 1 and sleeps == []


def test_5xx_is_retried_with_backoff(stand_in: StandIn) -> None:
    stand_in.replies = [{"status": 503}, {"status": 500}, {"content": "{}"}]
    sleeps: list[float] = []
    _client(stand_in, sleeps).complete(REQUEST)
    assert sleeps == [1.0, 2.0]


def test_timeout_is_retried_then_reported(stand_in: StandIn) -> None:
    stand_in.replies = [{"delay": 2.0, "content": "{}"}, {"delay": 2.0, "content": "{}"}]
    sleeps: list[float] = []
    client = _client(stand_in, sleeps, timeout_seconds=0.3, max_retries=1)
    with pytest.raises(LLMTimeout, match=r"timed out after 0.3s \(2 of 2 attempts\)"):
        client.complete(REQUEST)
    assert len(stand_in.requests) == 2
    assert sleeps == [1.0]


def test_azure_provider_uses_deployment_path_and_api_version(stand_in: StandIn) -> None:
    stand_in.replies = [{"content": "{}"}]
    settings = LLMSettings(
        provider="azure",
        endpoint=stand_in.base_url,
        api_key="azure-key",
        model="my-deployment",
        api_version="2024-10-21",
        timeout_seconds=5.0,
    )
    OpenAIChatClient(settings, sleep=lambda _: None).complete(REQUEST)
    sent = stand_in.requests[0]
    assert sent["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert sent["query"]["api-version"] == "2024-10-21"
    assert sent["headers"]["api-key"] == "azure-key"
