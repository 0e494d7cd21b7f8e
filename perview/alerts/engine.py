"""The alerts engine: a consumer of each watched hub's ring and of the metric samples, a clock
for what happens by time, the channels, and the rules' state kept in the data directory.

Rules are evaluated on the server as blocks enter the ring, never per viewer: one follower per
watched source (a cursor the hub never waits for, see watch.py; the source runs always because
the catalog keeps what alerts watch), one RE2 scan per block per rule, off the loop. If the
follower falls behind the ring, the lines it missed are counted on each rule of that source and
logged: never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path

import aiohttp

from perview.alerts.channels import Channel
from perview.alerts.rules import Firing, LinesRule, MetricRule, Rule, SilenceRule, build
from perview.alerts.watch import Watch
from perview.config import Config
from perview.hub import Hub
from perview.metrics.hub import MetricsHub
from perview.private import FILE_MODE, private_dir
from perview.sources.process import GuardPool
from perview.tasks import Tasks

log = logging.getLogger(__name__)

STATE_FILE = "alerts.json"
EVENTS = 256  # alert events kept for event-stream viewers that fall behind
LONGEST_SLEEP = 60.0  # the clock wakes at least this often, whatever the deadlines say


class AlertEngine:
    """Runs the rules of `config` over `hubs` (read live: the catalog's mapping) and `metrics`.
    `start` follows the hubs (the catalog starts them: alerted sources are kept) and the
    samples; `close` lets go of everything and stops any notification still under way."""

    def __init__(
        self,
        config: Config,
        hubs: Mapping[str, Hub],
        metrics: MetricsHub | None,
        guards: GuardPool,
        directory: Path | None,
    ) -> None:
        self.config = config
        self.hubs = hubs
        self.metrics = metrics
        self.guards = guards
        self.path = directory / STATE_FILE if directory is not None else None
        self.rules: dict[str, Rule] = {a.name: build(a, self) for a in config.alerts}
        self.channels: dict[str, Channel] = {}
        self.events: deque[tuple[int, dict[str, object]]] = deque(maxlen=EVENTS)
        self.next_event = 0
        self.updated = asyncio.Event()  # set and replaced at each event, as MetricsHub.changed
        self.metric_gaps = 0  # sample batches the engine fell too far behind to read
        self._session: aiohttp.ClientSession | None = None
        self._tasks = Tasks()
        self._poke = asyncio.Event()
        self._loading = False

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    async def start(self) -> None:
        if not self.rules:
            return
        self._load()
        self._session = aiohttp.ClientSession()
        for name, config in self.config.notify.items():
            channel = self.channels[name] = Channel(config, self.guards, self._session)
            channel.start()
        watched: dict[str, list[LinesRule | SilenceRule]] = {}
        for rule in self.rules.values():
            if isinstance(rule, LinesRule | SilenceRule):
                for source in rule.config.sources:
                    watched.setdefault(source, []).append(rule)
        for source, rules in watched.items():
            hub = self.hubs.get(source)
            if hub is not None:
                self._tasks.spawn(Watch(hub, rules).run(), f"alerts on {source}")
        if self.metrics is not None and any(isinstance(r, MetricRule) for r in self.rules.values()):
            self._tasks.spawn(self._sample(self.metrics), "alerts on metrics")
        self._tasks.spawn(self._clock(), "alerts clock")

    async def close(self) -> None:
        await self._tasks.close()
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
        if self._session is not None:
            await self._session.close()
        self._save()

    # -- the rules' outlet -------------------------------------------------------------------------

    def emit(self, rule: Rule, firing: Firing) -> None:
        """Record `firing` and hand it to the rule's channels, unless the rule is silenced."""
        firing.sent = rule.state(firing.at) != "silenced"
        rule.recent.append(firing)
        if firing.sent:
            document, fields = firing.document(), firing.fields()
            for name in rule.config.notify:
                self.channels[name].submit(rule.name, document, fields)
        log.info("alert %s: %s%s", rule.name, firing.summary, "" if firing.sent else " (silenced)")
        self.changed(rule, firing)

    def changed(self, rule: Rule, firing: Firing | None = None) -> None:
        payload = self.describe_rule(rule, recent=False)
        payload["firing"] = firing.document() if firing is not None else None
        self.events.append((self.next_event, payload))
        self.next_event += 1
        self.updated.set()
        self.updated = asyncio.Event()
        self._poke.set()
        self._save()

    def silence(self, name: str, seconds: float, by: str | None) -> dict[str, object]:
        rule = self.rules[name]
        rule.silence(seconds, by, time.time())
        return self.describe_rule(rule)

    # -- what the API, the event stream and /metrics read ------------------------------------------

    def describe(self) -> list[dict[str, object]]:
        return [self.describe_rule(rule) for rule in self.rules.values()]

    def describe_rule(self, rule: Rule, recent: bool = True) -> dict[str, object]:
        config = rule.config
        info: dict[str, object] = {
            "name": rule.name,
            "kind": config.kind,
            "state": rule.state(),
            "since": rule.since,
            # Its condition holds, silenced or not. (`firing` is a firing record, as in `recent`
            # and the `alert` event: never this.)
            "active": rule.firing,
            "silenced_until": rule.silenced_until or None,
            "silenced_by": rule.silenced_by,
            "cooldown": config.cooldown,
            "quiet_until": rule.quiet_until or None,
            "suppressed": rule.suppressed,
            "gaps": rule.gaps,
            "sources": list(config.sources),
            "channels": [self.channels[n].describe(rule.name) for n in config.notify],
        }
        if isinstance(rule, MetricRule):
            info |= {"series": rule.series, "value": rule.value}
        if recent:
            info["recent"] = [firing.document() for firing in reversed(rule.recent)]
        return info

    def since(self, cursor: int) -> tuple[list[dict[str, object]], int]:
        """Events from number `cursor` on (as many as are still held), and the next cursor."""
        return [payload for n, payload in self.events if n >= cursor], self.next_event

    # -- metrics --------------------------------------------------------------------------------

    async def _sample(self, metrics: MetricsHub) -> None:
        by_series: dict[str, list[MetricRule]] = {}
        for rule in self.rules.values():
            if isinstance(rule, MetricRule):
                by_series.setdefault(rule.series, []).append(rule)
        cursor = metrics.next_batch
        while True:
            changed = metrics.changed
            oldest = metrics.batches[0][0] if metrics.batches else metrics.next_batch
            if cursor < oldest:
                self.metric_gaps += oldest - cursor
                log.warning(
                    "alerts fell behind the metrics: %d batches not looked at", oldest - cursor
                )
            samples, cursor = metrics.since(cursor)
            now = time.time()
            for series, at, value in samples:
                for rule in by_series.get(series, ()):
                    rule.sample(at, value, now)
            await changed.wait()

    # -- time -----------------------------------------------------------------------------------

    async def _clock(self) -> None:
        while True:
            self._poke.clear()
            now = time.time()
            for rule in self.rules.values():
                due = rule.deadline()
                if due is not None and due <= now:
                    rule.tick(now)
            deadlines = [d for r in self.rules.values() if (d := r.deadline()) is not None]
            wait = min([*deadlines, now + LONGEST_SLEEP]) - time.time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.001)):
                    await self._poke.wait()

    # -- kept across restarts ---------------------------------------------------------------------

    def _load(self) -> None:
        """Take up each rule where the last run left it: one that was firing is still firing (and
        not sent again), its cooldown and silence go on."""
        if self.path is None:
            return
        try:
            kept = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("alert state not read from %s: %s", self.path, exc)
            return
        if not isinstance(kept, dict):
            return
        for name, saved in kept.get("rules", {}).items():
            rule = self.rules.get(name)
            if rule is None or not isinstance(saved, dict):
                continue
            rule.firing = saved.get("firing") is True
            for key in ("since", "quiet_until", "silenced_until"):
                if isinstance(saved.get(key), int | float):
                    setattr(rule, key, float(saved[key]))
            rule.silenced_by = saved.get("silenced_by") if rule.silenced_until else None
            recent = saved.get("recent")
            if isinstance(recent, list):
                rule.recent.extend(Firing.load(doc) for doc in recent if isinstance(doc, dict))

    def _save(self) -> None:
        if self.path is None:
            return
        rules = {
            name: {
                "firing": rule.firing,
                "since": rule.since,
                "quiet_until": rule.quiet_until,
                "silenced_until": rule.silenced_until,
                "silenced_by": rule.silenced_by,
                "recent": [firing.document() for firing in rule.recent],
            }
            for name, rule in self.rules.items()
        }
        text = json.dumps({"rules": rules})
        temporary = self.path.with_suffix(".tmp")
        try:
            private_dir(self.path.parent)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("alert state not kept in %s: %s", self.path, exc.strerror)
