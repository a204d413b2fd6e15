"""`cachedContents` through the real server and the google-genai client: create, get, list,
update, use (generateContent, streamed, countTokens), delete; tenancy (another tenant's cache
is not found), expiry and purge, bad input (nothing stored); and, for a `gemini` target, the
copy made on the upstream (tests/gemini_replay.py) whose name the forwarded request carries."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as interaction_errors
from google.genai import errors, types

from tests.conftest import (
    CONFIG,
    Server,
    new_key,
    replay_model,
    start_server,
    stop_server,
    wait_for,
)

DOCUMENT = "The cached document says: hello world"
INSTRUCTION = "be brief"
CACHED_WORDS = 8  # echo counts words: the document's 6 and the instruction's 2


def _config(**extra: Any) -> types.CreateCachedContentConfig:
    return types.CreateCachedContentConfig(
        contents=[types.Content(role="user", parts=[types.Part(text=DOCUMENT)])],
        system_instruction=INSTRUCTION,
        **{"ttl": "300s", **extra},
    )


def _count(server: Server) -> int:
    return int(server.query("SELECT count(*) FROM cached_contents")[0][0])  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def other(server: Server) -> genai.Client:
    """A client of another tenant (`acme`)."""
    key = new_key(server.data_dir)
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.url))


def test_create_get_list_update_delete(client: genai.Client) -> None:
    before = datetime.datetime.now(datetime.UTC)
    cache = client.caches.create(model="echo", config=_config(display_name="doc"))
    assert cache.name is not None and cache.name.startswith("cachedContents/")
    assert cache.model == "models/echo"
    assert cache.display_name == "doc"
    assert cache.usage_metadata is not None
    assert cache.usage_metadata.total_token_count == CACHED_WORDS
    assert cache.create_time is not None and cache.expire_time is not None
    lifetime = cache.expire_time - before
    assert datetime.timedelta(seconds=295) < lifetime < datetime.timedelta(seconds=310)

    got = client.caches.get(name=cache.name)
    assert got.model_dump() == cache.model_dump()
    assert cache.name in {c.name for c in client.caches.list()}

    updated = client.caches.update(name=cache.name, config={"ttl": "3600s"})
    assert updated.expire_time is not None and updated.update_time is not None
    assert updated.expire_time - cache.expire_time > datetime.timedelta(seconds=3000)
    assert updated.update_time >= cache.create_time
    assert client.caches.get(name=cache.name).expire_time == updated.expire_time

    client.caches.delete(name=cache.name)
    with pytest.raises(errors.ClientError) as raised:
        client.caches.get(name=cache.name)
    assert raised.value.code == 404
    assert raised.value.status == "NOT_FOUND"
    assert cache.name not in {c.name for c in client.caches.list()}


def test_update_by_expire_time_and_mask(server: Server, client: genai.Client) -> None:
    cache = client.caches.create(model="echo", config=_config())
    assert cache.name is not None
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=5)
    updated = client.caches.update(name=cache.name, config={"expire_time": later})
    assert updated.expire_time is not None
    assert abs(updated.expire_time - later) < datetime.timedelta(seconds=1)
    with server.http() as http:
        answer = http.patch(
            f"/v1beta/{cache.name}?updateMask=ttl", json={"ttl": "120s", "displayName": "x"}
        )
        assert answer.status_code == 400, answer.text  # displayName is no field of an update
        answer = http.patch(f"/v1beta/{cache.name}?updateMask=ttl", json={"ttl": "120s"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["expireTime"] < updated.expire_time.strftime("%Y-%m-%dT%H:%M:%S")
        answer = http.patch(f"/v1beta/{cache.name}?updateMask=contents", json={"ttl": "9s"})
        assert answer.status_code == 400
        assert "`contents` cannot be updated" in answer.json()["error"]["message"]


def test_generate_content_puts_the_cache_first(client: genai.Client) -> None:
    cache = client.caches.create(model="echo", config=_config())
    config = types.GenerateContentConfig(cached_content=cache.name)
    answer = client.models.generate_content(
        model="echo", contents="what does it say?", config=config
    )
    assert answer.text == (f"system: {INSTRUCTION}\nuser: {DOCUMENT}\nuser: what does it say?")
    assert answer.usage_metadata is not None
    assert answer.usage_metadata.cached_content_token_count == CACHED_WORDS
    assert answer.usage_metadata.prompt_token_count == CACHED_WORDS + 4

    streamed = client.models.generate_content_stream(
        model="fast",
        contents="and streamed?",
        config=config,  # an alias of the same model
    )
    chunks = list(streamed)
    assert "".join(c.text or "" for c in chunks) == (
        f"system: {INSTRUCTION}\nuser: {DOCUMENT}\nuser: and streamed?"
    )
    last = chunks[-1].usage_metadata
    assert last is not None and last.cached_content_token_count == CACHED_WORDS


def test_count_tokens_with_a_cache(server: Server, client: genai.Client) -> None:
    cache = client.caches.create(model="echo", config=_config())
    inner = {
        "model": "models/echo",
        "contents": [{"role": "user", "parts": [{"text": "three more words"}]}],
        "cachedContent": cache.name,
    }
    with server.http() as http:
        answer = http.post(
            "/v1beta/models/echo:countTokens", json={"generateContentRequest": inner}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"totalTokens": CACHED_WORDS + 3}


def test_a_cache_is_for_its_model_and_sets_what_it_holds(client: genai.Client) -> None:
    cache = client.caches.create(model="echo", config=_config())
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(
            model="echo-slow",
            contents="hi",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )
    assert raised.value.code == 400
    assert "has to be the same" in str(raised.value.message)
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(
            model="echo",
            contents="hi",
            config=types.GenerateContentConfig(
                cached_content=cache.name, system_instruction="another"
            ),
        )
    assert raised.value.code == 400
    assert "system_instruction, tools or tool_config" in str(raised.value.message)


def test_another_tenant_does_not_find_it(
    server: Server, client: genai.Client, other: genai.Client
) -> None:
    cache = client.caches.create(model="echo", config=_config())
    assert cache.name is not None
    for attempt in (
        lambda: other.caches.get(name=str(cache.name)),
        lambda: other.caches.delete(name=str(cache.name)),
        lambda: other.caches.update(name=str(cache.name), config={"ttl": "5s"}),
        lambda: other.models.generate_content(
            model="echo",
            contents="hi",
            config=types.GenerateContentConfig(cached_content=cache.name),
        ),
    ):
        with pytest.raises(errors.ClientError) as raised:
            attempt()
        assert raised.value.code == 404
    assert cache.name not in {c.name for c in other.caches.list()}
    # the owner's is untouched
    assert client.caches.get(name=cache.name).expire_time == cache.expire_time


def test_unknown_cache_is_not_found(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(
            model="echo",
            contents="hi",
            config=types.GenerateContentConfig(cached_content="cachedContents/nosuch"),
        )
    assert raised.value.code == 404
    assert raised.value.status == "NOT_FOUND"


def test_listing_pages(server: Server, other: genai.Client) -> None:
    made = {str(other.caches.create(model="echo", config=_config()).name) for _ in range(3)}
    with server.http() as http:
        listing = http.get("/v1beta/cachedContents", params={"pageSize": 2})
        assert listing.status_code == 200
        assert len(listing.json()["cachedContents"]) == 2
        assert listing.json()["nextPageToken"]
        assert http.get("/v1beta/cachedContents", params={"pageToken": "x"}).status_code == 400
    names = {c.name for c in other.caches.list(config={"page_size": 2})}
    assert names == made  # the other tenant's own, every page


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ttl": "soon"}, "`ttl`"),
        ({"ttl": "-5s"}, "`ttl`"),
        ({"ttl": "0s"}, "`ttl` must be positive"),
        ({"ttl": "300s", "expireTime": "2099-01-01T00:00:00Z"}, "give one"),
        ({"expireTime": "2001-01-01T00:00:00Z"}, "in the future"),
        ({"expireTime": "tomorrow"}, "`expireTime`"),
        ({"model": "models/nosuch"}, "nosuch"),
        ({"contents": []}, "`contents`"),
        ({"kmsKeyName": "k"}, "`kmsKeyName`"),
        ({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}, "contents"),
        ({"tools": [{"googleSearch": {}}]}, "`tools.0.googleSearch`"),
    ],
)
def test_bad_input_stores_nothing(server: Server, body: dict[str, Any], message: str) -> None:
    base = {
        "model": "models/echo",
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        **body,
    }
    before = _count(server)
    with server.http() as http:
        answer = http.post("/v1beta/cachedContents", json=base)
    assert answer.status_code in (400, 404), answer.text
    error = answer.json()["error"]
    assert error["code"] == answer.status_code
    assert error["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert message in error["message"]
    assert _count(server) == before


def test_bad_update_changes_nothing(server: Server, client: genai.Client) -> None:
    cache = client.caches.create(model="echo", config=_config())
    with server.http() as http:
        for body in ({"ttl": "later"}, {}, {"ttl": "5s", "expireTime": "2099-01-01T00:00:00Z"}):
            answer = http.patch(f"/v1beta/{cache.name}", json=body)
            assert answer.status_code == 400, answer.text
    assert client.caches.get(name=str(cache.name)).expire_time == cache.expire_time


def test_under_every_version_and_the_path_prefix(server: Server) -> None:
    body = {"model": "models/echo", "contents": [{"parts": [{"text": "prefixed"}]}]}
    with server.http() as http:
        made = http.post("/gemini/v1/cachedContents", json=body)
        assert made.status_code == 200, made.text
        name = made.json()["name"]
        lifetime = datetime.datetime.fromisoformat(made.json()["expireTime"]) - (
            datetime.datetime.fromisoformat(made.json()["createTime"])
        )
        assert lifetime == datetime.timedelta(hours=1)  # the default, as Google's
        assert http.get(f"/v1alpha/{name}").json()["name"] == name
        assert http.delete(f"/gemini/v1beta/{name}").status_code == 200
        assert http.get(f"/v1beta/{name}").status_code == 404


# Expiry and the purge: a server of its own, purging often.


@pytest.fixture(scope="module")
def purging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("caches-purge"), "purge_interval_seconds = 0.2\n" + CONFIG
    )
    yield running
    stop_server(running)


def test_an_expired_cache_is_not_found_then_purged(purging: Server) -> None:
    client = purging.client()
    cache = client.caches.create(model="echo", config=_config(ttl="1s"))
    assert cache.name is not None

    def gone() -> bool:
        try:
            client.caches.get(name=str(cache.name))
        except errors.ClientError as exc:
            return exc.code == 404
        return False

    wait_for(gone, 10)
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(
            model="echo",
            contents="hi",
            config=types.GenerateContentConfig(cached_content=cache.name),
        )
    assert raised.value.code == 404
    assert cache.name not in {c.name for c in client.caches.list()}
    wait_for(lambda: _count(purging) == 0, 10)


# A `gemini` target: the copy made upstream, and its name in the forwarded request.


@pytest.fixture(scope="module")
def gateway(replay: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("caches-gemini"), CONFIG + replay_model(replay))
    yield running
    stop_server(running)


def _upstream(replay: str, what: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{replay}/{what}").json()
    return found


def test_a_gemini_target_gets_an_upstream_copy(gateway: Server, replay: str) -> None:
    client = gateway.client()
    cache = client.caches.create(model="gemini-replay", config=_config())
    assert cache.name is not None
    made = _upstream(replay, "caches")[-1]
    assert made["method"] == "POST"
    sent = made["body"]
    assert sent["model"] == "models/gemini-2.5-flash"  # the target's model
    assert sent["contents"] == [{"role": "user", "parts": [{"text": DOCUMENT}]}]
    assert sent["systemInstruction"]["parts"] == [{"text": INSTRUCTION}]
    assert sent["expireTime"] == cache.expire_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # type: ignore[union-attr]
    assert cache.usage_metadata is not None
    assert cache.usage_metadata.total_token_count == 2 * CACHED_WORDS  # the upstream's count
    upstream_name = f"cachedContents/upstream-{len(_upstream(replay, 'caches'))}"

    answer = client.models.generate_content(
        model="gemini-replay",
        contents="generate_content/usage_cached_content.json",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert answer.text == "Paris."
    assert answer.usage_metadata is not None
    assert answer.usage_metadata.cached_content_token_count == 3512  # the upstream's own
    forwarded = _upstream(replay, "requests")[-1]
    assert forwarded["cachedContent"] == upstream_name
    assert [c["parts"][0]["text"] for c in forwarded["contents"]] == [
        "generate_content/usage_cached_content.json"
    ]
    assert "systemInstruction" not in forwarded

    inner = {
        "model": "models/gemini-replay",
        "contents": [{"role": "user", "parts": [{"text": "two words"}]}],
        "cachedContent": cache.name,
    }
    with gateway.http() as http:
        counted = http.post(
            "/v1beta/models/gemini-replay:countTokens", json={"generateContentRequest": inner}
        )
    assert counted.status_code == 200, counted.text
    forwarded = _upstream(replay, "requests")[-1]["generateContentRequest"]
    assert forwarded["cachedContent"] == upstream_name
    assert forwarded["model"] == "models/gemini-2.5-flash"

    client.caches.update(name=cache.name, config={"ttl": "900s"})
    patched = _upstream(replay, "caches")[-1]
    assert patched["method"] == "PATCH" and patched["name"] == upstream_name
    assert patched["query"] == {"updateMask": "expireTime"}
    client.caches.delete(name=cache.name)
    deleted = _upstream(replay, "caches")[-1]
    assert deleted == {"method": "DELETE", "name": upstream_name}


def test_a_copy_the_upstream_refuses_goes_inline(gateway: Server, replay: str) -> None:
    client = gateway.client()
    config = types.CreateCachedContentConfig(
        contents=[types.Content(role="user", parts=[types.Part(text="too small to cache")])],
        ttl="300s",
    )
    cache = client.caches.create(model="gemini-replay", config=config)
    assert _upstream(replay, "caches")[-1]["method"] == "POST"  # tried, refused
    answer = client.models.generate_content(
        model="gemini-replay",
        contents="generate_content/text_basic.json",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert answer.text
    forwarded = _upstream(replay, "requests")[-1]
    assert "cachedContent" not in forwarded
    assert [c["parts"][0]["text"] for c in forwarded["contents"]] == [
        "too small to cache",
        "generate_content/text_basic.json",
    ]
    client.caches.delete(name=str(cache.name))
    assert _upstream(replay, "caches")[-1]["method"] == "POST"  # no copy to delete


def test_path_prefix_unaffected(server: Server) -> None:
    """`/v1beta/cachedContents` answers Google's error body for an unknown id."""
    with server.http() as http:
        answer = http.get("/v1beta/cachedContents/nosuch")
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"


