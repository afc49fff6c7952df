"""Functions route templates (ASP.NET attribute-routing syntax) compiled to matchers.

Supported forms, which cover what Functions apps use in practice:
``literal``, ``{name}``, ``{name?}`` (optional, trailing), ``{name:int}`` / ``{name:int?}`` with the
constraints ``int long alpha bool guid double float decimal datetime``, ``{*rest}`` / ``{**rest}``
(catch-all, trailing) and parameters inside a segment such as ``files/{name}.{ext}``. Literals match
case-insensitively, as in the Functions host. Unknown constraints (``minlength(3)`` …) are ignored with
the parameter matching any segment, which is more permissive than Azure but never rejects a valid URL.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

_PARAM = re.compile(r"\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<constraint>[^}?=]+))?"
                    r"(?P<optional>\?)?(?:=(?P<default>[^}]*))?\}")  # fmt: skip


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": lambda t: re.fullmatch(r"-?\d{1,10}", t) is not None and -(2**31) <= int(t) < 2**31,
    "long": lambda t: re.fullmatch(r"-?\d{1,19}", t) is not None and -(2**63) <= int(t) < 2**63,
    "alpha": lambda t: re.fullmatch(r"[A-Za-z]+", t) is not None,
    "bool": lambda t: t.lower() in ("true", "false"),
    "guid": _is_guid,
    "double": _is_float,
    "float": _is_float,
    "decimal": _is_float,
    "datetime": _is_datetime,
}


@dataclass(frozen=True)
class _Param:
    name: str
    constraint: str | None
    optional: bool
    default: str | None


T = TypeVar("T")


@dataclass(frozen=True)
class Route(Generic[T]):
    """A compiled template with its target; ``match`` gives the route parameters or None."""

    template: str
    target: T
    pattern: re.Pattern[str]
    params: tuple[_Param, ...]
    precedence: tuple[int, int, int] = field(compare=False)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            value = found.group(param.name)
            if value is None or value == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            check = _CONSTRAINTS.get((param.constraint or "").lower())
            if check is not None and not check(value):
                return None
            values[param.name] = value
        return values


class RouteError(ValueError):
    """A route template this host cannot compile."""


def compile_route(template: str, target: T) -> Route[T]:
    """Compile a route template (without leading or trailing slashes) for paths like ``/a/b``."""
    segments = [s for s in template.strip("/").split("/") if s != ""]
    parts: list[str] = []
    params: list[_Param] = []
    literals = 0
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        whole = _PARAM.fullmatch(segment)
        if whole is not None:
            param = _param(whole)
            params.append(param)
            if whole.group("star"):
                if not last:
                    raise RouteError(f"route {template!r}: a catch-all parameter must be the last segment")
                parts.append(f"(?:/(?P<{param.name}>.*))?")
            elif param.optional or param.default is not None:
                if not last:
                    raise RouteError(f"route {template!r}: only the last segment can be optional")
                parts.append(f"(?:/(?P<{param.name}>[^/]+))?")
            else:
                parts.append(f"/(?P<{param.name}>[^/]+)")
            continue
        regex, found = _segment(segment, template)
        params.extend(found)
        if not found:
            literals += 1
        parts.append("/" + regex)
    names = [p.name.lower() for p in params]
    if len(set(names)) != len(names):
        raise RouteError(f"route {template!r} names a parameter twice")
    # More literal segments first, then fewer parameters, then longer templates: the usual ASP.NET order
    # in the cases that matter ("items/new" wins over "items/{id}").
    precedence = (-literals, len(params), -len(segments))
    pattern = re.compile("".join(parts) + "/?", re.IGNORECASE | re.DOTALL)
    return Route(template, target, pattern, tuple(params), precedence)


def _param(found: re.Match[str]) -> _Param:
    return _Param(
        name=found.group("name"),
        constraint=found.group("constraint"),
        optional=bool(found.group("optional")),
        default=found.group("default"),
    )


def _segment(segment: str, template: str) -> tuple[str, list[_Param]]:
    """A segment mixing literals and parameters, e.g. ``{name}.{ext}``."""
    regex: list[str] = []
    params: list[_Param] = []
    position = 0
    for found in _PARAM.finditer(segment):
        regex.append(re.escape(segment[position : found.start()]))
        param = _param(found)
        if found.group("star"):
            raise RouteError(f"route {template!r}: a catch-all parameter must be a whole segment")
        params.append(param)
        regex.append(f"(?P<{param.name}>[^/]+?)")
        position = found.end()
    rest = segment[position:]
    if "{" in rest or "}" in rest:
        raise RouteError(f"route {template!r}: cannot parse the segment {segment!r}")
    regex.append(re.escape(rest))
    return "".join(regex), params


def sort_routes(routes: Sequence[Route[T]]) -> list[Route[T]]:
    return sorted(routes, key=lambda r: r.precedence)


def match_route(routes: Sequence[Route[T]], path: str) -> tuple[Route[T], dict[str, str]] | None:
    """The first route (in precedence order) that matches ``path``, with its parameters."""
    for route in routes:
        values = route.match(path)
        if values is not None:
            return route, values
    return None
