"""Credential redaction: what a request's configuration may hold that must never be read back.

The rule, applied to every read of a stored request (the Interaction resource in create, get,
cancel and `include_input` answers, and `propylon export`) and to every log line:

- every value of a tool's `headers` map (an MCP server's credentials) becomes `"[redacted]"`;
  the header names stay, so a reader sees what was sent, not its value;
- so does the value, whatever its type, of any field *named like a credential*: after lowering
  and turning `-` into `_`, a name that is `authorization`, `proxy_authorization`, `cookie`,
  `auth`, `token`, or ends in `_token` or `_auth`, or contains `api_key`, `apikey`, `secret`,
  `password`, `passwd`, `credential`, `private_key` or `access_key`;
- in a URL (`url`, `uri`, `uris`: an MCP server's, a webhook's), the password of its user
  info and every query parameter named like a credential (`?api_key=...`) become `[redacted]`;
- JSON Schemas (`response_format`, a function tool's `parameters`) are left whole: they name
  fields, they hold no values;
- conversation content (`input`, steps, outputs) is never rewritten: it is what the model saw
  and said, and the client's own.

The store keeps the real values: a background run re-planned from the store (after a queue
wait or a restart) must still send the headers to its MCP server. Reads never return them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["REDACTED", "RedactingFilter", "is_credential_name", "redact_request", "redact_text"]

REDACTED = "[redacted]"

_EXACT = frozenset({"authorization", "proxy_authorization", "cookie", "auth", "token"})
_SUFFIXES = ("_token", "_auth")
_PARTS = (
    "api_key",
    "apikey",
    "secret",
    "password",
    "passwd",
    "credential",
    "private_key",
    "access_key",
)
_SCHEMAS = frozenset({"response_format", "parameters", "input_schema"})
_URLS = frozenset({"url", "uri", "uris"})


def is_credential_name(name: str) -> bool:
    """Whether a field named `name` holds a credential, by the rule in this module's doc."""
    key = name.lower().replace("-", "_")
    return key in _EXACT or key.endswith(_SUFFIXES) or any(part in key for part in _PARTS)


def redact_request(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored request's echoed fields with every credential replaced by
    `REDACTED`; `request` itself is left as it is (the run may still need it)."""
    shown: dict[str, Any] = _redact(request)
    tools = shown.get("tools")
    if isinstance(tools, list):
        shown["tools"] = [_without_headers(tool) for tool in tools]
    return shown


def _without_headers(tool: Any) -> Any:
    if isinstance(tool, dict) and isinstance(tool.get("headers"), dict):
        return {**tool, "headers": dict.fromkeys(tool["headers"], REDACTED)}
    return tool


def _redact(value: Any, url: bool = False) -> Any:
    if isinstance(value, dict):
        return {key: _field(str(key), item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, url) for item in value]
    if url and isinstance(value, str):
        return redact_text(value)
    return value


def _field(key: str, value: Any) -> Any:
    if is_credential_name(key):
        return REDACTED
    if key in _SCHEMAS:
        return value
    return _redact(value, url=key in _URLS)


# Free text (log lines, exception messages): `name: value` and `name=value` pairs whose name is
# credential-like by the same rule, `Bearer` tokens, and Propylon's own key and secret formats.
_PAIR = re.compile(
    r"""(?ix)
    (?P<open>["']?)
    (?<![\w-])
    (?P<name>  # the names is_credential_name accepts
        [\w-]*(?:api[_-]?key|secret|password|passwd|credential|private[_-]key|access[_-]key)[\w-]*
        | [\w-]*[_-](?:token|auth)
        | authorization | proxy[_-]authorization | cookie | auth | token
    )
    (?P=open)
    (?P<sep>\s*[:=]\s*)
    (?P<quote>["']?)
    (?:bearer\s+)?
    [^\s"',;&}\]]+
    """
)
_BEARER = re.compile(r"(?i)\bbearer\s+[\w.~+/=-]+")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/@\s:]*):[^/@\s]+@")
_OWN_SECRETS = re.compile(r"\b(?:pk-[\w-]{16,}|whsec_[\w+/=]{16,})")
_LOG_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


def _pair(match: re.Match[str]) -> str:
    return f"{match['open']}{match['name']}{match['open']}{match['sep']}{match['quote']}{REDACTED}"


def redact_text(text: str) -> str:
    """`text` with credential-looking values replaced by `REDACTED`."""
    text = _PAIR.sub(_pair, text)
    text = _BEARER.sub(f"Bearer {REDACTED}", text)
    text = _USERINFO.sub(rf"\1:{REDACTED}@", text)
    return _OWN_SECRETS.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message, its exception text and its `extra` fields
    (structured log lines), redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None  # formatters fall back to the (redacted) exc_text
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        for name, value in list(vars(record).items()):
            if name in _LOG_RECORD_FIELDS:
                continue
            if is_credential_name(name):
                setattr(record, name, REDACTED)
            elif isinstance(value, dict | list):
                setattr(record, name, _redact(value))
            elif isinstance(value, str):
                setattr(record, name, redact_text(value))
        return True
