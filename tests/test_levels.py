"""Levels within a time budget: a source too fast to classify still relays, and says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

from perview.classify import DEFAULTS, HEAD
from perview.hub import QUIET, Hub, Viewer
from perview.levels import BURST, Leveller
from perview.ring import ENDINGS, Chunk
from tests.test_hub import ScriptedSource

CORPUS = Path(__file__).parent / "data" / "levels"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def corpus_block() -> bytes:
    """About 64 KiB of every format of the corpus in turn: costly to classify (a block of a
    single plain format, nginx access lines, is proved plain by one pass)."""
    text = b"".join(p.read_bytes() for p in sorted(CORPUS.glob("*.log")))
    return text * max(1, 65536 // len(text))


def test_past_its_share_of_time_a_source_goes_unclassified_and_is_told_how_many() -> None:
    clock = Clock()  # stands still: no credit comes back until the test moves it
    leveller = Leveller(DEFAULTS, clock)
    block = corpus_block()
    lines = block.count(b"\n")
    marked = skipped = 0
    for _ in range(2000):  # bounded: the share is spent long before
        marks, notice = leveller.mark(block, lines, None)
        assert notice is None
        if marks is None:
            skipped += lines
            break
        marked += lines
    assert skipped, f"{marked} lines classified in {BURST} s of credit and still going"
    assert leveller.unclassified == lines
    clock.now += 1.0  # a second later: BURST to spend again
    marks, notice = leveller.mark(b"INFO back\n", 1, None)
    assert marks == bytes([3 | HEAD])
    assert notice is not None and notice.startswith(f"levels not found for {lines:,} lines (")


def test_raw_is_never_classified() -> None:
    assert Leveller(None).mark(b"ERROR x\n", 1, None) == (None, None)


def starved_hub() -> tuple[ScriptedSource, Hub, bytes]:
    """A hub whose classifier never gets its share of the loop back, its scripted source, and a
    block of the corpus to write."""
    source = ScriptedSource()
    hub = Hub("app", source)
    hub.leveller = Leveller(DEFAULTS, Clock())  # no credit comes back
    return source, hub, corpus_block()


async def write_until_unclassified(
    source: ScriptedSource, hub: Hub, viewer: Viewer, block: bytes
) -> None:
    """Write `block` (the viewer reading along) until the hub leaves one unclassified."""
    for written in range(1, 2000):  # bounded: the share is spent long before
        await source.queue.put(block)
        while source.writes_done < written:
            viewer.read()
            await asyncio.sleep(0)
        if hub.leveller.unclassified:
            return


async def test_lines_left_unclassified_as_a_run_ends_are_said_before_it_ends() -> None:
    source, hub, block = starved_hub()
    notes: list[str] = []
    with hub.watch(backlog=None) as viewer:
        async with asyncio.timeout(30):
            await write_until_unclassified(source, hub, viewer, block)
            await source.queue.put(None)
            ended = False
            while not ended:
                for item in viewer.read():
                    if isinstance(item, Chunk) and item.note is not None:
                        notes.append(item.note)
                    if isinstance(item, Chunk) and item.state is not None:
                        ended = ended or item.state.state in ENDINGS
                await asyncio.sleep(0)
    lines = block.count(b"\n")
    assert hub.leveller.unclassified == lines
    assert notes and notes[-1].startswith(f"levels not found for {lines:,} lines (")
    await hub.close()


async def test_lines_left_unclassified_before_a_source_falls_quiet_are_said_soon_after() -> None:
    source, hub, block = starved_hub()
    notes: list[str] = []
    with hub.watch(backlog=None) as viewer:
        async with asyncio.timeout(30):
            await write_until_unclassified(source, hub, viewer, block)
        # The source runs on and writes nothing more: no classified block comes to say it.
        async with asyncio.timeout(QUIET + 5):
            while not notes:
                notes += [i.note for i in viewer.read() if isinstance(i, Chunk) and i.note]
                await asyncio.sleep(0.01)
    assert notes == [notes[0]]
    lines = block.count(b"\n")
    assert notes[0].startswith(f"levels not found for {lines:,} lines (")
    assert hub.running
    await hub.close()
