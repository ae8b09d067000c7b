"""Structure validation against the JSON Schemas in ``schema/``.

The schemas are ordinary JSON Schema (draft 7) files. Importing ``jsonschema`` costs more
than linting a pack, so this module interprets the subset those files use (type, enum,
required, properties, additionalProperties, items, minimum/maximum, minLength, pattern,
anyOf, local ``$ref``); the test suite validates the same documents with ``jsonschema`` and
requires the same verdicts and error paths.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["conforms", "errors", "schema_for"]

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


@functools.cache
def schema_for(name: str) -> dict[str, Any]:
    """A shipped schema: ``config``, ``pack`` or ``fleet``."""
    from osqsdk.schema import read_data

    schema: dict[str, Any] = read_data(f"{name}.schema.json")
    return schema


@functools.lru_cache(maxsize=256)
def _pattern(p: str) -> re.Pattern[str]:
    return re.compile(p)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        if part:
            node = node[part]
    target: dict[str, Any] = node  # a JSON Schema object
    return target


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> bool:
    """Whether ``value`` satisfies ``schema`` (the subset of JSON Schema described above)."""
    root = root if root is not None else schema
    if "$ref" in schema and not conforms(value, _resolve(schema["$ref"], root), root):
        return False
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_TYPES[x](value) for x in types):
            return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "anyOf" in schema and not any(conforms(value, s, root) for s in schema["anyOf"]):
        return False
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return False
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            return False
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return False
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                if not conforms(item, props[key], root):
                    return False
            elif extra is False or (isinstance(extra, dict) and not conforms(item, extra, root)):
                return False
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        if not all(conforms(v, items, root) for v in value):
            return False
    return True


def errors(value: Any, schema: dict[str, Any], limit: int = 20
           ) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, message) for each way ``value`` breaks ``schema``; nothing when it conforms.

    The tests check these against ``jsonschema``'s own verdicts and error paths.
    """
    if conforms(value, schema):
        return
    out: list[tuple[tuple[Any, ...], str]] = []
    _explain(value, schema, schema, (), out)
    yield from out[:limit]


def _type_names(t: Any) -> str:
    types = t if isinstance(t, list) else [t]
    return " or ".join(types)


def _explain(value: Any, schema: dict[str, Any], root: dict[str, Any], path: tuple[Any, ...],
             out: list[tuple[tuple[Any, ...], str]]) -> None:
    if "$ref" in schema:
        target = _resolve(schema["$ref"], root)
        if not conforms(value, target, root):
            _explain(value, target, root, path, out)
            return
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_TYPES[x](value) for x in types):
            out.append((path, f"{shown} is not of type {_type_names(t)}"))
            return
    if "enum" in schema and value not in schema["enum"]:
        out.append((path, f"{shown} is not one of {schema['enum']}"))
        return
    if "anyOf" in schema and not any(conforms(value, s, root) for s in schema["anyOf"]):
        branches = [_resolve(s["$ref"], root) if "$ref" in s else s for s in schema["anyOf"]]
        typed = [b for b in branches if "type" not in b or any(
            _TYPES[x](value) for x in (b["type"] if isinstance(b["type"], list)
                                       else [b["type"]]))]
        if len(typed) == 1:
            _explain(value, typed[0], root, path, out)
        else:
            kinds = " or ".join(str(b.get("type", "value")) for b in branches)
            out.append((path, f"{shown} is not valid here (expected {kinds})"))
        return
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            out.append((path, f"{shown} is too short"))
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            out.append((path, f"{shown} does not match {schema['pattern']!r}"))
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            out.append((path, f"{shown} is less than the minimum of {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            out.append((path, f"{shown} is greater than the maximum of {schema['maximum']}"))
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                out.append((path, f"{key!r} is a required property"))
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = props.get(key, extra if key not in props else None)
            if sub is False:
                out.append((path + (key,), f"additional property {key!r} is not allowed"))
            elif isinstance(sub, dict) and not conforms(item, sub, root):
                _explain(item, sub, root, path + (key,), out)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            if not conforms(item, schema["items"], root):
                _explain(item, schema["items"], root, path + (i,), out)
