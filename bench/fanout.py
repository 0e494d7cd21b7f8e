"""Fan-out: N viewers of one source writing 1,000 numbered lines a second. Any lost? What CPU?

How: the source is a Python one-liner printing `1\\n`, `2\\n`, ... with one write(2) per line,
line k due at t0 + (k - 1) / rate (paced by that schedule, not by drifting sleeps). It waits for
a go-file, which this script creates only once /api/sources shows all N viewers connected, so
every viewer sees line 1 live. The viewers run in a separate client process (bench/_viewers.py:
asyncio + aiohttp, one session, N streams; SSE by default, --text for the text stream); each
checks it gets every number exactly once, in order, and samples its delivery lag. Over the
streaming period (go-file to the last viewer done) psutil gives the CPU of the server process,
of its descendants (guard + source) separately and of the client process, as % of one core, the
machine's busy share (to see whether the 2 cores were saturated) and the server's peak RSS.

Baseline, same run: the same source with one viewer; hence the CPU cost per extra viewer and
the ratio N-viewer / 1-viewer server CPU.

Target: 200 viewers at 1,000 lines/s with no line lost, server CPU reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    VIEWERS,
    Helper,
    cpu_seconds,
    descendants_cpu_seconds,
    machine_cpu,
    raise_nofile,
    ratio,
    serve,
)

SOURCE = """
import os, sys, time
go, t0_file, rate, count, wait = sys.argv[1:3] + [float(sys.argv[3]), int(sys.argv[4]),
                                                float(sys.argv[5])]
limit = time.monotonic() + wait
while not os.path.exists(go) and time.monotonic() < limit:
    time.sleep(0.005)
wall, start = time.time(), time.monotonic()
with open(t0_file + ".tmp", "w") as f:
    f.write(repr(wall))
os.rename(t0_file + ".tmp", t0_file)
for k in range(1, count + 1):
    delay = start + (k - 1) / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    os.write(1, b"%d\\n" % k)