# Interactions name a cached content too (`cached_content`).


def test_an_interaction_puts_the_cache_first(server: Server, client: genai.Client) -> None:
    cache = client.caches.create(
        model="echo",
        config=_config(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="lookup")])]
        ),
    )
    interaction = client.interactions.create(
        model="fast", input="what does it say?", cached_content=cache.name
    )
    assert interaction.output_text == (
        f"system: {INSTRUCTION}\nuser: {DOCUMENT}\nuser: what does it say?"
    )
    assert interaction.cached_content == cache.name
    assert interaction.usage is not None
    assert interaction.usage.total_cached_tokens == CACHED_WORDS
    called = client.interactions.create(
        model="echo", input="call lookup {}", cached_content=cache.name
    )  # the cached content's function is declared
    assert [s.type for s in called.steps][-1] == "function_call"


def test_an_interaction_finds_only_its_tenants_cache(
    server: Server, client: genai.Client, other: genai.Client
) -> None:
    cache = client.caches.create(model="echo", config=_config())
    before = server.rows()
    with pytest.raises(interaction_errors.NotFoundError):
        other.interactions.create(model="echo", input="hi", cached_content=cache.name)
    with pytest.raises(interaction_errors.BadRequestError) as refused:
        client.interactions.create(model="echo-slow", input="hi", cached_content=cache.name)
    assert "cached_content" in refused.value.body["error"]["message"]
    assert server.rows() == before


