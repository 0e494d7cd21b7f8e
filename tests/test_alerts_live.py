"""Alerts against a live server: a notification arrives with nobody watching, once, and a restart
of Perview does not send it again; `perview check` says which sources alerts keep running."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Server, stop_server, wait_until

WRITER = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')"
SOURCE = "import time; print('ERROR disk on fire', flush=True); time.sleep(600)"


def write_config(tmp_path: Path) -> Path:
    sent = tmp_path / "sent"
    config = tmp_path / "perview.toml"
    config.write_text(
        f'[server]\nsystem_metrics = false\ndata_dir = "{tmp_path / "data"}"\n'
        f"[sources.app]\ncommand = {json.dumps([sys.executable, '-c', SOURCE])}\n"
        f"[notify.file]\ncommand = {json.dumps([sys.executable, '-c', WRITER, str(sent)])}\n"
        '[alerts.errors]\nsource = "app"\nlevel = "error"\nnotify = "file"\n'
    )
    return config


def alerts(server: Server) -> list[dict[str, Any]]:
    request = urllib.request.Request(server.base + "/api/alerts", headers=server.headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        found: list[dict[str, Any]] = json.load(response)
    return found


def sent(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "sent"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_firing_alert_is_sent_once_with_nobody_watching_even_across_a_restart(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    first = serve("serve", "-c", str(config))
    wait_until(lambda: len(sent(tmp_path)) == 1, 10)
    (document,) = sent(tmp_path)
    assert document["lines"][0]["text"] == "ERROR disk on fire"
    stop_server(first)
    second = serve("serve", "-c", str(config))
    # The new run prints the same line: within the cooldown of the firing before the restart,
    # it is counted, not sent.
    wait_until(lambda: alerts(second)[0]["suppressed"] == 1, 10)
    (rule,) = alerts(second)
    assert rule["state"] == "firing" and rule["channels"][0]["sent"] == 0
    assert len(sent(tmp_path)) == 1
    source = json.load(
        urllib.request.urlopen(
            urllib.request.Request(second.base + "/api/sources", headers=second.headers), timeout=5
        )
    )[0]
    assert source["keep"] is True and source["state"] == "running"


def test_check_says_which_sources_alerts_keep_running(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "perview", "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 sources (app), 1 alerts" in result.stdout
    assert "always on (alerts watch them): app" in result.stdout