"""


def stream(viewers: int, args: argparse.Namespace) -> dict[str, Any]:
    """One server, `viewers` viewers, one run of the source; the figures of that run."""
    lines = int(args.rate * args.duration)
    with tempfile.TemporaryDirectory(prefix="perview-fanout-") as tmp:
        go, t0 = Path(tmp, "go"), Path(tmp, "t0")
        source = [sys.executable, "-I", "-c", SOURCE, str(go), str(t0)]
        source += [str(args.rate), str(lines), str(args.start_timeout)]
        budget = args.start_timeout + 3 * args.duration + 30
        with serve(source) as server:
            client = Helper(
                [sys.executable, str(VIEWERS), "--port", str(server.port), "--lines", str(lines)]
                + ["--rate", str(args.rate), "--t0-file", str(t0), "--timeout", str(budget)]
                + (["--text"] if args.text else [])
            )
            try:
                client.send(f"open {viewers}")
                opened = client.expect("opened ", args.start_timeout)
                info = server.wait_source(lambda s: s["viewers"] == viewers, args.start_timeout)
                if (
                    opened is None
                    or opened.split()[0] != str(viewers)
                    or info["viewers"] != viewers
                ):
                    raise RuntimeError(f"viewers: client says {opened}, server says {info}")
                before = (time.monotonic(), machine_cpu(), cpu_seconds(client.ps))
                server_before = (cpu_seconds(server.ps), descendants_cpu_seconds(server.ps))
                go.touch()
                rss = 0
                deadline = time.monotonic() + budget
                while client.expect("done", 0.2) is None:
                    rss = max(rss, server.ps.memory_info().rss)
                    if time.monotonic() > deadline:
                        raise RuntimeError("viewers not done in time")
                server_after = (cpu_seconds(server.ps), descendants_cpu_seconds(server.ps))
                after = (time.monotonic(), machine_cpu(), cpu_seconds(client.ps))
                rss = max(rss, server.ps.memory_info().rss)
                found = client.expect("report ", 60)
                if found is None:
                    raise RuntimeError("no report from the client")
                figures: dict[str, Any] = json.loads(found)
            finally:
                client.close()
    wall = after[0] - before[0]
    busy, total = (a - b for a, b in zip(after[1], before[1], strict=True))
    figures |= {
        "lines": lines,
        "wall": wall,
        "server_cpu": 100 * (server_after[0] - server_before[0]) / wall,
        "children_cpu": 100 * (server_after[1] - server_before[1]) / wall,
        "client_cpu": 100 * (after[2] - before[2]) / wall,
        "machine_busy": 100 * busy / total,
        "rss_mb": rss / 2**20,
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="lines per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of output")
    parser.add_argument("--text", action="store_true", help="text streams instead of SSE")
    parser.add_argument("--start-timeout", type=float, default=60.0, help="for connecting (s)")
    parser.add_argument("--quick", action="store_true", help="50 viewers for 3 s")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.duration = min(args.viewers, 50), 3.0
    raise_nofile()

    base, ours = stream(1, args), stream(args.viewers, args)
    kind = "text" if args.text else "SSE"
    print(f"\nfanout: {args.rate:,.0f} lines/s for {args.duration:g} s, {kind}")
    print(f"{'':<36}{'1 viewer':>12}{f'{args.viewers} viewers':>14}")
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("server CPU (% of one core)", lambda r: f"{r['server_cpu']:.1f}"),
        ("guard + source CPU (% of a core)", lambda r: f"{r['children_cpu']:.1f}"),
        ("client CPU (% of a core)", lambda r: f"{r['client_cpu']:.1f}"),
        ("machine busy (% of all cores) [1]", lambda r: f"{r['machine_busy']:.1f}"),
        ("server RSS, peak (MB)", lambda r: f"{r['rss_mb']:.1f}"),
        ("streaming wall time (s)", lambda r: f"{r['wall']:.2f}"),
        ("lines received (all viewers)", lambda r: f"{r['received']:,}"),
        ("lines lost (all viewers)", lambda r: f"{r['lost']:,}"),
        ("viewers that lost any", lambda r: f"{r['viewers_lost']}"),
        ("duplicates / gap events / bad", lambda r: f"{r['dups']} / {r['gaps']} / {r['bad']}"),
        ("viewers failed / unfinished", lambda r: f"{r['failed']} / {r['unfinished']}"),
        ("delivery lag median (ms)", lambda r: f"{r['lag']['median'] * 1000:.1f}"),
        ("delivery lag p99 (ms)", lambda r: f"{r['lag']['p99'] * 1000:.1f}"),
        ("delivery lag max (ms)", lambda r: f"{r['lag']['max'] * 1000:.1f}"),
    ]
    for label, cell in rows:
        print(f"{label:<36}{cell(base):>12}{cell(ours):>14}")
    print("[1] /proc/stat is tick-sampled: it undercounts light, timer-driven load")
    for run in (base, ours):
        for error in run["errors"]:
            print(f"  error ({run['viewers']} viewers): {error}")
    per_viewer = (ours["server_cpu"] - base["server_cpu"]) / max(args.viewers - 1, 1)
    print(f"server CPU per extra viewer: {per_viewer:.3f} % of a core")
    times = ratio(ours["server_cpu"], base["server_cpu"])
    print(f"server CPU ratio {args.viewers} / 1 viewer: {times}")
    clean = all(ours[k] == 0 for k in ("lost", "dups", "gaps", "bad", "failed", "unfinished"))
    print(
        f"target: {args.viewers} viewers at {args.rate:,.0f} lines/s, no line lost: "
        + ("met" if clean else "MISSED")
    )
    if ours["client_cpu"] > 85:
        print("note: the client process was near one full core; the figures may be client-bound")


if __name__ == "__main__":
    main()
