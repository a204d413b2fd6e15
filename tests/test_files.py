"""The Gemini Files API: google-genai's resumable upload (8 MiB chunks), get, list, download,
delete, and a file used by URI in generateContent and in an interaction, against the real
server; tenancy, the size limit and expiry."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import API_KEY_DIGEST, Server, create_key, start_server, stop_server, wait_for
from tests.postgres import fresh_database

CONFIG = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
auth_cache_seconds = 0
path_prefix = "/gemini"
max_request_bytes = 1048576
max_file_bytes = 12582912
max_inline_file_bytes = 10485760

[[models]]
name = "echo"
provider = "echo"
"""
MIB = 1024 * 1024


def _client(server: Server, key: str = "test-key", prefix: str = "") -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=server.url + prefix, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


def _blobs(server: Server) -> list[Path]:
    root = server.data_dir / "files"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def _rows(server: Server) -> tuple[int, int]:
    files = server.query("SELECT count(*) FROM files")[0][0]
    uploads = server.query("SELECT count(*) FROM file_uploads")[0][0]
    assert isinstance(files, int) and isinstance(uploads, int)
    return files, uploads


def _shown(data: bytes, mime: str = "text/plain", kind: str = "document") -> str:
    """How echo shows `data` arriving inline."""
    return f"[{kind} {mime} {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:16]}]"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="module")
def other_key(data_dir: Path) -> str:
    return create_key(data_dir, "--tenant", "globex")[1]


@pytest.fixture(scope="module")
def server(data_dir: Path, other_key: str) -> Iterator[Server]:
    running = start_server(data_dir, CONFIG)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: Server) -> genai.Client:
    return _client(server)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A 9 MiB text file: more than one of the SDK's 8 MiB chunks."""
    data = random.Random(7).randbytes(9 * MIB)
    path = tmp_path_factory.mktemp("upload") / "big.txt"
    path.write_bytes(data)
    return path, data


@pytest.fixture(scope="module")
def uploaded(client: genai.Client, big: tuple[Path, bytes]) -> types.File:
    return client.files.upload(file=big[0], config={"display_name": "big one"})


def test_upload_in_chunks_gives_googles_file_resource(
    uploaded: types.File, big: tuple[Path, bytes], server: Server
) -> None:
    data = big[1]
    assert uploaded.name is not None and uploaded.name.startswith("files/")
    file_id = uploaded.name.removeprefix("files/")
    assert uploaded.display_name == "big one"
    assert uploaded.mime_type == "text/plain"
    assert uploaded.size_bytes == len(data)
    digest = hashlib.sha256(data).hexdigest()
    assert uploaded.sha256_hash == base64.b64encode(digest.encode()).decode()
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.source == types.FileSource.UPLOADED
    assert re.fullmatch(rf"{server.url}/v1\w*/files/{file_id}", uploaded.uri or "")
    assert uploaded.create_time is not None and uploaded.expiration_time is not None
    lifetime = (uploaded.expiration_time - uploaded.create_time).total_seconds()
    assert 48 * 3600 - 5 <= lifetime <= 48 * 3600 + 5
    # the bytes are one blob under the data dir, named by their digest
    assert digest in [path.name for path in _blobs(server)]


def test_get_and_list(client: genai.Client, uploaded: types.File, server: Server) -> None:
    assert uploaded.name is not None
    got = client.files.get(name=uploaded.name)
    assert got.model_dump(exclude_none=True) == uploaded.model_dump(exclude_none=True)
    small = [
        client.files.upload(file=_text(server, f"note {i}"), config={"mime_type": "text/plain"})
        for i in range(2)
    ]
    names = [f.name for f in client.files.list(config={"page_size": 1})]  # pages of one
    assert set(names) >= {uploaded.name, *(f.name for f in small)}
    assert len(names) == len(set(names))
    with server.http() as http:
        page = http.get("/v1beta/files", params={"pageSize": 1}).json()
    assert len(page["files"]) == 1 and page["nextPageToken"]


