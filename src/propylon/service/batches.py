"""Gemini batches: a tenant's batch of generateContent requests, answered in the background.

Create checks the body (400 naming the field), the model (404) and the key's right to use it
(403) before anything is stored; then the batch is stored `PENDING` with its requests and its
job queued: on the in-process queue (embedded), or as a procrastinate job deferred in the
transaction that writes the batch's row (PostgreSQL: a `propylon worker` runs it, the
reconciler re-queues a batch whose job was lost).

A run (`execute`) takes the batch `RUNNING` and answers the requests that have no result yet,
at most `concurrency` at once, each through the generateContent path of a direct call
(GenerateService: the model registry, the gateway's retries and fallbacks, the creator's key
policy (rpm, tpm, budgets), cost and usage counted once per request). A request that fails gets
its own `error` (a google.rpc.Status) and the batch still succeeds; a request refused by a rate
limit waits for the window and is tried again. Results are stored as they come, each under its
request's index, so the answer lists them in request order.

A run cut short (the process stops, its worker dies) leaves the batch unfinished: its next run
answers only what is left (a request cut mid-answer runs again, and is counted again). Cancel
ends the batch `CANCELLED` first (from then on no result is stored and no request starts),
then stops its job; a finished batch never runs again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import secrets
import string
import time
from typing import Any

import orjson

from propylon.domain.caller import Caller
from propylon.domain.clock import now
from propylon.errors import (
    BudgetExhausted,
    InvalidArgument,
    NotFound,
    PropylonError,
    ResourceExhausted,
)
from propylon.jobs.base import JobQueue
from propylon.jobs.local import LocalQueue
from propylon.schema.gemini.batches import Inlined, inline_requests, jsonl_requests
from propylon.schema.gemini.files import inline_file_parts
from propylon.schema.gemini.request import GenerateContentRequest, parse
from propylon.service.files import FileService
from propylon.service.generate import GenerateService
from propylon.store.batches import (
    CANCELLED,
    FAILED,
    PENDING,
    SUCCEEDED,
    UNFINISHED,
    BatchItem,
    BatchRecord,
    BatchStore,
)

__all__ = ["BatchService", "operation", "status_of"]

logger = logging.getLogger("propylon.batches")

_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
_ALPHABET = string.ascii_lowercase + string.digits
_ID = re.compile(r"[0-9a-z]{1,64}")
_DEFAULT_PAGE = 50
_MAX_PAGE = 1000
_RATE_ATTEMPTS = 5  # tries of a request a rate limit refuses (it waits for the window between)
_RATE_WAIT = 60.0  # longest wait for a rate window, in seconds; longer: the request fails
# gRPC codes of the status names of Propylon's errors (google.rpc.Code)
_CODES = {
    "CANCELLED": 1,
    "INVALID_ARGUMENT": 3,
    "NOT_FOUND": 5,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "UNAUTHENTICATED": 16,
}
_INTERNAL = {"code": _CODES["INTERNAL"], "message": "internal error"}


def new_batch_id() -> str:
    """A fresh batch id: the creation time in milliseconds (12 hex digits, so ids sort by
    age) and 12 random characters of [0-9a-z]."""
    stamp = format(time.time_ns() // 1_000_000, "012x")
    return stamp + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def status_of(error: PropylonError) -> dict[str, Any]:
    """The google.rpc.Status of a request's failure: `{"code": <gRPC code>, "message"}`."""
    return {"code": _CODES.get(error.status, 2), "message": error.message}


def results_file_id(batch_id: str) -> str:
    """The id of the Files API file a batch from a file writes its results to (derived from
    the batch's id, so a retried batch finds the file it already wrote)."""
    return hashlib.sha256(f"batch-results:{batch_id}".encode()).hexdigest()[:16]


def _results(items: list[BatchItem]) -> bytes:
    """The JSONL results file of a batch from a file: one line per request, in order,
    `{"key"?, "response"}` or `{"key"?, "error"}` (the key its input line gave)."""
    lines = []
    for item in items:
        key = (item.metadata or {}).get("key")
        entry = {**({"key": key} if key is not None else {}), **(item.result or {})}
        lines.append(orjson.dumps(entry))
    return b"\n".join(lines) + b"\n"


