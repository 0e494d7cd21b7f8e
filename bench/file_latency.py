"""File latency: a line appended to a followed local file, how long until a viewer has it?

How: a writer process (its own, `_common.APPENDER`) appends `--lines` lines at `--rate` lines/s
to a file in a temporary directory, one write(2) per line on an O_APPEND descriptor; each line
carries CLOCK_MONOTONIC (ns) taken just before its write. The reader, in this process, stamps
CLOCK_MONOTONIC as each read returns; both processes share that clock, so receive - write is the
latency, per line. The readers, one after the other, each with the same writer and rate:

- `tail -F -n 0 FILE` (the baseline) as a subprocess, its stdout a pipe read with os.read;
- Perview's SSE stream (`GET /api/events?source=log&backlog=0`) of `[sources.log] file = FILE`;
- Perview's text stream (`GET /api/sources/log/text`) of the same source.

Perview is `perview serve -c CONFIG --no-auth --port 0`, one server for the whole run (the source
starts with each viewer and stops when it leaves). Both Perview streams are read with a plain
socket (`_common.RawStream`: HTTP/1.1, chunked framing decoded by hand), not aiohttp, so client
overhead stays in the microseconds. Before a writer starts, this script appends `sync` lines
until the reader shows one, so every reader follows the file before the first measured line.

Printed: p50 / p99 / max latency per reader and each one's ratio to tail -F; lines lost; the CPU
of the reading side (tail, or the Perview server with its descendants) as % of one core.
Target (bench/README.md): SSE p99 < 2 ms. Reading the figures: the hub wakes viewers at once only
for output that comes at least BATCH_WINDOW (10 ms) after its last wake, so at 100 lines/s and
above lines wait for the batch timer; `--rate 90` or `--rate 20` shows the latency without that.

    python bench/file_latency.py [--lines 500] [--rate 100] [--rounds 1] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil  # type: ignore[import-untyped]
from _common import (
    APPENDED,
    ConfigServer,
    RawStream,
    cpu_seconds,
    descendants_cpu_seconds,
    machine_cpu,
    ratio,
    serve_config,
    start_appender,
    stop_process,
    summary,
)

SOURCE = "log"
TARGET_SSE_P99 = 0.002
SYNC_LIMIT = 10.0  # seconds for a reader to show it follows the file
SYNC_EVERY = 0.02
DRAIN = 5.0  # seconds past the writer's last line for the reader to catch up
READERS = ("tail -F", "SSE", "text")


class Reader(Protocol):
    def read(self, timeout: float) -> tuple[int, bytes]: ...

    def close(self) -> None: ...


class TailReader:
    """`tail -F -n 0 FILE` with its stdout a pipe, read unbuffered."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            ["tail", "-F", "-n", "0", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.ps = psutil.Process(self.proc.pid)
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()

    def read(self, timeout: float) -> tuple[int, bytes]:
        if not select.select([self.fd], [], [], max(timeout, 0.0))[0]:
            return time.monotonic_ns(), b""
        data = os.read(self.fd, 262144)
        at = time.monotonic_ns()
        if not data:
            raise EOFError
        return at, data

    def close(self) -> None:
        stop_process(self.proc)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class Run:
    """One reader's share of the measurement."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per line received
    written: int = 0
    dups: int = 0
    cpu: float = 0.0  # CPU seconds of the reading side over the writing periods
    wall: float = 0.0  # seconds of those periods

    @property
    def lost(self) -> int:
        return self.written - len(self.latencies)


def sync(reader: Reader, path: Path) -> None:
    """Append `sync=N` lines until the reader shows one: it follows the file from here on."""
    deadline = time.monotonic() + SYNC_LIMIT
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        n = 0
        while time.monotonic() < deadline:
            os.write(fd, b"sync=%d\n" % n)
            n += 1
            end = time.monotonic() + SYNC_EVERY
            while (left := end - time.monotonic()) > 0:
                if b"sync=" in reader.read(left)[1]:
                    return
    finally:
        os.close(fd)
    raise RuntimeError(f"the reader showed no line within {SYNC_LIMIT:.0f} s")


def measure(
    reader: Reader, path: Path, args: argparse.Namespace, first: int, cpu: Callable[[], float]
) -> tuple[list[float], int, float, float]:
    """Latencies (s) of lines first .. first+lines-1, duplicates, CPU seconds of `cpu` and wall
    seconds over the writing period."""
    sync(reader, path)
    cpu_before, wall_before = cpu(), time.monotonic()
    writer = start_appender(path, args.rate, args.lines, first, args.size)
    got: dict[int, float] = {}
    dups = 0
    buffer = b""
    try:
        deadline = time.monotonic() + args.lines / args.rate + DRAIN
        while len(got) < args.lines and time.monotonic() < deadline:
            at, data = reader.read(min(0.2, deadline - time.monotonic()))
            buffer += data
            cut = buffer.rfind(b"\n")
            if cut < 0:
                continue
            for found in APPENDED.finditer(buffer, 0, cut):
                seq = int(found[1])
                if not first <= seq < first + args.lines:
                    continue  # a line of an earlier round (a restarted source's backlog)
                if seq in got:
                    dups += 1
                else:
                    got[seq] = (at - int(found[2])) / 1e9
            buffer = buffer[cut + 1 :]
        writer.wait(DRAIN)
    finally:
        stop_process(writer)
    return list(got.values()), dups, cpu() - cpu_before, time.monotonic() - wall_before


def server_cpu(server: ConfigServer) -> Callable[[], float]:
    return lambda: cpu_seconds(server.ps) + descendants_cpu_seconds(server.ps)


def one_round(
    server: ConfigServer, path: Path, args: argparse.Namespace, runs: dict[str, Run], n: int
) -> None:
    for index, name in enumerate(READERS):
        first = (n * len(READERS) + index + 1) * 1_000_000  # seq ranges never overlap
        info = server.wait_source(lambda s: s["viewers"] == 0 and s["state"] != "running", 5.0)
        if info["viewers"] != 0 or info["state"] == "running":
            raise RuntimeError(f"the source did not stop after the last reader: {info}")
        reader: Reader
        if name == "tail -F":
            reader = tail = TailReader(path)
            cpu: Callable[[], float] = functools.partial(cpu_seconds, tail.ps)
        elif name == "SSE":
            reader = RawStream(server.port, f"/api/events?source={SOURCE}&backlog=0")
            cpu = server_cpu(server)
        else:
            reader = RawStream(server.port, f"/api/sources/{SOURCE}/text")
            cpu = server_cpu(server)
        try:
            latencies, dups, cpu_used, wall = measure(reader, path, args, first, cpu)
        finally:
            reader.close()
        run = runs[name]
        run.latencies += latencies
        run.written += args.lines
        run.dups += dups
        run.cpu += cpu_used
        run.wall += wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500, help="lines per reader and round")
    parser.add_argument("--rate", type=float, default=100.0, help="lines per second")
    parser.add_argument("--size", type=int, default=100, help="bytes per line, newline included")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of tail, SSE, text")
    parser.add_argument("--quick", action="store_true", help="100 lines per reader")
    args = parser.parse_args()
    if args.quick:
        args.lines, args.rounds = min(args.lines, 100), 1

    runs = {name: Run() for name in READERS}
    busy0, total0 = machine_cpu()
    with tempfile.TemporaryDirectory(prefix="perview-latency-") as tmp:
        path = Path(tmp, "app.log")
        path.write_bytes(b"")
        config = Path(tmp, "perview.toml")
        config.write_text(f'[sources.{SOURCE}]\nfile = "{path}"\n')
        with serve_config(config, SOURCE) as server:
            for n in range(args.rounds):
                one_round(server, path, args, runs, n)

    busy1, total1 = machine_cpu()
    total = args.lines * args.rounds
    print(
        f"\nfile latency: append -> reader, {total} lines per reader at {args.rate:g} lines/s, "
        f"{args.size} B lines (ms)"
    )
    print("Perview streams read with a raw socket; latency = read returned - write(2) issued")
    print(f"{'reader':<10}{'p50':>8}{'p99':>8}{'max':>8}{'lost':>6}{'dups':>6}{'CPU %':>8}  ratio")
    base = summary(runs["tail -F"].latencies)
    for name, run in runs.items():
        stats = summary(run.latencies)
        cells = "".join(f"{stats[k] * 1000:>8.3f}" for k in ("median", "p99", "max"))
        cpu = 100 * run.cpu / run.wall
        ratios = " / ".join(ratio(stats[k], base[k]) for k in ("median", "p99", "max"))
        print(f"{name:<10}{cells}{run.lost:>6}{run.dups:>6}{cpu:>8.1f}  {ratios}")
    print("ratio: p50 / p99 / max against tail -F; CPU: the reading side (tail, or the Perview")
    print("server and its descendants), % of one core over the writing periods (10 ms ticks)")
    busy = 100 * (busy1 - busy0) / (total1 - total0)
    print(
        f"machine busy over the run, this benchmark included: {busy:.0f} % "
        f"of {os.cpu_count()} cores"
    )
    p99 = summary(runs["SSE"].latencies)["p99"]
    clean = runs["SSE"].lost == 0
    verdict = "met" if p99 < TARGET_SSE_P99 and clean else "MISSED"
    print(f"target: SSE p99 < {TARGET_SSE_P99 * 1000:.0f} ms: {verdict} ({p99 * 1000:.3f} ms)")


if __name__ == "__main__":
    main()
