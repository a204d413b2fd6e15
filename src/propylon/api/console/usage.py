"""The console's usage page: tokens and cost per day by model, tenant or label (one SQL
aggregation over the covering index of migration 0011), as charts, a table and CSV; and,
for admin keys, the upstream targets: calls and errors since the server started (the
`/metrics` counters) and each target's circuit breaker state."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.console.render import endpoint, render
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument, PermissionDenied
from propylon.gateway.registry import ModelRegistry
from propylon.observability import Metrics
from propylon.store.console import ConsoleReads, Group, UsageQuery, UsageRow

__all__ = ["routes", "upstream_health"]

_GROUPS: tuple[Group, ...] = ("model", "tenant", "label")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_CSV_COLUMNS = (
    "day",
    "series",
    "interactions",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
)


def _query(request: Request, caller: Caller) -> tuple[UsageQuery, int]:
    """The usage query of the page's parameters, and its number of days. Raises
    InvalidArgument naming the parameter, PermissionDenied for another tenant's."""
    q = request.query_params
    try:
        days = int(q.get("days") or 30)
    except ValueError:
        raise InvalidArgument("`days` must be a whole number of days") from None
    if not 1 <= days <= 366:
        raise InvalidArgument("`days` must be between 1 and 366")
    group = q.get("group") or "model"
    if group not in _GROUPS:
        raise InvalidArgument(f"`group` must be one of {', '.join(_GROUPS)}")
    label_key = (q.get("label_key") or "").strip() or None
    if group == "label" and not (label_key and _LABEL_KEY.fullmatch(label_key)):
        raise InvalidArgument(
            "`label_key`: name a label key (lowercase letters, digits, `_` and `-`) to "
            "group by label"
        )
    tenant = (q.get("tenant") or "").strip() or None
    if not caller.admin:
        if tenant not in (None, caller.tenant):
            raise PermissionDenied("`tenant`: only admin keys may see another tenant's usage")
        tenant = caller.tenant
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    since = tomorrow - timedelta(days=days)
    query = UsageQuery(
        since=f"{since.isoformat()}T00:00:00Z",
        until=f"{tomorrow.isoformat()}T00:00:00Z",
        tenant=tenant,
        group=group,
        label_key=label_key if group == "label" else None,
    )
    return query, days


def _chart(rows: list[UsageRow], query: UsageQuery, days: int) -> dict[str, Any]:
    """Chart.js data: one label per day of the range, one dataset per series (largest
    first), for tokens and for cost."""
    start = datetime.fromisoformat(query.since.replace("Z", "+00:00")).date()
    labels = [(start + timedelta(days=n)).isoformat() for n in range(days)]
    position = {day: n for n, day in enumerate(labels)}
    tokens: dict[str, list[int]] = {}
    cost: dict[str, list[float]] = {}
    for row in rows:
        name = row.series if row.series is not None else "(none)"
        tokens.setdefault(name, [0] * days)[position[row.day]] += row.total_tokens
        cost.setdefault(name, [0.0] * days)[position[row.day]] += row.cost_usd
    order = sorted(tokens, key=lambda name: -sum(tokens[name]))
    return {
        "labels": labels,
        "tokens": [{"label": name, "data": tokens[name]} for name in order],
        "cost": [{"label": name, "data": [round(v, 8) for v in cost[name]]} for name in order],
    }


def _totals(rows: list[UsageRow]) -> list[dict[str, Any]]:
    """Per series, over the range, largest first."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row.series if row.series is not None else "(none)"
        total = found.setdefault(
            name,
            {"series": name, "interactions": 0, "input": 0, "output": 0, "tokens": 0, "cost": 0.0},
        )
        total["interactions"] += row.interactions
        total["input"] += row.input_tokens
        total["output"] += row.output_tokens
        total["tokens"] += row.total_tokens
        total["cost"] += row.cost_usd
    return sorted(found.values(), key=lambda t: -t["tokens"])


def upstream_health(models: ModelRegistry, metrics: Metrics) -> list[dict[str, Any]]:
    """Every configured target: its model, provider, circuit breaker state, and its calls and
    failed calls counted since this process started (the `/metrics` counters)."""
    calls: dict[str, dict[str, float]] = {}
    for family in metrics.upstream_calls.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                outcomes = calls.setdefault(sample.labels["target"], {})
                outcomes[sample.labels["outcome"]] = sample.value
    found = []
    for model in models.models:
        for target in model.targets:
            outcomes = calls.get(target.name, {})
            total = int(sum(outcomes.values()))
            failed = total - int(outcomes.get("ok", 0))
            found.append(
                {
                    "model": model.name,
                    "target": target.name,
                    "provider": target.settings.provider,
                    "breaker": target.breaker.state,
                    "calls": total,
                    "failed": failed,
                    "error_rate": failed / total if total else None,
                    "outcomes": {k: int(v) for k, v in sorted(outcomes.items())},
                }
            )
    return found


@endpoint
async def page(request: Request, caller: Caller) -> Response:
    """Charts of tokens and cost per day, totals per series, and (admins) upstream health."""
    query, days = _query(request, caller)
    reads: ConsoleReads = request.app.state.console.reads
    rows = await reads.usage(query)
    totals = _totals(rows)
    context = {
        "query": query,
        "days": days,
        "chart": _chart(rows, query, days),
        "totals": totals,
        "sum_tokens": sum(t["tokens"] for t in totals),
        "sum_cost": sum(t["cost"] for t in totals),
        "sum_interactions": sum(t["interactions"] for t in totals),
        "csv_query": request.url.query,
        "health": (
            upstream_health(request.app.state.service.models, request.app.state.metrics)
            if caller.admin
            else None
        ),
    }
    return render(request, "usage.html", context, caller=caller)


def _cell(text: str) -> str:
    """A text cell that a spreadsheet reads as text: a label value or model name a tenant
    chose, starting like a formula (`=`, `+`, `-`, `@`, tab, CR), gets a leading `'`."""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


@endpoint
async def download(request: Request, caller: Caller) -> Response:
    """The same aggregation as CSV: one line per day and series."""
    query, _ = _query(request, caller)
    reads: ConsoleReads = request.app.state.console.reads
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for row in await reads.usage(query):
        writer.writerow(
            [
                row.day,
                _cell(row.series if row.series is not None else ""),
                row.interactions,
                row.input_tokens,
                row.output_tokens,
                row.total_tokens,
                f"{row.cost_usd:.8f}",
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"content-disposition": 'attachment; filename="propylon-usage.csv"'},
    )


routes = [
    Route("/usage", page, methods=["GET"]),
    Route("/usage.csv", download, methods=["GET"]),
]
