"""A small client of the management API for the CLI commands (``durablehost status|list|raise|…``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from durablehost.http.common import MANAGEMENT_PREFIX
from durablehost.http.management import CONTINUATION_HEADER, IDEMPOTENCY_HEADER, REPLAYED_HEADER

DEFAULT_URL = "http://127.0.0.1:7071"


class ClientError(Exception):
    """The host answered with an error, or could not be reached; ``exit_code`` for the CLI."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or None for an empty body
    headers: dict[str, str]


class ManagementClient:
    def __init__(self, base_url: str = DEFAULT_URL, key: str | None = None, timeout: float = 30.0) -> None:
        self.base = base_url.rstrip("/") + MANAGEMENT_PREFIX
        self.headers = {"x-functions-key": key} if key else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        url = f"{self.base}/{path}"
        all_headers = {**self.headers, **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as session:
                async with session.request(
                    method, url, params=params, data=body, headers=all_headers
                ) as response:
                    text = await response.text()
                    parsed = json.loads(text) if text.strip() else None
                    return Answer(response.status, parsed, dict(response.headers))
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(
                f"cannot reach a durablehost at {self.base.removesuffix(MANAGEMENT_PREFIX)}: {exc}; "
                "is `durablehost start` running (see --url)?",
                exit_code=3,
            ) from exc
        except json.JSONDecodeError as exc:
            raise ClientError(f"the host answered {method} {url} with a body that is not JSON") from exc

    async def status(self, instance_id: str, *, history: bool = False) -> dict[str, Any]:
        params = {"showInput": "true"}
        if history:
            params |= {"showHistory": "true", "showHistoryOutput": "true"}
        answer = await self.request("GET", f"instances/{_segment(instance_id)}", params=params)
        if answer.status == 404:
            raise ClientError(f"no instance with id {instance_id!r}")
        _check(answer, 200, 202)
        body: dict[str, Any] = answer.body
        return body

    async def list(self, *, statuses: list[str], prefix: str | None, top: int = 100) -> list[dict[str, Any]]:
        params = {"top": str(top)}
        if statuses:
            params["runtimeStatus"] = ",".join(statuses)
        if prefix:
            params["instanceIdPrefix"] = prefix
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            headers = {CONTINUATION_HEADER: token} if token else None
            answer = await self.request("GET", "instances/", params=params, headers=headers)
            _check(answer, 200)
            found.extend(answer.body)
            token = next((v for k, v in answer.headers.items() if k.lower() == CONTINUATION_HEADER), None)
            if not token:
                return found

    async def raise_event(self, instance_id: str, event: str, data_json: str, key: str | None = None) -> bool:
        """True if the event was delivered now, False if its idempotency key was accepted before."""
        headers = {IDEMPOTENCY_HEADER: key} if key else None
        answer = await self.request(
            "POST",
            f"instances/{_segment(instance_id)}/raiseEvent/{_segment(event)}",
            body=data_json,
            headers=headers,
        )
        _check(answer, 202)
        replayed = next((v for k, v in answer.headers.items() if k.lower() == REPLAYED_HEADER.lower()), "")
        return replayed.lower() != "true"

    async def change(self, instance_id: str, operation: str, reason: str | None) -> None:
        params = {"reason": reason} if reason is not None else None
        answer = await self.request("POST", f"instances/{_segment(instance_id)}/{operation}", params=params)
        _check(answer, 202)

    async def export_history(self, instance_id: str) -> dict[str, Any]:
        answer = await self.request("GET", f"instances/{_segment(instance_id)}/export")
        if answer.status == 404:
            raise ClientError(f"no instance with id {instance_id!r}")
        _check(answer, 200)
        document: dict[str, Any] = answer.body
        return document

    async def purge(self, instance_id: str) -> int:
        answer = await self.request("DELETE", f"instances/{_segment(instance_id)}")
        if answer.status == 404:
            raise ClientError(f"no instance with id {instance_id!r}")
        _check(answer, 200)
        deleted: int = answer.body["instancesDeleted"]
        return deleted


def _segment(text: str) -> str:
    return quote(text, safe="")


def _check(answer: Answer, *expected: int) -> None:
    if answer.status in expected:
        return
    message = (
        answer.body.get("ExceptionMessage") or answer.body.get("Message")
        if isinstance(answer.body, dict)
        else answer.body
    )
    raise ClientError(f"the host answered {answer.status}: {message or '(no details)'}")
