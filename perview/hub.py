"""One source, many viewers: the ring, the viewers' cursors, and starting and stopping by demand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from perview.classify import DEFAULTS, Options
from perview.config.records import ServerConfig, SourceConfig
from perview.framing import LineFramer
from perview.levels import Leveller
from perview.ring import Ring, State, StateName
from perview.viewers import READ_BUDGET, Fanout, Gap, Viewer, Wake

# Viewer, Gap and READ_BUDGET live with the viewers (perview.viewers) and are named here too,
# where the readers of a hub have always found them.
__all__ = ["READ_BUDGET", "Ended", "Forward", "Gap", "Hub", "Output", "Sink", "Source", "Viewer"]

log = logging.getLogger(__name__)

# A hub told nothing else runs as a source and server whose config says nothing: the records
# own those defaults (the ring's size, keep, linger, rerun, and `hold`, with its reason).
_SOURCE, _SERVER = SourceConfig(""), ServerConfig()

# Lines left without levels (over the classifier's budget) are said by the next block that gets
# them, or when the run ends; a source that falls quiet instead has them said this many seconds
# after its last line, so a flood that stops is not left unsaid until its next line.
QUIET = 1.0

# Why a run was stopped, as the state says it ("stopped (no viewers)").
NO_VIEWERS = "no viewers"
SHUTDOWN = "Perview is shutting down"
OPERATOR = "an operator"  # who stopped it, when no user name is known (the token)
RECONFIGURED = "the config changed"


class Output(Protocol):
    """What a running source reports to: the hub that owns it."""

    async def write(self, data: bytes, part: str | None = None) -> None:
        """Output bytes; `part` names where they come from (a host, a file) when a source has
        several parts. Lines are framed per part, so parts never split each other's lines."""
        ...

    def started(self, pid: int | None) -> None:
        """The source runs now (`pid`: its process group, if it has one)."""
        ...

    def waiting(self, reason: str) -> None:
        """The source is up but cannot produce yet (a file not there, a host unreachable)."""
        ...

    def notice(self, text: str, part: str | None = None) -> None:
        """Something every viewer should read in place, between the lines it concerns: what
        was not followed and when, how a file was resumed."""
        ...

    def end_line(self, part: str | None = None) -> None:
        """The stream of `part` breaks here (a file left for the next one, or truncated): a
        line it left unfinished ends here rather than running into what comes next."""
        ...


class Forward:
    """An Output that passes everything on to `out`: adapters (a part of a merged source, ssh
    remembering its last words) override only what they change."""

    def __init__(self, out: Output) -> None:
        self.out = out

    async def write(self, data: bytes, part: str | None = None) -> None:
        await self.out.write(data, part)

    def started(self, pid: int | None) -> None:
        self.out.started(pid)

    def waiting(self, reason: str) -> None:
        self.out.waiting(reason)

    def notice(self, text: str, part: str | None = None) -> None:
        self.out.notice(text, part)

    def end_line(self, part: str | None = None) -> None:
        self.out.end_line(part)


class Sink:
    """An Output that keeps nothing: readers of a command's output for their own use (metric
    collectors) override `write`, and what they do not care about costs nothing."""

    async def write(self, data: bytes, part: str | None = None) -> None:
        pass

    def started(self, pid: int | None) -> None:
        pass

    def waiting(self, reason: str) -> None:
        pass

    def notice(self, text: str, part: str | None = None) -> None:
        pass

    def end_line(self, part: str | None = None) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Ended:
    """How a source's run ended: an exit status, or the reason it could not start."""

    status: int | None = None
    reason: str | None = None


class Source(Protocol):
    kind: str

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        """Produce output until the source ends or `stop` is set; clean up everything it started."""
        ...


