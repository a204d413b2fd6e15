"""Gemini targets beyond text: the built-in tools (`google_search`, `url_context`,
`code_execution`) with their steps, citations and usage; image and audio answers; safety
settings; replayed tool steps; Gemini's own continuation; and the background queue ordered by
`service_tier`. Recorded Gemini bodies (tests/fixtures/gemini, see PROVENANCE.md; the
constructed ones are marked there) are replayed on loopback and read back with google-genai."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors
from google.genai import types

from tests.conftest import (
    CONFIG,
    FIXTURES,
    Server,
    replay_model,
    start_server,
    stop_server,
    url_citations,
    wait_for,
)

SEARCH = {"type": "google_search"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gemini-tools")


@pytest.fixture(scope="module")
def server(replay: str, data_dir: Path) -> Iterator[Server]:
    config = "background_workers = 1\n" + CONFIG + replay_model(replay)
    running = start_server(data_dir, config)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: Server) -> genai.Client:
    return server.client()


def _chunks(name: str) -> list[dict[str, Any]]:
    """The recorded response chunks of a fixture, read independently of the provider."""
    raw = (FIXTURES / "generate_content" / name).read_text()
    if name.endswith(".sse"):
        return [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]
    return [json.loads(raw)]


def _last_request(replay: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{replay}/requests").json()[-1]
    return body


def _ask(client: genai.Client, name: str, **kwargs: Any) -> Any:
    return client.interactions.create(
        model="gemini-replay", input=f"generate_content/{name}", **kwargs
    )


def _plain(value: Any) -> Any:
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def _without_thoughts(steps: list[Any]) -> list[Any]:
    return [s for s in steps if s.type != "thought"]


@pytest.mark.parametrize("name", ["google_search.json", "google_search_stream.sse"])
def test_google_search_steps_citations_and_usage(
    client: genai.Client, replay: str, name: str
) -> None:
    answer = _ask(client, name, tools=[SEARCH])
    chunks = _chunks(name)
    grounding = chunks[-1]["candidates"][0]["groundingMetadata"]
    assert answer.status == "completed"
    output, call, result = _without_thoughts(answer.steps)
    assert (output.type, call.type, result.type) == (
        "model_output",
        "google_search_call",
        "google_search_result",
    )
    assert call.arguments.queries == grounding["webSearchQueries"]
    assert call.search_type == "web_search"
    assert result.call_id == call.id
    assert [r.search_suggestions for r in result.result] == [
        grounding["searchEntryPoint"]["renderedContent"]
    ]
    expected = url_citations(grounding)
    assert [_plain(a) for a in output.content[0].annotations] == expected
    usage, recorded = answer.usage, chunks[-1]["usageMetadata"]
    assert usage.total_tool_use_tokens == recorded["toolUsePromptTokenCount"]
    assert [(m.modality, m.tokens) for m in usage.tool_use_tokens_by_modality] == [
        (d["modality"].lower(), d["tokenCount"]) for d in recorded["toolUsePromptTokensDetails"]
    ]
    assert [(m.modality, m.tokens) for m in usage.input_tokens_by_modality] == [
        (d["modality"].lower(), d["tokenCount"]) for d in recorded["promptTokensDetails"]
    ]
    assert [(g.type, g.count) for g in usage.grounding_tool_count] == [
        ("google_search", len(grounding["webSearchQueries"]))
    ]
    sent = _last_request(replay)
    assert sent["tools"] == [{"googleSearch": {}}]
    types.Tool.model_validate(sent["tools"][0])
    # a stored interaction keeps the citations on its text item
    stored = client.interactions.get(answer.id)
    assert [_plain(a) for a in stored.steps[1].content[0].annotations] == expected


def test_google_search_streams_its_steps_in_order(client: genai.Client) -> None:
    events = list(_ask(client, "google_search_stream.sse", tools=[SEARCH], stream=True))
    kinds = [
        (e.event_type, e.step.type if e.event_type == "step.start" else e.delta.type)
        for e in events
        if e.event_type in ("step.start", "step.delta")
    ]
    text_at = kinds.index(("step.delta", "text_annotation_delta"))
    assert kinds[0] == ("step.start", "model_output")
    assert all(kind == ("step.delta", "text") for kind in kinds[1:text_at])
    assert kinds[text_at + 1 :] == [
        ("step.start", "google_search_call"),
        ("step.delta", "google_search_call"),
        ("step.start", "google_search_result"),
        ("step.delta", "google_search_result"),
    ]


@pytest.mark.parametrize("name", ["url_context.json", "url_context_stream.sse"])
def test_url_context_steps(client: genai.Client, replay: str, name: str) -> None:
    answer = _ask(client, name, tools=[{"type": "url_context"}])
    metadata = [
        entry
        for chunk in _chunks(name)
        for entry in (chunk["candidates"][0].get("urlContextMetadata") or {}).get("urlMetadata", [])
    ]
    output, call, result = _without_thoughts(answer.steps)
    assert (call.type, result.type) == ("url_context_call", "url_context_result")
    assert call.arguments.urls == [m["retrievedUrl"] for m in metadata]
    assert [(r.url, r.status) for r in result.result] == [
        (m["retrievedUrl"], "success") for m in metadata
    ]
    assert result.call_id == call.id
    assert output.content[0].annotations[0].url == metadata[0]["retrievedUrl"]
    assert _last_request(replay)["tools"] == [{"urlContext": {}}]


@pytest.mark.parametrize("name", ["code_execution.json", "code_execution_stream.sse"])
def test_code_execution_steps(client: genai.Client, name: str) -> None:
    answer = _ask(client, name, tools=[{"type": "code_execution"}])
    parts = [
        part
        for chunk in _chunks(name)
        for part in chunk["candidates"][0]["content"].get("parts", [])
    ]
    expected: list[tuple[str, Any]] = []
    for part in parts:
        if "executableCode" in part:
            code = part["executableCode"]
            expected.append(("code_execution_call", (code["id"], code["code"], "python")))
        elif "codeExecutionResult" in part:
            outcome = part["codeExecutionResult"]
            expected.append(("code_execution_result", (outcome["id"], outcome["output"], False)))
    steps = [s for s in answer.steps if s.type.startswith("code_execution")]
    got = [
        (
            s.type,
            (s.id, s.arguments.code, s.arguments.language)
            if s.type == "code_execution_call"
            else (s.call_id, s.result, s.is_error),
        )
        for s in steps
    ]
    assert got == expected
    text = "".join(p.get("text", "") for p in parts if "text" in p)
    assert answer.output_text == text
    assert answer.usage.total_tool_use_tokens == _chunks(name)[-1]["usageMetadata"].get(
        "toolUsePromptTokenCount", 0
    )


def _signature(value: str) -> bytes:
    """A thought signature's bytes, whichever base64 alphabet carries it."""
    return base64.b64decode(value.replace("-", "+").replace("_", "/"))


