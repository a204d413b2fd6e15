"""The coverage of the Interactions wire format (scripts/interactions_coverage.py): every item of
the pinned google-genai's types has a row in docs/interactions-fields.md, and the rows that say
`refused` are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import _interactions as errors

from scripts.interactions_coverage import TABLE, classification, main, sdk_items, unclassified

SCRIPT = Path(__file__).parent.parent / "scripts" / "interactions_coverage.py"


def test_every_item_of_the_pinned_sdk_is_classified() -> None:
    items = sdk_items()
    assert len(items) > 100  # the enumeration found the SDK's types
    assert unclassified(items, classification()) == []


def test_an_item_the_sdk_gains_fails_the_check(tmp_path: Path) -> None:
    rows = classification()
    assert unclassified([*sdk_items(), ("tool", "teleport")], rows) == [("tool", "teleport")]
    trimmed = tmp_path / "fields.md"
    trimmed.write_text(
        "\n".join(line for line in TABLE.read_text().splitlines() if "`url_context`" not in line)
    )
    assert main(["--table", str(trimmed)]) == 1


def test_the_script_prints_each_item_and_the_score() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split() == ["tool", "google_search", "handled"] for line in lines)
    assert any(line.startswith("score: ") and "0 unclassified" in line for line in lines)


# For each `refused` row: a create that uses the item, and the text the 400 must name.
REFUSED: dict[tuple[str, str], tuple[dict[str, Any], str]] = {
    ("request", "environment"): ({"environment": "remote"}, "environment"),
    ("generation_config", "transcription_config"): (
        {"generation_config": {"transcription_config": {"language_codes": ["en"]}}},
        "generation_config.transcription_config",
    ),
    ("generation_config", "video_config"): (
        {"generation_config": {"video_config": {"task": "edit"}}},
        "generation_config.video_config",
    ),
    **{
        ("tool", name): ({"tools": [{"type": name}]}, name)
        for name in ("computer_use", "file_search", "google_maps", "retrieval", "tool_search")
    },
}


@pytest.mark.parametrize(
    "item",
    sorted(item for item, status in classification().items() if status == "refused"),
    ids=lambda item: f"{item[0]}:{item[1]}",
)
def test_refused_rows_are_refused(client: genai.Client, item: tuple[str, str]) -> None:
    body, named = REFUSED[item]
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(model="echo", input="x", **body)
    assert caught.value.status_code == 400
    assert named in caught.value.body["error"]["message"]
