"""Alerts: relay throughput of a source at 100,000 lines/s with 20 alert rules, against the same
source and reader without rules, interleaved in the same run.

Each trial starts `perview serve` on a config with one source (a Python writer at `--rate` lines
a second, about one line in a thousand an error), reads its text stream for `--seconds` with a
plain HTTP client, and counts the lines that arrived; then stops the server. The rules are ten
`match` patterns, five `level` rules and five of both (one RE2 scan per block per rule, levels
found once per block), evaluated on the server as blocks enter the ring. Also printed: the
server's CPU time (its own process: the engine and the relay) and the lines the rules could not
look at (a gap: they fell behind the ring), which must be 0. Target (issue 16): with rules, at
least 0.9 of the throughput without.

    python bench/alerts.py [--rate 100000] [--seconds 5] [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

HOST = "127.0.0.1"
PORT_LINE = re.compile(r"open\s+http://127\.0\.0\.1:(\d+)/")

WRITER = """\
import sys, time
rate = int(sys.argv[1])
batch = max(rate // 100, 1)
lines = []
for i in range(batch):
    if i % 1000 == 999:
        lines.append(f"12:00:00 ERROR worker {i}: request failed status=503 took=1234ms")
    else:
        lines.append(f"12:00:00 INFO worker {i}: GET /api/items/{i} status=200 took=12ms")
block = ("\\n".join(lines) + "\\n").encode()
out = sys.stdout.buffer
start = time.monotonic()
n = 0
while True:
    out.write(block)
    out.flush()
    n += 1
    time.sleep(max(0.0, start + n * batch / rate - time.monotonic()))
"""

PATTERNS = [
    "ERROR",
    "status=5\\\\d\\\\d",
    "took=\\\\d{4,}ms",
    "timeout",
    "panic",
    "OutOfMemory",
    "connection refused",
    "deadlock",
    "segfault",
    "disk full",
    "FATAL",
    "Traceback",
    "permission denied",
    "no space left",
    "certificate",
    "killed",
    "worker \\\\d+: request failed",
    "/api/admin",
    "retrying",
    "unreachable",
]


def rules(levels: bool) -> str:
    """Twenty rules: all `match`, or (`levels`) ten `match`, five `level`, five of both."""
    out = []
    for n, pattern in enumerate(PATTERNS[:10] if levels else PATTERNS):
        out.append(f'[alerts.match{n}]\nsource = "app"\nmatch = "{pattern}"\n')
    if levels:
        for n, level in enumerate(["error", "warning", "fatal", "error", "warning"]):
            out.append(f'[alerts.level{n}]\nsource = "app"\nlevel = "{level}"\n')
        for n, pattern in enumerate(PATTERNS[:5]):
            out.append(
                f'[alerts.both{n}]\nsource = "app"\nlevel = "error"\nmatch = "{pattern}"\n'
                'count = 5\nwindow = "1m"\n'
            )
    return "".join(out)


def config(directory: Path, rate: int, with_rules: bool, levels: bool) -> Path:
    argv = [sys.executable, "-u", "-c", WRITER, str(rate)]
    text = (
        f'[server]\nsystem_metrics = false\ndata_dir = "{directory / "data"}"\n'
        f"[sources.app]\ncommand = {json.dumps(argv)}\n"
    )
    path = directory / ("rules.toml" if with_rules else "plain.toml")
    path.write_text(text + (rules(levels) if with_rules else ""))
    return path


class Server:
    def __init__(self, path: Path) -> None:
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        env = {
            k: v for k, v in os.environ.items() if k not in ("PERVIEW_PORT", "PERVIEW_PROC_PORT")
        }
        argv = [
            sys.executable,
            "-m",
            "perview",
            "serve",
            "-c",
            str(path),
            "--no-auth",
            "--port",
            "0",
        ]
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.out.seek(0)
            found = PORT_LINE.search(self.out.read().decode(errors="replace"))
            if found:
                self.base = f"http://{HOST}:{found[1]}"
                return
            time.sleep(0.02)
        raise RuntimeError("perview did not start")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=5) as response:
            return json.load(response)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.out.close()


def read_for(base: str, seconds: float) -> int:
    """Lines of the text stream that curl received in `seconds`."""
    result = subprocess.run(
        ["curl", "-sN", "-m", str(seconds), base + "/api/sources/app/text"],
        capture_output=True,
        timeout=seconds + 30,
    )
    return result.stdout.count(b"\n")


def trial(path: Path, seconds: float) -> tuple[float, float, int]:
    """(lines a second relayed, server CPU seconds a second, lines rules could not look at)."""
    server = Server(path)
    try:
        proc = psutil.Process(server.proc.pid)
        before = proc.cpu_times()
        lines = read_for(server.base, seconds)
        after = proc.cpu_times()
        cpu = (after.user + after.system - before.user - before.system) / seconds
        gaps = (
            sum(rule["gaps"] for rule in server.get("/api/alerts")) if "rules" in path.name else 0
        )
    finally:
        server.stop()
    return lines / seconds, cpu, gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100_000, help="lines a second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 trials of 3 s")
    parser.add_argument(
        "--levels",
        action="store_true",
        help="ten of the rules on levels (classified by the engine until chunks carry levels)",
    )
    args = parser.parse_args()
    trials, seconds = (3, 3.0) if args.quick else (args.trials, args.seconds)
    with tempfile.TemporaryDirectory(prefix="perview-bench-alerts-") as name:
        directory = Path(name)
        plain = config(directory, args.rate, False, args.levels)
        ruled = config(directory, args.rate, True, args.levels)
        base: list[tuple[float, float, int]] = []
        ours: list[tuple[float, float, int]] = []
        for _ in range(trials):  # interleaved, so both see the same machine
            base.append(trial(plain, seconds))
            ours.append(trial(ruled, seconds))
    rate_base = statistics.median(r for r, _, _ in base)
    rate_ours = statistics.median(r for r, _, _ in ours)
    cpu_base = statistics.median(c for _, c, _ in base)
    cpu_ours = statistics.median(c for _, c, _ in ours)
    gaps = sum(g for _, _, g in ours)
    print(f"source at {args.rate:,} lines/s, read for {seconds:g} s, {trials} trials, medians")
    print(f"  without rules   {rate_base:10,.0f} lines/s   server CPU {cpu_base:5.2f} s/s")
    kind = "10 match, 10 level" if args.levels else "match"
    print(f"  with 20 rules ({kind})")
    print(f"                  {rate_ours:10,.0f} lines/s   server CPU {cpu_ours:5.2f} s/s")
    print(f"  lines the rules could not look at (gaps): {gaps}")
    print(f"  ratio (with / without): {rate_ours / rate_base:.3f}   (target 0.9)")


if __name__ == "__main__":
    main()
