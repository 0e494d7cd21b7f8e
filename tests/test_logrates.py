"""Lines per minute by level as metric series: the last minute's counts per source and host,
their limits from [metrics."log..."] tables, and /metrics left as it was."""

from __future__ import annotations

import asyncio

import pytest

from perview.config import ConfigError, MetricConfig, parse
from perview.hub import Hub
from perview.metrics.hub import MetricsHub
from perview.metrics.logrates import LogRates, publish_every
from perview.metrics.prometheus import exposition
from tests.conftest import eventually
from tests.test_hub import ScriptedSource


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def values(metrics: MetricsHub) -> dict[str, float | None]:
    return {key: s.value for key, s in metrics.series.items()}


async def test_errors_and_fatals_of_the_last_minute_are_one_series_and_warnings_another() -> None:
    app = Hub("app", ScriptedSource(), meta={"hosts": []})
    metrics, clock = MetricsHub(), Clock()
    rates = LogRates({"app": app}, metrics, clock)
    await app.write(b"ERROR a\nFATAL b\nWARNING c\nINFO d\nerror in a message, not a level\n")
    clock.now += 2
    rates.publish()
    assert values(metrics) == {"local/log.app.error": 2.0, "local/log.app.warning": 1.0}
    assert metrics.series["local/log.app.error"].unit == "lines/min"
    clock.now += 30
    await app.write(b"ERROR e\n")
    rates.publish()
    assert values(metrics)["local/log.app.error"] == 3.0
    clock.now += 40  # the first lines are over a minute old; the last one is not
    rates.publish()
    assert values(metrics) == {"local/log.app.error": 1.0, "local/log.app.warning": 0.0}
    clock.now += 60
    rates.publish()
    assert values(metrics) == {"local/log.app.error": 0.0, "local/log.app.warning": 0.0}
    await app.close()


async def test_a_multi_host_source_has_series_per_host_and_raw_sources_none() -> None:
    web = Hub("web", ScriptedSource(), meta={"hosts": ["web1", "web2"]})
    await web.write(b"ERROR boom\nTraceback (most recent call last):\n  x\n", "web1")
    await web.write(b"WARNING slow\n", "web2")
    logs = Hub("logs", ScriptedSource(), meta={"hosts": []})
    await logs.write(b"ERROR in one file\n", "/var/log/a.log")  # a glob's parts add up
    await logs.write(b"ERROR in another\n", "/var/log/b.log")
    raw = Hub("raw", ScriptedSource(), classify=None)
    await raw.write(b"ERROR not classified\n")
    metrics = MetricsHub()
    LogRates({h.name: h for h in (web, logs, raw)}, metrics, Clock()).publish()
    assert values(metrics) == {
        "web1/log.web.error": 3.0,  # a traceback has its head line's level
        "web1/log.web.warning": 0.0,
        "web2/log.web.error": 0.0,
        "web2/log.web.warning": 1.0,
        "local/log.logs.error": 2.0,
        "local/log.logs.warning": 0.0,
    }
    for hub in (web, logs, raw):
        await hub.close()


async def test_a_source_made_anew_by_a_reload_is_counted_from_zero_not_below() -> None:
    hubs = {"app": Hub("app", ScriptedSource(), meta={"hosts": []})}
    metrics, clock = MetricsHub(), Clock()
    rates = LogRates(hubs, metrics, clock)
    await hubs["app"].write(b"ERROR a\nERROR b\nERROR c\n")
    clock.now += 61
    rates.publish()
    clock.now += 1
    rates.publish()  # the baseline now holds 3 errors
    old = hubs["app"]
    hubs["app"] = Hub("app", ScriptedSource(), meta={"hosts": []})
    await hubs["app"].write(b"ERROR d\n")
    clock.now += 60
    rates.publish()
    assert values(metrics)["local/log.app.error"] == 1.0
    await old.close()
    await hubs["app"].close()


