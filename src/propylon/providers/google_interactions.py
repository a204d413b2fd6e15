"""Google's own Interactions API, for Google-hosted agents (deep research and the like):
create as a stream, and cancel (reference §2 and §5, the same wire format Propylon serves).

Every request asks for the `steps` revision (`Api-Revision: 2026-05-20`), whatever revision
Propylon's own client speaks: the mirrored events go into the one log, which is in that
revision; a legacy client gets its view at the edge (api/revision.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from propylon.providers.gemini import DEFAULT_BASE_URL
from propylon.providers.http import Upstream
from propylon.schema.legacy import STEPS_REVISION

__all__ = ["GoogleInteractions"]


class GoogleInteractions:
    """The Interactions API at `base_url` (default Google's), key sent as x-goog-api-key.
    `max_line_bytes`: the longest event stream line accepted."""

    def __init__(
        self, base_url: str | None, api_key: str | None, timeout: float, max_line_bytes: int
    ) -> None:
        self.root = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/v1beta/interactions"
        headers = {"Api-Revision": STEPS_REVISION}
        if api_key:
            headers["x-goog-api-key"] = api_key
        self.upstream = Upstream(timeout, headers, max_line_bytes)

    def create(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The upstream's stream events (`event_type` inside each) for a create of `body`.
        Raises UpstreamError."""
        return self.upstream.stream(self.root, {**body, "stream": True})

    async def cancel(self, upstream_id: str) -> None:
        """Cancel the upstream interaction. Raises UpstreamError."""
        await self.upstream.post_json(f"{self.root}/{upstream_id}/cancel")

    async def close(self) -> None:
        await self.upstream.close()