def _text(server: Server, text: str) -> Path:
    path = server.data_dir.parent / f"{hashlib.sha256(text.encode()).hexdigest()[:8]}.txt"
    path.write_text(text)
    return path


def test_generate_content_resolves_the_file(
    client: genai.Client, uploaded: types.File, big: tuple[Path, bytes]
) -> None:
    assert uploaded.uri is not None and uploaded.name is not None
    shown = _shown(big[1])
    for uri in (uploaded.uri, uploaded.name):
        answer = client.models.generate_content(
            model="echo",
            contents=[types.Part.from_uri(file_uri=uri, mime_type="text/plain"), "what is it?"],
        )
        assert answer.text == f"user: {shown} what is it?"
    streamed = "".join(
        chunk.text or ""
        for chunk in client.models.generate_content_stream(
            model="echo", contents=[types.Part.from_uri(file_uri=uploaded.uri, mime_type="")]
        )
    )
    assert streamed == f"user: {shown}"
    counted = client.models.count_tokens(
        model="echo", contents=[types.Part.from_uri(file_uri=uploaded.uri, mime_type="text/plain")]
    )
    assert counted.total_tokens == 2  # echo counts `[document text/plain]` as two words


def test_a_file_over_the_inline_limit_is_400_naming_it(
    client: genai.Client, tmp_path: Path
) -> None:
    path = tmp_path / "large.txt"
    path.write_bytes(b"x" * (11 * MIB))  # over max_inline_file_bytes (10 MiB), under the file limit
    large = client.files.upload(file=path)
    assert large.uri is not None
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model="echo", contents=[types.Part.from_uri(file_uri=large.uri, mime_type="text/plain")]
        )
    assert refused.value.code == 400
    assert "max_inline_file_bytes" in (refused.value.message or "")


def test_an_interaction_resolves_the_file(
    client: genai.Client, uploaded: types.File, big: tuple[Path, bytes]
) -> None:
    assert uploaded.uri is not None
    document = {"type": "document", "uri": uploaded.uri, "mime_type": "text/plain"}
    interaction = client.interactions.create(
        model="echo", input=[{"type": "text", "text": "read"}, document]
    )
    assert interaction.output_text == f"user: read {_shown(big[1])}"
    stored = client.interactions.get(interaction.id)
    assert stored.steps[0].content[1].uri == uploaded.uri  # stored as sent, not the bytes
    background = client.interactions.create(
        model="echo", input=[document], background=True, store=True
    )
    wait_for(lambda: client.interactions.get(background.id).status == "completed")
    assert client.interactions.get(background.id).output_text == f"user: {_shown(big[1])}"


def test_download_gives_the_bytes(
    client: genai.Client, uploaded: types.File, big: tuple[Path, bytes], server: Server
) -> None:
    assert uploaded.name is not None
    assert client.files.download(file=uploaded.name) == big[1]
    with server.http() as http:
        answer = http.get(f"/v1beta/{uploaded.name}:download", params={"alt": "media"})
    assert answer.status_code == 200 and answer.content == big[1]
    assert answer.headers["content-type"].startswith("text/plain")


def test_an_upload_through_the_path_prefix(server: Server) -> None:
    prefixed = _client(server, prefix="/gemini")
    made = prefixed.files.upload(file=_text(server, "prefixed"), config={"mime_type": "text/plain"})
    assert made.uri is not None and made.name is not None
    assert re.fullmatch(rf"{server.url}/gemini/v1\w*/{made.name}", made.uri)
    answer = prefixed.models.generate_content(
        model="echo", contents=[types.Part.from_uri(file_uri=made.uri, mime_type="text/plain")]
    )
    assert answer.text == f"user: {_shown(b'prefixed')}"
    assert prefixed.files.get(name=made.name).uri == made.uri


def test_an_empty_file_and_an_upload_from_a_stream(client: genai.Client) -> None:
    empty = client.files.upload(file=io.BytesIO(b""), config={"mime_type": "text/plain"})
    assert empty.size_bytes == 0 and empty.name is not None
    assert client.files.download(file=empty.name) == b""


