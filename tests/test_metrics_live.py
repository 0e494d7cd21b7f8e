"""Metrics in a live server: system and custom metrics and their failures, the exposition
parsed by Prometheus's own parser and scraped by a real Prometheus, scraping an exporter (here
and on a host), history across a restart, and an SSH host with nothing installed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TOKEN, Server, start_server, stop_server
from tests.sshd import Sshd

AUTH = {"Authorization": f"Bearer {TOKEN}"}

Serve = Callable[..., Server]


def get_json(server: Server, path: str) -> object:
    request = urllib.request.Request(server.base + path, headers=AUTH)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def series(server: Server) -> dict[str, dict[str, object]]:
    return {s["id"]: s for s in get_json(server, "/api/metrics")}  # type: ignore[union-attr]


def wait_for_series(
    server: Server, ok: Callable[[dict[str, dict[str, object]]], bool]
) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for _ in range(150):
        found = series(server)
        if ok(found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"metrics never matched; last: {json.dumps(found)[:2000]}")


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[server]\nmetrics_every = "0.5s"\ndata_dir = "{tmp_path / "state"}"\n\n'
        '[sources.quiet]\ncommand = "sleep 300"\n\n' + text
    )
    return str(path)


def test_system_and_custom_metrics_are_served_and_failures_explained(
    serve: Serve, tmp_path: Path
) -> None:
    text = (
        '[metrics.answer]\ncommand = "echo 42"\nevery = "0.5s"\nunit = "req"\n'
        "warn = 40\ncrit = 50\n\n"
        '[metrics.broken]\ncommand = "sh -c \'echo oops >&2; exit 3\'"\nevery = "0.5s"\n\n'
        '[metrics.garbage]\ncommand = "echo not a number at all"\nevery = "0.5s"\n'
    )
    server = serve("serve", "-c", config(tmp_path, text))
    found = wait_for_series(
        server,
        lambda s: (
            "local/cpu" in s
            and "local/answer" in s
            and s.get("local/broken", {}).get("state") == "failing"
            and s.get("local/garbage", {}).get("state") == "failing"
        ),
    )
    assert 0 <= found["local/cpu"]["value"] <= 100  # type: ignore[operator]
    assert found["local/mem.used"]["unit"] == "%"
    answer = found["local/answer"]
    assert (answer["value"], answer["unit"], answer["level"]) == (42.0, "req", "warn")
    assert "exited with status 3: oops" in str(found["local/broken"]["reason"])
    assert "cannot read 'not a number at all'" in str(found["local/garbage"]["reason"])


def test_prometheus_exposition_parses_with_the_reference_parser(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path, ""))
    wait_for_series(server, lambda s: "local/cpu" in s)
    request = urllib.request.Request(server.base + "/metrics", headers=AUTH)
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    assert families["perview_sources_running"].samples[0].value == 0
    [viewers] = families["perview_source_viewers"].samples
    assert viewers.labels == {"source": "quiet"}
    cpu = families["perview_cpu_percent"].samples[0]
    assert cpu.labels["host"] == "local" and 0 <= cpu.value <= 100


def test_metrics_need_the_token_too(serve: Serve, tmp_path: Path) -> None:
    server = serve("serve", "-c", config(tmp_path, ""))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.base + "/metrics", timeout=5)
    refused.value.close()
    assert refused.value.code == 401


@contextlib.contextmanager
def exporter(jobs: float) -> Iterator[int]:
    """A real Prometheus exporter on a loopback port (yielded) with `jobs_waiting{queue="mail"}`."""
    registry = CollectorRegistry()
    Gauge("jobs_waiting", "Jobs waiting", ["queue"], registry=registry).labels("mail").set(jobs)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_scraping_a_real_exporter(serve: Serve, tmp_path: Path) -> None:
    with exporter(7) as port:
        text = (
            f'[metrics.mail_queue]\nscrape = "http://127.0.0.1:{port}/metrics"\n'
            'selector = \'jobs_waiting{queue="mail"}\'\nevery = "0.5s"\n'
        )
        server = serve("serve", "-c", config(tmp_path, text))
        found = wait_for_series(server, lambda s: s.get("local/mail_queue", {}).get("value") == 7.0)
        assert found["local/mail_queue"]["state"] == "ok"


def test_a_scraped_series_has_its_unit_and_thresholds(serve: Serve, tmp_path: Path) -> None:
    with exporter(7) as port:
        text = (
            f'[metrics.mail_queue]\nscrape = "http://127.0.0.1:{port}/metrics"\n'
            'selector = \'jobs_waiting{queue="mail"}\'\nevery = "0.5s"\nunit = "jobs"\n'
            "warn = 5\ncrit = 7\n"
        )
        server = serve("serve", "-c", config(tmp_path, text))
        found = wait_for_series(server, lambda s: s.get("local/mail_queue", {}).get("value") == 7.0)
    queue = found["local/mail_queue"]
    assert (queue["unit"], queue["warn"], queue["crit"], queue["level"]) == ("jobs", 5, 7, "crit")


def test_a_scrape_on_a_host_is_fetched_there_and_charted_under_it(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    # No [sources] at all: a view of metrics alone is served. The exporter listens on the
    # loopback, which the far side (this machine, through sshd) reaches as its own localhost.
    with exporter(3) as port:
        path = tmp_path / "perview.toml"
        path.write_text(
            f'[server]\nsystem_metrics = false\ndata_dir = "{tmp_path / "state"}"\n\n'
            + sshd.hosts_toml("far")
            + f'[metrics.mail_queue]\nscrape = "http://localhost:{port}/metrics"\n'
            'selector = \'jobs_waiting{queue="mail"}\'\nhost = "far"\nevery = "0.5s"\nwarn = 2\n'
        )
        server = serve("serve", "-c", str(path))
        found = wait_for_series(server, lambda s: s.get("far/mail_queue", {}).get("value") == 3.0)
    assert "local/mail_queue" not in found
    assert (found["far/mail_queue"]["state"], found["far/mail_queue"]["level"]) == ("ok", "warn")
    assert get_json(server, "/api/sources") == []


def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = config(tmp_path, '[metrics.five]\ncommand = "echo 5"\nevery = "0.5s"\n')
    server = start_server(["serve", "-c", path])
    try:
        wait_for_series(server, lambda s: "local/five" in s)
        time.sleep(1.0)
    finally:
        stop_server(server)  # SIGTERM: history is flushed on the way out
    stopped_at = time.time()
    server = start_server(["serve", "-c", path])
    try:
        since = stopped_at - 600
        history = get_json(server, f"/api/metrics/local/five?since={since}&step=0.5")
        points = history["points"]  # type: ignore[index]
        before = [p for p in points if p[0] < stopped_at]
        assert len(before) >= 2 and all(v == 5.0 for _, v in before)
    finally:
        stop_server(server)


async def test_metric_events_share_the_log_event_stream(serve: Serve, tmp_path: Path) -> None:
    server = serve("serve", "-c", config(tmp_path, ""))
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events?source=quiet&metrics=1", headers=AUTH) as response,
    ):
        async with asyncio.timeout(10):
            async for raw in response.content:
                line = raw.decode()
                if line.startswith('data: {"samples"'):
                    samples = json.loads(line[6:])["samples"]
                    assert any(s[0] == "local/cpu" for s in samples)
                    break


def test_an_ssh_host_is_charted_with_nothing_installed(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    hosts = sshd.hosts_toml("far").replace('ssh_args = ["-F"', 'metrics = true\nssh_args = ["-F"')
    server = serve("serve", "-c", config(tmp_path, hosts))
    found = wait_for_series(server, lambda s: "far/cpu" in s and "far/mem.used" in s)
    assert 0 <= found["far/cpu"]["value"] <= 100  # type: ignore[operator]
    assert any(key.startswith("far/disk.used:") for key in found)
    assert any(key.startswith("far/net.rx:") for key in found)


def test_a_real_prometheus_scrapes_perview_with_the_token(serve: Serve, tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing: run scripts/install-test-deps (package prometheus)")
    server = serve("serve", "-c", config(tmp_path, ""))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: perview\n"
        f"    authorization: {{credentials: {TOKEN}}}\n"
        f'    static_configs: [{{targets: ["127.0.0.1:{server.port}"]}}]\n'
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def query(expression: str) -> list[dict[str, object]]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expression}
        )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                result: list[dict[str, object]] = json.load(response)["data"]["result"]
                return result
        except OSError:
            return []  # not listening yet

    try:
        for _ in range(300):
            up, cpu = query('up{job="perview"}'), query('perview_cpu_percent{host="local"}')
            if up and up[0]["value"][1] == "1" and cpu:  # type: ignore[index]
                break
            time.sleep(0.1)
        else:
            log.flush()
            raise AssertionError((tmp_path / "prometheus.log").read_text()[-3000:])
        assert 0 <= float(cpu[0]["value"][1]) <= 100  # type: ignore[index]
        assert query("scrape_samples_scraped")[0]["value"][1] != "0"  # type: ignore[index]
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
