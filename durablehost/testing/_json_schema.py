"""The subset of JSON Schema that structured outputs use, for the scripted model server.

OpenAI's strict structured outputs allow objects with ``properties``/``required``/``additionalProperties:
false``, arrays with ``items``, the scalar types, ``enum``, ``const``, ``anyOf`` and ``$ref`` into ``$defs``
(platform docs, "Supported schemas"). That is what openai-agents and Agent Framework send for a pydantic
output type, so this module covers exactly that: a minimal instance for a schema (an answer when a test
scripts ``structured()`` without a value) and a check that a scripted value fits the schema the client
asked for (a scripted answer the real model could never give is a test bug, reported as such).
"""

from __future__ import annotations

from typing import Any

_Schema = dict[str, Any]


class SchemaMismatch(ValueError):
    """A scripted structured answer does not fit the JSON schema of the request."""


def _resolve(schema: _Schema, root: _Schema) -> _Schema:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    if not ref.startswith("#/"):
        raise SchemaMismatch(f"only local $ref are supported, got {ref!r}")
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    return _resolve(dict(target), root)


def _types(schema: _Schema) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return [str(k) for k in kind]
    return [str(kind)] if kind is not None else []


def example_for(schema: _Schema, root: _Schema | None = None) -> Any:
    """A small value that satisfies ``schema``: first enum value, empty strings, zeros, required keys."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        return example_for(schema["anyOf"][0], root)
    kinds = _types(schema)
    kind = kinds[0] if kinds else ("object" if "properties" in schema else "null")
    if kind == "object":
        properties: dict[str, _Schema] = schema.get("properties", {})
        required = schema.get("required", list(properties))
        return {name: example_for(properties[name], root) for name in required if name in properties}
    if kind == "array":
        return []
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "null": None}.get(kind)


def _fits_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "boolean": bool,
        "object": dict,
        "array": list,
        "null": type(None),
    }
    expected = checks.get(kind)
    return expected is not None and isinstance(value, expected)


def check(value: Any, schema: _Schema, root: _Schema | None = None, path: str = "$") -> None:
    """Raise SchemaMismatch naming the first place where ``value`` does not fit ``schema``."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if "const" in schema and value != schema["const"]:
        raise SchemaMismatch(f"{path}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaMismatch(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                check(value, option, root, path)
            except SchemaMismatch:
                continue
            return
        raise SchemaMismatch(f"{path}: {value!r} matches none of the anyOf options")
    kinds = _types(schema)
    if kinds and not any(_fits_type(value, kind) for kind in kinds):
        raise SchemaMismatch(f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}")
    if isinstance(value, dict):
        properties: dict[str, _Schema] = schema.get("properties", {})
        missing = [name for name in schema.get("required", []) if name not in value]
        if missing:
            raise SchemaMismatch(f"{path}: missing required {missing}")
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(properties))
            if extra:
                raise SchemaMismatch(f"{path}: properties {extra} are not in the schema")
        for name, item in value.items():
            if name in properties:
                check(item, properties[name], root, f"{path}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            check(item, schema["items"], root, f"{path}[{index}]")