def _status(call: Any) -> int:
    with pytest.raises(errors.APIError) as caught:
        call()
    return caught.value.code


def test_another_tenants_file_is_404_everywhere(
    server: Server, uploaded: types.File, other_key: str
) -> None:
    assert uploaded.name is not None and uploaded.uri is not None
    other = _client(server, other_key)
    assert _status(lambda: other.files.get(name=uploaded.name)) == 404
    assert _status(lambda: other.files.delete(name=uploaded.name)) == 404
    assert _status(lambda: other.files.download(file=uploaded.name)) == 404
    for uri in (uploaded.uri, uploaded.name):
        part = types.Part.from_uri(file_uri=uri, mime_type="text/plain")
        assert (
            _status(lambda p=part: other.models.generate_content(model="echo", contents=[p])) == 404
        )
        assert _status(lambda p=part: other.models.count_tokens(model="echo", contents=[p])) == 404
    # in a batch, the request naming it fails alone: NOT_FOUND (gRPC code 5)
    part = types.Part.from_uri(file_uri=uploaded.uri, mime_type="text/plain")
    job = other.batches.create(
        model="echo",
        src=[{"contents": [{"role": "user", "parts": [part.model_dump(exclude_none=True)]}]}],
    )
    assert job.name is not None
    succeeded = types.JobState.JOB_STATE_SUCCEEDED
    wait_for(lambda: other.batches.get(name=job.name).state == succeeded, 30)
    done = other.batches.get(name=job.name)
    assert done.dest is not None and done.dest.inlined_responses is not None
    [answer] = done.dest.inlined_responses
    assert answer.response is None and answer.error is not None and answer.error.code == 5
    assert uploaded.name not in [f.name for f in other.files.list()]
    with server.http(other_key) as http:
        answer = http.post(
            "/v1beta/interactions",
            json={"model": "echo", "input": [{"type": "document", "uri": uploaded.uri}]},
        )
    assert answer.status_code == 404, answer.text
    owner = _client(server)  # the owner still has it
    assert owner.files.get(name=uploaded.name).name == uploaded.name


def test_an_upload_url_is_its_tenants(server: Server, other_key: str) -> None:
    with server.http() as http:
        start = http.post(
            "/upload/v1beta/files",
            headers={
                "x-goog-upload-protocol": "resumable",
                "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": "3",
            },
            json={"file": {"mimeType": "text/plain"}},
        )
    assert start.status_code == 200, start.text
    url = start.headers["x-goog-upload-url"]
    chunk = {"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"}
    with httpx.Client(headers={"x-goog-api-key": other_key}) as http:
        refused = http.post(url, headers=chunk, content=b"abc")
    assert refused.status_code == 404, refused.text
    assert refused.json()["error"]["status"] == "NOT_FOUND"
    with httpx.Client() as http:  # the URL is the credential, as the SDK uses it
        done = http.post(url, headers=chunk, content=b"abc")
    assert done.status_code == 200, done.text
    assert done.headers["x-goog-upload-status"] == "final"
    assert done.json()["file"]["sizeBytes"] == "3"


def test_delete_then_404_and_the_blob_goes_with_its_last_file(server: Server) -> None:
    client = _client(server)
    same = [_text(server, "twins"), _text(server, "twins")]
    first, second = (client.files.upload(file=p, config={"mime_type": "text/plain"}) for p in same)
    assert first.name != second.name and first.sha256_hash == second.sha256_hash
    digest = hashlib.sha256(b"twins").hexdigest()
    assert [p.name for p in _blobs(server)].count(digest) == 1  # one blob for both
    assert first.name is not None and second.name is not None
    client.files.delete(name=first.name)
    assert _status(lambda: client.files.get(name=first.name)) == 404
    assert _status(lambda: client.files.delete(name=first.name)) == 404
    part = types.Part.from_uri(file_uri=first.name, mime_type="text/plain")
    assert _status(lambda: client.models.generate_content(model="echo", contents=[part])) == 404
    assert digest in [p.name for p in _blobs(server)]  # the second still names it
    client.files.delete(name=second.name)
    assert digest not in [p.name for p in _blobs(server)]


