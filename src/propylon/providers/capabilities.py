"""What a provider can take and give beyond text, and the checks that follow from it.

Every provider declares (or inherits) `Capabilities`. The gateway applies them to every target
of a served model, before anything is stored (`check`) and per call (`prepare`), so a request
field is honoured, refused with a 400 naming it, or handled by one documented rule, never
dropped on the floor (docs/interactions-fields.md):

- `response_modalities`: a modality the provider cannot produce answers 400.
- `safety_settings`: providers without a content filter take only thresholds that block
  nothing (`block_none`, `off`); any other threshold answers 400, because Propylon would not
  enforce it.
- replayed steps (a client's stateless history, or a previous interaction answered by another
  provider): steps of a type the provider cannot take natively reach it as a `model_output`
  text step `[type] {json of its fields}`, so they stay in the history it sees.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from propylon.errors import InvalidArgument
from propylon.providers.base import Turn

__all__ = [
    "BASE_STEPS",
    "TEXT_ONLY",
    "Capabilities",
    "as_text_step",
    "capabilities_of",
    "check",
    "prepare",
]

# Step types every provider maps to its upstream (or deliberately drops: thoughts).
BASE_STEPS = frozenset(
    {
        "user_input",
        "model_output",
        "thought",
        "function_call",
        "function_result",
        "mcp_server_tool_call",
        "mcp_server_tool_result",
    }
)
# Thresholds that ask for no blocking: honoured by having no filter.
_NO_BLOCKING = frozenset({"block_none", "off"})


@dataclass(frozen=True, slots=True)
class Capabilities:
    """output_modalities: what answers may hold. safety_filter: `safety_settings` are passed
    to a real filter. native_steps: step types taken as they are (None: every type).
    continues: can go on with an answer cut short (`Turn.continuation`)."""

    output_modalities: frozenset[str] = frozenset({"text"})
    safety_filter: bool = False
    native_steps: frozenset[str] | None = BASE_STEPS
    continues: bool = False


TEXT_ONLY = Capabilities()


def capabilities_of(provider: object) -> Capabilities:
    """The provider's `capabilities` attribute, or TEXT_ONLY when it declares none."""
    declared = getattr(provider, "capabilities", None)
    return declared if isinstance(declared, Capabilities) else TEXT_ONLY


def check(turn: Turn, capabilities: Capabilities, who: str) -> None:
    """Raise InvalidArgument naming the field when `who` cannot honour `turn`'s output
    modalities, continuation or safety settings."""
    for modality in turn.response_modalities:
        if modality not in capabilities.output_modalities:
            produced = ", ".join(sorted(capabilities.output_modalities))
            raise InvalidArgument(
                f"`response_modalities` (or a `response_format` entry): {who} does not "
                f"produce `{modality}` output; it produces {produced}"
            )
    if turn.continuation is not None and not capabilities.continues:
        raise InvalidArgument(f"`continuation_token`: {who} cannot go on with a cut answer")
    if not capabilities.safety_filter:
        for index, setting in enumerate(turn.safety_settings):
            if setting.get("threshold") not in _NO_BLOCKING:
                raise InvalidArgument(
                    f"`safety_settings.{index}.threshold`: {who} has no content filter, so "
                    f"`{setting.get('threshold')}` would not be enforced; only `block_none` "
                    "and `off` are accepted"
                )


def prepare(turn: Turn, capabilities: Capabilities) -> Turn:
    """`turn` with every step the provider cannot take natively replayed as text."""
    native = capabilities.native_steps
    if native is None or all(step.get("type") in native for step in turn.history):
        return turn
    history = [s if s.get("type") in native else as_text_step(s) for s in turn.history]
    return dataclasses.replace(turn, history=history)


def as_text_step(step: dict[str, Any]) -> dict[str, Any]:
    """A step as a `model_output` text step: `[google_search_call] {"id": ...}`."""
    fields = {k: v for k, v in step.items() if k != "type"}
    text = f"[{step.get('type')}] {orjson.dumps(fields).decode()}"
    return {"type": "model_output", "content": [{"type": "text", "text": text}]}
