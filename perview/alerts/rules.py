"""One rule's state: when it fires, what it sends, and what its cooldown holds back.

A rule is a small state machine driven from outside: `LinesRule.lines` as blocks are scanned,
`MetricRule.sample` as samples are published, `SilenceRule.output` as a source prints, and
`tick` by the engine's clock at the rule's `deadline`. What it decides to send goes to its
`Outlet`; it never waits for a channel.

The cooldown: the first time a rule's condition is met it sends at once; each further time
within `cooldown` is held back and counted, and when the cooldown ends the held-back count (and
the latest lines) goes out in one notification, which starts the next cooldown. So a storm of
100,000 matching lines sends one notification, then one per cooldown, and the counts in them
add up to the lines that matched.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from perview.alerts.scan import SAMPLE_LINES, Hits, Matcher
from perview.config import AlertConfig

RECENT = 10  # firings each rule keeps for the API and the page
State = Literal["ok", "firing", "silenced"]


@dataclass(slots=True)
class Firing:
    """One notification: what the rule found, and whether it was handed to its channels."""

    alert: str
    state: Literal["firing", "resolved"]
    summary: str
    at: float = field(default_factory=time.time)
    source: str | None = None
    part: str | None = None  # the host or glob's file of a source of several, as in events
    lines: list[dict[str, object]] = field(default_factory=list)  # see `line`
    count: int = 1
    suppressed: int = 0
    value: float | None = None
    sent: bool = True  # False: the rule was silenced

    def document(self) -> dict[str, object]:
        """The JSON a webhook posts and a command reads on its stdin."""
        return {
            "alert": self.alert,
            "state": self.state,
            "summary": self.summary,
            "source": self.source,
            "part": self.part,
            "host": self.part,  # its name before `part`, which the README promised
            "lines": self.lines,
            "count": self.count,
            "suppressed": self.suppressed,
            "value": self.value,
            "time": _iso(self.at),
            "at": self.at,
            "sent": self.sent,
        }

    def fields(self) -> dict[str, object]:
        """The fields as a template and a command's environment have them: lines as text."""
        doc = self.document()
        doc["lines"] = "\n".join(str(line["text"]) for line in self.lines)
        return doc

    @classmethod
    def load(cls, doc: dict[str, object]) -> Firing:
        """A firing kept across a restart (see `document`)."""
        state: Literal["firing", "resolved"] = (
            "resolved" if doc.get("state") == "resolved" else "firing"
        )
        lines = doc.get("lines")
        value = doc.get("value")
        return cls(
            alert=str(doc.get("alert", "")),
            state=state,
            summary=str(doc.get("summary", "")),
            at=_number(doc.get("at")),
            source=_text(doc.get("source")),
            part=_text(doc.get("part", doc.get("host"))),  # kept by a version before `part`
            lines=[_kept_line(item) for item in lines if isinstance(item, dict)]
            if isinstance(lines, list)
            else [],
            count=int(_number(doc.get("count"), 1)),
            suppressed=int(_number(doc.get("suppressed"))),
            value=float(value) if isinstance(value, int | float) else None,
            sent=doc.get("sent") is not False,
        )


def line(id_: int, part: str | None, text: str) -> dict[str, object]:
    """A matched line as a firing quotes it: its id in the ring, its part (`host`: the same, by
    the name the README promised before `part`), its text."""
    return {"id": id_, "part": part, "host": part, "text": text}


def _kept_line(kept: dict[str, object]) -> dict[str, object]:
    """A quoted line kept across a restart, by this version or one before `part`."""
    part = kept.get("part", kept.get("host"))
    return kept | {"part": part, "host": part}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(value: object, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) else default


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class Outlet(Protocol):
    """Where a rule's decisions go: the engine."""

    def emit(self, rule: Rule, firing: Firing) -> None:
        """Send `firing` to the rule's channels (unless it is silenced) and record it."""
        ...

    def changed(self, rule: Rule) -> None:
        """The rule's state or deadline changed: tell viewers, keep it, re-arm the clock."""
        ...


