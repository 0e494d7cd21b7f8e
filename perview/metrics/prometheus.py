"""`GET /metrics`: Perview's own figures and every sampled series, in Prometheus' text format
(written by prometheus_client, so the format is the reference one)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from perview.classify import LEVEL_NAMES
from perview.hub import Hub
from perview.metrics.hub import MetricsHub
from perview.metrics.logrates import is_log_series, levels_by_host
from perview.tally import REPORTED

if TYPE_CHECKING:  # the engine imports the metrics hub; a name is all this needs
    from perview.alerts.engine import AlertEngine

UNIT_SUFFIX = {"%": "percent", "B": "bytes", "B/s": "bytes_per_second", "s": "seconds"}


def metric_name(series_name: str, unit: str) -> str:
    """`net.rx` with unit B/s becomes `perview_net_rx_bytes_per_second`; a name that already
    ends in its unit keeps it once (`mem.used_bytes` is `perview_mem_used_bytes`)."""
    base = re.sub(r"[^a-zA-Z0-9_]", "_", series_name)
    suffix = UNIT_SUFFIX.get(unit, re.sub(r"[^a-zA-Z0-9_]", "_", unit))
    if suffix and not base.endswith(f"_{suffix}"):
        base += f"_{suffix}"
    return f"perview_{base}"


class _Collector:
    def __init__(
        self, hubs: Mapping[str, Hub], metrics: MetricsHub, alerts: AlertEngine | None = None
    ) -> None:
        self.hubs, self.metrics, self.alerts = hubs, metrics, alerts

    def describe(self) -> list[Metric]:
        return []  # computed at each scrape

    def collect(self) -> Iterable[Metric]:
        running = GaugeMetricFamily("perview_sources_running", "Sources running now")
        running.add_metric([], sum(hub.running for hub in self.hubs.values()))
        yield running
        labels = ["source"]
        viewers = GaugeMetricFamily("perview_source_viewers", "Viewers watching", labels=labels)
        lines = CounterMetricFamily("perview_source_lines", "Lines produced", labels=labels)
        size = CounterMetricFamily("perview_source_bytes", "Bytes produced", labels=labels)
        gaps = CounterMetricFamily(
            "perview_source_gap_lines", "Lines viewers missed (behind the ring)", labels=labels
        )
        runs = CounterMetricFamily("perview_source_runs", "Times started", labels=labels)
        for hub in self.hubs.values():
            viewers.add_metric([hub.name], len(hub.viewers))
            lines.add_metric([hub.name], hub.ring.next_id - 1)
            size.add_metric([hub.name], hub.ring.next_offset)
            gaps.add_metric([hub.name], hub.gaps)
            runs.add_metric([hub.name], hub.runs)
        yield from (viewers, lines, size, gaps, runs)
        levels = CounterMetricFamily(
            "perview_log_lines",
            "Lines per level since Perview started (a continuation line has its entry's level)",
            labels=["source", "host", "level"],
        )
        for hub in self.hubs.values():
            for host, counts in levels_by_host(hub).items():
                for level in REPORTED:
                    levels.add_metric([hub.name, host, LEVEL_NAMES[level]], counts[level])
        yield levels
        failing = GaugeMetricFamily(
            "perview_series_failing",
            "1 when a series' collector is failing",
            labels=["host", "series"],
        )
        # One family per name; a `key` label only where the name has keys (`disk.used:/`), and
        # no timestamps: a value is exported only while its series is not failing, so it is as
        # current as the scrape, and Prometheus marks a series stale when it goes (it cannot
        # for samples that carry a time of their own).
        grouped: dict[str, list[tuple[str, str, float]]] = {}
        about: dict[str, str] = {}
        for series in self.metrics.series.values():
            if is_log_series(series.name):
                continue  # lines per minute by level: perview_log_lines_total again, as a gauge
            failing.add_metric([series.host, series.name], series.state == "failing")
            if series.value is None or series.state == "failing":
                continue
            base, _, key = series.name.partition(":")
            name = metric_name(base, series.unit)
            grouped.setdefault(name, []).append((series.host, key, series.value))
            about.setdefault(name, f"Sampled series {base} ({series.unit or 'no unit'})")
        families: list[GaugeMetricFamily] = []
        for name, samples in grouped.items():
            keyed = any(key for _, key, _ in samples)
            family = GaugeMetricFamily(
                name, about[name], labels=["host", "key"] if keyed else ["host"]
            )
            for host, key, value in samples:
                family.add_metric([host, key] if keyed else [host], value)
            families.append(family)
        yield from families
        yield failing
        if self.alerts is not None and self.alerts.enabled:
            yield from _alert_families(self.alerts)


def _alert_families(alerts: AlertEngine) -> Iterable[Metric]:
    firing = GaugeMetricFamily(
        "perview_alert_firing", "1 while an alert's condition holds", labels=["alert"]
    )
    sent = CounterMetricFamily(
        "perview_alert_notifications",
        "Notifications by alert, channel and outcome (sent, failed, dropped)",
        labels=["alert", "channel", "outcome"],
    )
    for rule in alerts.rules.values():
        firing.add_metric([rule.name], rule.firing)
        for name in rule.config.notify:
            counts = alerts.channels[name].counts if name in alerts.channels else {}
            for outcome in ("sent", "failed", "dropped"):
                sent.add_metric([rule.name, name, outcome], counts.get((rule.name, outcome), 0))
    yield from (firing, sent)


def exposition(
    hubs: Mapping[str, Hub], metrics: MetricsHub, alerts: AlertEngine | None = None
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(hubs, metrics, alerts))
    return generate_latest(registry)