# A cached content may hold an uploaded file (the usual use: one large document, many questions).


def test_a_cache_holds_an_uploaded_file(
    server: Server, client: genai.Client, other: genai.Client, tmp_path: Any
) -> None:
    data = b"the uploaded report"
    path = tmp_path / "report.txt"
    path.write_bytes(data)
    uploaded = client.files.upload(file=path, config={"mime_type": "text/plain"})
    assert uploaded.uri is not None and uploaded.name is not None
    shown = (
        f"[document text/plain {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:16]}]"
    )
    part = types.Part.from_uri(file_uri=uploaded.uri, mime_type="text/plain")
    config = types.CreateCachedContentConfig(
        contents=[types.Content(role="user", parts=[part])], ttl="300s"
    )
    before = _count(server)
    with pytest.raises(errors.ClientError) as refused:  # the file is not the other tenant's
        other.caches.create(model="echo", config=config)
    assert refused.value.code == 404 and refused.value.status == "NOT_FOUND"
    assert _count(server) == before
    cache = client.caches.create(model="echo", config=config)
    client.files.delete(name=uploaded.name)  # the cache holds the bytes, as Google's does
    answer = client.models.generate_content(
        model="echo",
        contents="what does it say?",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert answer.text == f"user: {shown}\nuser: what does it say?"
    interaction = client.interactions.create(
        model="echo", input="and here?", cached_content=cache.name
    )
    assert interaction.output_text == f"user: {shown}\nuser: and here?"