class Hub:
    """Runs one source at most once and fans its output out to every viewer.

    The source starts with the first viewer (or at once with `keep`) and stops `linger` seconds
    after the last one leaves. Without `rerun`, a run that ended by itself (not stopped) is not
    started again by a new viewer, only by `restart`: a viewer of `perview run -- ./deploy.sh`
    must not deploy again. It is read no further than one ring ahead of the fastest viewer,
    so a lone viewer loses nothing and pipe backpressure paces a fast producer; but for at most
    `hold` seconds at a time: then the ring rolls over and that viewer gets a gap.
    """

    def __init__(
        self,
        name: str,
        source: Source,
        *,
        max_lines: int = _SOURCE.backlog,
        max_bytes: int = _SOURCE.max_bytes,
        keep: bool = _SOURCE.keep,
        linger: float = _SOURCE.linger,
        hold: float = _SERVER.hold,
        restartable: bool = True,
        rerun: bool = _SOURCE.rerun,
        meta: Mapping[str, object] | None = None,
        classify: Options | None = DEFAULTS,
    ) -> None:
        self.name = name
        self.source = source
        self.restartable = restartable  # False: runs once (standard input)
        self.rerun = rerun  # False: a run that ended by itself is not started again by a viewer
        self.meta = dict(meta or {})  # what the API shows: title, group, hosts, command
        self.ring = Ring(max_lines, max_bytes)
        self.keep = keep
        self.linger = linger
        self.hold = hold
        self.fanout = Fanout(self.ring)
        self.state: State | None = None  # the latest state; None before the first start
        self.closed = False
        self.runs = 0
        self.gaps = 0  # lines viewers missed, in all
        self._framers: dict[str | None, LineFramer] = {}
        # Lines get their levels as they enter the ring (None: format "raw", not classified),
        # with one carry per part, as each part has its own framer: a traceback on one host
        # goes on in that host's next block, whatever the others wrote in between.
        self.leveller = Leveller(classify)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._operator_stop = False  # the current run was stopped by an operator, not by demand
        self._stopped_because: tuple[str | None, str | None] = (None, None)  # (reason, by)
        self._restart_pending = False  # a viewer came while the run was stopping for lack of one
        self._ended_by_itself = False  # the last run ended without being asked to stop
        self._linger_handle: asyncio.TimerHandle | None = None
        self._quiet_handle: asyncio.TimerHandle | None = None  # says unclassified lines (QUIET)
        self._listeners: list[Callable[[Hub], None]] = []

    @property
    def viewers(self) -> set[Viewer]:
        return self.fanout.viewers

    @property
    def followers(self) -> set[Wake]:
        """Woken with the viewers, but never waited for nor counted: recorders of the ring."""
        return self.fanout.followers

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def classified(self) -> bool:
        """Its lines are given levels (every format but "raw")."""
        return self.leveller.classifier is not None

    @property
    def finished(self) -> bool:
        """Ended for good: it ran, and a viewer will not start it again (standard input at its
        end; without `rerun`, a run that ended by itself). Only `restart` may."""
        if self.runs == 0 or self.running:
            return False
        return not self.restartable or (not self.rerun and self._ended_by_itself)

    def describe(self) -> dict[str, object]:
        """What the API, the event stream and the page say of this source: one description."""
        state = self.state
        name: StateName = "idle" if state is None else state.state
        if self.running and (state is None or state.run < self.runs):
            name = "starting"  # started, and the source has not said anything yet
        info: dict[str, object] = {
            "name": self.name,
            "kind": self.source.kind,
            "state": name,
            "summary": state.summary if state is not None and name == state.state else name,
            "viewers": len(self.viewers),
            "lines": self.ring.next_id - 1,
            "runs": self.runs,
            "keep": self.keep,
            "levels": self.leveller.tally.describe(),
            "unclassified": self.leveller.unclassified,
        }
        info |= self.meta
        if state is not None:
            info |= {
                "status": state.status,
                "reason": state.reason,
                "by": state.by,
                "pid": state.pid,
                "since": state.at,
            }
        return info

    def on_viewers_changed(self, listener: Callable[[Hub], None]) -> None:
        self._listeners.append(listener)

    # -- viewers -----------------------------------------------------------------------------

    @contextmanager
    def watch(
        self,
        *,
        backlog: int | None = 0,
        since: int | None = None,
        wake: asyncio.Event | None = None,
        start: bool = True,
    ) -> Iterator[Viewer]:
        """Subscribe a viewer for the duration of the block, starting the source if needed
        (unless not `start`: a viewer of history only).

        It first gets the last `backlog` lines (None: all that is held), or everything from line
        `since` on. Asked-for lines the ring no longer holds come first as a `Gap`, so the viewer
        is told how many it cannot have rather than silently getting fewer.
        """
        if self.closed:
            raise RuntimeError(f"hub {self.name} is closed")
        everything = False
        if since is None or since > self.ring.next_id:
            # A `since` from the future comes from before a restart of Perview: start afresh.
            ring = self.ring
            everything = backlog is None
            since = ring.oldest_id if backlog is None else max(1, ring.next_id - backlog)
        viewer = Viewer(self, since, wake or asyncio.Event())
        if everything:
            # All that is held, states and notices after the last line included: found by line
            # id, a notice that no line has followed yet (a file deleted while nobody watched)
            # would be skipped.
            viewer.seq, viewer.skip = self.ring.oldest_seq, 0
        if not self.finished and (not self.running or self._stop.is_set()):
            viewer.first_run = self.runs + 1  # the run about to start
        self.fanout.join(viewer)
        self._cancel_linger()
        self._changed()
        if start:
            self._start_on_demand()
        try:
            yield viewer
        finally:
            self.fanout.leave(viewer)
            if not self.viewers and not self.keep:
                self._schedule_stop()
            self._changed()

    def _start_on_demand(self) -> None:
        """A viewer arrived: start the source, or restart it once a run that is stopping for
        lack of viewers has ended."""
        if not self.running and not self.finished:
            self.start()
        elif self.running and self._stop.is_set() and not self._operator_stop:
            self._restart_pending = True

    # -- the source ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the source unless it is running; its output and state go to the viewers."""
        if self.running or self.closed:
            return
        self._framers = {}
        self.leveller.reset()
        self._stop = asyncio.Event()
        self._stopped_because = (None, None)
        self._operator_stop = False
        self._ended_by_itself = False
        # Counted now, not when the task first runs: a viewer arriving in between must see
        # this run as begun (and stopping, if its viewer already left), not as the next one.
        self.runs += 1
        self._task = asyncio.create_task(self._run(), name=f"source {self.name}")

    def stop(self, by: str = OPERATOR) -> None:
        """Ask the source to stop (an operator's request, `by` whom: it stays stopped while
        viewers remain); returns at once, the run ends (and is reaped) by itself."""
        self._operator_stop = True
        self._restart_pending = False
        self._stop_run(by=by)

    def _stop_run(self, reason: str | None = None, by: str | None = None) -> None:
        self._cancel_linger()
        if self.running and not self._stop.is_set():
            self._stopped_because = (reason, by)
            self._stop.set()
            self.fanout.space.set()  # a write waiting for a viewer to read on gives up

    async def restart(self, by: str = OPERATOR) -> None:
        self.stop(by)
        await self.wait_stopped()
        self.start()

    async def wait_stopped(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self, reason: str = SHUTDOWN) -> None:
        """Stop the source, wait until it is reaped, and end every viewer's stream."""
        self.closed = True
        self._restart_pending = False
        self._stop_run(reason=reason)
        await self.wait_stopped()
        if self._quiet_handle is not None:
            self._quiet_handle.cancel()
        self.fanout.tell()

    async def reconfigure(
        self,
        source: Source,
        *,
        max_lines: int,
        max_bytes: int,
        keep: bool,
        linger: float,
        rerun: bool,
        meta: Mapping[str, object],
        classify: Options | None = DEFAULTS,
    ) -> None:
        """Run `source` from now on, with these settings: the current run stops (said as
        "stopped (the config changed)") and the new one starts if anyone watches or `keep`.
        Viewers stay; line ids go on, so their positions stay valid."""
        # Swapped first: the current run keeps the old source to its end, and any start from
        # here on (a viewer arriving while it stops) runs the new one.
        self.source = source
        self.ring.max_lines, self.ring.max_bytes = max_lines, max_bytes
        self.keep, self.linger, self.rerun, self.meta = keep, linger, rerun, dict(meta)
        self.leveller = Leveller(classify)
        self._stop_run(reason=RECONFIGURED)
        await self.wait_stopped()
        self._trim()
        if keep or (self.viewers and not self._operator_stop):
            self.start()

    async def _run(self) -> None:
        try:
            ended = await self.source.run(self, self._stop)
        except Exception as exc:  # a bug in a source must not take the server down
            log.exception("source %s crashed", self.name)
            ended = Ended(reason=f"internal error: {exc!r}")
        # A run that exits just as it is asked to stop counts as stopped: when in doubt, a new
        # viewer runs it again rather than finding it ended.
        self._ended_by_itself = not self._stop.is_set()
        for part, framer in self._framers.items():
            self._append_lines(*framer.flush(), part)
        if (unclassified := self.leveller.pending()) is not None:
            self.ring.append(b"", 0, note=unclassified)
        if ended.reason is not None and ended.status is None:
            state = State("failed", reason=ended.reason, run=self.runs)
        elif self._stop.is_set():  # whatever its status, Perview ended it: not a failure
            reason, by = self._stopped_because
            state = State("stopped", status=ended.status, reason=reason, by=by, run=self.runs)
        else:
            state = State("exited", status=ended.status, reason=ended.reason, run=self.runs)
        self._set_state(state)
        level = logging.WARNING if state.state == "failed" else logging.INFO
        log.log(level, "%s: %s", self.name, state.summary)
        if self._restart_pending:
            self._restart_pending = False
            # This task is still finishing; start the next run once it has.
            asyncio.get_running_loop().call_soon(self._start_if_watched)

    # Output, called by the source:

    def started(self, pid: int | None) -> None:
        self._set_state(State("running", pid=pid, run=self.runs))

    def waiting(self, reason: str) -> None:
        self._set_state(State("waiting", reason=reason, run=self.runs))

    def notice(self, text: str, part: str | None = None) -> None:
        self.end_line(part)  # a partial line first, so the notice falls where it belongs
        self.ring.append(b"", 0, part=part, note=text)
        self._trim()
        self.fanout.tell()

    def end_line(self, part: str | None = None) -> None:
        framer = self._framers.get(part)
        if framer is not None:
            self._append_lines(*framer.flush(), part)

    async def write(self, data: bytes, part: str | None = None) -> None:
        framer = self._framers.get(part)
        if framer is None:
            framer = self._framers[part] = LineFramer()
        self._append_lines(*framer.feed(data), part)
        if not self._stop.is_set() and self.fanout.too_far_ahead():
            await self._wait_for_space()
        # A source whose pipe is never empty would otherwise never give the loop back: viewers,
        # requests and the source's own stop would all wait for it.
        await asyncio.sleep(0)

    async def _wait_for_space(self) -> None:
        """Wait until the fastest viewer reads on, for at most `hold` seconds; then let the ring
        roll over under that viewer until it moves again (it reads a gap when it does)."""
        space = self.fanout.space
        try:
            async with asyncio.timeout(self.hold):
                while not self._stop.is_set() and self.fanout.too_far_ahead():
                    space.clear()
                    await space.wait()
        except TimeoutError:
            log.info("%s: a viewer held it back for %g s; it will get a gap", self.name, self.hold)
            self.fanout.release()

    def _append_lines(self, data: bytes, count: int, part: str | None = None) -> None:
        if not count:
            return
        marks, notice = self.leveller.mark(data, count, part)
        self.ring.append(data, count, part=part, marks=marks)
        if notice is not None:
            self.ring.append(b"", 0, part=part, note=notice)
        self._trim()
        if marks is None and self.classified and self._quiet_handle is None:
            loop = asyncio.get_running_loop()
            self._quiet_handle = loop.call_later(QUIET, self._say_unclassified, self.ring.next_id)
        self.fanout.added(len(data))

    def _say_unclassified(self, next_id: int) -> None:
        """Say the lines left unclassified if the source wrote nothing since `next_id`; while
        it writes, look again later (a block that gets levels says them itself)."""
        self._quiet_handle = None
        if self.closed or self.leveller.unclassified_unsaid == 0:
            return
        loop = asyncio.get_running_loop()
        if self.ring.next_id != next_id:
            self._quiet_handle = loop.call_later(QUIET, self._say_unclassified, self.ring.next_id)
        elif (unclassified := self.leveller.pending()) is not None:
            self.ring.append(b"", 0, note=unclassified)
            self._trim()
            self.fanout.tell()

    def _set_state(self, state: State) -> None:
        self.state = state
        self.ring.append(b"", 0, state)
        self._trim()
        self.fanout.tell()
        self._changed()

    def _trim(self) -> None:
        self.fanout.trim()

    def _start_if_watched(self) -> None:
        if self.viewers:
            self.start()

    def _schedule_stop(self) -> None:
        if self.linger <= 0:
            self._stop_run(reason=NO_VIEWERS)
        else:
            self._cancel_linger()
            loop = asyncio.get_running_loop()
            self._linger_handle = loop.call_later(self.linger, self._stop_if_unwatched)

    def _stop_if_unwatched(self) -> None:
        self._linger_handle = None
        if not self.viewers and not self.keep:
            self._stop_run(reason=NO_VIEWERS)

    def _cancel_linger(self) -> None:
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None

    def _changed(self) -> None:
        for listener in self._listeners:
            listener(self)