def _output(batch: BatchRecord, items: list[BatchItem]) -> dict[str, Any]:
    """A finished batch's output: a batch from a file that succeeded names its results file
    (`responsesFile`, see `results_file_id`); any other batch has `inlinedResponses`, in
    request order: each request's `metadata` and its `response` or `error` (a request the
    batch never ran has an error saying so)."""
    if batch.caller.get("input_file"):
        if batch.state != SUCCEEDED:
            return {}
        return {"responsesFile": f"files/{results_file_id(batch.id)}"}
    never = {
        "code": _CODES["CANCELLED"] if batch.state == CANCELLED else _CODES["INTERNAL"],
        "message": f"not run: the batch ended `{batch.state}` first",
    }
    responses = []
    for item in items:
        entry: dict[str, Any] = dict(item.result) if item.result is not None else {"error": never}
        if item.metadata is not None:
            entry["metadata"] = item.metadata
        responses.append(entry)
    return {"inlinedResponses": {"inlinedResponses": responses}}


def operation(batch: BatchRecord, items: list[BatchItem] | None = None) -> dict[str, Any]:
    """The batch as Google's long-running operation (what google-genai's `_BatchJob_from_mldev`
    reads): `name` `batches/<id>`, `metadata` (state, times, model, displayName, batchStats),
    `done`; with `items` (its requests and results), a finished batch's output in
    `metadata.output` and `response`; a failed batch's `error`."""
    name = f"batches/{batch.id}"
    done = batch.state not in UNFINISHED
    answered = batch.succeeded + batch.failed
    metadata: dict[str, Any] = {
        "@type": _TYPES + "GenerateContentBatch",
        "model": f"models/{batch.model}",
        "name": name,
        "displayName": batch.display_name,
        "createTime": batch.created,
        "updateTime": batch.updated,
        "batchStats": {  # int64s are JSON strings in Google's APIs
            "requestCount": str(batch.request_count),
            "successfulRequestCount": str(batch.succeeded),
            "failedRequestCount": str(batch.failed),
            "pendingRequestCount": str(batch.request_count - answered),
        },
        "state": batch.state,
    }
    if batch.ended is not None:
        metadata["endTime"] = batch.ended
    answer: dict[str, Any] = {"name": name, "metadata": metadata, "done": done}
    if done and items is not None:
        output = _output(batch, items)
        metadata["output"] = output
        answer["response"] = {"@type": _TYPES + "GenerateContentBatchOutput", **output}
    if batch.error is not None:
        answer["error"] = batch.error
    return answer


def _caller(batch: BatchRecord) -> Caller:
    """The batch's creator, as it was when it created the batch."""
    saved = batch.caller
    return Caller(
        tenant=batch.tenant,
        key_id=saved.get("key_id"),
        admin=bool(saved.get("admin")),
        policy=saved.get("policy") or {},
        api_revision=saved.get("api_revision"),
    )


