"""Pydantic models of the webhooks resource's request bodies (reference §7.2): the only place
that knows their JSON field names and shapes. Validation failures become InvalidArgument."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from propylon.errors import InvalidArgument
from propylon.schema.common import Url, describe

__all__ = [
    "CreateWebhook",
    "RotateSigningSecret",
    "UpdateWebhook",
    "WebhookEvent",
    "check_webhook_fields",
]

WebhookEvent = Literal[
    "batch.succeeded",
    "batch.expired",
    "batch.failed",
    "interaction.requires_action",
    "interaction.completed",
    "interaction.failed",
    "video.generated",
]


class CreateWebhook(BaseModel):
    """`POST /webhooks`."""

    model_config = ConfigDict(extra="forbid")
    uri: Url
    subscribed_events: list[WebhookEvent] = Field(min_length=1)
    name: str | None = None


class UpdateWebhook(BaseModel):
    """`PATCH /webhooks/{id}`: the fields to change (or those named by `update_mask`)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    uri: Url | None = None
    subscribed_events: list[WebhookEvent] | None = Field(default=None, min_length=1)
    state: Literal["enabled", "disabled"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        """Only `name` may be cleared; the others have no empty value."""
        if isinstance(data, dict):
            nulls = [
                k for k in ("uri", "subscribed_events", "state") if k in data and data[k] is None
            ]
            if nulls:
                raise ValueError(f"`{'`, `'.join(nulls)}` must not be null")
        return data


class RotateSigningSecret(BaseModel):
    """`POST /webhooks/{id}:rotateSigningSecret`."""

    model_config = ConfigDict(extra="forbid")
    revocation_behavior: (
        Literal["revoke_previous_secrets_after_h24", "revoke_previous_secrets_immediately"] | None
    ) = None


def check_webhook_fields(fields: dict[str, Any]) -> None:
    """Check the shape of each webhook field present in `fields` (a create body, or the
    changes of an update). Raises InvalidArgument naming the field."""
    try:
        UpdateWebhook.model_validate(fields)
    except ValidationError as exc:
        raise InvalidArgument(describe(exc)) from None
