"""The foundation through the real google-genai SDK: create, continue, get, delete."""

from __future__ import annotations

import base64
import hashlib
import re
import time

import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import Server


def test_create_with_a_string_returns_model_steps_and_usage(client: genai.Client) -> None:
    interaction = client.interactions.create(model="echo", input="hello there")
    assert interaction.status == "completed"
    assert interaction.id.startswith("v1_")
    assert interaction.output_text == "user: hello there"
    # create returns only the model-generated steps
    assert [step.type for step in interaction.steps] == ["model_output"]
    assert interaction.usage.total_input_tokens == 2
    assert interaction.usage.total_output_tokens == 3
    assert interaction.usage.total_tokens == 5
    assert interaction.model == "echo"


def test_interaction_ids_sort_in_the_order_they_were_created(client: genai.Client) -> None:
    ids = []
    for _ in range(4):
        ids.append(client.interactions.create(model="echo", input="hi").id)
        time.sleep(0.002)  # a later millisecond (not a synchronisation)
    assert all(re.fullmatch(r"v1_[A-Za-z0-9_-]{24}", i) for i in ids), ids
    assert sorted(ids) == ids  # the stores' keys on them grow at their end


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("just text", "user: just text"),
        ({"type": "text", "text": "one content"}, "user: one content"),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "user: a b"),
        (
            [
                {"type": "user_input", "content": [{"type": "text", "text": "q1"}]},
                {"type": "model_output", "content": [{"type": "text", "text": "a1"}]},
                {"type": "user_input", "content": [{"type": "text", "text": "q2"}]},
            ],
            "user: q1\nmodel: a1\nuser: q2",
        ),
    ],
    ids=["string", "content", "content-list", "step-list"],
)
def test_every_input_shape(client: genai.Client, value: object, expected: str) -> None:
    interaction = client.interactions.create(model="echo", input=value)  # type: ignore[arg-type]
    assert interaction.output_text == expected


def test_media_content_is_stored_and_handed_to_echo(client: genai.Client) -> None:
    image = {"type": "image", "mime_type": "image/png", "data": base64.b64encode(b"png").decode()}
    interaction = client.interactions.create(
        model="echo", input=[{"type": "text", "text": "look"}, image]
    )
    digest = hashlib.sha256(b"png").hexdigest()[:16]  # echo shows inline bytes' size and digest
    assert interaction.output_text == f"user: look [image image/png 3 bytes sha256:{digest}]"
    stored = client.interactions.get(interaction.id)
    assert stored.steps[0].content[1].data == image["data"]


def test_get_includes_the_user_input_step_and_include_input(client: genai.Client) -> None:
    created = client.interactions.create(
        model="echo", input="remember me", system_instruction="be brief", labels={"job": "t1"}
    )
    got = client.interactions.get(created.id)
    assert [step.type for step in got.steps] == ["user_input", "model_output"]
    assert got.steps[0].content[0].text == "remember me"
    assert got.output_text == "system: be brief\nuser: remember me"
    assert got.system_instruction == "be brief"
    assert got.labels == {"job": "t1"}
    assert got.status == "completed" and got.usage.total_tokens == created.usage.total_tokens
    assert getattr(got, "input", None) is None
    assert client.interactions.get(created.id, include_input=True).input == "remember me"


def test_three_turn_chain_shows_the_whole_history_in_order(client: genai.Client) -> None:
    first = client.interactions.create(model="echo", input="one", system_instruction="only once")
    second = client.interactions.create(model="echo", input="two", previous_interaction_id=first.id)
    third = client.interactions.create(
        model="fast", input="three", previous_interaction_id=second.id
    )
    # system_instruction is turn-scoped: not inherited
    assert third.output_text.split("\n") == [
        "user: one",
        "model: system: only once\\nuser: one",
        "user: two",
        "model: user: one\\nmodel: system: only once\\nuser: one\\nuser: two",
        "user: three",
    ]
    assert client.interactions.get(third.id).previous_interaction_id == second.id


def test_store_false_keeps_nothing(server: Server, client: genai.Client) -> None:
    before = server.rows()
    interaction = client.interactions.create(model="echo", input="secret", store=False)
    assert interaction.output_text == "user: secret"
    assert server.rows() == before
    with pytest.raises(errors.NotFoundError):
        client.interactions.get(interaction.id)


def test_delete_removes_everything(server: Server, client: genai.Client) -> None:
    created = client.interactions.create(model="echo", input="forget me")
    before = server.rows()
    assert client.interactions.delete(created.id) is None
    assert server.rows()[0] == before[0] - 1
    assert server.rows()[1] < before[1]
    with pytest.raises(errors.NotFoundError):
        client.interactions.get(created.id)
    with pytest.raises(errors.NotFoundError):
        client.interactions.get(created.id, stream=True)
    with pytest.raises(errors.NotFoundError):
        client.interactions.delete(created.id)
    with pytest.raises(errors.NotFoundError):
        client.interactions.create(model="echo", input="x", previous_interaction_id=created.id)


def test_cancel_a_finished_interaction_is_a_failed_precondition(client: genai.Client) -> None:
    created = client.interactions.create(model="echo", input="done already")
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.cancel(created.id)
    assert caught.value.status_code == 400
    assert caught.value.body["error"]["code"] == "failed_precondition"


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1beta1"])
def test_every_api_version_segment(server: Server, version: str) -> None:
    client = server.client(api_version=version)
    assert client.interactions.create(model="echo", input="v").output_text == "user: v"


def test_behind_a_path_prefix(server: Server) -> None:
    from google.genai import types

    client = genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=server.url + "/gemini/")
    )
    created = client.interactions.create(model="echo", input="prefixed")
    assert client.interactions.get(created.id).output_text == "user: prefixed"


def test_bearer_authorization_is_accepted(server: Server) -> None:
    with server.http() as http:
        response = http.post(
            "/v1beta/interactions",
            json={"model": "echo", "input": "b"},
            headers={"x-goog-api-key": "", "authorization": "Bearer test-key"},
        )
    assert response.status_code == 200, response.text
