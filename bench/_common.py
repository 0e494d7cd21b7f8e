"""Shared by the benchmarks: the server under test, a helper process spoken to by lines, statistics.

Everything talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import os
import queue
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
VIEWERS = BENCH / "_viewers.py"  # the client process: many concurrent viewers
PORT_LINE = re.compile(r"open\s+http://127\.0\.0\.1:(\d+)/")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def raise_nofile() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Server:
    """`python -m perview run --no-auth --port 0 [extra] -- command` on 127.0.0.1."""

    def __init__(self, command: Sequence[str], extra: Sequence[str] = ()) -> None:
        self.logs = tempfile.TemporaryDirectory(prefix="perview-bench-")
        self.out = Path(self.logs.name, "stdout")
        self.err = Path(self.logs.name, "stderr")
        argv = [sys.executable, "-m", "perview", "run", "--no-auth", "--port", "0", *extra]
        env = {
            k: v for k, v in os.environ.items() if k not in ("PERVIEW_PORT", "PERVIEW_PROC_PORT")
        }
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, "--", *command], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
            )
        self.ps = psutil.Process(self.proc.pid)
        self.port = self._wait_for_port()
        self.base = f"http://{HOST}:{self.port}"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = PORT_LINE.search(self.out.read_text(errors="replace"))
            if found:
                return int(found[1])
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"perview did not start:\n{self.stderr_tail()}")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr().splitlines()[-lines:])

    def source(self) -> dict[str, Any]:
        """The `run` entry of GET /api/sources."""
        with urllib.request.urlopen(self.base + "/api/sources", timeout=5) as response:
            entries: list[dict[str, Any]] = json.load(response)
        return next(entry for entry in entries if entry["name"] == "run")

    def wait_source(self, ok: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """Poll /api/sources until `ok`; returns the last answer either way (check it). If the
        server never answers, that answer is {"viewers": -1, "state": "no answer: ..."}."""
        deadline = time.monotonic() + timeout
        info: dict[str, Any] = {"viewers": -1, "state": "no answer"}
        while True:
            try:
                info = self.source()
            except OSError as exc:
                info = {"viewers": -1, "state": f"no answer: {exc!r}"}
            if ok(info) or time.monotonic() > deadline:
                return info
            time.sleep(0.005)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self.logs.cleanup()


@contextlib.contextmanager
def serve(command: Sequence[str], extra: Sequence[str] = ()) -> Iterator[Server]:
    server = Server(command, extra)
    try:
        yield server
    finally:
        server.stop()


def cpu_seconds(proc: Any) -> float:
    """User + system CPU seconds of one process (its children not included)."""
    times = proc.cpu_times()
    return float(times.user + times.system)


def descendants_cpu_seconds(proc: Any) -> float:
    """CPU seconds of everything below `proc`: reaped children (cumulated by the kernel) plus
    the living ones, recursively."""
    times = proc.cpu_times()
    total = float(times.children_user + times.children_system)
    for child in proc.children():
        with contextlib.suppress(psutil.NoSuchProcess):
            total += cpu_seconds(child) + descendants_cpu_seconds(child)
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, summed over cores."""
    times = psutil.cpu_times()
    idle = float(times.idle + getattr(times, "iowait", 0.0))
    total = float(sum(times))
    return total - idle, total


class Helper:
    """A child process spoken to by lines: commands on its stdin, answers on its stdout."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.ps = psutil.Process(self.proc.pid)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix: str, timeout: float) -> str | None:
        """The next line starting with `prefix` (others are echoed); None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                raise RuntimeError(f"client exited ({self.proc.wait(STOP_TIMEOUT)})")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
            print(f"  client: {line}")
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # EOF: the client closes its viewers and exits
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linearly interpolated between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values, default=math.nan),
    }


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "n/a"


# -- shared by file_latency.py and ssh_fanin.py ------------------------------------------------


class ConfigServer(Server):
    """`python -m perview serve -c CONFIG --no-auth --port 0` on 127.0.0.1. `source()` answers
    for the source called `name`; everything else is Server's."""

    def __init__(self, config: Path, name: str) -> None:  # Server's set-up, with another argv
        self.name = name
        self.logs = tempfile.TemporaryDirectory(prefix="perview-bench-")
        self.out = Path(self.logs.name, "stdout")
        self.err = Path(self.logs.name, "stderr")
        argv = [sys.executable, "-m", "perview", "serve", "-c", str(config), "--no-auth"]
        env = {
            k: v for k, v in os.environ.items() if k not in ("PERVIEW_PORT", "PERVIEW_PROC_PORT")
        }
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, "--port", "0"], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
            )
        self.ps = psutil.Process(self.proc.pid)
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.stop()
            raise
        self.base = f"http://{HOST}:{self.port}"

    def source(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base + "/api/sources", timeout=5) as response:
            entries: list[dict[str, Any]] = json.load(response)
        return next(entry for entry in entries if entry["name"] == self.name)


