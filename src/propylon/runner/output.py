"""Structured output: the model's answer must be JSON valid for the request's schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson

__all__ = ["check_arguments", "output_problem"]


def output_problem(steps: list[dict[str, Any]], schema: dict[str, Any]) -> str | None:
    """Why the text of `steps`' model_output is not a JSON value valid for `schema`, or None.

    Validation is JSON Schema (Draft 2020-12) by the `jsonschema` package.
    """
    text = "".join(
        item.get("text", "")
        for step in steps
        if step.get("type") == "model_output"
        for item in step.get("content") or []
        if item.get("type") == "text"
    )
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"the model's output is not valid JSON ({exc}), as `response_format` requires"
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return (
            f"the model's output does not match the `response_format` schema at {where}: "
            f"{error.message}"
        )
    return None


def check_arguments(call: Any, tools: list[dict[str, Any]]) -> None:
    """For `tool_choice: validated`: raise ValueError unless `call.arguments` satisfies the
    declared function's `parameters` schema."""
    declared = next(
        (t for t in tools if t.get("type") == "function" and t["name"] == call.name), None
    )
    if declared is None:
        raise ValueError(f"the model called `{call.name}`, which is not declared")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(declared.get("parameters") or {}).iter_errors(
            call.arguments
        )
    )
    if error is not None:
        raise ValueError(
            f"the arguments of `{call.name}` do not match its parameters: {error.message}"
        )
