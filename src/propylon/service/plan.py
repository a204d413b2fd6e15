"""Planning a turn: every check that can refuse a create, and the Turn a provider will get.

Run at create (before anything is stored) and again by a background worker, which rebuilds
the turn of a stored interaction from its echoed request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from propylon.config import Settings
from propylon.domain import lifecycle
from propylon.domain.caller import Caller
from propylon.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from propylon.gateway.registry import ModelRegistry, ServedModel
from propylon.outbound import OutboundPolicy, check_url
from propylon.providers.base import Ticket, Turn
from propylon.providers.google_interactions import GoogleInteractions
from propylon.runner.history import check_function_results
from propylon.schema.interactions import (
    CreateInteraction,
    json_schema_of,
    normalize_input,
    output_media_of,
    parse_create,
)
from propylon.service.caches import cache_prefix, find_cache
from propylon.service.continuation import resume
from propylon.service.custom_agents import AgentLookup, for_agent
from propylon.service.files import FileService
from propylon.store.base import InteractionRecord, Store
from propylon.store.caches import CacheStore

__all__ = ["AgentPlan", "Plan", "plan", "request_of"]


@dataclass(slots=True)
class Plan:
    """A turn ready to run: the model, this turn's input as steps, the provider's Turn, the
    MCP servers the runner will call, and its place in the model's queue (released when the
    run ends, or at once if the create goes no further). prior_output_tokens: what the answer
    this turn continues (`continuation_token`) has cost so far."""

    served: ServedModel
    input_steps: list[dict[str, Any]]
    turn: Turn
    mcp_servers: list[dict[str, Any]]
    ticket: Ticket = field(default_factory=Ticket)
    prior_output_tokens: int = 0


@dataclass(slots=True)
class AgentPlan:
    """A turn for a Google-hosted agent: the upstream to forward `body` to."""

    agent: GoogleInteractions
    input_steps: list[dict[str, Any]]
    body: dict[str, Any]


async def plan(
    request: CreateInteraction,
    store: Store,
    models: ModelRegistry,
    settings: Settings,
    caller: Caller,
    agents: dict[str, GoogleInteractions] | None = None,
    custom_agents: AgentLookup | None = None,
    caches: CacheStore | None = None,
    *,
    files: FileService | None = None,
) -> Plan | AgentPlan:
    """Check `request` and build its turn for `caller`. With `files`, content naming one of
    the caller's uploaded files by `uri` reaches the provider inline (the stored steps keep
    the `uri`). Raises InvalidArgument, NotFound (also for another tenant's previous
    interaction or cached content, or an unknown, another tenant's or expired file),
    FailedPrecondition, or ResourceExhausted (the embedded model's queue is full); writes
    nothing."""
    if not request.store and request.previous_interaction_id:
        raise InvalidArgument(
            "`previous_interaction_id` needs `store=true`: nothing is kept "
            "with `store=false`; send the whole history as steps"
        )
    if not request.store and request.background:
        raise InvalidArgument("`background=true` needs `store=true`")
    _check_service_tier(request, caller)
    if request.agent and custom_agents is not None:  # one of the tenant's: plan as its base
        request = await for_agent(request, custom_agents, caller.tenant, agents or {})
    if request.agent:
        return await _plan_agent(request, store, caller, agents or {})
    assert request.model is not None
    served = models.resolve(request.model)
    input_steps = normalize_input(request.input)
    if not input_steps and not (request.continuation_token and request.store):
        raise InvalidArgument("`input` is required")

    history: list[dict[str, Any]] = []
    previous = None
    if request.previous_interaction_id:
        previous = await store.get(request.previous_interaction_id)
        if previous is None or not caller.sees(previous.tenant):
            raise NotFound(f"previous interaction `{request.previous_interaction_id}` not found")
        if previous.status not in lifecycle.CONTINUABLE:
            raise FailedPrecondition(
                f"previous interaction `{previous.id}` has not finished "
                f"(status `{previous.status}`)"
            )
        history = await store.history(previous.id)
    resumed = None
    if request.continuation_token:
        resumed = await resume(request, input_steps, previous, history, store)
        history = resumed.history
    check_function_results(history, input_steps)

    cached = await _cached(request, served, models, caches, caller)
    tools = request.tools or []
    mcp_servers = [tool for tool in tools if tool.get("type") == "mcp_server"]
    for server in mcp_servers:
        await check_url(
            server["url"],
            policy=OutboundPolicy.from_settings(settings),
            what=f"MCP server `{server['name']}`",
        )
    for uri in (request.webhook_config or {}).get("uris") or []:
        await check_url(
            str(uri),
            policy=OutboundPolicy.from_settings(settings),
            what="`webhook_config.uris`",
        )
    config = request.generation_config
    generation = config.model_dump(exclude_none=True) if config else {}
    modalities, image_config = output_media_of(request)
    if image_config and "image_config" not in generation:
        generation["image_config"] = image_config
    prior = resumed.output_tokens if resumed else 0
    if prior and generation.get("max_output_tokens"):  # the cap is the whole answer's
        generation["max_output_tokens"] = max(1, generation["max_output_tokens"] - prior)
    own_tools = [tool for tool in tools if tool.get("type") != "mcp_server"]
    if "tool_choice" in cached.generation_config and "tool_choice" not in generation:
        generation["tool_choice"] = cached.generation_config["tool_choice"]
    instructions = [cached.system_instruction, request.system_instruction]
    steps = cached.history + history + input_steps
    turn = Turn(
        history=await files.inline_steps(steps, caller) if files is not None else steps,
        system_instruction="\n\n".join(text for text in instructions if text) or None,
        tools=cached.tools + _own_tools(cached.tools, own_tools, request.cached_content),
        generation_config=generation,
        json_schema=json_schema_of(request),
        response_modalities=modalities,
        safety_settings=[s.model_dump(exclude_none=True) for s in request.safety_settings or []],
        continuation=resumed.text if resumed else None,
        upstream_continuation=resumed.upstream if resumed else None,
        cached_steps=cached.cached_steps,
        cached_instruction=cached.cached_instruction and not request.system_instruction,
    )
    served.check(turn)
    # Background runs are bounded by the job queue's workers instead.
    ticket = Ticket() if request.background else served.admit()
    return Plan(served, input_steps, turn, mcp_servers, ticket, prior)


async def _cached(
    request: CreateInteraction,
    served: ServedModel,
    models: ModelRegistry,
    caches: CacheStore | None,
    caller: Caller,
) -> Turn:
    """The part of the turn the request's `cached_content` holds (steps, instruction, tools,
    tool choice; service/caches.py), put before the request's own; an empty Turn without
    one. Raises NotFound (unknown, expired, another tenant's) or InvalidArgument (made for
    another model)."""
    if request.cached_content is None:
        return Turn(history=[])
    if caches is None:
        raise InvalidArgument("`cached_content`: this server keeps no cached contents")
    cache = await find_cache(caches, request.cached_content, caller)
    if models.resolve(cache.model) is not served:
        raise InvalidArgument(
            f"`cached_content`: `{request.cached_content}` was made for the model "
            f"`{cache.model}`, not `{request.model}`"
        )
    return cache_prefix(cache)


def _own_tools(
    cached: list[dict[str, Any]], own: list[dict[str, Any]], name: str | None
) -> list[dict[str, Any]]:
    """The request's tools after the cached content's; a function both declare answers 400."""
    declared = {tool["name"] for tool in cached if tool.get("type") == "function"}
    for index, tool in enumerate(own):
        if tool.get("type") == "function" and tool.get("name") in declared:
            raise InvalidArgument(
                f"`tools.{index}`: the cached content `{name}` declares the function "
                f"`{tool['name']}` already"
            )
    return own


def _check_service_tier(request: CreateInteraction, caller: Caller) -> None:
    """A key's policy `service_tiers` lists the tiers it may use to order the background
    queue (unset: all). Foreground runs do not queue, so their tier is not checked."""
    allowed = caller.policy.get("service_tiers")
    tier = request.service_tier
    if request.background and tier and allowed is not None and tier not in allowed:
        raise PermissionDenied(
            f"this API key may not use `service_tier` `{tier}`; it may use "
            + (", ".join(f"`{t}`" for t in allowed) or "none")
        )


async def _plan_agent(
    request: CreateInteraction, store: Store, caller: Caller, agents: dict[str, GoogleInteractions]
) -> AgentPlan:
    assert request.agent is not None
    agent = agents.get(request.agent)
    if agent is None:
        raise NotFound(f"agent `{request.agent}` is not served here")
    body = request.model_dump(
        exclude_none=True,
        exclude={"store", "stream", "previous_interaction_id", "webhook_config", "labels"},
    )
    if request.previous_interaction_id:
        previous = await store.get(request.previous_interaction_id)
        if previous is None or not caller.sees(previous.tenant):
            raise NotFound(f"previous interaction `{request.previous_interaction_id}` not found")
        if not previous.upstream_id or previous.status not in lifecycle.CONTINUABLE:
            raise FailedPrecondition(
                f"previous interaction `{previous.id}` is not a finished "
                "interaction of a Google-hosted agent"
            )
        body["previous_interaction_id"] = previous.upstream_id
    return AgentPlan(agent, normalize_input(request.input), body)


def request_of(record: InteractionRecord) -> CreateInteraction:
    """The create request a stored interaction came from (its echoed fields and input).
    Raises InvalidArgument when they are no longer a valid request."""
    return parse_create({**record.request, "input": record.input, "background": record.background})
