"""`GET /metrics`: Perview's own figures and every sampled series, in Prometheus' text format
(written by prometheus_client, so the format is the reference one)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from perview.hub import Hub
from perview.metrics.hub import MetricsHub

UNIT_SUFFIX = {"%": "percent", "B": "bytes", "B/s": "bytes_per_second", "s": "seconds"}


def metric_name(series_name: str, unit: str) -> str:
    """`net.rx` with unit B/s becomes `perview_net_rx_bytes_per_second`."""
    base = re.sub(r"[^a-zA-Z0-9_]", "_", series_name)
    suffix = UNIT_SUFFIX.get(unit, re.sub(r"[^a-zA-Z0-9_]", "_", unit))
    return f"perview_{base}" + (f"_{suffix}" if suffix else "")


class _Collector:
    def __init__(self, hubs: Mapping[str, Hub], metrics: MetricsHub) -> None:
        self.hubs, self.metrics = hubs, metrics

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
        families: dict[str, GaugeMetricFamily] = {}
        failing = GaugeMetricFamily(
            "perview_series_failing",
            "1 when a series' collector is failing",
            labels=["host", "series"],
        )
        for series in self.metrics.series.values():
            failing.add_metric([series.host, series.name], series.state == "failing")
            if series.value is None:
                continue
            base, _, key = series.name.partition(":")
            name = metric_name(base, series.unit)
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(
                    name,
                    f"Sampled series {base} ({series.unit or 'no unit'})",
                    labels=["host", "key"],
                )
            family.add_metric([series.host, key], series.value, timestamp=series.at)
        yield from families.values()
        yield failing


def exposition(hubs: Mapping[str, Hub], metrics: MetricsHub) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(hubs, metrics))
    return generate_latest(registry)
