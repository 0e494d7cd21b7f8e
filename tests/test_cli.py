"""The command line: serve, check, tail, standard input, and the embedded default."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from perview.cli import resolve_port
from perview.errors import PerviewError
from tests.conftest import TOKEN, Server, stop_server, wait_until

Serve = Callable[..., Server]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def perview(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perview", *args],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=stdin,
    )


def get(server: Server, path: str) -> bytes:
    request = urllib.request.Request(server.base + path, headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        body: bytes = response.read()
        return body


def test_check_accepts_a_good_config_and_summarises_it(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    (tmp_path / "x.log").touch()
    config.write_text(f'[sources.a]\ncommand = "true"\n[sources.b]\nfile = "{tmp_path}/x.log"\n')
    result = perview("check", "-c", str(config))
    assert result.returncode == 0
    assert result.stdout == f"{config}: OK, 2 sources (a, b)\n"
    assert result.stderr == ""


def test_check_fails_for_a_program_that_is_not_there_or_cannot_run(tmp_path: Path) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\necho deployed\n")  # not executable
    config = tmp_path / "p.toml"
    config.write_text(
        '[sources.ok]\ncommand = "true"\n\n'
        '[sources.typo]\ncommand = "perview-no-such-program -f"\n\n'
        f'[sources.deploy]\ncommand = "./deploy.sh"\ncwd = "{tmp_path}"\n\n'
        '[sources.moved]\ncommand = ["/nonexistent/bin/tool"]\ncwd = "/nonexistent"\n'
    )
    result = perview("check", "-c", str(config))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{config}: 4 errors, 4 sources (ok, typo, deploy, moved)")
    assert result.stderr.splitlines() == [
        f"{config}:5: sources.typo.command: perview-no-such-program: command not found (on PATH)",
        f"{config}:8: sources.deploy.command: ./deploy.sh ({script}) is not executable",
        f"{config}:12: sources.moved.command: /nonexistent/bin/tool does not exist",
        f"{config}:13: sources.moved.cwd: /nonexistent does not exist",
    ]


def test_check_warns_of_a_file_not_there_yet_and_passes(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(
        f'[sources.later]\nfile = "{tmp_path}/later.log"\n\n'
        f'[sources.logs]\nfile = "{tmp_path}/app/*.log"\n'
    )
    result = perview("check", "-c", str(config))
    assert result.returncode == 0
    assert result.stdout.startswith(f"{config}: OK with 2 warnings, 2 sources (later, logs)")
    assert result.stderr.splitlines() == [
        f"{config}:2: sources.later.file: warning: {tmp_path}/later.log does not exist (yet): "
        "it is followed once it appears",
        f"{config}:5: sources.logs.file: warning: the directory {tmp_path}/app does not exist "
        "(yet): it is followed once it appears",
    ]


def test_check_fails_for_an_ssh_alias_that_does_not_resolve(tmp_path: Path) -> None:
    # Names with a comma are refused by the resolver itself: no DNS query leaves the machine.
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        "Host broken\n  HostName no,such,host\n"
        "Host good\n  HostName 127.0.0.1\n"
        "Host behind\n  HostName inner\n  ProxyJump good\n"
    )
    args = f'ssh_args = ["-F", "{ssh_config}"]'
    config = tmp_path / "p.toml"
    config.write_text(
        f'[hosts.web1]\nssh = "broken"\n{args}\n\n'
        f'[hosts.web2]\nssh = "good"\n{args}\n\n'
        f'[hosts.web3]\nssh = "behind"\n{args}\n\n'
        '[sources.app]\ncommand = "journalctl -f"\nhosts = ["web1", "web2", "web3"]\n'
    )
    result = perview("check", "-c", str(config))
    assert result.returncode == 1
    [error] = result.stderr.splitlines()
    assert error.startswith(
        f"{config}:2: hosts.web1.ssh: no,such,host (the host name of broken) does not resolve: "
    )
    assert "  not checked: hosts.web2.ssh: 127.0.0.1 resolves; logging in is not tried\n" in (
        result.stdout
    )
    assert "  not checked: hosts.web3.ssh: inner is reached through good" in result.stdout
    assert (
        "  not checked: sources.app: the command on web1, web2, web3 cannot be checked "
        "without connecting\n" in result.stdout
    )


def test_check_says_what_it_could_not_check(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(
        '[sources.piped]\ncommand = "dmesg | grep usb"\nshell = true\n\n'
        '[metrics.load]\nscrape = "http://127.0.0.1:9/metrics"\nselector = "node_load1"\n'
    )
    result = perview("check", "-c", str(config))
    assert result.returncode == 0
    assert result.stdout.splitlines()[1:] == [
        "  not checked: sources.piped.command: a shell command: only /bin/sh is checked",
        "  not checked: metrics.load.scrape: the exporter is not fetched by check",
    ]


def test_check_lists_every_problem_and_fails(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text('[sources.a]\ncomand = "x"\n[server]\nport = "x"\n')
    result = perview("check", "-c", str(config))
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "perview: the config has 3 problems:",
        f"{config}:1: sources.a: needs exactly one of command, file or journal",
        f"{config}:2: sources.a.comand: unknown key (expected one of: backlog, boot, command, "
        "cwd, entry_start, env, file, format, group, host, hosts, identifier, journal, "
        "journal_directory, journal_file, keep, kernel, level, linger, priority, record, "
        "record_size, rerun, shell, title)",
        f"{config}:4: server.port: must be an integer, not a string",
    ]


def test_check_refuses_a_level_rule_re2_cannot_use(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(
        "[sources.a]\ncommand = 'true'\nformat = 'text'\nlevel = '(?P<level>\\w+)\\1'\n"
    )
    result = perview("check", "-c", str(config))
    assert result.returncode == 3
    assert result.stderr.splitlines()[1:] == [
        f"{config}:4: sources.a.level: not a valid RE2 regular expression "
        "(invalid escape sequence: \\1)"
    ]


def test_serve_refuses_a_bad_config_the_same_way(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text("[sources.a]\ncommand = 1\n")
    result = perview("serve", "-c", str(config), "--port", "0")
    assert result.returncode == 3
    assert f"{config}:2: sources.a.command: must be a string or a list" in result.stderr


def test_config_is_found_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "perview.toml").write_text('[sources.here]\ncommand = "true"\n')
    result = perview("check", cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert result.stdout.startswith("perview.toml: OK, 1 sources (here)")


def test_config_is_found_in_xdg_config_home(tmp_path: Path) -> None:
    (tmp_path / "perview").mkdir()
    (tmp_path / "perview" / "perview.toml").write_text('[sources.xdg]\ncommand = "true"\n')
    empty = tmp_path / "cwd"
    empty.mkdir()
    result = perview("check", cwd=empty, env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert "OK, 1 sources (xdg)" in result.stdout


def test_without_config_the_embedded_default_says_what_it_chose(tmp_path: Path) -> None:
    result = perview("check", cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0
    assert result.stdout.startswith("the embedded default: OK, ")
    assert re.search(r"^  system log: ", result.stdout, re.MULTILINE)
    assert re.search(r"^  kernel log: ", result.stdout, re.MULTILINE)


def test_plain_perview_serves_the_default_for_this_machine(serve: Serve, tmp_path: Path) -> None:
    server = serve("serve", env={"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)})
    sources = json.loads(get(server, "/api/sources"))
    assert sources, "the default serves at least one source here"
    assert all(s["state"] == "idle" for s in sources)  # nothing runs until someone watches


def test_tail_names_sources_after_files_and_makes_them_unique(serve: Serve, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for directory in ("a", "b"):
        (tmp_path / directory / "app.log").write_text(f"from {directory}\n")
    server = serve("tail", str(tmp_path / "a" / "app.log"), str(tmp_path / "b" / "app.log"))
    names = [s["name"] for s in json.loads(get(server, "/api/sources"))]
    assert names == ["app.log", "app.log-2"]
    request = urllib.request.Request(
        server.base + "/api/sources/app.log-2/text?backlog=5", headers=AUTH
    )
    with urllib.request.urlopen(request, timeout=10) as stream:  # a followed file never ends
        assert stream.readline() == b"from b\n"


def test_standard_input_is_served_and_its_stream_ends_at_eof(tmp_path: Path) -> None:
    data = tmp_path / "input.txt"
    data.write_bytes(b"".join(b"line %d\n" % n for n in range(1000)) + b"no newline")
    env = {**os.environ, "PERVIEW_TOKEN": TOKEN}
    with (
        data.open("rb") as stdin,
        subprocess.Popen(
            [sys.executable, "-m", "perview", "--port", "0"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            server = Server(proc, announced_port(proc), "", TOKEN)  # type: ignore[arg-type]
            body = get(server, "/")  # curl's view: the whole input, then the end
            assert body == data.read_bytes() + b"\n"
            assert json.loads(get(server, "/api/sources"))[0]["state"] == "exited"
        finally:
            proc.terminate()
            proc.wait(5)


def test_standard_input_from_a_slow_pipe_arrives_without_a_traceback(tmp_path: Path) -> None:
    """Each line arrives on its own, so the loop sees the pipe readable again and again."""
    env = {**os.environ, "PERVIEW_TOKEN": TOKEN, "XDG_STATE_HOME": str(tmp_path)}
    slow = "for i in $(seq 20); do echo $i; sleep 0.05; done"
    with (
        subprocess.Popen(["sh", "-c", slow], stdout=subprocess.PIPE) as writer,
        subprocess.Popen(
            [sys.executable, "-m", "perview", "--port", "0"],
            stdin=writer.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as proc,
    ):
        assert writer.stdout is not None
        writer.stdout.close()  # perview holds the read end now
        try:
            assert proc.stdout is not None
            server = Server(proc, announced_port(proc), "", TOKEN)  # type: ignore[arg-type]
            body = get(server, "/api/sources/stdin/text?backlog=100")
            assert body == b"".join(b"%d\n" % n for n in range(1, 21))
        finally:
            proc.terminate()
            _, errors = proc.communicate(timeout=5)
    assert "Traceback" not in errors and "InvalidStateError" not in errors, errors[:2000]


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (None, {}, 9999),
        (None, {"PERVIEW_PORT": "8001"}, 8001),
        (None, {"PERVIEW_PROC_PORT": "8002", "PERVIEW_PORT": "8001"}, 8002),
        (8003, {"PERVIEW_PROC_PORT": "8002"}, 8003),
    ],
)
def test_port_precedence(flag: int | None, environ: dict[str, str], expected: int) -> None:
    assert resolve_port(flag, environ, 9999) == expected


def test_port_out_of_range_is_refused() -> None:
    with pytest.raises(PerviewError, match="PERVIEW_PORT must be between 0 and 65535"):
        resolve_port(None, {"PERVIEW_PORT": "70000"}, 9999)


def test_serve_prints_a_curl_line_that_streams_its_first_source(
    serve: Serve, tmp_path: Path
) -> None:
    config = tmp_path / "p.toml"
    config.write_text(
        '[sources.first]\ncommand = ["echo", "from first"]\n[sources.second]\n'
        'command = ["echo", "from second"]\n'
    )
    server = serve("serve", "-c", str(config))
    wait_until(lambda: any(line.strip().startswith("curl ") for line in server.output), 10)
    [line] = [line for line in server.output if line.strip().startswith("curl ")]
    argv = shlex.split(line.strip().removeprefix("curl").strip())
    assert argv[:2] == ["curl", "-N"]
    result = subprocess.run([*argv, "-sS", "--max-time", "10"], capture_output=True, timeout=20)
    assert result.stdout == b"from first\n"


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


def announced_port(proc: subprocess.Popen[str]) -> int:
    """The port in the URL a perview started with `--port 0` prints (within its first lines)."""
    assert proc.stdout is not None
    for _ in range(5):
        found = re.search(r":(\d+)/", proc.stdout.readline())
        if found:
            return int(found[1])
    raise AssertionError("perview printed no URL")
