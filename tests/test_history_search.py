"""Ranges over recorded history: as text (whole runs of lines) they hold exactly the lines and
events that the line-by-line answer holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from perview.history.block import Block
from perview.history.search import Event, Item, Line, Lines, Query, run
from perview.history.store import Retention, Store


def block(first: int, base: float, part: str | None = None) -> Block:
    """30 lines arriving in three reads a second apart, with events between them."""
    data = b"".join(b"line %d\n" % n for n in range(first, first + 30))
    times = ((10, base), (10, base + 1), (10, base + 2))
    events = ((0, base, "started"), (10, base + 1, "note"), (30, base + 2, "exited"))
    return Block("app", part, "lines", first, 30, base, base + 2, data, times, events)


def flat(items: list[Item]) -> list[tuple[str, str]]:
    """Each line and event as (kind, text), whichever way it came."""
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, Lines):
            out += [("line", text) for text in item.data.decode().splitlines()]
        elif isinstance(item, Line):
            out.append(("line", item.text))
        elif isinstance(item, Event):
            out.append(("event", item.text))
    return out


@pytest.mark.parametrize(
    ("since", "until"),
    [(0, 2e9), (100.5, 2e9), (101, 101), (101, 200.5), (99, 99.5), (102, 201), (0, 100)],
)
def test_a_range_as_text_holds_what_it_holds_line_by_line(
    tmp_path: Path, since: float, until: float
) -> None:
    store = Store(tmp_path / "h", Retention())
    store.write([block(1, 100.0), block(31, 200.0, "web1")])
    by_line = list(run(store, Query(("app",), since, until, None, False, limit=10**6)))
    as_text = list(run(store, Query(("app",), since, until, None, False, as_text=True)))
    assert flat(as_text) == flat(by_line)
    assert all(not isinstance(i, Line) for i in as_text)
    numbers = [(i.first, i.count) for i in as_text if isinstance(i, Lines)]
    lines = [int(t.split()[1]) for kind, t in flat(as_text) if kind == "line"]
    assert [n for first, count in numbers for n in range(first, first + count)] == lines
    store.close()


def test_a_block_wholly_in_range_is_sent_as_it_is(tmp_path: Path) -> None:
    store = Store(tmp_path / "h", Retention())
    data = b"a\nb\nc\n"
    store.write([Block("app", None, "lines", 1, 3, 10.0, 12.0, data, ((3, 10.0),))])
    (item, _) = run(store, Query(("app",), 0, 2e9, None, False, as_text=True))
    assert item == Lines("app", None, 1, 3, data)
    store.close()
