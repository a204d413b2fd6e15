"""HTTP endpoints of the Gemini Files API (service/files.py), as google-genai's
`client.files` speaks them:

- `POST /upload/{v}/files` with `X-Goog-Upload-Protocol: resumable` and
  `X-Goog-Upload-Command: start` (`X-Goog-Upload-Header-Content-Length`, `-Content-Type`,
  body `{"file": {"displayName", "mimeType", "name"}}`): answered with the upload URL in
  `x-goog-upload-url`, this path with `?upload_id=...` on the request's own scheme and host.
- `POST` to that URL: `X-Goog-Upload-Command` `upload` (at `X-Goog-Upload-Offset`),
  `upload, finalize` / `finalize` (answered `x-goog-upload-status: final` and
  `{"file": File}`), `query`, `cancel`. The URL is the upload's credential, as Google's is
  (the SDK sends no key with the chunks): AuthMiddleware lets these requests through keyless
  (`keyless`), and a key that is sent must be of the upload's tenant. Their bodies are not
  held to `max_request_bytes` (`unbounded`): `max_file_bytes` and the declared length bound
  them. Errors carry `x-goog-upload-status: final`, so the SDK stops rather than retries.
- `GET /{v}/files` (`pageSize` up to 100, `pageToken`), `GET /{v}/files/{id}`,
  `DELETE /{v}/files/{id}`, `GET /{v}/files/{id}:download?alt=media` (the bytes).
"""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse, error_response
from propylon.api.limits import json_body
from propylon.api.query import integer
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument, NotFound, PropylonError
from propylon.schema.gemini.files import file_resource, start_upload
from propylon.service.files import Chunk, FileService
from propylon.store.files import FileRecord

__all__ = ["keyless", "routes", "unbounded"]

_UPLOAD_PATH = "/upload/"
_UPLOAD_ROUTE = re.compile(r"/upload/[^/]+/files$")
_FINAL = {"x-goog-upload-status": "final"}


def _upload_id(scope: Scope) -> str | None:
    """The `upload_id` query parameter of `scope`, as the route reads it (None: absent)."""
    return QueryParams(scope.get("query_string", b"")).get("upload_id")


def keyless(scope: Scope) -> bool:
    """Whether `scope` is a request to an upload URL (`POST .../upload/{v}/files` with an
    `upload_id` query parameter): authenticated by that id when it sends no key. Exactly the
    requests `upload` answers as chunks (never a start, whose body is held to the limit)."""
    return (
        scope.get("method") == "POST"
        and _UPLOAD_ROUTE.search(scope["path"]) is not None
        and _upload_id(scope) is not None
    )


unbounded = keyless  # the chunks: bounded by `max_file_bytes`, not `max_request_bytes`


def _service(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


def _resource(file: FileRecord) -> dict[str, object]:
    return file_resource(file, f"{file.uri}:download?alt=media")


def _number(request: Request, header: str) -> int | None:
    value = request.headers.get(header)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise InvalidArgument(f"`{header}` must be a non-negative integer")
    return int(value)


async def upload(request: Request) -> Response:
    """`POST .../upload/{v}/files`: start an upload, or (with `upload_id`) one of its chunks."""
    upload_id = _upload_id(request.scope)
    if upload_id is not None:
        try:
            return await _chunk(request, upload_id)
        except PropylonError as exc:
            return error_response(
                request.scope, exc.http_status, exc.status, exc.message, _FINAL, exc
            )
    return await _start(request)


async def _start(request: Request) -> Response:
    caller = caller_of(request)  # before the body is read
    headers = request.headers
    if headers.get("x-goog-upload-protocol", "").lower() != "resumable":
        raise InvalidArgument(
            "only resumable uploads are served: send `X-Goog-Upload-Protocol: resumable`"
        )
    if headers.get("x-goog-upload-command", "").strip().lower() != "start":
        raise InvalidArgument("a new upload needs `X-Goog-Upload-Command: start`")
    body = start_upload(await json_body(request, empty={}))
    size = _number(request, "x-goog-upload-header-content-length")
    if size is None and body.file.size_bytes is not None:
        declared = str(body.file.size_bytes)
        if not declared.isdigit():
            raise InvalidArgument("`file.sizeBytes` must be a non-negative integer")
        size = int(declared)
    if size is None:
        raise InvalidArgument("`X-Goog-Upload-Header-Content-Length` is required")
    mime = (
        headers.get("x-goog-upload-header-content-type")
        or body.file.mime_type
        or "application/octet-stream"
    )
    path = request.url.path
    prefix = path[: path.index(_UPLOAD_PATH)]
    origin = f"{request.url.scheme}://{request.url.netloc}"
    base = f"{origin}{prefix}/{request.path_params['version']}"
    session = await _service(request).start(
        caller, size, mime, body.file.display_name, body.file_id(), base
    )
    return Response(
        b"",
        headers={
            "x-goog-upload-url": f"{origin}{path}?upload_id={session.id}&upload_protocol=resumable",
            "x-goog-upload-status": "active",
            "x-goog-upload-chunk-granularity": "262144",
        },
    )


async def _chunk(request: Request, upload_id: str) -> Response:
    caller = request.scope.get("state", {}).get("caller")
    service = _service(request)
    session = await service.session(upload_id, caller if isinstance(caller, Caller) else None)
    command = request.headers.get("x-goog-upload-command")
    if not command:
        raise InvalidArgument("`X-Goog-Upload-Command` is required")
    commands = frozenset(part.strip().lower() for part in command.split(","))
    received = await service.receive(
        session,
        Chunk(
            commands,
            _number(request, "x-goog-upload-offset"),
            _number(request, "content-length"),
            request.stream(),
        ),
    )
    headers = {
        "x-goog-upload-status": received.status,
        "x-goog-upload-size-received": str(received.received),
    }
    if received.file is None:
        return Response(b"", headers=headers)
    return JSONResponse({"file": _resource(received.file)}, headers=headers)


async def list_files(request: Request) -> Response:
    """`GET /{v}/files`."""
    size = integer(request, "pageSize", 10, 1, 100)
    assert size is not None
    files, token = await _service(request).page(
        caller_of(request), size, request.query_params.get("pageToken")
    )
    answer: dict[str, object] = {"files": [_resource(file) for file in files]}
    if token:
        answer["nextPageToken"] = token
    return JSONResponse(answer)


async def file(request: Request) -> Response:
    """`GET` and `DELETE /{v}/files/{id}`, `GET /{v}/files/{id}:download`."""
    file_id, _, method = request.path_params["file"].partition(":")
    service = _service(request)
    caller = caller_of(request)
    if method:
        if method != "download" or request.method != "GET":
            raise NotFound(f"no such method `{method}` of files; this server serves `:download`")
        if request.query_params.get("alt") != "media":
            raise InvalidArgument("`:download` needs `alt=media`")
        found = await service.get(caller, file_id)
        path = service.blobs.blob(found.tenant, found.sha256)
        if not path.is_file():
            raise NotFound(f"file `files/{found.id}` not found")
        return FileResponse(path, media_type=found.mime_type)
    if request.method == "DELETE":
        await service.delete(caller, file_id)
        return JSONResponse({})
    return JSONResponse(_resource(await service.get(caller, file_id)))


routes = [
    Route("/upload/{version}/files", upload, methods=["POST"]),
    Route("/{version}/files", list_files, methods=["GET"]),
    Route("/{version}/files/{file}", file, methods=["GET", "DELETE"]),
]
