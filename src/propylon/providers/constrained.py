"""JSON Schemas for constrained decoding: bounded strings and arrays, and the shape of a forced
tool call.

Measured on the embedded model: a grammar with unbounded strings lets a small model run away
inside a string until the token cap cuts it, leaving invalid JSON; unbounded arrays run away the
same way, one item after another. Every string and array gets a bound, so the grammar itself
forces the closing quote or bracket.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["MAX_ARRAY_ITEMS", "MAX_STRING_LENGTH", "bound_strings", "tool_call_schema"]

MAX_STRING_LENGTH = 64  # characters, for strings whose schema sets no maxLength
MAX_ARRAY_ITEMS = 8  # items, for arrays whose schema sets no maxItems

_NESTED_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_NESTED_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_NESTED_ONE = ("items", "additionalProperties", "not", "contains")


def bound_strings(schema: dict[str, Any], limit: int = MAX_STRING_LENGTH) -> dict[str, Any]:
    """A copy of `schema` in which every string without `maxLength` has `maxLength: limit`, and
    every array without `maxItems` has `maxItems: MAX_ARRAY_ITEMS`."""
    bounded = copy.deepcopy(schema)
    _bound(bounded, limit)
    return bounded


def _bound(node: Any, limit: int) -> None:
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
    if is_string and "maxLength" not in node and "enum" not in node and "const" not in node:
        node["maxLength"] = max(limit, int(node.get("minLength", 0)))
    is_array = kind == "array" or (isinstance(kind, list) and "array" in kind)
    if is_array and "maxItems" not in node:
        node["maxItems"] = max(MAX_ARRAY_ITEMS, int(node.get("minItems", 0)))
    for key in _NESTED_LISTS:
        for child in node.get(key) or []:
            _bound(child, limit)
    for key in _NESTED_MAPS:
        for child in (node.get(key) or {}).values():
            _bound(child, limit)
    for key in _NESTED_ONE:
        _bound(node.get(key), limit)


def tool_call_schema(functions: list[dict[str, Any]]) -> dict[str, Any]:
    """The schema of `{"name": <one of functions>, "arguments": <its parameters>}`."""
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"const": function["name"]},
                "arguments": function.get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for function in functions
    ]
    return variants[0] if len(variants) == 1 else {"oneOf": variants}
