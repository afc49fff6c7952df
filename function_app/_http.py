"""Small helpers shared by the HTTP triggers: JSON bodies in, JSON (and problem) responses out."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func


class BadRequest(ValueError):
    """The request body is not what the route accepts; the message says what is wrong."""


def json_response(body: Any, status_code: int = 200) -> func.HttpResponse:
    """A JSON response."""
    return func.HttpResponse(json.dumps(body), status_code=status_code, mimetype="application/json")


def problem(status_code: int, message: str, **details: Any) -> func.HttpResponse:
    """An error response ``{"error": message, …details}``."""
    return json_response({"error": message, **details}, status_code)


def read_json_object(req: func.HttpRequest) -> dict[str, Any]:
    """The body as a JSON object; raises BadRequest when it is missing, not JSON or not an object."""
    body = req.get_body()
    if not body:
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(data).__name__}")
    return data
