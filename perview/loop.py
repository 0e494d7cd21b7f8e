"""The event loop Perview runs on: asyncio's, whose selector keeps the GIL when it only polls.

asyncio polls its selector once a turn, with a timeout of 0 whenever callbacks are ready: a
source writing flat out makes that thousands of times a second. `select.epoll` lets go of the
GIL around every poll, even one that cannot block, and in CPython a thread waiting for the GIL
(the history writer back from compressing a block, a search back from reading one) is woken by
each such release and mostly loses the race to take it, the loop being quicker: for as long as
that thread waits (4 to 9 ms each time, measured), every turn of the loop pays a wake-up and a
contended lock. A thread that only hashed 256 KiB at a time with the GIL let go slowed a relay
flat out to 0.83 of its speed; recording it, 0.84-0.87. Polling that cannot block keeps the GIL
here (perview/_epoll.c): while the loop is busy, another thread gets the GIL from the
interpreter's switch interval (`sys.getswitchinterval()`, 5 ms), and whenever the loop waits
for I/O, as before: the live path first, the rest when it rests. The relay recorded keeps
0.97-0.98 of its speed on this loop (bench/history.py; bench/README.md has the measurements).

Without the C part (no compiler where Perview was installed, or PERVIEW_NO_C=1) the loop is
asyncio's own.
"""

from __future__ import annotations

import asyncio
import os
import select
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _poll_now() -> Callable[[int, int], list[tuple[int, int]]] | None:
    if os.environ.get("PERVIEW_NO_C") == "1" or not hasattr(selectors, "EpollSelector"):
        return None
    try:
        from perview._epoll import poll_now
    except ImportError:
        return None
    return poll_now


POLL_NOW = _poll_now()


class _Epoll:
    """A `select.epoll` whose poll with a timeout of 0 keeps the GIL."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.fileno = self._epoll.fileno
        self.register = self._epoll.register
        self.modify = self._epoll.modify
        self.unregister = self._epoll.unregister
        self.close = self._epoll.close

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        if timeout == 0 and maxevents > 0 and POLL_NOW is not None:
            return POLL_NOW(self._epoll.fileno(), maxevents)
        return self._epoll.poll(timeout, maxevents)


class Selector(selectors.EpollSelector):
    """asyncio's epoll selector (the same readiness, the same events), polling with `_Epoll`."""

    _selector_cls = _Epoll


def new_event_loop() -> asyncio.AbstractEventLoop:
    if POLL_NOW is None:
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(Selector())


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on Perview's loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
