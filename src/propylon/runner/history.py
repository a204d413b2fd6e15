"""Checks on the history a turn is built from."""

from __future__ import annotations

from typing import Any

from propylon.errors import InvalidArgument

__all__ = ["check_function_results"]


def check_function_results(
    history: list[dict[str, Any]], input_steps: list[dict[str, Any]]
) -> None:
    """Every `function_call` must be answered by exactly one `function_result` before the
    conversation goes on (reference §8, function calling).

    `history` is the stored conversation, `input_steps` the new turn's input. Raises
    InvalidArgument naming the call id that is unknown, answered twice, or left unanswered.
    """
    open_calls: dict[str, str] = {}
    answered: set[str] = set()
    for step in [*history, *input_steps]:
        kind = step.get("type")
        if kind == "function_call":
            open_calls[step["id"]] = step["name"]
        elif kind == "function_result":
            call_id = step["call_id"]
            if call_id in answered:
                raise InvalidArgument(f"function call `{call_id}` is answered more than once")
            if call_id not in open_calls:
                raise InvalidArgument(
                    f"a function result answers `{call_id}`, which is no function call's id"
                )
            del open_calls[call_id]
            answered.add(call_id)
        elif kind == "user_input" and open_calls:
            missing = ", ".join(f"`{c}` ({n})" for c, n in open_calls.items())
            raise InvalidArgument(f"function calls {missing} have no function result")
    if open_calls and input_steps:
        missing = ", ".join(f"`{c}` ({n})" for c, n in open_calls.items())
        raise InvalidArgument(f"function calls {missing} have no function result")
