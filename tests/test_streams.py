"""The streams' encodings of a block, in process: levels in SSE headers, the level filter."""

from __future__ import annotations

import json

import pytest

from perview.classify import ERROR, WARNING
from perview.hub import Hub
from perview.ring import Chunk
from perview.web.streams import (
    at_least,
    level_of_query,
    sse_at_least,
    sse_lines,
    text_at_least,
)
from tests.test_hub import MIXED, ScriptedSource, line_chunks

TRACEBACK_UNDER_ERROR = (
    b"INFO starting\n"  # 1
    b"ERROR query failed\n"  # 2
    b"Traceback (most recent call last):\n"  # 3
    b'  File "db.py", line 42, in run\n'  # 4
    b"KeyError: 'users'\n"  # 5
    b"INFO retrying\n"  # 6
    b"DEBUG detail\n"  # 7
    b"WARNING slow\n"  # 8
)


async def chunk_of(data: bytes, since: int | None = None) -> tuple[Hub, Chunk]:
    hub = Hub("app", ScriptedSource())
    await hub.write(data)
    with hub.watch(backlog=None, since=since, start=False) as viewer:
        [chunk] = line_chunks(viewer.read())
    return hub, chunk


def header_of(event: bytes) -> dict[str, object]:
    lines = event.split(b"\n")
    assert lines[0] == b"event: lines"
    header: dict[str, object] = json.loads(lines[1].removeprefix(b"data: "))
    return header


async def test_a_lines_event_names_each_line_s_level_and_where_entries_start() -> None:
    hub, chunk = await chunk_of(MIXED)
    event = sse_lines(hub, chunk)
    assert header_of(event)["levels"] == "IEeeeW"
    assert sse_lines(hub, chunk) is event  # encoded once, for every viewer
    await hub.close()


async def test_a_read_from_inside_a_block_gets_the_levels_of_its_lines() -> None:
    hub, chunk = await chunk_of(MIXED, since=4)
    header = header_of(sse_lines(hub, chunk))
    assert header["id"] == 4 and header["levels"] == "eeW"
    await hub.close()


async def test_a_source_not_classified_has_lines_without_levels() -> None:
    hub = Hub("app", ScriptedSource(), classify=None)
    await hub.write(MIXED)
    with hub.watch(backlog=None, start=False) as viewer:
        [chunk] = line_chunks(viewer.read())
    assert header_of(sse_lines(hub, chunk))["levels"] == "NNNNNN"
    await hub.close()


async def test_a_level_filter_keeps_whole_entries_as_runs_with_their_own_ids() -> None:
    hub, chunk = await chunk_of(TRACEBACK_UNDER_ERROR)
    runs = at_least(chunk, WARNING)
    assert [(r.first, r.count) for r in runs] == [(2, 4), (8, 1)]
    assert runs[0].data == TRACEBACK_UNDER_ERROR.splitlines(keepends=True)[1] + (
        b"Traceback (most recent call last):\n"
        b'  File "db.py", line 42, in run\n'
        b"KeyError: 'users'\n"
    )
    assert runs[1].data == b"WARNING slow\n"
    assert [header_of(sse_lines(hub, r))["levels"] for r in runs] == ["Eeee", "W"]
    assert at_least(chunk, ERROR)[0].data.count(b"\n") == 4
    await hub.close()


async def test_a_block_wholly_kept_or_wholly_dropped_is_not_copied() -> None:
    hub, chunk = await chunk_of(b"ERROR a\n  detail\nERROR b\n")
    assert at_least(chunk, ERROR) == [chunk]
    assert at_least(chunk, ERROR + 1) == []
    await hub.close()


@pytest.mark.parametrize(
    ("text", "level"),
    [("warning", 4), ("WARN", 4), ("err", 5), ("crit", 6), ("critical", 6), ("notice", 3)],
)
def test_levels_are_named_as_people_write_them(text: str, level: int) -> None:
    assert level_of_query(text) == level


@pytest.mark.parametrize("text", ["", "none", "warnings", "5"])
def test_anything_else_names_no_level(text: str) -> None:
    assert level_of_query(text) is None


async def test_a_level_filter_encodes_a_chunk_once_for_every_viewer_of_its_one_source() -> None:
    hub, chunk = await chunk_of(TRACEBACK_UNDER_ERROR)
    ids: list[dict[str, int]] = [{"app": 1}, {"app": 1}]
    first, second = (sse_at_least(hub, chunk, WARNING, "e", i) for i in ids)
    assert second is first
    assert ids[0] == ids[1] == {"app": 9}
    events = first.split(b"\n\n")
    assert [header_of(e)["levels"] for e in events[:-1]] == ["Eeee", "W"]
    assert [e.rsplit(b"\n", 1)[1] for e in events[:-1]] == [b"id: e/app:6", b"id: e/app:9"]
    assert text_at_least(chunk, ERROR) is text_at_least(chunk, ERROR)
    assert text_at_least(chunk, ERROR) == b"".join(r.data for r in at_least(chunk, ERROR))
    await hub.close()


async def test_a_level_filter_over_several_sources_names_each_in_its_ids() -> None:
    hub, chunk = await chunk_of(TRACEBACK_UNDER_ERROR)
    next_ids = {"app": 1, "db": 40}
    events = sse_at_least(hub, chunk, WARNING, "e", next_ids).split(b"\n\n")
    assert [e.rsplit(b"\n", 1)[1] for e in events[:-1]] == [
        b"id: e/app:6,db:40",
        b"id: e/app:9,db:40",
    ]
    assert next_ids == {"app": 9, "db": 40}
    await hub.close()