@contextlib.contextmanager
def serve_config(config: Path, name: str) -> Iterator[ConfigServer]:
    server = ConfigServer(config, name)
    try:
        yield server
    finally:
        server.stop()


class RawStream:
    """A GET of a streaming route over a plain socket (far less client overhead than aiohttp):
    the request, the response head, then `read()` returns the body as it arrives, de-chunked,
    with the CLOCK_MONOTONIC time (ns) at which the read returned."""

    def __init__(self, port: int, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sent_ns = time.monotonic_ns()  # just before the request leaves
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in head:
            if time.monotonic() > deadline or not (part := self.sock.recv(65536)):
                self.sock.close()
                raise RuntimeError(f"no response head for {path}: {head[:300]!r}")
            head += part
        head, _, rest = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status + b" ":
            self.sock.close()
            raise RuntimeError(f"{path}: {status.decode(errors='replace')}")
        self.chunked = b"transfer-encoding: chunked" in head.lower()
        self.raw = b""  # chunked framing not yet decoded
        self.left = 0  # bytes of the current chunk still to come
        self.crlf = False  # the CRLF closing a chunk's data is still to come
        self.ended = False
        self.first = self._decode(rest)  # body bytes that came with the head

    def _decode(self, data: bytes) -> bytes:
        if not self.chunked:
            return data
        self.raw += data
        out: list[bytes] = []
        while self.raw and not self.ended:
            if self.left:
                piece = self.raw[: self.left]
                out.append(piece)
                self.left -= len(piece)
                self.raw = self.raw[len(piece) :]
            elif self.crlf:
                if len(self.raw) < 2:
                    break
                self.raw, self.crlf = self.raw[2:], False
            else:
                end = self.raw.find(b"\r\n")
                if end < 0:
                    break
                size = int(self.raw[:end].split(b";")[0], 16)
                self.raw = self.raw[end + 2 :]
                self.left, self.crlf, self.ended = size, size > 0, size == 0
        return b"".join(out)

    def read(self, timeout: float) -> tuple[int, bytes]:
        """(arrival ns, body bytes); b"" if nothing came within `timeout`. EOFError at the end."""
        if self.first:
            data, self.first = self.first, b""
            return time.monotonic_ns(), data
        if self.ended:
            raise EOFError
        if not select.select([self.sock], [], [], max(timeout, 0.0))[0]:
            return time.monotonic_ns(), b""
        data = self.sock.recv(262144)
        at = time.monotonic_ns()
        if not data:
            raise EOFError
        return at, self._decode(data)

    def close(self) -> None:
        self.sock.close()


# Appends `count` lines to a file at `rate` lines/s, line k due at t0 + (k - 1) / rate (paced by
# that schedule, not by drifting sleeps). Each line is one write(2) on an O_APPEND descriptor and
# carries its sequence number and the CLOCK_MONOTONIC time (ns) taken just before that write:
# `seq=K t=NS xxxx...`, padded to `size` bytes with its newline.
APPENDER = """
import os, sys, time
path, rate, count, first, size = sys.argv[1], float(sys.argv[2]), *map(int, sys.argv[3:6])
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
start = time.monotonic()
for k in range(count):
    delay = start + k / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    now = time.monotonic_ns()
    line = b"seq=%d t=%d " % (first + k, now)
    os.write(fd, line + b"x" * max(0, size - len(line) - 1) + b"\\n")
os.close(fd)
"""
APPENDED = re.compile(rb"seq=(\d+) t=(\d+) ")


def start_appender(path: Path, rate: float, count: int, first: int, size: int) -> Any:
    """The APPENDER in a process of its own (a subprocess.Popen): lines first .. first+count-1."""
    argv = [sys.executable, "-I", "-c", APPENDER, str(path), str(rate), str(count), str(first)]
    return subprocess.Popen([*argv, str(size)], stdin=subprocess.DEVNULL)


def stop_process(proc: Any, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM a subprocess.Popen we started (SIGKILL if it lingers) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# -- a throwaway sshd on loopback, for ssh_fanin.py and metrics_overhead.py ------------------

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def kill_all(procs: Sequence[Any]) -> None:
    """SIGTERM these processes (ones this script started, or their descendants), then SIGKILL
    what is still there after STOP_TIMEOUT."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=STOP_TIMEOUT)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT)


class LoopbackSshd:
    """sshd on 127.0.0.1 with throwaway host and client keys in `home` (as tests/sshd.py does);
    `config` is an ssh_config defining the aliases pv-h1 .. pv-hN of it. `sshd_options` are
    more sshd_config lines; `client_config(name, extra)` writes another ssh_config for the same
    aliases with more options (ControlMaster, say)."""

    def __init__(
        self,
        home: Path,
        aliases: int,
        sshd_options: str = "MaxStartups 200\nMaxSessions 200\nLogLevel ERROR\n",
    ) -> None:
        if not os.path.exists(SSHD):
            raise SystemExit("sshd is missing: apt-get install openssh-server")
        self.home = home
        self.aliases = [f"pv-h{n}" for n in range(1, aliases + 1)]
        self.log = home / "sshd.log"
        for key in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True
            )
        (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
        self.port = free_port()
        (home / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress {HOST}\nHostKey {home}/host_key\n"
            f"PidFile {home}/sshd.pid\nAuthorizedKeysFile {home}/authorized_keys\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n" + sshd_options
        )
        kind, key = (home / "host_key.pub").read_text().split()[:2]
        (home / "known_hosts").write_text(f"[{HOST}]:{self.port} {kind} {key}\n")
        self.config = self.client_config("ssh_config", "")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(home / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.ps = psutil.Process(self.proc.pid)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def client_config(self, name: str, extra: str) -> Path:
        path = self.home / name
        path.write_text(
            "".join(f"Host {alias}\n" for alias in self.aliases)
            + f"Host pv-h*\n  HostName {HOST}\n  Port {self.port}\n  User {getpass.getuser()}\n"
            f"  IdentityFile {self.home}/client_key\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.home}/known_hosts\n  StrictHostKeyChecking yes\n"
            "  LogLevel ERROR\n" + extra
        )
        return path

    def _wait_ready(self) -> None:
        argv = ["ssh", "-F", str(self.config), "-o", "BatchMode=yes", self.aliases[0], "true"]
        message = ""
        for _ in range(100):
            probe = subprocess.run(argv, capture_output=True, timeout=10)
            if probe.returncode == 0:
                return
            message = probe.stderr.decode(errors="replace")
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"cannot ssh to the benchmark sshd: {message}{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def sessions(self) -> list[Any]:
        with contextlib.suppress(psutil.Error):
            return list(self.ps.children(recursive=True))
        return []

    def wait_no_sessions(self, limit: float) -> bool:
        """Wait (bounded) for every session below this sshd to end; kill what is left."""
        deadline = time.monotonic() + limit
        while self.sessions() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.sessions()
        kill_all(left)
        return not left

    def stop(self) -> None:
        """The listener, then any session it started (they outlive it otherwise)."""
        sessions = self.sessions()
        stop_process(self.proc)
        kill_all(sessions)


# -- shared by browser_burst.py and browser_latency.py (Playwright, imported only there) -------

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own download is not needed
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)
# The page's instrumentation reads this clock: ms, comparable with performance.timeOrigin-based
# times of any page in the browser.
PAGE_NOW = "performance.timeOrigin + performance.now()"


def chromium_renderers() -> list[Any]:
    """The psutil.Process of every Chromium renderer below this process (Playwright's driver
    starts the browser, which starts them)."""
    found: list[Any] = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "--type=renderer" in proc.cmdline():
                found.append(proc)
    return found


def renderer_memory() -> dict[str, int]:
    """Bytes of the renderer with the largest RSS (the tab's, not the spare one Chromium keeps
    ready): rss, pss (shared pages divided among their users) and uss (its own pages); and
    `renderers`, how many there are."""
    best = {"rss": 0, "pss": 0, "uss": 0}
    renderers = chromium_renderers()
    for proc in renderers:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            if info.rss > best["rss"]:
                best = {"rss": int(info.rss), "pss": int(info.pss), "uss": int(info.uss)}
    return best | {"renderers": len(renderers)}


def page_clock_offset(samples: list[tuple[float, float, float]]) -> float:
    """The page clock (ms, PAGE_NOW) minus time.monotonic() (s) in ms, from samples (monotonic
    before, page clock, monotonic after): the one with the shortest round trip."""
    before, page, after = min(samples, key=lambda s: s[2] - s[0])
    return page - (before + after) * 500