class BatchService:
    """Create, read, list, cancel and delete batches, and run them (`execute`, the job
    queue's handler)."""

    def __init__(
        self,
        store: BatchStore,
        generate: GenerateService,
        concurrency: int,
        workers: int,
        files: FileService | None = None,
    ) -> None:
        """`concurrency`: requests of one batch answered at once. `workers`: batches the
        in-process queue runs at once (a distributed deployment replaces `jobs`). `files`:
        the Files API, for batches from a file and `fileData` parts naming uploaded files."""
        self.store = store
        self.generate = generate
        self.files = files
        self.concurrency = concurrency
        self.jobs: JobQueue = LocalQueue(self.execute, workers)

    async def create(
        self, model: str, body: Any, caller: Caller, files_base: str
    ) -> dict[str, Any]:
        """Store a batch of `body`'s requests to `model` (inline, or the JSONL lines of the
        caller's file `batch.inputConfig.fileName`) and queue it. `files_base`: the server's
        URL up to the version segment (the results file's `uri`). Raises InvalidArgument
        (naming the field or the file's line), NotFound (the model, the file) or
        PermissionDenied; nothing is stored then."""
        name = model.removeprefix("models/")
        display_name, requests, input_file = inline_requests(body, name)
        self.generate.calls.resolve(name)  # NotFound
        self.generate.calls.quotas.allows(caller, name)  # PermissionDenied
        source: dict[str, str] = {}
        if input_file is not None:
            requests = await self._file_requests(input_file, name, caller)
            source = {"input_file": input_file, "files_base": files_base}
        return operation(await self._store(name, display_name, requests, caller, source))

    async def _file_requests(self, name: str, model: str, caller: Caller) -> list[Inlined]:
        """The requests of the caller's JSONL file `name`. Raises NotFound, InvalidArgument."""
        file_id = self.files.file_id_of(name) if self.files is not None else None
        if self.files is None or file_id is None:
            raise InvalidArgument(
                f"`batch.inputConfig.fileName`: `{name}` names no file of this server "
                "(`files/<id>`, uploaded with the Files API)"
            )
        _, data = await self.files.content(
            caller, file_id, self.files.settings.max_inline_file_bytes
        )
        requests = list(jsonl_requests(data, model))
        if not requests:
            raise InvalidArgument(f"`batch.inputConfig.fileName`: `{name}` holds no request")
        return requests

    async def _store(
        self,
        model: str,
        display_name: str,
        requests: list[Inlined],
        caller: Caller,
        source: dict[str, str],
    ) -> BatchRecord:
        """Write the batch `PENDING` with its requests and queue its job (with PostgreSQL the
        store's hook defers it in the same transaction)."""
        stamp = now()
        batch = BatchRecord(
            id=new_batch_id(),
            tenant=caller.tenant,
            model=model,
            display_name=display_name,
            state=PENDING,
            created=stamp,
            updated=stamp,
            caller={
                "key_id": caller.key_id,
                "admin": caller.admin,
                "policy": caller.policy,
                "api_revision": caller.api_revision,
                **source,  # a batch from a file: the file, and where its results' file lives
            },
            request_count=len(requests),
        )
        items = [BatchItem(i, request, meta) for i, (request, meta) in enumerate(requests)]
        await self.store.create_batch(batch, items)
        if not self.jobs.transactional:
            await self.jobs.submit(batch.id)
        return batch

    async def _batch(self, batch_id: str, caller: Caller) -> BatchRecord:
        """The caller's batch. Raises NotFound (also for another tenant's)."""
        batch = await self.store.get_batch(batch_id) if _ID.fullmatch(batch_id) else None
        if batch is None or not caller.sees(batch.tenant):
            raise NotFound(f"batch `batches/{batch_id}` not found")
        return batch

    async def get(self, batch_id: str, caller: Caller) -> dict[str, Any]:
        """The batch as an operation, with its results once it has ended. Raises NotFound."""
        batch = await self._batch(batch_id, caller)
        done = batch.state not in UNFINISHED
        return operation(batch, await self.store.batch_items(batch_id) if done else None)

    async def page(
        self, caller: Caller, page_size: str | None, page_token: str | None
    ) -> dict[str, Any]:
        """A page of the caller's tenant's batches, newest first: `{"operations": [...],
        "nextPageToken"?}` (without results: `get` one for them). Raises InvalidArgument."""
        if page_size is not None and not page_size.isdigit():
            raise InvalidArgument("`pageSize` must be a non-negative integer")
        size = min(int(page_size or 0) or _DEFAULT_PAGE, _MAX_PAGE)
        if page_token is not None and not _ID.fullmatch(page_token):
            raise InvalidArgument("`pageToken` is not a page token of this listing")
        batches = await self.store.list_batches(caller.tenant, page_token or None, size + 1)
        body: dict[str, Any] = {"operations": [operation(b) for b in batches[:size]]}
        if len(batches) > size:
            body["nextPageToken"] = batches[size - 1].id
        return body

    async def cancel(self, batch_id: str, caller: Caller) -> dict[str, Any]:
        """End a pending or running batch `CANCELLED` and stop its job: no request starts
        after this returns. A finished batch stays as it is. Raises NotFound."""
        await self._batch(batch_id, caller)
        if await self.store.end_batch(batch_id, CANCELLED, now()):
            await self.jobs.cancel(batch_id)
        return {}

    async def delete(self, batch_id: str, caller: Caller) -> dict[str, Any]:
        """Delete the batch and its results, cancelling it first when it has not ended.
        Raises NotFound. What its requests cost stays counted."""
        await self.cancel(batch_id, caller)
        if not await self.store.delete_batch(batch_id):
            raise NotFound(f"batch `batches/{batch_id}` not found")
        return {}

    async def recover(self) -> int:
        """Queue again every batch a previous process left unfinished (embedded start-up).
        Returns how many."""
        unfinished = await self.store.unfinished_batches()
        for batch_id in unfinished:
            await self.jobs.submit(batch_id)
        return len(unfinished)

    async def stop(self) -> None:
        """Stop the batches running here; they stay unfinished, for the next run."""
        await self.jobs.stop()

    async def execute(self, batch_id: str) -> None:
        """Run the batch (see the module): answer its requests that have none yet, then end
        it `SUCCEEDED`. Nothing when it is gone or finished. A cancel stops it (nothing more
        is written); a failure of the store ends it `FAILED`."""
        batch = await self.store.get_batch(batch_id)
        if batch is None or not await self.store.start_batch(batch_id, now()):
            return
        pending = [item for item in await self.store.batch_items(batch_id) if item.result is None]
        caller = _caller(batch)
        gate = asyncio.Semaphore(self.concurrency)
        halted = asyncio.Event()  # the batch stopped running: cancelled, deleted

        async def answer(item: BatchItem) -> None:
            async with gate:
                if halted.is_set():
                    return
                result, ok = await self._answer(batch.model, item.request, caller)
                if not await self.store.record_result(batch_id, item.index, result, ok, now()):
                    halted.set()

        failed = False
        try:
            async with asyncio.TaskGroup() as group:
                for item in pending:
                    group.create_task(answer(item))
        except* Exception:  # the store's: a request's own failure is its result
            logger.exception("batch %s failed", batch_id)
            failed = True
        if failed:
            await self.store.end_batch(batch_id, FAILED, now(), _INTERNAL)
        elif not halted.is_set():
            try:
                if batch.caller.get("input_file"):
                    await self._write_results(batch, caller)
            except Exception:
                logger.exception("batch %s: its results file could not be written", batch_id)
                await self.store.end_batch(batch_id, FAILED, now(), _INTERNAL)
                return
            await self.store.end_batch(batch_id, SUCCEEDED, now())

    async def _write_results(self, batch: BatchRecord, caller: Caller) -> None:
        """Write a batch from a file's results as the caller's file `results_file_id` (once:
        a retried batch finds it written)."""
        assert self.files is not None
        items = await self.store.batch_items(batch.id)
        await self.files.write(
            caller,
            results_file_id(batch.id),
            f"{batch.display_name or batch.id} results",
            "application/jsonl",
            _results(items),
            str(batch.caller.get("files_base") or ""),
        )

    async def _answer(
        self, model: str, body: dict[str, Any], caller: Caller
    ) -> tuple[dict[str, Any], bool]:
        """One request's result, `({"response": ...}, True)` or `({"error": ...}, False)`,
        as a direct generateContent call would answer it."""
        if self.files is not None:  # `fileData` naming an uploaded file: its bytes inline
            try:
                body = await inline_file_parts(body, functools.partial(self.files.load, caller))
            except PropylonError as exc:
                return {"error": status_of(exc)}, False
        for attempt in range(1, _RATE_ATTEMPTS + 1):
            try:
                request = parse(GenerateContentRequest, body)
                generation = await self.generate.generate(
                    model, request, body, caller, stream=False
                )
                return {"response": await self.generate.whole(generation)}, True
            except ResourceExhausted as exc:
                limited = not isinstance(exc, BudgetExhausted) and exc.retry_after <= _RATE_WAIT
                if not limited or attempt == _RATE_ATTEMPTS:
                    return {"error": status_of(exc)}, False
                await asyncio.sleep(exc.retry_after)  # the rate window lets it through then
            except PropylonError as exc:
                return {"error": status_of(exc)}, False
            except Exception:
                logger.exception("a request of a batch failed")
                return {"error": dict(_INTERNAL)}, False
        raise AssertionError("unreachable")
