"""Field types shared by the wire models: URLs, JSON Schemas, values validated against
a precise shape but kept as sent, and the one way a ValidationError becomes a message.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import jsonschema
from pydantic import AfterValidator, BaseModel, Field, GetCoreSchemaHandler, ValidationError
from pydantic_core import core_schema

from propylon.errors import InvalidArgument

_Model = TypeVar("_Model", bound=BaseModel)

__all__ = [
    "JsonSchema",
    "KeptAs",
    "Url",
    "check_json_schema",
    "describe",
    "errors_of",
    "first_field",
    "validated",
]


def _url(value: str) -> str:
    """`value` if it parses as a URL (a valid port, if any; no whitespace or control
    characters). Which schemes and hosts Propylon may call is the outbound policy's to say,
    where the URL is used (propylon.outbound), naming what the URL is for."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("not a valid URL (whitespace or control characters)")
    return value


Url = Annotated[
    str,
    Field(min_length=1, max_length=2048, json_schema_extra={"format": "uri"}),
    AfterValidator(_url),
]
"""A URL, kept as the string sent."""


def check_json_schema(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON Schema (Draft 2020-12) object; else ValueError saying where
    the meta-schema refuses it."""
    if not isinstance(value, dict):
        raise ValueError("a JSON Schema must be an object")
    try:
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
    return value


JsonSchema = Annotated[dict[str, Any], AfterValidator(check_json_schema)]
"""A JSON Schema (Draft 2020-12) object, checked against the meta-schema."""


class KeptAs:
    """`Annotated[RawType, KeptAs(Shape)]`: validate the value as `Shape` (and document
    `Shape` in the JSON Schema) but keep it as sent, a plain JSON value. For fields the rest
    of Propylon reads as JSON (steps, tools): their shape is checked here, once."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def keep(value: Any, validate: core_schema.ValidatorFunctionWrapHandler) -> Any:
            validate(value)
            return value

        return core_schema.no_info_wrap_validator_function(
            keep,
            handler.generate_schema(self.shape),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v),
        )


def describe(exc: ValidationError, prefix: str = "") -> str:
    """`invalid request: <field path>: <what is wrong>` for up to three fields."""
    return "invalid request: " + errors_of(exc, prefix)


def errors_of(exc: ValidationError, prefix: str = "") -> str:
    """Up to three errors as `field.path: message`. Union branches (pydantic puts their names,
    such as `literal[...]` or a class name, into the location) are left out, and only the
    first error of each field is kept, so a bad enum value reads as its allowed values."""
    parts: list[str] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False, include_input=False):
        path = [p for p in (prefix, *error["loc"]) if p != "" and not _is_branch(p)]
        loc = ".".join(str(p) for p in path)
        if loc in seen:
            continue
        seen.add(loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
        if len(parts) == 3:
            break
    return "; ".join(parts)


def first_field(exc: ValidationError, prefix: str = "") -> str | None:
    """The dotted path of the first field `exc` refuses (`messages.0.role`), as `errors_of`
    names it; None when the error is about the whole value."""
    for error in exc.errors(include_url=False, include_input=False):
        path = [p for p in (prefix, *error["loc"]) if p != "" and not _is_branch(p)]
        return ".".join(str(p) for p in path) or None
    return None


def validated(model: type[_Model], body: Any) -> _Model:
    """`body` (decoded JSON) as `model`. Raises InvalidArgument naming the first field it
    refuses (`param`), or for a body that is not a JSON object."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidArgument(describe(exc), param=first_field(exc)) from None


def _is_branch(part: int | str) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)
