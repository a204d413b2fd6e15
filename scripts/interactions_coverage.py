"""Coverage of the Interactions wire format: every item the installed google-genai types
(`google/genai/_gaos/types/interactions/`) against Propylon's classification, the table in
docs/interactions-fields.md (one row per item: kind, item, status).

Items, by kind: `request` (the fields of CreateModelInteraction and CreateAgentInteraction),
`generation_config` (GenerationConfig's fields), `step`, `delta`, `content`, `tool` (the type
names of those open unions), `event` (the SSE event types), `usage` (Usage's fields) and
`status` (the interaction statuses).

    python scripts/interactions_coverage.py [--table docs/interactions-fields.md]

prints one line per item (`kind item status`), then the score. Exits 1 when an SDK item has no
row (or a row has an unknown status), so a new SDK version cannot add an item nobody classified.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import typing
from collections import Counter
from pathlib import Path
from typing import Any

STATUSES = ("handled", "refused", "dropped")
TABLE = Path(__file__).resolve().parent.parent / "docs" / "interactions-fields.md"
KINDS = (
    "request",
    "generation_config",
    "step",
    "delta",
    "content",
    "event",
    "tool",
    "usage",
    "status",
)
_ROW = re.compile(r"^\|\s*([a-z_]+)\s*\|\s*`([^`]+)`\s*\|\s*([a-z]+)\s*\|")


def _variants(annotation: Any) -> list[str]:
    """The discriminator values of an SDK open union (`parse_open_union(..., variants=)`)."""
    found: dict[str, Any] = {}

    def walk(value: Any) -> None:
        for meta in getattr(value, "__metadata__", ()) or ():
            func = getattr(meta, "func", None)
            if isinstance(func, functools.partial) and "variants" in func.keywords:
                found.update(func.keywords["variants"])
        for arg in typing.get_args(value):
            walk(arg)
        alias = getattr(value, "__value__", None)
        if alias is not None:
            walk(alias)

    walk(annotation)
    return sorted(found)


def _literals(annotation: Any) -> list[str]:
    """The string values of the Literal inside `annotation` (an open enum)."""
    values: list[str] = []

    def walk(value: Any) -> None:
        if typing.get_origin(value) is typing.Literal:
            values.extend(v for v in typing.get_args(value) if isinstance(v, str))
        for arg in typing.get_args(value):
            if typing.get_origin(value) is not typing.Literal:
                walk(arg)

    walk(annotation)
    return values


def _discriminators(annotation: Any, field: str) -> list[str]:
    """The `field` Literal of each model in a plain union (the SSE events, the deltas)."""
    names: list[str] = []
    for member in typing.get_args(annotation) or (annotation,):
        if getattr(member, "__name__", "").startswith("Unknown"):
            continue  # the SDK's catch-all for types it does not know
        model_fields = getattr(member, "model_fields", {})
        if field in model_fields:
            names.extend(_literals(model_fields[field].annotation))
    return names


def sdk_items() -> list[tuple[str, str]]:
    """Every (kind, item) of the installed SDK's interactions types."""
    from google.genai._gaos.types.interactions import (
        createagentinteraction,
        createmodelinteraction,
        generationconfig,
        interaction,
        interactionsseevent,
        modeloutputstep,
        stepdelta,
        usage,
    )

    request = list(createmodelinteraction.CreateModelInteraction.model_fields)
    request += [
        name
        for name in createagentinteraction.CreateAgentInteraction.model_fields
        if name not in request
    ]
    resource = interaction.Interaction.model_fields
    items = {
        "request": request,
        "generation_config": list(generationconfig.GenerationConfig.model_fields),
        "step": _variants(resource["steps"].annotation),
        "delta": _discriminators(stepdelta.StepDelta.model_fields["delta"].annotation, "type"),
        "content": _variants(modeloutputstep.ModelOutputStep.model_fields["content"].annotation),
        "event": _variants(interactionsseevent.InteractionSSEEvent),
        "tool": _variants(resource["tools"].annotation),
        "usage": list(usage.Usage.model_fields),
        "status": _literals(resource["status"].annotation),
    }
    return [(kind, name) for kind in KINDS for name in dict.fromkeys(items[kind])]


def classification(table: Path = TABLE) -> dict[tuple[str, str], str]:
    """(kind, item) -> status, from the table's rows."""
    rows: dict[tuple[str, str], str] = {}
    for line in table.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            rows[(match.group(1), match.group(2))] = match.group(3)
    return rows


def unclassified(
    items: list[tuple[str, str]], rows: dict[tuple[str, str], str]
) -> list[tuple[str, str]]:
    """The items without a row, or whose row's status is not one of STATUSES."""
    return [item for item in items if rows.get(item) not in STATUSES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    args = parser.parse_args(argv)
    items, rows = sdk_items(), classification(args.table)
    for kind, name in items:
        print(f"{kind:<18} {name:<28} {rows.get((kind, name), 'UNCLASSIFIED')}")
    counts = Counter(rows.get(item, "unclassified") for item in items)
    missing = unclassified(items, rows)
    stale = sorted(set(rows) - set(items))
    per_kind = ", ".join(f"{kind} {sum(1 for k, _ in items if k == kind)}" for kind in KINDS)
    print(f"\n{len(items)} items ({per_kind})")
    print(
        f"score: {counts['handled']} of {len(items)} handled, {counts['refused']} refused, "
        f"{counts['dropped']} documented-dropped, {len(missing)} unclassified "
        "(silently ignored: 0 by construction once every item is classified)"
    )
    for kind, name in stale:
        print(f"note: `{kind} {name}` is in the table but not in the installed SDK")
    for kind, name in missing:
        print(f"error: `{kind} {name}` has no valid row in {args.table}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
