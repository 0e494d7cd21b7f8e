"""Shared by the benchmarks: the server under test, a helper process spoken to by lines, statistics.

Everything talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import queue
import re
import resource
import select
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
        # --rerun: each trial is a viewer of a fresh run (a command that ended by itself is
        # otherwise not run again for the next viewer).
        argv = [
            sys.executable, "-m", "perview", "run", "--rerun", "--no-auth", "--port", "0", *extra
        ]  # fmt: skip
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


def stop_processes(procs: Sequence[Any], timeout: float = STOP_TIMEOUT) -> None:
    """Close the stdin and stdout of each subprocess.Popen (started with start_new_session),
    wait for all of them, and SIGKILL the group of any still there after `timeout`."""
    for proc in procs:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


# -- a throwaway sshd on loopback (ssh_fanin.py, metrics_overhead.py) and Debian's Chromium
# (browser_burst.py, browser_latency.py): the tests' own, from testbed/ --------------------------

sys.path.insert(0, str(BENCH.parent))  # the repository's root, where testbed/ is
from testbed.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from testbed.sshd import SSHD, LoopbackSshd, free_port, kill_all  # noqa: E402

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "SSHD", "LoopbackSshd", "free_port", "kill_all"]


# -- shared by browser_burst.py and browser_latency.py (Playwright, imported only there) -------

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


def process_memory(proc: Any) -> dict[str, int]:
    """Bytes of `proc`: rss, pss (shared pages divided among their users), uss (its own)."""
    info = proc.memory_full_info()
    return {"rss": int(info.rss), "pss": int(info.pss), "uss": int(info.uss)}


LIVE = '() => document.querySelector(\'[data-testid="connection"]\')?.dataset.state === "live"'
# Bytes a page allocates for a moment so that its renderer can be told (tab_renderer).
MARKER = 64 << 20


async def launch(pw: Any) -> Any:
    """Debian's Chromium, headless, with the tests' flags (a Playwright Browser)."""
    return await pw.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
    )


async def until(page: Any, predicate: str, arg: Any, limit: float, every: float = 0.02) -> bool:
    """Poll `predicate` (a JS function of `arg`) with page.evaluate until it is true; False if it
    is not within `limit` s. (wait_for_function would need eval, which the page's CSP forbids.)"""
    deadline = time.monotonic() + limit
    while not await page.evaluate(predicate, arg):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)
    return True


async def page_clock(page: Any, n: int = 30) -> tuple[float, float]:
    """(page clock (PAGE_NOW) - CLOCK_MONOTONIC in ms, the error bound in s): from the
    `evaluate` round trip with the shortest time of `n`."""
    samples = []
    for _ in range(n):
        before = time.monotonic()
        now = await page.evaluate(PAGE_NOW)
        samples.append((before, float(now), time.monotonic()))
    return page_clock_offset(samples), min(s[2] - s[0] for s in samples) / 2


async def tab_renderer(page: Any) -> Any:
    """The renderer process (psutil) that holds `page`. Nothing says which it is, and a blank
    tab's is not the largest (another renderer held 165 MB RSS where the blank tab's held
    119), so the page allocates MARKER bytes for a moment: the renderer whose own memory grew
    by them is the tab's."""
    before = {p.pid: process_memory(p)["uss"] for p in chromium_renderers()}
    await page.evaluate("(n) => { window.__marker = new Uint8Array(n).fill(1); }", MARKER)
    grew = {p: process_memory(p)["uss"] - before.get(p.pid, 0) for p in chromium_renderers()}
    await page.evaluate("() => { delete window.__marker; }")
    return max(grew, key=lambda p: grew[p])


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def page_clock_offset(samples: list[tuple[float, float, float]]) -> float:
    """The page clock (ms, PAGE_NOW) minus time.monotonic() (s) in ms, from samples (monotonic
    before, page clock, monotonic after): the one with the shortest round trip."""
    before, page, after = min(samples, key=lambda s: s[2] - s[0])
    return page - (before + after) * 500
