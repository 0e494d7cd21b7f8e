"""Auth against a live server: a request without the token, --no-auth and where it is allowed,
and the token itself: generated, kept across restarts (a real Prometheus keeps scraping),
rotated, or set by the environment or the config. In-process rules are in test_auth.py."""

from __future__ import annotations

import json
import re
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TOKEN, Server, perview, stop_server, wait_until

Serve = Callable[..., Server]


def test_curl_without_token_is_refused(serve: Serve) -> None:
    server = serve("run", "--", "echo", "secret")
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", server.base + "/"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.stdout == "401"
    assert server.commands() == []  # nothing was started for it


def test_no_auth_serves_plain_curl_on_loopback(serve: Serve) -> None:
    server = serve("run", "--no-auth", "--", "echo", "open")
    result = subprocess.run(["curl", "-sS", server.base + "/"], capture_output=True, timeout=10)
    assert result.stdout == b"open\n"


def test_no_auth_off_loopback_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perview", "run", "--no-auth", "--host", "0.0.0.0", "--", "true"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "--no-auth is only allowed on a loopback address" in result.stderr


def token_in(server: Server) -> str:
    """The token of the URL the server printed (in the query or in the fragment)."""
    found = re.search(r"open\s+\S*[?#&]token=([^&\s]+)", "".join(server.output))
    assert found, "".join(server.output)
    return found[1]


def status(server: Server, token: str, path: str = "/api/sources") -> int:
    request = urllib.request.Request(
        server.base + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def no_token_env(tmp_path: Path) -> dict[str, str]:
    """A state directory of the test's own, and no token from the environment or a config."""
    return {
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PERVIEW_TOKEN": "",
    }


def test_a_generated_token_survives_a_restart(serve: Serve, tmp_path: Path) -> None:
    env = no_token_env(tmp_path)
    first = serve("run", "--", "true", token=None, env=env)
    token = token_in(first)
    assert status(first, token) == 200
    stop_server(first)
    second = serve("run", "--", "true", token=None, env=env, port=first.port)
    assert token_in(second) == token
    assert status(second, token) == 200
    kept = tmp_path / "state" / "perview" / "token"
    assert kept.read_text() == token + "\n"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700


def test_a_rotated_token_replaces_the_old_one_at_the_next_start(
    serve: Serve, tmp_path: Path
) -> None:
    env = no_token_env(tmp_path)
    old = perview("token", env=env, cwd=tmp_path).stdout.strip()
    assert perview("token", env=env, cwd=tmp_path).stdout.strip() == old
    rotated = perview("token", "--rotate", env=env, cwd=tmp_path)
    assert rotated.returncode == 0
    new = rotated.stdout.strip()
    assert new and new != old
    assert "until it restarts" in rotated.stderr
    server = serve("run", "--", "true", token=None, env=env)
    assert token_in(server) == new
    assert status(server, old) == 401
    assert status(server, new) == 200


def test_deleting_the_kept_token_rotates_it(tmp_path: Path) -> None:
    env = no_token_env(tmp_path)
    old = perview("token", env=env, cwd=tmp_path).stdout.strip()
    (tmp_path / "state" / "perview" / "token").unlink()
    new = perview("token", env=env, cwd=tmp_path).stdout.strip()
    assert new and new != old


def test_perview_token_and_a_configured_token_win_over_the_kept_one(
    serve: Serve, tmp_path: Path
) -> None:
    env = no_token_env(tmp_path)
    kept = perview("token", env=env, cwd=tmp_path).stdout.strip()
    server = serve("run", "--", "true", env={**env, "PERVIEW_TOKEN": TOKEN})
    assert status(server, kept) == 401
    assert status(server, TOKEN) == 200
    from_env = perview("token", env={**env, "PERVIEW_TOKEN": TOKEN}, cwd=tmp_path)
    assert from_env.stdout == TOKEN + "\n"
    refused = perview("token", "--rotate", env={**env, "PERVIEW_TOKEN": TOKEN}, cwd=tmp_path)
    assert refused.returncode == 2
    assert "the token is set in $PERVIEW_TOKEN: change it there" in refused.stderr
    config = tmp_path / "p.toml"
    config.write_text('[server]\ntoken = "configured-token"\n[sources.a]\ncommand = "true"\n')
    assert perview("token", "-c", str(config), env=env).stdout == "configured-token\n"
    assert (tmp_path / "state" / "perview" / "token").read_text() == kept + "\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape_target(prometheus: str) -> dict[str, str]:
    """Perview's target as Prometheus's targets API reports it ({} until it has one)."""
    url = f"{prometheus}/api/v1/targets?state=active"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            targets = json.load(response)["data"]["activeTargets"]
    except OSError:  # not listening yet
        return {}
    return targets[0] if targets else {}


def test_a_real_prometheus_keeps_scraping_across_a_restart(serve: Serve, tmp_path: Path) -> None:
    env = no_token_env(tmp_path)
    first = serve("run", "--", "true", token=None, env=env)
    token = token_in(first)  # what a user copies into prometheus.yml
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "scrape_configs:\n"
        "  - job_name: perview\n"
        "    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        f"    authorization: {{type: Bearer, credentials: {token}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{first.port}']}}]\n"
    )
    prometheus = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={prometheus.removeprefix('http://')}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: scrape_target(prometheus).get("health") == "up", 30, step=0.2)
        stop_server(first)
        wait_until(lambda: scrape_target(prometheus).get("health") == "down", 10, step=0.2)
        serve("run", "--", "true", token=None, env=env, port=first.port)

        def scraped_again() -> bool:
            target = scrape_target(prometheus)
            return target.get("health") == "up" or "401" in target.get("lastError", "")

        wait_until(scraped_again, 10, step=0.2)
        target = scrape_target(prometheus)
        assert (target["health"], target["lastError"]) == ("up", "")
    finally:
        proc.terminate()
        proc.wait(10)