def test_code_execution_steps_are_replayed_as_gemini_parts(
    client: genai.Client, replay: str
) -> None:
    first = _ask(client, "code_execution.json", tools=[{"type": "code_execution"}])
    client.interactions.create(
        model="gemini-replay",
        previous_interaction_id=first.id,
        input="generate_content/text_basic.json",
        tools=[{"type": "code_execution"}],
    )
    ours = _last_request(replay)["contents"][1]
    # what google-genai itself sent for the same history (recorded)
    recorded = json.loads(
        (FIXTURES / "generate_content/code_execution_followup.request.json").read_text()
    )
    theirs = recorded["contents"][1]
    for part in (*ours["parts"], *theirs["parts"]):
        if "thoughtSignature" in part:
            part["thoughtSignature"] = _signature(part["thoughtSignature"])
    assert ours == theirs
    types.Content.model_validate(_last_request(replay)["contents"][1])


def test_image_answers_are_content_of_the_model_output(client: genai.Client, replay: str) -> None:
    answer = _ask(
        client,
        "image_output.json",
        response_modalities=["text", "image"],
        generation_config={"image_config": {"aspect_ratio": "1:1", "image_size": "1K"}},
    )
    part = _chunks("image_output.json")[0]["candidates"][0]["content"]["parts"][1]
    assert answer.status == "completed"
    assert [c.type for c in answer.steps[-1].content] == ["text", "image"]
    assert answer.output_image.data == part["inlineData"]["data"]
    assert answer.output_image.mime_type == "image/png"
    assert [(m.modality, m.tokens) for m in answer.usage.output_tokens_by_modality] == [
        ("text", 8),
        ("image", 1290),
    ]
    config = _last_request(replay)["generationConfig"]
    assert config == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "1:1", "imageSize": "1K"},
    }
    # google-genai itself sends `imageConfig` inside `generationConfig` (models.py)
    types.ImageConfig.model_validate(config.pop("imageConfig"))
    types.GenerationConfig.model_validate(config)


