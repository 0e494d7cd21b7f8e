"""Shared by the benchmarks: the server under test, a helper process spoken to by lines, statistics.

Everything talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import resource
import signal
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