async def test_a_limit_without_a_host_applies_to_the_series_on_every_host() -> None:
    web = Hub("web", ScriptedSource(), meta={"hosts": ["web1", "web2"]})
    await web.write(b"ERROR a\nERROR b\n", "web1")
    await web.write(b"ERROR c\nERROR d\nERROR e\nERROR f\nERROR g\n", "web2")
    await web.write(b"WARNING a\n", "web2")
    limits = [
        MetricConfig("log.web.error", warn=2, crit=5),
        MetricConfig("log.web", host="web2", warn=1),  # a whole source, on one host
    ]
    metrics = MetricsHub(limits)
    LogRates({"web": web}, metrics, Clock()).publish()
    found = {key: s.describe() for key, s in metrics.series.items()}
    assert (found["web1/log.web.error"]["level"], found["web1/log.web.error"]["unit"]) == (
        "warn",
        "lines/min",
    )
    assert (
        found["web2/log.web.error"]["crit"] == 5 and found["web2/log.web.error"]["level"] == "crit"
    )
    assert found["web2/log.web.warning"]["level"] == "warn"
    assert found["web1/log.web.warning"]["warn"] is None
    await web.close()


def test_a_log_table_takes_limits_and_refuses_anything_to_run() -> None:
    config = parse(
        '[sources.app]\ncommand = "x"\n\n[metrics."log.app.error"]\nwarn = 5\ncrit = 9\n'
    )
    (limit,) = config.metrics
    assert (limit.name, limit.warn, limit.crit, limit.settings_only) == (
        "log.app.error",
        5,
        9,
        True,
    )
    with pytest.raises(ConfigError) as caught:
        parse('[sources.app]\ncommand = "x"\n\n[metrics."log.app"]\ncommand = "echo 1"\n')
    assert str(caught.value).splitlines() == [
        "perview.toml:5: metrics.log.app.command: log.* series are Perview's: only warn, crit, host"
    ]


async def test_the_exposition_does_not_export_the_series_again() -> None:
    app = Hub("app", ScriptedSource(), meta={"hosts": []})
    await app.write(b"ERROR a\nWARNING b\n")
    metrics = MetricsHub([MetricConfig("log.app.error", warn=1)])
    before = exposition({"app": app}, metrics)
    LogRates({"app": app}, metrics, Clock()).publish()
    assert metrics.series["local/log.app.error"].value == 1.0
    assert exposition({"app": app}, metrics) == before
    assert b'perview_log_lines_total{host="local",level="error",source="app"} 1.0' in before
    await app.close()


async def test_the_series_are_published_every_interval_until_cancelled() -> None:
    app = Hub("app", ScriptedSource(), meta={"hosts": []})
    metrics = MetricsHub()
    task = asyncio.create_task(publish_every(LogRates({"app": app}, metrics), 0.01))
    await app.write(b"ERROR a\n")
    try:
        await eventually(lambda: values(metrics).get("local/log.app.error") == 1.0, within=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await app.close()


@pytest.mark.parametrize("name", ["log.ap.error", "log.app.fatal", "log.raw", "log.raw.warning"])
def test_a_log_table_must_name_a_source_with_levels_and_a_charted_level(name: str) -> None:
    text = (
        '[sources.app]\ncommand = "x"\n\n[sources.raw]\ncommand = "y"\nformat = "raw"\n\n'
        f'[metrics."{name}"]\nwarn = 5\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value).splitlines() == [
        f"perview.toml:8: metrics.{name}: names no source with levels: log.SOURCE or "
        "log.SOURCE.LEVEL (error, warning), of a source whose format is not raw"
    ]


@pytest.mark.parametrize("name", ["log", "log.app", "log.app.error", "log.app.warning"])
def test_a_log_table_may_cover_every_source_a_source_or_one_level(name: str) -> None:
    (limit,) = parse(f'[sources.app]\ncommand = "x"\n\n[metrics."{name}"]\ncrit = 5\n').metrics
    assert (limit.name, limit.crit) == (name, 5)
