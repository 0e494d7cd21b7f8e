"""The command line, run as a process: serve, check, tail, standard input, the embedded default,
and the port from the environment."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TOKEN, Server, perview, wait_until

Serve = Callable[..., Server]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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


def announced_port(proc: subprocess.Popen[str]) -> int:
    """The port in the URL a perview started with `--port 0` prints (within its first lines)."""
    assert proc.stdout is not None
    for _ in range(5):
        found = re.search(r":(\d+)/", proc.stdout.readline())
        if found:
            return int(found[1])
    raise AssertionError("perview printed no URL")


def test_port_comes_from_perview_proc_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PERVIEW_PROC_PORT": str(port), "PERVIEW_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "perview", "run", "--once", "--", "echo", "via env"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert f":{port}/" in proc.stdout.readline() + proc.stdout.readline()
        result = subprocess.run(
            ["curl", "-sS", "-H", f"Authorization: Bearer {TOKEN}", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            timeout=10,
        )
        assert result.stdout == b"via env\n"
        assert proc.wait(5) == 0  # --once: the viewer left, so the server is done
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_bad_port_variable_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perview", "run", "--", "true"],
        env={"PERVIEW_PROC_PORT": "http", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2
    assert "PERVIEW_PROC_PORT must be a port number" in result.stderr
