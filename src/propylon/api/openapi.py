"""The OpenAPI 3.1 document served at `/openapi.json`: the Interactions API and the webhooks
resource, each request body's schema generated from its pydantic model (schema/), so the
document cannot drift from what the server validates. API keys are CLI-only (`propylon keys`):
no HTTP endpoint to describe.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from propylon.api.errors import JSONResponse
from propylon.schema.interactions import CreateInteraction
from propylon.schema.webhooks import CreateWebhook, RotateSigningSecret, UpdateWebhook

__all__ = ["document", "serve"]

_BODIES: list[type[BaseModel]] = [
    CreateInteraction,
    CreateWebhook,
    UpdateWebhook,
    RotateSigningSecret,
]
_REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object",
    "description": 'The Interactions API\'s error shape: `{"error": {"code", "message"}}`.',
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "The error type, e.g. `invalid_request`, `not_found`.",
                },
                "message": {"type": "string"},
            },
        }
    },
}
# Responses are projections of the store, not pydantic models: described loosely.
_INTERACTION = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "interaction"},
        "status": {"type": "string"},
        "steps": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object"},
    },
}
_WEBHOOK = {
    "type": "object",
    "required": ["id", "uri", "subscribed_events", "state"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "uri": {"type": "string"},
        "subscribed_events": {"type": "array", "items": {"type": "string"}},
        "state": {"type": "string"},
        "new_signing_secret": {"type": "string", "description": "Only in the create answer."},
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _operation(
    operation_id: str,
    summary: str,
    answer: str,
    *,
    body: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
    stream: bool = False,
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success.", "content": _json(answer)}
    if stream:
        ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {"200": ok}
    for code, why in (
        ("400", "Invalid argument or failed precondition."),
        ("401", "Missing or wrong API key."),
        ("403", "The key may not do this."),
        ("404", "No such resource visible to the caller."),
        ("413", "The body is over `max_request_bytes`."),
        ("429", "A rate limit or budget is spent."),
    ):
        responses[code] = {"description": why, "content": _json("Error")}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if body is not None:  # an empty body is `{}` (only rotate's fields are all optional)
        required = body != "RotateSigningSecret"
        operation["requestBody"] = {"required": required, "content": _json(body)}
    return operation


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a JSON object). Paths use `v1beta`; the server takes any
    version segment, and the same paths under `path_prefix`."""
    _, defs = models_json_schema([(m, "validation") for m in _BODIES], ref_template=_REF)
    schemas = {
        **defs["$defs"],
        "Error": _ERROR,
        "Interaction": _INTERACTION,
        "Webhook": _WEBHOOK,
        "Empty": {"type": "object"},
    }
    revision = {
        "name": "Api-Revision",
        "in": "header",
        "schema": {"type": "string", "format": "date"},
        "description": "The wire revision: `2026-05-20` or later (or none: the key's default, "
        "else the server's), `steps`; an earlier date, the legacy `outputs` schema.",
    }
    interaction = [_path("interaction_id"), revision]
    webhook = [_path("webhook_id")]
    flag = {"type": "boolean"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Propylon",
            "version": "v1beta",
            "description": "Google's Interactions API, self-hosted, on any model.",
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": {
            "/v1beta/interactions": {
                "post": _operation(
                    "createInteraction",
                    "Create an interaction (run one turn).",
                    "Interaction",
                    body="CreateInteraction",
                    parameters=[
                        revision,
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string"},
                            "description": "A repeat with the same body returns the first.",
                        },
                    ],
                    stream=True,
                ),
            },
            "/v1beta/interactions/{interaction_id}": {
                "get": _operation(
                    "getInteraction",
                    "Get an interaction, or stream its events (`stream=true`).",
                    "Interaction",
                    parameters=[
                        *interaction,
                        _query("stream", flag, "Stream the events (SSE)."),
                        _query("last_event_id", {"type": "string"}, "Resume after this event."),
                        _query("include_input", flag, "Echo the request's `input`."),
                    ],
                    stream=True,
                ),
                "delete": _operation(
                    "deleteInteraction", "Delete an interaction.", "Empty", parameters=interaction
                ),
            },
            "/v1beta/interactions/{interaction_id}/cancel": {
                "post": _operation(
                    "cancelInteraction",
                    "Cancel a background interaction.",
                    "Interaction",
                    parameters=interaction,
                ),
            },
            "/v1beta/webhooks": {
                "get": _operation(
                    "listWebhooks",
                    "List the caller's webhooks.",
                    "Empty",
                    parameters=[
                        _query("page_size", {"type": "integer"}, "At most 1000."),
                        _query("page_token", {"type": "string"}, "From the previous page."),
                    ],
                ),
                "post": _operation(
                    "createWebhook", "Register a webhook.", "Webhook", body="CreateWebhook"
                ),
            },
            "/v1beta/webhooks/{webhook_id}": {
                "get": _operation("getWebhook", "Get a webhook.", "Webhook", parameters=webhook),
                "patch": _operation(
                    "updateWebhook",
                    "Change a webhook.",
                    "Webhook",
                    body="UpdateWebhook",
                    parameters=[
                        *webhook,
                        _query("update_mask", {"type": "string"}, "Comma-separated fields."),
                    ],
                ),
                "delete": _operation(
                    "deleteWebhook", "Delete a webhook.", "Empty", parameters=webhook
                ),
            },
            "/v1beta/webhooks/{webhook_id}:ping": {
                "post": _operation(
                    "pingWebhook", "Send a `webhook.ping` delivery.", "Empty", parameters=webhook
                ),
            },
            "/v1beta/webhooks/{webhook_id}:rotateSigningSecret": {
                "post": _operation(
                    "rotateSigningSecret",
                    "A new signing secret, shown once.",
                    "Empty",
                    body="RotateSigningSecret",
                    parameters=webhook,
                ),
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


async def serve(request: Request) -> Response:
    """`GET /openapi.json`."""
    return JSONResponse(document())
