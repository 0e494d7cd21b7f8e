"""A history request's results, gathered: recorded history first, then each file part's, in
batches with one Total for all. Sync scans run a step at a time on the one search thread, so
that searches take turns and the loop keeps the other core; a scan stops when its reader does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import replace

from perview.history.far import scan_remote
from perview.history.files import FileLine, FileQuery, Skipped, Target, scan_local
from perview.history.search import Item, Lines, Query, Total, run
from perview.history.service import History

# One thread for every search, as for `?grep=`: it leaves the other core to the loop, and
# searches take turns a step (a block) at a time.
_searchers = ThreadPoolExecutor(1, thread_name_prefix="perview-search")
STEP_ITEMS = 500  # items one step hands back at most
STEP_BYTES = 4 * 1024 * 1024  # ... or this much text of a range (Lines: a block each)
STEP_SECONDS = 0.05  # ... or after this long, so progress flows
FIRST_WAIT = 0.005  # ... or this long after its first item: a rare match goes out at once

Result = Item | FileLine | Skipped


async def batches(
    history: History,
    query: Query,
    file_query: FileQuery | None,
    parts: list[Target],
    skipped: list[Skipped],
) -> AsyncGenerator[list[Result], None]:
    """Recorded history's results, then each file part's, in batches, with one Total for all
    (what the limit left for each part is what it may find)."""
    matches = blocks = scanned = received = 0
    seconds = 0.0
    complete = True
    gathered: list[Result] = list(skipped)

    def tally(items: list[Result]) -> list[Result]:
        nonlocal matches, blocks, scanned, received, seconds, complete
        kept: list[Result] = list(gathered)
        gathered.clear()
        for item in items:
            if isinstance(item, Total):
                matches += item.matches
                blocks += item.blocks
                scanned += item.bytes
                received += item.received
                seconds += item.seconds
                complete = complete and item.complete
            else:
                kept.append(item)
        return kept

    if query.sources:
        async with aclosing(stepped(run(history.store, query))) as steps:
            async for items in steps:
                yield tally(items)
    for part in parts:
        if file_query is None or matches >= file_query.limit:
            complete = complete and file_query is None
            break
        room = replace(file_query, limit=file_query.limit - matches)
        if part.destination is None:
            async with aclosing(stepped(scan_local(part, room))) as steps:
                async for items in steps:
                    yield tally(items)
        else:
            async with aclosing(scan_remote(part, room)) as far:
                async for batch in far:
                    yield tally(list[Result](batch))
    yield [*tally([]), Total(matches, blocks, scanned, seconds, complete, received)]


async def stepped(results: Iterator[Result]) -> AsyncGenerator[list[Result], None]:
    """A sync scan run a step at a time on the search thread; closed when its reader stops."""
    loop = asyncio.get_running_loop()
    step: Future[list[Result]] | None = None
    try:
        while True:
            step = _searchers.submit(_step, results)
            items = await asyncio.wrap_future(step, loop=loop)
            if not items:
                return
            yield items
    finally:
        # A step still running on the thread closes the scan when it ends.
        close = getattr(results, "close", None)
        if close is not None:
            if step is not None and not step.done():
                step.add_done_callback(lambda _: close())
            else:
                close()


def _step(results: Iterator[Result]) -> list[Result]:
    items: list[Result] = []
    size = 0
    deadline = time.monotonic() + STEP_SECONDS
    for item in results:
        items.append(item)
        now = time.monotonic()
        if len(items) == 1:
            deadline = min(deadline, now + FIRST_WAIT)
        if isinstance(item, Lines):
            size += len(item.data)
        if len(items) >= STEP_ITEMS or size >= STEP_BYTES or now >= deadline:
            break
        if isinstance(item, Total):
            break
    return items