class Rule:
    """What every kind of rule shares: firing or not since when, the cooldown, a silence."""

    def __init__(self, config: AlertConfig, outlet: Outlet) -> None:
        self.config = config
        self.name = config.name
        self.outlet = outlet
        self.firing = False
        self.since = time.time()  # when the rule entered its current state
        self.quiet_until = 0.0  # the end of the cooldown
        self.suppressed = 0  # times the condition was met during the cooldown
        self.held: Callable[[int], Firing] | None = None  # the latest of them, to send later
        self.silenced_until = 0.0
        self.silenced_by: str | None = None
        self.recent: deque[Firing] = deque(maxlen=RECENT)
        self.gaps = 0  # lines it could not look at (it fell behind the ring)
        # "ok" is due, but lines that arrived before the time it speaks of are not scanned yet:
        # it waits for the scanner (`scanned`), not for the clock.
        self.waiting = False

    def state(self, now: float | None = None) -> State:
        if self.silenced_until > (time.time() if now is None else now):
            return "silenced"
        return "firing" if self.firing else "ok"

    def deadline(self) -> float | None:
        """When `tick` has something to do (None: not until something happens)."""
        return self.quiet_until if self.suppressed else None

    def tick(self, now: float) -> None:
        self._send_held(now)

    def _send_held(self, now: float) -> None:
        """The cooldown is over: send what it held back, which starts the next cooldown."""
        if self.suppressed and now >= self.quiet_until and self.held is not None:
            firing = self.held(self.suppressed)
            firing.count = firing.suppressed = self.suppressed
            self.suppressed, self.held = 0, None
            self.quiet_until = now + self.config.cooldown
            self.outlet.emit(self, firing)

    def silence(self, seconds: float, by: str | None, now: float) -> None:
        self.silenced_until = now + seconds if seconds > 0 else 0.0
        self.silenced_by = by if seconds > 0 else None
        self.outlet.changed(self)

    def missed(self, lines: int) -> None:
        self.gaps += lines
        self.outlet.changed(self)

    def _trigger(self, now: float, occurrences: int, make: Callable[[int], Firing]) -> None:
        """The condition was met `occurrences` times: send now, or count them for later."""
        self.waiting = False
        began = not self.firing
        if began:
            self.firing, self.since = True, now
        if now >= self.quiet_until and self.suppressed:
            # The cooldown ended and the clock has not sent what it held back yet (a busy loop
            # runs the clock late): these go out with them, as one notification of the count.
            self.suppressed += occurrences
            self.held = make
            self._send_held(now)
        elif now >= self.quiet_until:
            firing = make(0)
            self.quiet_until = now + self.config.cooldown
            self.suppressed += occurrences - 1
            self.held = make if self.suppressed else None
            self.outlet.emit(self, firing)
        else:
            # Counted only: a storm within the cooldown costs no event, write or wake-up, except
            # the first, which gives the clock its deadline.
            first = not self.suppressed
            self.suppressed += occurrences
            self.held = make
            if began or first:
                self.outlet.changed(self)

    def _resolve(self, now: float, firing: Firing | None) -> None:
        self.firing, self.since = False, now
        if firing is not None:
            self.outlet.emit(self, firing)
        else:
            self.outlet.changed(self)


class LinesRule(Rule):
    """`count` matching lines within `window`: fires each time the count is reached; back to ok
    once a whole cooldown passes without it, which only the scanner can tell: every line that
    arrived within the cooldown must have been looked at (the scanner's thread may be stalled
    while lines wait)."""

    def __init__(self, config: AlertConfig, outlet: Outlet) -> None:
        super().__init__(config, outlet)
        self.matcher = Matcher(config.match, config.level)
        # One for each source watched (see watch.py): when the oldest line it has not scanned
        # yet arrived, None if it has scanned every line.
        self.unscanned: list[Callable[[], float | None]] = []
        self._window: deque[tuple[float, int]] = deque()  # (when, matching lines) in the window
        self._in_window = 0
        # The first lines of the window, quoted when it fills: "5 errors within a minute" shows
        # the errors, not only the block of the fifth. Taken only while there is room.
        self._quoted: deque[tuple[float, dict[str, object]]] = deque()

    def lines(
        self, source: str, first: int, label: str | None, at: float, hits: Hits, now: float
    ) -> None:
        """`hits` were found in a block of `source` (its first line id `first`, from `label`)."""
        count, window = self.config.count, self.config.window
        self._window.append((at, hits.count))
        self._in_window += hits.count
        while self._window and window > 0 and self._window[0][0] < at - window:
            self._in_window -= self._window.popleft()[1]
        while self._quoted and window > 0 and self._quoted[0][0] < at - window:
            self._quoted.popleft()
        if count > 1 and len(self._quoted) < SAMPLE_LINES:
            for index, text in hits.sample(SAMPLE_LINES - len(self._quoted)):
                self._quoted.append((at, line(first + index, label, text)))
        occurrences, rest = divmod(self._in_window, count)
        if not occurrences:
            return
        window_quoted = [quoted for _, quoted in self._quoted]
        self._window.clear()
        self._quoted.clear()
        self._in_window = rest
        if rest:
            self._window.append((at, rest))

        def make(suppressed: int) -> Firing:
            quoted: list[dict[str, object]] = (window_quoted if not suppressed else []) or [
                line(first + index, label, text) for index, text in hits.sample()
            ]
            what = f"{count} lines" if count > 1 else "a line"
            within = f" within {_span(window)}" if window > 0 and count > 1 else ""
            summary = f"{source}: {what}{within} matched {self._condition()}"
            if suppressed:
                times = "time" if suppressed == 1 else "times"
                summary = (
                    f"{source}: matched {self._condition()} {suppressed:,} more {times} "
                    "since the last notification"
                )
            return Firing(
                self.name, "firing", summary, now, source, label, quoted, suppressed=suppressed
            )

        self._trigger(now, occurrences, make)

    def _condition(self) -> str:
        parts = []
        if self.config.level is not None:
            parts.append(f"level {self.config.level}")
        if self.config.match is not None:
            parts.append(repr(self.config.match))
        return " and ".join(parts)

    def deadline(self) -> float | None:
        if self.waiting:
            return None  # the scanner says when it has looked further
        return self.quiet_until if (self.suppressed or self.firing) else None

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.firing and not self.suppressed and now >= self.quiet_until:
            oldest = min(
                (at for behind in self.unscanned if (at := behind()) is not None), default=None
            )
            if oldest is not None and oldest <= self.quiet_until:
                self.waiting = True
                return
            self._resolve(now, None)  # a whole cooldown without a match

    def scanned(self, now: float) -> None:
        """The scanner looked at more of the lines: an "ok" that waited for them may be due."""
        if self.waiting:
            self.waiting = False
            self.tick(now)


