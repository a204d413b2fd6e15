"""The Files API's wire shapes (Gemini API reference: `File`, `media.upload`'s start body) and
the `fileData` parts of generateContent bodies that name a file: the only place that knows
their JSON field names.

A File is `{"name": "files/<id>", "displayName", "mimeType", "sizeBytes": "<n>",
"createTime", "updateTime", "expirationTime", "sha256Hash", "uri", "downloadUri",
"state": "ACTIVE", "source": "UPLOADED"}`. `sha256Hash` is what Google sends: the base64 of
the hex digest. `sizeBytes` is a string (an int64 in JSON).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import Field

from propylon.errors import InvalidArgument
from propylon.schema.gemini.request import Wire, parse
from propylon.store.files import FileRecord

__all__ = ["FILE_ID", "StartUpload", "file_resource", "inline_file_parts", "start_upload"]

# A file's id as Google allows it: lowercase letters, digits and dashes, at most 40, no dash
# at either end.
FILE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")

Load = Callable[[str], Awaitable[tuple[str, str] | None]]
"""A file URI -> (mime type, base64 bytes) of the file it names, None when it names none."""


class UploadFile(Wire):
    name: str | None = None
    display_name: str | None = Field(default=None, max_length=512)
    mime_type: str | None = None
    size_bytes: str | int | None = None


class StartUpload(Wire):
    """The body of `POST /upload/{v}/files` with `X-Goog-Upload-Command: start`."""

    file: UploadFile = Field(default_factory=UploadFile)

    def file_id(self) -> str | None:
        """The id the client asked for (`file.name`, with or without `files/`), or None.
        Raises InvalidArgument for one Google would refuse."""
        name = self.file.name
        if not name:
            return None
        wanted = name.removeprefix("files/")
        if not FILE_ID.fullmatch(wanted):
            raise InvalidArgument(
                f"`file.name` `{name}`: a file name is `files/` and up to 40 lowercase "
                "letters, digits or dashes, not beginning or ending with a dash"
            )
        return wanted


def start_upload(body: Any) -> StartUpload:
    """The start body, `{}` when empty. Raises InvalidArgument naming the field."""
    return parse(StartUpload, body)


def file_resource(file: FileRecord, download_uri: str) -> dict[str, Any]:
    """The wire File of `file`."""
    resource: dict[str, Any] = {"name": f"files/{file.id}"}
    if file.display_name:
        resource["displayName"] = file.display_name
    resource.update(
        {
            "mimeType": file.mime_type,
            "sizeBytes": str(file.size_bytes),
            "createTime": file.created,
            "updateTime": file.updated,
            "expirationTime": file.expires,
            "sha256Hash": base64.b64encode(file.sha256.encode()).decode(),
            "uri": file.uri,
            "downloadUri": download_uri,
            "state": "ACTIVE",
            "source": "UPLOADED",
        }
    )
    return resource


async def inline_file_parts(body: dict[str, Any], load: Load) -> dict[str, Any]:
    """`body` (a generateContent or countTokens request, as sent) with each `fileData` part
    whose `fileUri` names a file (`load` says which) made an `inlineData` part of its bytes;
    the part's own `mimeType` wins over the file's. Parts `load` does not know stay as sent.
    The body is not changed: changed objects are copies."""
    result = dict(body)
    result["contents"] = await _contents(body.get("contents"), load)
    for key in ("generateContentRequest", "generate_content_request"):
        inner = body.get(key)
        if isinstance(inner, dict):
            result[key] = {**inner, "contents": await _contents(inner.get("contents"), load)}
    if result["contents"] is None:
        del result["contents"]
    return result


async def _contents(contents: Any, load: Load) -> Any:
    if not isinstance(contents, list):
        return contents
    result = []
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            content = {**content, "parts": [await _part(part, load) for part in parts]}
        result.append(content)
    return result


async def _part(part: Any, load: Load) -> Any:
    if not isinstance(part, dict):
        return part
    key = "fileData" if "fileData" in part else "file_data"
    data = part.get(key)
    if not isinstance(data, dict):
        return part
    uri = data.get("fileUri", data.get("file_uri"))
    if not isinstance(uri, str):
        return part
    loaded = await load(uri)
    if loaded is None:
        return part
    mime, encoded = loaded
    mime = data.get("mimeType") or data.get("mime_type") or mime
    inlined = {k: v for k, v in part.items() if k != key}
    inlined["inlineData"] = {"mimeType": mime, "data": encoded}
    return inlined