def test_audio_answers_from_a_response_format(client: genai.Client, replay: str) -> None:
    answer = _ask(
        client,
        "audio_output.json",
        response_format={"type": "audio"},
        generation_config={"speech_config": [{"voice": "Kore", "language": "en-US"}]},
    )
    part = _chunks("audio_output.json")[0]["candidates"][0]["content"]["parts"][0]
    audio = answer.output_audio
    assert (audio.mime_type, audio.sample_rate) == ("audio/l16", 24000)
    assert audio.data == part["inlineData"]["data"]
    config = _last_request(replay)["generationConfig"]
    assert config == {
        "responseModalities": ["AUDIO"],
        "speechConfig": {
            "languageCode": "en-US",
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
        },
    }
    types.GenerationConfig.model_validate(config)
    with pytest.raises(errors.BadRequestError) as caught:
        _ask(client, "audio_output.json", response_format={"type": "audio", "delivery": "uri"})
    assert "response_format.delivery" in caught.value.body["error"]["message"]


def test_safety_settings_are_passed_on(client: genai.Client, replay: str) -> None:
    _ask(
        client,
        "text_basic.json",
        safety_settings=[
            {"type": "harassment", "threshold": "block_medium_and_above", "method": "probability"},
            {"type": "dangerous_content", "threshold": "off"},
        ],
    )
    sent = _last_request(replay)["safetySettings"]
    assert sent == [
        {
            "category": "HARM_CATEGORY_HARASSMENT",
            "threshold": "BLOCK_MEDIUM_AND_ABOVE",
            "method": "PROBABILITY",
        },
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "OFF"},
    ]
    for setting in sent:
        types.SafetySetting.model_validate(setting)


def test_replayed_server_tool_steps_stay_in_the_history(client: genai.Client, replay: str) -> None:
    searched = _ask(client, "google_search.json", tools=[SEARCH])
    client.interactions.create(
        model="gemini-replay",
        previous_interaction_id=searched.id,
        input="generate_content/text_basic.json",
    )
    model_turn = _last_request(replay)["contents"][1]
    texts = [p["text"] for p in model_turn["parts"]]
    call = next(s for s in searched.steps if s.type == "google_search_call")
    assert texts[1].startswith("[google_search_call] ") and call.id in texts[1]
    assert texts[2].startswith("[google_search_result] ")
    # a stateless history of steps, as a client replays it
    history = [
        {"type": "user_input", "content": [{"type": "text", "text": "what is at a?"}]},
        {"type": "url_context_call", "id": "u1", "arguments": {"urls": ["https://a"]}},
        {"type": "url_context_result", "call_id": "u1", "result": [{"url": "https://a"}]},
        {"type": "model_output", "content": [{"type": "text", "text": "a page"}]},
        {
            "type": "user_input",
            "content": [{"type": "text", "text": "generate_content/text_basic.json"}],
        },
    ]
    client.interactions.create(model="gemini-replay", input=history)
    parts = _last_request(replay)["contents"][1]["parts"]
    assert [p["text"].split(" ")[0] for p in parts] == [
        "[url_context_call]",
        "[url_context_result]",
        "a",
    ]