class MetricRule(Rule):
    """A series `above`/`below` a value for `duration`: fires once, resolves (and says so) when
    the value returns."""

    def __init__(self, config: AlertConfig, outlet: Outlet) -> None:
        super().__init__(config, outlet)
        self.series = f"{config.host}/{config.metric}"
        self.value: float | None = None
        self.breach_since: float | None = None

    def breached(self, value: float) -> bool:
        above, below = self.config.above, self.config.below
        return (above is not None and value > above) or (below is not None and value < below)

    def sample(self, at: float, value: float, now: float) -> None:
        self.value = value
        if not self.breached(value):
            self.breach_since = None
            if self.firing:
                summary = f"{self.series} is back to {value:g} ({self._limit()})"
                resolved = Firing(self.name, "resolved", summary, now, self.series, value=value)
                self._resolve(now, resolved)
            return
        if self.breach_since is None:
            self.breach_since = at
            self.outlet.changed(self)  # a new deadline
        self.tick(now)

    def _limit(self) -> str:
        parts = []
        if self.config.above is not None:
            parts.append(f"above {self.config.above:g}")
        if self.config.below is not None:
            parts.append(f"below {self.config.below:g}")
        return " or ".join(parts)

    def deadline(self) -> float | None:
        if self.breach_since is not None and not self.firing:
            return self.breach_since + self.config.duration
        return super().deadline()

    def tick(self, now: float) -> None:
        super().tick(now)
        since = self.breach_since
        if since is None or self.firing or now < since + self.config.duration:
            return
        value = self.value
        lasting = f" for {_span(self.config.duration)}" if self.config.duration else ""

        def make(suppressed: int) -> Firing:
            summary = f"{self.series} is {value:g}, {self._limit()}{lasting}"
            return Firing(
                self.name,
                "firing",
                summary,
                now,
                self.series,
                value=value,
                suppressed=suppressed,
            )

        self._trigger(now, 1, make)


class SilenceRule(Rule):
    """Its sources printed nothing for `duration`: fires once, resolves when a line comes."""

    def __init__(self, config: AlertConfig, outlet: Outlet) -> None:
        super().__init__(config, outlet)
        self.last = time.time()  # the last line, or the start: a silence counts from there

    def output(self, at: float, now: float) -> None:
        self.last = max(self.last, at)
        if self.firing:
            names = ", ".join(self.config.sources)
            summary = f"{names} printed again"
            self._resolve(now, Firing(self.name, "resolved", summary, now, names))

    def deadline(self) -> float | None:
        if not self.firing:
            return self.last + self.config.duration
        return super().deadline()

    def tick(self, now: float) -> None:
        super().tick(now)
        if self.firing or now < self.last + self.config.duration:
            return
        names = ", ".join(self.config.sources)
        quiet = _span(now - self.last)

        def make(suppressed: int) -> Firing:
            summary = f"{names} printed nothing for {quiet}"
            return Firing(self.name, "firing", summary, now, names, suppressed=suppressed)

        self._trigger(now, 1, make)


def build(config: AlertConfig, outlet: Outlet) -> Rule:
    kinds: dict[str, type[Rule]] = {
        "lines": LinesRule,
        "metric": MetricRule,
        "silence": SilenceRule,
    }
    return kinds[config.kind](config, outlet)


def _span(seconds: float) -> str:
    """`90` as "1m30s", `3600` as "1h", `0.5` as "0.5s": how a person writes a duration."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts[:2])
