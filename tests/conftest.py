"""Fixtures: a live `perview` server on a free loopback port, a way to find stray processes, the
`perview` command run to its end, and a small disk that really fills up."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

pytest_plugins = ["tests.sshd"]  # the `sshd` fixture: a real sshd on loopback

TOKEN = "test-token"
# How long a server may take to answer: its start is not what any test here claims. At load 15
# on the 2-core CI box (two busy loops besides) one took 7.5 to 9.4 s, its imports 2.7 to 3.8
# s of wall time for 0.8 s of CPU.
START_TIMEOUT = 30.0


def marked_processes(mark: str) -> list[psutil.Process]:
    """Living processes whose environment carries `PERVIEW_TEST_MARK=mark` (zombies excluded)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("PERVIEW_TEST_MARK") == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until(condition: Callable[[], object], timeout: float, step: float = 0.005) -> float:
    """Poll `condition` until it is true; return the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.monotonic() - start


def is_idle(proc: psutil.Process, window: float = 0.2, cpu: float = 0.05) -> bool:
    """Whether `proc` used less than `cpu` seconds of CPU over the next `window` seconds."""
    before = sum(proc.cpu_times()[:2])
    time.sleep(window)
    return sum(proc.cpu_times()[:2]) - before < cpu


async def eventually(condition: Callable[[], object], within: float, step: float = 0.002) -> float:
    """`wait_until` for async tests: polls without blocking the event loop."""
    start = time.monotonic()
    for _ in range(int(within / step) + 1):
        if condition():
            return time.monotonic() - start
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {within} s")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    mark: str
    token: str | None
    output: list[str] = field(default_factory=list)
    drain: threading.Thread | None = None
    state: str | None = None  # its XDG_STATE_HOME, removed when it stops

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def descendants(self) -> list[psutil.Process]:
        """Every process the server started (found by the inherited marker, so reparented
        grandchildren count too)."""
        return [p for p in marked_processes(self.mark) if p.pid != self.proc.pid]

    def commands(self) -> list[psutil.Process]:
        """The descendants that are commands (or their children), not guards: an idle spare
        guard is always there while the server runs."""
        found = []
        for proc in self.descendants():
            with contextlib.suppress(psutil.NoSuchProcess):
                if not any(arg.endswith("_guard.py") for arg in proc.cmdline()):
                    found.append(proc)
        return found


def start_server(
    args: list[str],
    *,
    token: str | None = TOKEN,
    env: dict[str, str] | None = None,
    port: int = 0,
) -> Server:
    """Start `python -m perview ARGS` on `port` (0: a free one) and wait until it answers."""
    mark = uuid.uuid4().hex
    state = tempfile.mkdtemp(prefix="perview-test-state-")  # metric history, never in ~
    full_env = {**os.environ, "PERVIEW_TEST_MARK": mark, "XDG_STATE_HOME": state, **(env or {})}
    full_env.pop("PERVIEW_PROC_PORT", None)
    full_env.pop("PERVIEW_PORT", None)
    if token:
        full_env["PERVIEW_TOKEN"] = token
    subcommand, *rest = args
    proc = subprocess.Popen(
        [sys.executable, "-m", "perview", subcommand, "--port", str(port), *rest],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    drain = _drain_in_background(proc, output)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"open\s+https?://[^:]+:(\d+)/", "".join(output))
        if found:
            return Server(proc, int(found[1]), mark, token, output, drain, state)
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    drain.join(5)
    assert proc.stdout is not None
    proc.stdout.close()
    shutil.rmtree(state, ignore_errors=True)
    raise AssertionError("perview did not start:\n" + "".join(output))


def _drain_in_background(proc: subprocess.Popen[str], output: list[str]) -> threading.Thread:
    """Keep reading the server's output (so it never blocks on a full pipe) into `output`."""

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(5)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    if server.drain is not None:
        server.drain.join(5)
    if server.proc.stdout is not None:
        server.proc.stdout.close()
    if server.state is not None:
        shutil.rmtree(server.state, ignore_errors=True)
    # Whatever happened in the test, nothing it started may outlive it.
    strays = server.descendants()
    for proc in strays:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    assert not strays, f"stray processes left behind: {strays}"


@pytest.fixture
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[..., Server]]:
    """Start live servers; each is stopped (and checked for strays) at the end of the test."""
    servers: list[Server] = []

    def start(
        *args: str, token: str | None = TOKEN, env: dict[str, str] | None = None, port: int = 0
    ) -> Server:
        server = start_server(list(args), token=token, env=env, port=port)
        servers.append(server)
        return server

    yield start
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for server in servers:
        if failed:
            print(f"--- perview output (port {server.port}) ---\n" + "".join(server.output))
        stop_server(server)


# How long processes that are ending when the run ends (a guard seeing its lifeline close, and
# taking its command's group down within the grace) may take before they count as strays.
STRAY_PATIENCE = 5.0


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Nothing the tests started may outlive them. Every fixture, the session's too (the loopback
    sshd), has been torn down by now (runner's own pytest_sessionfinish comes first), so any
    process still below this one is a stray: it is named, killed, and the run fails. This is
    the census of the whole run, in whatever order and selection its tests ran."""
    _, strays = psutil.wait_procs(psutil.Process().children(recursive=True), STRAY_PATIENCE)
    if not strays:
        return
    names = []
    for proc in strays:
        with contextlib.suppress(psutil.Error):
            names.append(f"{proc.pid} {' '.join(proc.cmdline()) or proc.name()}")
            proc.kill()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line("stray processes left by the tests:\n  " + "\n  ".join(names), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@contextlib.contextmanager
def small_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `mount`, which a writer really fills (ENOSPC); always unmounted."""
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)]
    subprocess.run(command, check=True, capture_output=True)
    try:
        yield mount
    finally:
        # A server still holding a file there makes a plain umount fail; a lazy one detaches it
        # at once all the same, and the kernel frees it when the last file is closed.
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture
def busybox_tools(tmp_path: Path) -> Path:
    """A directory of BusyBox's applets, to be the whole PATH."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is missing: run scripts/install-test-deps")
    tools = tmp_path / "bin"
    tools.mkdir()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        (tools / applet).symlink_to(busybox)
    return tools


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, for writers and for Perview's own state on a full disk."""
    with small_tmpfs(tmp_path / "disk", "256k") as mount:
        yield mount


def fill(disk: Path) -> None:
    """Take every free byte of `disk`."""
    with (disk / "filler").open("wb", buffering=0) as filler:
        block = bytes(4096)
        for _ in range(1024):  # 4 MiB: more than the disk holds
            try:
                filler.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return
    raise AssertionError("the disk never filled up")


def perview(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """`python -m perview ARGS` run to its end (within 20 s), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "perview", *args],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=stdin,
    )