def _start(http: httpx.Client, size: int, **headers: str) -> httpx.Response:
    return http.post(
        "/upload/v1beta/files",
        headers={
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(size),
            **headers,
        },
        json={"file": {"displayName": "x"}},
    )


def _error(answer: httpx.Response, code: int) -> str:
    assert answer.status_code == code, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["status"] == {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}[code]
    return str(error["message"])


def test_malformed_uploads_are_400_in_googles_body(server: Server) -> None:
    with server.http() as http:
        assert "resumable" in _error(
            http.post("/upload/v1beta/files", headers={"x-goog-upload-command": "start"}), 400
        )
        assert "start" in _error(_start(http, 3, **{"x-goog-upload-command": "upload"}), 400)
        _error(_start(http, 3, **{"x-goog-upload-header-content-length": "-1"}), 400)
        url = _start(http, 6).headers["x-goog-upload-url"]
        before = _rows(server)
        for headers, mentions in [
            ({"x-goog-upload-command": "upload", "x-goog-upload-offset": "2"}, "Offset"),
            ({"x-goog-upload-command": "upload"}, "Offset"),
            ({"x-goog-upload-command": "upload, explode", "x-goog-upload-offset": "0"}, "Command"),
            ({"x-goog-upload-command": "finalize"}, "0 of the 6 bytes"),
        ]:
            answer = http.post(url, headers=headers, content=b"abc")
            assert mentions in _error(answer, 400)
            assert answer.headers["x-goog-upload-status"] == "final"  # the SDK stops there
        assert _rows(server) == before
        first = http.post(
            url,
            headers={"x-goog-upload-command": "upload", "x-goog-upload-offset": "0"},
            content=b"abc",
        )
        assert first.headers["x-goog-upload-status"] == "active"
        query = http.post(url, headers={"x-goog-upload-command": "query"})
        assert query.headers["x-goog-upload-size-received"] == "3"
        assert "is 0" in _error(
            http.post(
                url,
                headers={"x-goog-upload-command": "upload", "x-goog-upload-offset": "0"},
                content=b"abc",
            ),
            400,
        )
        done = http.post(
            url,
            headers={"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "3"},
            content=b"def",
        )
        assert done.json()["file"]["sizeBytes"] == "6"
        name = done.json()["file"]["name"]
        assert http.get(f"/v1beta/{name}:download", params={"alt": "media"}).content == b"abcdef"
        _error(http.post(url, headers={"x-goog-upload-command": "query"}), 404)  # finished
        _error(
            http.post(
                "/upload/v1beta/files?upload_id=nope", headers={"x-goog-upload-command": "query"}
            ),
            404,
        )
        _error(http.get("/v1beta/files/nosuchfile"), 404)
        _error(http.get("/v1beta/files/nosuchfile:download", params={"alt": "media"}), 404)
        _error(http.get(f"/v1beta/{name}:frobnicate"), 404)
        _error(http.get(f"/v1beta/{name}:download"), 400)
        _error(http.get("/v1beta/files", params={"pageToken": "%%%"}), 400)


def test_only_an_upload_url_goes_without_a_key_or_the_body_limit(server: Server) -> None:
    """A start whose query merely contains `upload_id=` is a start: it needs a key (401
    before its body is read) and its body is held to `max_request_bytes` (413)."""
    start = {
        "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start",
        "x-goog-upload-header-content-length": "3",
    }
    before = _rows(server), _blobs(server)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for query in ("?x=upload_id=1", "?xupload_id=1"):
            answer = http.post(f"/upload/v1beta/files{query}", headers=start, content=b"{not json")
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
        padded = b'{"file": {}}' + b" " * (2 * MIB)  # over the 1 MiB request limit
        answer = http.post(
            "/upload/v1beta/files?x=upload_id=1",
            headers={**start, "x-goog-api-key": "test-key"},
            content=padded,
        )
        assert answer.status_code == 413, answer.text
        answer = http.post(  # an empty id is an upload URL, and no upload's
            "/upload/v1beta/files?upload_id=",
            headers={"x-goog-upload-command": "upload", "x-goog-upload-offset": "0"},
            content=b"abc",
        )
        assert _error(answer, 404)
    assert (_rows(server), _blobs(server)) == before


def test_an_upload_over_the_limit_is_400_and_nothing_is_stored(
    server: Server, tmp_path: Path
) -> None:
    client = _client(server)
    before_rows, before_blobs = _rows(server), _blobs(server)
    large = tmp_path / "large.txt"
    large.write_bytes(b"x" * (12 * MIB + 1))
    with pytest.raises(errors.APIError) as caught:
        client.files.upload(file=large)
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert "12582912" in str(caught.value.message)
    # a chunk that runs past the declared length: refused, and the upload is cancelled
    with server.http() as http:
        url = _start(http, 4).headers["x-goog-upload-url"]
        answer = http.post(
            url,
            headers={"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"},
            content=b"too many bytes",
        )
        assert "past the 4 bytes" in _error(answer, 400)
        _error(http.post(url, headers={"x-goog-upload-command": "query"}), 404)
    assert _rows(server) == before_rows
    assert _blobs(server) == before_blobs


def test_unknown_uris_keep_their_old_answers(client: genai.Client) -> None:
    part = types.Part.from_uri(file_uri="gs://bucket/a.pdf", mime_type="application/pdf")
    with pytest.raises(errors.APIError) as caught:
        client.models.generate_content(model="echo", contents=[part])
    assert caught.value.code == 400 and "fileUri" in str(caught.value.message)


EXPIRING = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
file_ttl_seconds = 1
purge_interval_seconds = 0.2

[[models]]
name = "echo"
provider = "echo"
"""


def test_expired_files_answer_404_and_are_purged(tmp_path: Path) -> None:
    running = start_server(tmp_path / "expiring", EXPIRING)
    try:
        client = _client(running)
        made = client.files.upload(
            file=_text(running, "short-lived"), config={"mime_type": "text/plain"}
        )
        assert made.name is not None

        def gone() -> bool:
            try:
                client.files.get(name=made.name)
            except errors.APIError as exc:
                assert exc.code == 404
                return True
            return False

        wait_for(gone, 10)
        wait_for(lambda: _rows(running) == (0, 0) and _blobs(running) == [], 10)
    finally:
        stop_server(running)


def test_an_upload_goes_on_at_another_process(tmp_path: Path) -> None:
    """Two `serve` processes sharing a PostgreSQL database and the data dir: an upload started
    at one takes its next chunk at the other, and each serves the file."""
    config = CONFIG.replace('path_prefix = "/gemini"\n', "")
    with fresh_database() as database:
        first = start_server(tmp_path / "shared", config, tmp_path / "a.log", database)
        try:
            second = start_server(tmp_path / "shared", config, tmp_path / "b.log", database)
            try:
                _upload_across(first, second)
            finally:
                stop_server(second)
        finally:
            stop_server(first)


def _upload_across(first: Server, second: Server) -> None:
    data = random.Random(3).randbytes(3 * MIB)
    with first.http() as http:
        url = _start(http, len(data), **{"x-goog-upload-header-content-type": "text/plain"})
        url = url.headers["x-goog-upload-url"]
        half = {"x-goog-upload-command": "upload", "x-goog-upload-offset": "0"}
        assert http.post(url, headers=half, content=data[: 2 * MIB]).status_code == 200
    elsewhere = url.replace(first.url, second.url)
    assert elsewhere != url
    rest = {"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": str(2 * MIB)}
    with httpx.Client(timeout=60) as http:  # no key: the URL is the credential
        done = http.post(elsewhere, headers=rest, content=data[2 * MIB :])
    assert done.status_code == 200, done.text
    name = done.json()["file"]["name"]
    clients = [_client(server) for server in (first, second)]
    for client in clients:
        assert client.files.download(file=name) == data
    part = types.Part.from_uri(file_uri=name, mime_type="text/plain")
    answer = clients[1].models.generate_content(model="echo", contents=[part])
    assert answer.text == f"user: {_shown(data)}"
