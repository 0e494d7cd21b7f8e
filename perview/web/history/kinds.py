"""What history a served source has: its record, its files searched in place, or none. The one
answer for the sources API and for search, and where the routes find the store and the hubs."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Literal

from aiohttp import web

from perview.history.files import targets
from perview.history.service import History
from perview.hub import Hub

HISTORY = web.AppKey("history", History)
HUBS = web.AppKey("history_hubs", Mapping[str, Hub])

HistoryKind = Literal["recorded", "file", "none"]


def history_of(hub: Hub, recorded: Collection[str]) -> HistoryKind:
    """What history a served source has: its record (recorded now, or held from before), else
    its files searched in place (a `file` source, here or on a host), else none."""
    if hub.name in recorded:
        return "recorded"
    return "file" if targets(hub) else "none"


async def histories(app: web.Application, hubs: Mapping[str, Hub]) -> dict[str, HistoryKind]:
    """`history_of` each of `hubs`; all none when history is not served (no store)."""
    history = app.get(HISTORY)
    if history is None:
        return dict.fromkeys(hubs, "none")
    recorded = await asyncio.to_thread(recorded_sources, history)
    return {name: history_of(hub, recorded) for name, hub in hubs.items()}


def recorded_sources(history: History) -> list[str]:
    """Sources with history: in the store, or recorded by the config (perhaps nothing yet). From
    the store's own list of segments, not its index: the page asks every few seconds. On a
    thread: that list's lock is held while the writer commits."""
    held = sorted(history.store.held())
    return held + sorted(set(history.store.retention.ages) - set(held))
