"""The one orchestrator of a turn: provider events in, the interaction's events out.

Whatever the mode (foreground, stream, background), a turn appends, in the canonical order of
reference §5.4: `interaction.created`, `interaction.status_update`, then for each step
`step.start`, `step.delta`*, `step.stop`, and last exactly one `interaction.completed` with the
final status and usage (preceded by an `error` event when the run failed). A log that ends
under the run (its writes failed) stops the run at its next provider event.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from propylon.domain.continuation import trailing_answer
from propylon.domain.events import (
    COMPLETED,
    CREATED,
    ERROR,
    STATUS_UPDATE,
    STEP_DELTA,
    STEP_START,
    STEP_STOP,
)
from propylon.domain.usage import Usage
from propylon.jobs.base import Stopping
from propylon.outbound import STRICT, OutboundPolicy
from propylon.providers.base import (
    Citations,
    Finish,
    FunctionCall,
    MediaDelta,
    Provider,
    ProviderEvent,
    ServerStep,
    TextDelta,
    ThoughtDelta,
    Turn,
    UpstreamError,
    UsageReport,
)
from propylon.runner.builtin import emit_upstream_step
from propylon.runner.ceiling import Ceiling
from propylon.runner.log import EventLog, StoredLog
from propylon.runner.mcp import McpToolbox
from propylon.runner.output import check_arguments, output_problem

__all__ = ["announce", "cancel_handled", "finish", "finish_unstarted", "run_turn"]

logger = logging.getLogger("propylon.runner")

_ARGUMENTS_CHUNK = 16  # characters of a function call's JSON arguments per arguments_delta
# Passes a background run goes on with an answer its upstream cut at its own limit.
_MAX_CONTINUATIONS = 16


class _Steps:
    """Opens and closes steps as provider events change kind."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.index = -1
        self.open: str | None = None

    def ensure(self, kind: str, skeleton: dict[str, Any]) -> int:
        if self.open != kind:
            self.close()
            self.index += 1
            self.open = kind
            self.log.emit(STEP_START, {"index": self.index, "step": skeleton})
        return self.index

    def single(self, key: str, skeleton: dict[str, Any], delta: dict[str, Any]) -> None:
        """A whole step at once: start (the whole step: the SDK requires its fields there),
        one delta carrying its fields, stop."""
        self.close()
        fields = {k: v for k, v in delta.items() if k != "type"}
        index = self.ensure(key, {**skeleton, **fields})
        self.log.emit(STEP_DELTA, {"index": index, "delta": delta})
        self.close()

    def close(self, usage: Usage | None = None) -> None:
        if self.open is None:
            return
        data: dict[str, Any] = {"index": self.index}
        if usage is not None:
            data["usage"] = usage.to_wire()
        self.log.emit(STEP_STOP, data)
        self.open = None


@dataclass(slots=True)
class _Pass:
    """What one provider pass produced."""

    status: str = "completed"
    usage: Usage = field(default_factory=Usage)
    client_calls: int = 0
    server_calls: list[FunctionCall] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # the answer's text in this pass, in parts
    upstream_token: str | None = None  # the upstream's own continuation token


async def _provider_pass(
    log: EventLog,
    steps: _Steps,
    provider: Provider,
    turn: Turn,
    toolbox: McpToolbox | None,
    ceiling: Ceiling | None = None,
) -> _Pass:
    """Stream one provider answer into steps. Calls of MCP tools become
    `mcp_server_tool_call` steps, to be run by the caller; others `function_call` steps.
    Past the `ceiling`'s time, the answer is cut after its next text (`requires_continuation`)."""
    result = _Pass()
    stream = provider.stream(turn)
    waiting, emitted = turn.streamed, log.projection.last_seq
    try:
        async for event in stream:
            if log.ended:  # the log could not be written: nothing more of this run can be kept
                break
            if _apply(event, log, steps, turn, toolbox, ceiling, result):
                break
            if waiting and log.projection.last_seq != emitted:
                # The answer's first output reaches its live readers before the rest of a burst
                # is folded: until its commit, a stored log's writer thread would wait for the
                # GIL that folding holds. The rest goes in the next commit.
                waiting = False
                await log.published()
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()  # after a cut (or a cancel), this stops the upstream call now
    return result