def test_geminis_own_continuation(client: genai.Client, replay: str) -> None:
    part1, part2 = (_chunks(f"continuation_part{n}.json")[0]["candidates"][0] for n in (1, 2))
    whole = part1["content"]["parts"][0]["text"] + part2["content"]["parts"][0]["text"]
    answer = _ask(client, "continuation_part1.json")  # the SDK continues by itself
    assert answer.status == "completed" and answer.output_text == whole
    assert len(answer.continuation_ids) == 2
    first, second = httpx.get(f"{replay}/requests").json()[-2:]
    assert second["continuationToken"] == part1["continuationToken"]
    assert second["contents"] == first["contents"]
    background = _ask(client, "continuation_part1.json", background=True)
    wait_for(lambda: client.interactions.get(background.id).status == "completed")
    done = client.interactions.get(background.id)
    assert done.output_text == whole  # one interaction: the runner went on by itself
    assert [s.type for s in done.steps] == ["user_input", "model_output"]


def _tagged(tag: str) -> list[dict[str, str]]:
    """An input the replay answers with `text_basic.json` (its first text names the fixture),
    carrying `tag`."""
    return [
        {"type": "text", "text": "generate_content/text_basic.json"},
        {"type": "text", "text": tag},
    ]


def test_service_tier_orders_the_background_queue(client: genai.Client, replay: str) -> None:
    # one worker, held by a slow run, while four more arrive
    blocker = client.interactions.create(model="echo-idle", input="x" * 100, background=True)
    queued = {
        tier: client.interactions.create(
            model="gemini-replay", input=_tagged(f"tier-{tier}"), background=True, **extra
        )
        for tier, extra in (
            ("flex", {"service_tier": "flex"}),
            ("none", {}),
            ("priority", {"service_tier": "priority"}),
            ("deferred", {"service_tier": "deferred"}),
        )
    }
    assert {q.status for q in queued.values()} == {"queued"}
    ids = [blocker.id, *(q.id for q in queued.values())]
    wait_for(lambda: all(client.interactions.get(i).status == "completed" for i in ids), 60)
    order = [
        part["text"]
        for body in httpx.get(f"{replay}/requests").json()
        for part in body["contents"][-1]["parts"]
        if part.get("text", "").startswith("tier-")
    ]
    assert order == ["tier-priority", "tier-none", "tier-flex", "tier-deferred"]


def _tier_key(data_dir: Path) -> str:
    """A new key whose policy allows the `standard` and `flex` tiers only."""
    command = ["keys", "create", "--tenant", "default", "--service-tiers", "standard,flex"]
    out = subprocess.run(
        [sys.executable, "-m", "propylon", *command, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return re.search(r"api key:\s+(\S+)", out).group(1)  # type: ignore[union-attr]


def test_a_key_policy_may_refuse_a_tier(server: Server) -> None:
    keyed = genai.Client(
        api_key=_tier_key(server.data_dir),
        http_options=types.HttpOptions(
            base_url=server.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    with pytest.raises(errors.PermissionDeniedError) as caught:
        keyed.interactions.create(model="echo", input="x", background=True, service_tier="priority")
    assert caught.value.status_code == 403
    assert "`service_tier` `priority`" in caught.value.body["error"]["message"]
    flex = keyed.interactions.create(model="echo", input="x", background=True, service_tier="flex")
    assert flex.service_tier == "flex"
    # a foreground run does not queue: its tier is not honoured, so neither checked nor echoed
    now = keyed.interactions.create(model="echo", input="x", service_tier="priority")
    assert now.status == "completed" and now.service_tier is None
