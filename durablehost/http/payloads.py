"""JSON request bodies at the edge: bounded nesting and text that round-trips, checked before anything
is stored (start, raiseEvent, entity signals, the CLI's ``raise`` data).

Two nesting limits, because a body reaches the orchestrator in one of two shapes:

* **The body itself** (``curl -d '{"a": 1}'``, the JavaScript SDK) may nest :data:`MAX_BODY_DEPTH` = 64
  levels, Azure's limit: the extension parses every such body with Json.NET (``JsonConvert.
  DeserializeObject`` for start, ``JToken.Load`` on a ``JsonTextReader`` for raiseEvent and entity
  operations, ``HttpApiHandler.cs``), whose ``MaxDepth`` defaults to 64 since Json.NET 13.0.1
  (JamesNK/Newtonsoft.Json release 13.0.1, PR #2462), so Azure answers a deeper body with 400.
* **JSON text inside a JSON string**: the Python SDK always posts ``json.dumps(json.dumps(v))`` (protocol
  §5.4), a string at depth 0, which the extension keeps as text and never parses; only the Python worker
  decodes it, with ``json.loads``, which recurses once per level against the interpreter's recursion
  limit (1,000 by default), shared with the frames of the worker, the SDK and the app's code. The host
  and the SDK were measured to round-trip 970 levels through an orchestrator (and fail at 975, wedging
  the instance: issue #14); :data:`MAX_ENCODED_DEPTH` = 900 keeps every value the SDK can encode and then
  decode in an orchestrator, with room for the app's own frames.

Text that cannot round-trip through storage and the SDK is refused: bytes that are not UTF-8 (which
includes surrogates encoded as raw bytes), ``\\ud800``-style escapes that leave a lone surrogate (no
UTF-8 or UTF-16 store can hold it; Azure's .NET code would silently turn it into U+FFFD), and numbers
Python cannot read back (more than 4,300 digits).
"""

from __future__ import annotations

import json
import re
from typing import Any

from durablehost.errors import InvalidRequest

MAX_BODY_DEPTH = 64
MAX_ENCODED_DEPTH = 900

# A lone surrogate can only come from an escape (raw surrogate bytes are not UTF-8, refused on decoding);
# without one in the text, decoded strings need no walk.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_text(body: bytes, what: str) -> str:
    """The body as text; InvalidRequest unless it is UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{what} is not valid UTF-8 (byte {exc.start} cannot start a character)"
        ) from None


def check_text(text: str, what: str) -> None:
    """InvalidRequest if ``text`` holds a lone surrogate (from a command line, say): it has no UTF-8 form."""
    found = _SURROGATE.search(text)
    if found is not None:
        raise InvalidRequest(
            f"{what} holds a lone UTF-16 surrogate ({ord(found.group()):#06x}), which is not text and "
            "cannot be stored"
        )


def parse_body(text: str, what: str) -> Any:
    """Decode a JSON body whose own nesting Azure would parse (at most :data:`MAX_BODY_DEPTH` levels);
    if it is a string holding JSON text (the SDK's double encoding), check that text too."""
    value = _parse(text, MAX_BODY_DEPTH, what)
    if isinstance(value, str):
        encoded_json(value, what)
    return value


def encoded_json(text: str, what: str) -> bool:
    """Whether a string value holds JSON text that the SDK would decode (True) or is plain text (False).

    InvalidRequest if it holds JSON nested deeper than :data:`MAX_ENCODED_DEPTH` or that decodes to a lone
    surrogate: the orchestrator could not read it back.
    """
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(what, None, MAX_ENCODED_DEPTH, encoded=True) from None
    except ValueError:
        return False  # plain text (JSONDecodeError), or digits Python refuses to read as a number
    _check_value(value, text, MAX_ENCODED_DEPTH, what, encoded=True)
    return True


def _parse(text: str, limit: int, what: str) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        # json.loads recursed into the interpreter's limit: far deeper than ``limit``.
        raise _too_deep(what, None, limit, encoded=False) from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise InvalidRequest(f"{what} holds a number Python cannot read back: {exc}") from None
    _check_value(value, text, limit, what, encoded=False)
    return value


def _check_value(value: Any, text: str, limit: int, what: str, *, encoded: bool) -> None:
    depth = nesting_depth(value)
    if depth > limit:
        raise _too_deep(what, depth, limit, encoded=encoded)
    if _SURROGATE_ESCAPE.search(text):
        for string in _strings(value):
            check_text(string, what)


def nesting_depth(value: Any) -> int:
    """Levels of arrays and objects (``[]`` is 1, a scalar 0), without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        pending.extend((child, depth) for child in children)
    return deepest


def _strings(value: Any) -> list[str]:
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _too_deep(what: str, depth: int | None, limit: int, *, encoded: bool) -> InvalidRequest:
    nested = f"{depth} levels deep" if depth is not None else "deeper than Python can decode"
    if encoded:
        return InvalidRequest(
            f"the JSON text in {what} (a JSON string holding JSON, as the SDK encodes values) nests "
            f"{nested}; the limit is {MAX_ENCODED_DEPTH} levels"
        )
    return InvalidRequest(f"{what} nests JSON {nested}; the limit is {limit} levels, as in Azure (Json.NET)")