def _apply(
    event: ProviderEvent,
    log: EventLog,
    steps: _Steps,
    turn: Turn,
    toolbox: McpToolbox | None,
    ceiling: Ceiling | None,
    result: _Pass,
) -> bool:
    """Append what one provider event says to `log` and `result`; True: the answer is cut here
    (past the `ceiling`'s time)."""
    if isinstance(event, TextDelta):
        index = steps.ensure("model_output", {"type": "model_output", "content": []})
        log.emit(STEP_DELTA, {"index": index, "delta": {"type": "text", "text": event.text}})
        result.texts.append(event.text)
        if ceiling is not None and ceiling.passed():
            result.status = "requires_continuation"
            return True
    elif isinstance(event, (MediaDelta, ServerStep, Citations)):
        emit_upstream_step(log, steps, event)
    elif isinstance(event, ThoughtDelta):
        index = steps.ensure("thought", {"type": "thought"})
        if event.summary is not None:
            delta = {
                "type": "thought_summary",
                "content": {"type": "text", "text": event.summary},
            }
            log.emit(STEP_DELTA, {"index": index, "delta": delta})
        if event.signature is not None:
            delta = {"type": "thought_signature", "signature": event.signature}
            log.emit(STEP_DELTA, {"index": index, "delta": delta})
    elif isinstance(event, FunctionCall):
        server = toolbox.server_of(event.name) if toolbox else None
        if server is not None:
            result.server_calls.append(event)
            steps.single(
                f"mcp:{event.id}",
                {"type": "mcp_server_tool_call", "id": event.id},
                {
                    "type": "mcp_server_tool_call",
                    "name": event.name,
                    "server_name": server,
                    "arguments": event.arguments,
                },
            )
        else:
            _client_call(log, steps, turn, event)
            result.client_calls += 1
    elif isinstance(event, UsageReport):
        result.usage = event.usage
    elif isinstance(event, Finish) and event.reason == "continuation" and any(result.texts):
        result.status, result.upstream_token = "requires_continuation", event.token
    elif isinstance(event, Finish) and event.reason != "stop":
        capped = ceiling is not None and ceiling.capped and any(result.texts)
        result.status = "requires_continuation" if capped else "incomplete"
    return False


def _client_call(log: EventLog, steps: _Steps, turn: Turn, event: FunctionCall) -> None:
    """A `function_call` step for the client to run, its arguments in chunks."""
    if turn.tool_choice().mode == "validated":
        check_arguments(event, turn.tools)
    index = steps.ensure(
        f"function_call:{event.id}",
        {"type": "function_call", "id": event.id, "name": event.name, "arguments": {}},
    )
    arguments = orjson.dumps(event.arguments).decode()
    for start in range(0, len(arguments), _ARGUMENTS_CHUNK):
        chunk = arguments[start : start + _ARGUMENTS_CHUNK]
        delta = {"type": "arguments_delta", "arguments": chunk}
        log.emit(STEP_DELTA, {"index": index, "delta": delta})


async def _run(
    log: EventLog,
    steps: _Steps,
    provider: Provider,
    turn: Turn,
    toolbox: McpToolbox | None,
    max_tool_rounds: int,
    usage: Usage,
    token_ceiling: int | None,
    ceiling: Ceiling | None,
) -> str:
    """The tool loop: provider passes, running MCP calls in between. Returns the status.
    An answer cut short ends a foreground run (`ceiling` given) `requires_continuation`;
    a background run goes on with it in another pass."""
    asked = list(turn.history)
    rounds = continued = 0
    while True:
        result = await _provider_pass(log, steps, provider, turn, toolbox, ceiling)
        usage.add(result.usage)
        if log.ended:
            return "failed"
        if token_ceiling is not None and usage.total_tokens > token_ceiling:
            message = (
                f"the interaction used {usage.total_tokens} tokens, over its ceiling "
                f"of {token_ceiling}"
            )
            log.emit(ERROR, {"error": {"code": "budget_exceeded", "message": message}})
            return "budget_exceeded"
        if result.status == "requires_continuation":
            turn.upstream_continuation = result.upstream_token
            if ceiling is not None:
                return result.status
            continued += 1
            if continued > _MAX_CONTINUATIONS:
                return "incomplete"
            turn.continuation = (turn.continuation or "") + "".join(result.texts)
            continue
        if result.client_calls:
            return "requires_action"
        if not result.server_calls:
            break
        if rounds >= max_tool_rounds:
            log.emit(
                ERROR,
                {
                    "error": {
                        "code": "budget_exceeded",
                        "message": f"the model still called tools after {max_tool_rounds} rounds",
                    }
                },
            )
            return "budget_exceeded"
        rounds += 1
        assert toolbox is not None
        for call in result.server_calls:
            server = toolbox.server_of(call.name)
            output = await toolbox.call(call.name, call.arguments)
            steps.single(
                f"mcp_result:{call.id}",
                {"type": "mcp_server_tool_result", "call_id": call.id},
                {
                    "type": "mcp_server_tool_result",
                    "name": call.name,
                    "server_name": server,
                    "result": output,
                },
            )
        # The next pass sees everything this turn produced so far, in log order.
        turn.history = [*asked, *log.projection.steps]
    if result.status == "completed" and turn.json_schema is not None:
        problem = output_problem(log.projection.steps, turn.json_schema)
        if problem is not None:
            log.emit(ERROR, {"error": {"code": "invalid_output", "message": problem}})
            return "failed"
    return result.status


