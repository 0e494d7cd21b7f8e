"""Lines per minute by level through a live server: /api/metrics, the history API, /metrics, a
limit from the config, and an alert on one."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server
from tests.test_metrics_live import AUTH, get_json, wait_for_series

Serve = Callable[..., Server]

CONFIG = """
[server]
metrics_every = "0.5s"
system_metrics = false
data_dir = "{data}"

[sources.app]
command = "sh -c 'echo ERROR one; echo ERROR two; echo FATAL three; echo WARNING four; \
echo INFO an error in a message; echo DONE; sleep 300'"
keep = true

[metrics."log.app.error"]
warn = 2
crit = 10

[alerts.errors]
metric = "log.app.error"
above = 2
"""
ERROR = "local/log.app.error"
WARNING = "local/log.app.warning"


def app_server(serve: Serve, tmp_path: Path) -> tuple[Server, str]:
    path = tmp_path / "perview.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    return serve("serve", "-c", str(path)), str(path)


def exported(server: Server) -> str:
    request = urllib.request.Request(server.base + "/metrics", headers=AUTH)
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode())


def test_a_sources_errors_and_warnings_per_minute_are_series_with_limits(
    serve: Serve, tmp_path: Path
) -> None:
    server, path = app_server(serve, tmp_path)
    checked = subprocess.run(
        [sys.executable, "-m", "perview", "check", "-c", path],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    found = wait_for_series(
        server,
        lambda s: s.get(ERROR, {}).get("value") == 3.0 and s.get(WARNING, {}).get("value") == 1.0,
    )
    error = found[ERROR]
    assert (error["unit"], error["warn"], error["crit"], error["level"]) == (
        "lines/min",
        2.0,
        10.0,
        "warn",
    )
    assert (found[WARNING]["warn"], found[WARNING]["level"]) == (None, "ok")
    assert set(found) == {ERROR, WARNING}  # no system metrics asked for, and nothing else


def test_the_history_api_returns_the_points_of_the_series(serve: Serve, tmp_path: Path) -> None:
    server, _ = app_server(serve, tmp_path)
    wait_for_series(server, lambda s: s.get(ERROR, {}).get("value") == 3.0)
    since = time.time() - 600  # within the day of raw samples
    history = get_json(server, f"/api/metrics/{ERROR}?since={since}&step=0.5")
    points = history["points"]  # type: ignore[index]
    assert points and points[-1][1] == 3.0
    assert all(0.0 <= v <= 3.0 for _, v in points)


def test_metrics_exports_the_counts_as_before_and_not_the_series_again(
    serve: Serve, tmp_path: Path
) -> None:
    server, _ = app_server(serve, tmp_path)
    wait_for_series(server, lambda s: s.get(ERROR, {}).get("value") == 3.0)
    families = {f.name: f for f in text_string_to_metric_families(exported(server))}
    counts = {
        s.labels["level"]: s.value
        for s in families["perview_log_lines"].samples
        if s.name == "perview_log_lines_total"
    }
    assert (counts["fatal"], counts["error"], counts["warning"]) == (1, 2, 1)
    assert [name for name in families if "log" in name] == ["perview_log_lines"]
    assert not families["perview_series_failing"].samples


def test_an_alert_on_a_sources_errors_per_minute_fires(serve: Serve, tmp_path: Path) -> None:
    server, _ = app_server(serve, tmp_path)
    for _ in range(150):
        (alert,) = get_json(server, "/api/alerts")  # type: ignore[misc]
        if alert["active"]:
            break
        time.sleep(0.1)
    assert (alert["series"], alert["value"], alert["active"]) == (ERROR, 3.0, True)