def announce(log: EventLog, status: str) -> None:
    """The first event of every interaction: `interaction.created` with `status`
    (`in_progress`, or `queued` when a background run waits for a worker)."""
    log.emit(CREATED, {"interaction": log.summary(status)})


def finish_unstarted(log: EventLog, status: str, error: dict[str, str] | None = None) -> None:
    """End a run that never started (cancelled in the queue, interrupted, ...)."""
    if error is not None:
        log.emit(ERROR, {"error": error})
    finish(log, status)


def finish(log: EventLog, status: str, usage: Usage | dict[str, Any] | None = None) -> None:
    """The terminal event: `interaction.completed` with the final status and usage (a wire
    usage object is passed on as it is)."""
    log.emit(COMPLETED, {"interaction": log.summary(status, usage)})


async def run_turn(
    log: EventLog,
    provider: Provider,
    turn: Turn,
    mcp_servers: list[dict[str, Any]] | None = None,
    max_tool_rounds: int = 8,
    tool_timeout: float = 30.0,
    token_ceiling: int | None = None,
    ceiling: Ceiling | None = None,
    *,
    stopping: Stopping,
    outbound: OutboundPolicy = STRICT,
) -> None:
    """Run `turn` on `provider`, appending every event to `log`, and wait until all are stored.

    mcp_servers: the request's `mcp_server` tools, run here (at most `max_tool_rounds` rounds
    of calls; more ends the interaction `budget_exceeded`, as does using more than
    `token_ceiling` tokens, checked after each model answer; the MCP servers' addresses obey
    `outbound`, by default refusing private ones). `ceiling`: a foreground run's per-turn
    ceilings (runner/ceiling.py). Never raises for a provider or tool
    failure: the interaction ends `failed` with an `errors` entry. Cancelling the task ends the
    interaction `cancelled`, unless the process is `stopping` (then the run is left for the
    next start to recover). The log must already hold the `interaction.created` event (see
    `announce`). Raises what `log.drain` raises when not even the log's end can be stored.
    """
    log.emit(STATUS_UPDATE, {"interaction_id": log.interaction_id, "status": "in_progress"})
    steps = _Steps(log)
    usage = Usage()
    prefix = turn.continuation or ""
    if ceiling is not None:
        ceiling.arm(turn)
    try:
        if mcp_servers:
            async with McpToolbox(mcp_servers, tool_timeout, outbound) as toolbox:
                turn.tools = [*turn.tools, *toolbox.declarations]
                status = await _run(
                    log,
                    steps,
                    provider,
                    turn,
                    toolbox,
                    max_tool_rounds,
                    usage,
                    token_ceiling,
                    ceiling,
                )
        else:
            status = await _run(
                log, steps, provider, turn, None, max_tool_rounds, usage, token_ceiling, ceiling
            )
    except asyncio.CancelledError:
        if stopping():
            raise  # the process is stopping: the next start recovers this run
        status = "cancelled"
        cancel_handled()
    except UpstreamError as exc:
        status = "failed"
        where = f"upstream `{exc.target}`" if exc.target else "the upstream"
        log.emit(
            ERROR,
            {"error": {"code": "upstream_error", "message": f"{where} failed: {exc.message}"}},
        )
    except Exception as exc:
        logger.warning("interaction %s failed: %s", log.interaction_id, exc)
        status = "failed"
        log.emit(ERROR, {"error": {"code": "run_failed", "message": str(exc)}})
    steps.close(usage)
    token = None
    if status == "requires_continuation" and ceiling is not None:
        text = prefix + trailing_answer(log.projection.steps)[1]
        token = ceiling.token(
            log.record.id,
            isinstance(log, StoredLog),
            text,
            usage.output_tokens,
            turn.upstream_continuation,
        )
    log.emit(COMPLETED, {"interaction": log.summary(status, usage, token)})
    await log.drain()


def cancel_handled() -> None:
    """The current task's cancellation is dealt with (its run ends `cancelled`): clear every
    pending cancel request, however many clients sent one."""
    task = asyncio.current_task()
    while task is not None and task.uncancel() > 0:
        pass
