"""Fan-out: N viewers of one source writing 1,000 numbered lines a second. Who keeps up? What CPU?

How: the source is a Python one-liner printing `1\\n`, `2\\n`, ... with one write(2) per line,
line k due at t0 + (k - 1) / rate (paced by that schedule, not by drifting sleeps). It waits for
a go-file, which this script creates only once /api/sources shows all N viewers connected, so
every viewer sees line 1 live. The viewers run in K client processes of their own
(bench/_viewers.py: one plain socket per viewer in an epoll set, decoded after the run;
--clients K, by default one process per 200 viewers, a quarter of a core each, so that no
client process is the bottleneck; SSE by default, --text for the text stream). Each viewer
checks it gets every number exactly once, in order, counts the gap events and the lines they
say were skipped, and notes every line's delivery lag (when its kernel received it: what the
server did) and read lag (when the client process got round to reading it: its share of the
cores too); the clients' reports are merged, so lag percentiles are over every line delivered
to every viewer. Over the streaming period (go-file to the last viewer done) psutil gives the
CPU of the server process, of its descendants (guard + source) separately and of the client
processes (all, and the busiest), as % of one core, the machine's busy share (to see whether
the 2 cores were saturated, by us or by anything else running) and the server's peak RSS.

Baseline, same run: the same source with one viewer; hence the CPU cost per extra viewer and
the ratio N-viewer / 1-viewer server CPU. And the N viewers once more on the path before
direct writes (PERVIEW_DIRECT_WRITES=0: the hub wakes every viewer's task, which reads and
writes), alternating with the direct path over --trials runs each; medians are reported.

Target (issue 17): 1,000 viewers at 1,000 lines/s on 2 cores, every viewer keeping up (no line
lost, no gap, no duplicate), lag p99 under 50 ms (under 10 ms at 200 viewers), and server CPU
per extra viewer at most half of the task path's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
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
from _viewers import merge

# Viewers per client process by default: as many as one process reads well within the server's
# batch window, so that it measures the server rather than itself. At 200 viewers of 1,000
# lines/s one client process takes about a quarter of a core (8 µs per read, bench/_viewers.py)
# and reads its last socket about 1.5 ms after its first; with more per process a read would
# more often find two of the server's writes, and the client's delay would enter the delivery lag.
VIEWERS_PER_CLIENT = 200

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


def waited(pid: int) -> float:
    """Seconds the main thread of process `pid` has spent runnable but waiting for a core (the
    kernel's schedstat; NaN where there is none)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return math.nan


def waits(pids: list[int]) -> dict[int, float]:
    """`waited` of each process."""
    return {pid: waited(pid) for pid in pids}


def alive(waits: dict[int, float]) -> dict[int, float]:
    """Those of `waits` whose process was still there to be read."""
    return {pid: value for pid, value in waits.items() if not math.isnan(value)}


def waited_between(before: dict[int, float], after: dict[int, float]) -> float:
    """Seconds the processes alive at both times waited for a core in between, summed."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def descendants(proc: Any) -> list[int]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return [child.pid for child in proc.children(recursive=True)]
    return []


def split(viewers: int, clients: int) -> list[int]:
    """Viewers per client process, as even as can be."""
    clients = max(1, min(clients, viewers))
    return [viewers // clients + (i < viewers % clients) for i in range(clients)]


def stream(viewers: int, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """One server, `viewers` viewers over `clients` client processes, one run of the source;
    the figures of that run."""
    lines = int(args.rate * args.duration)
    shares = split(viewers, clients)
    with tempfile.TemporaryDirectory(prefix="perview-fanout-") as tmp:
        go, t0 = Path(tmp, "go"), Path(tmp, "t0")
        source = [sys.executable, "-I", "-c", SOURCE, str(go), str(t0)]
        source += [str(args.rate), str(lines), str(args.start_timeout)]
        budget = args.start_timeout + 3 * args.duration + 30
        with serve(source) as server:
            argv = [sys.executable, str(VIEWERS), "--port", str(server.port), "--lines"]
            argv += [str(lines), "--rate", str(args.rate), "--t0-file", str(t0)]
            argv += ["--timeout", str(budget)] + (["--text"] if args.text else [])
            argv += ["--aiohttp"] if args.aiohttp else []
            helpers: list[Helper] = []
            try:
                for index in range(len(shares)):
                    helpers.append(Helper([*argv, "--client-index", str(index)]))
                opened = 0
                for client, share in zip(helpers, shares, strict=True):
                    # One client at a time: together they would overflow the listen backlog.
                    client.send(f"open {share}")
                    said = client.expect("opened ", args.start_timeout)
                    opened += int(said.split()[0]) if said else 0
                info = server.wait_source(lambda s: s["viewers"] == viewers, args.start_timeout)
                if opened != viewers or info["viewers"] != viewers:
                    raise RuntimeError(f"viewers: clients opened {opened}, server says {info}")
                before = (time.monotonic(), machine_cpu(), [cpu_seconds(c.ps) for c in helpers])
                server_before = (
                    cpu_seconds(server.ps),
                    descendants_cpu_seconds(server.ps),
                    waited(server.ps.pid),
                )
                others_before = (
                    waits(descendants(server.ps)),
                    waits([client.ps.pid for client in helpers]),
                )
                # The source exits before the viewers are done: its last figure is the last seen.
                children_seen = dict(others_before[0])
                go.touch()
                rss = 0
                deadline = time.monotonic() + budget
                waiting = list(helpers)
                while waiting:
                    if waiting[0].expect("done", 0.2) is not None:
                        waiting.pop(0)
                    rss = max(rss, server.ps.memory_info().rss)
                    children_seen |= alive(waits(descendants(server.ps)))
                    if time.monotonic() > deadline:
                        raise RuntimeError("viewers not done in time")
                server_after = (
                    cpu_seconds(server.ps),
                    descendants_cpu_seconds(server.ps),
                    waited(server.ps.pid),
                )
                others_after = (
                    children_seen | alive(waits(descendants(server.ps))),
                    waits([client.ps.pid for client in helpers]),
                )
                after = (time.monotonic(), machine_cpu(), [cpu_seconds(c.ps) for c in helpers])
                rss = max(rss, server.ps.memory_info().rss)
                reports = []
                for client in helpers:
                    found = client.expect("report ", 60)
                    if found is None:
                        raise RuntimeError("no report from a client")
                    reports.append(json.loads(found))
            finally:
                for client in helpers:
                    client.close()
    wall = after[0] - before[0]
    busy, total = (a - b for a, b in zip(after[1], before[1], strict=True))
    client_cpu = [100 * (a - b) / wall for a, b in zip(after[2], before[2], strict=True)]
    return merge(reports) | {
        "lines": lines,
        "clients": len(helpers),
        "wall": wall,
        "server_cpu": 100 * (server_after[0] - server_before[0]) / wall,
        "children_cpu": 100 * (server_after[1] - server_before[1]) / wall,
        "server_waited": 100 * (server_after[2] - server_before[2]) / wall,
        "children_waited": 100 * waited_between(others_before[0], others_after[0]) / wall,
        "clients_waited": 100 * waited_between(others_before[1], others_after[1]) / wall,
        "client_cpu": sum(client_cpu),
        "client_cpu_max": max(client_cpu),
        "machine_busy": 100 * busy / total,
        "rss_mb": rss / 2**20,
    }


def stream_tasks(viewers: int, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """`stream` with the server on the task path (no direct writes)."""
    os.environ["PERVIEW_DIRECT_WRITES"] = "0"  # the server's environment is a copy of ours
    try:
        return stream(viewers, clients, args)
    finally:
        del os.environ["PERVIEW_DIRECT_WRITES"]


def per_viewer(run: dict[str, Any], base: dict[str, Any]) -> float:
    """Server CPU (% of a core) per viewer beyond the first."""
    return float(run["server_cpu"] - base["server_cpu"]) / max(run["viewers"] - 1, 1)


def per_write(run: dict[str, Any]) -> float:
    """Server CPU µs per write to a viewer: the cost that does not depend on how much the
    hub batched (a server short of CPU batches more and so writes less)."""
    return float(run["server_cpu"]) / 100 * run["wall"] / max(run["chunks"], 1) * 1e6


def merged_share(run: dict[str, Any]) -> float:
    """Reads that brought the starts of two or more of the server's writes, as % of the reads
    that brought lines: the older write's lines are counted as late as the newer one's."""
    return 100 * run.get("merged_reads", 0) / max(run["deliveries"], 1)


def clean(run: dict[str, Any]) -> bool:
    return all(run[k] == 0 for k in ("lost", "dups", "gaps", "bad", "failed", "unfinished"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument(
        "--clients",
        type=int,
        help=f"client processes the viewers are spread over "
        f"(default: one per {VIEWERS_PER_CLIENT} viewers)",
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="lines per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of output")
    parser.add_argument("--text", action="store_true", help="text streams instead of SSE")
    parser.add_argument("--aiohttp", action="store_true", help="aiohttp client, not sockets")
    parser.add_argument("--start-timeout", type=float, default=60.0, help="for connecting (s)")
    parser.add_argument("--quick", action="store_true", help="50 viewers for 3 s, one trial")
    parser.add_argument(
        "--trials", type=int, default=3, help="runs of each path, alternated (medians reported)"
    )
    parser.add_argument(
        "--direct-only", action="store_true", help="skip the task path (no comparison)"
    )
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.duration, args.trials = min(args.viewers, 50), 3.0, 1
    if args.clients is None:
        args.clients = math.ceil(args.viewers / VIEWERS_PER_CLIENT)
    raise_nofile()

    base = stream(1, 1, args)
    direct: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for _ in range(args.trials):
        if not args.direct_only:
            tasks.append(stream_tasks(args.viewers, args.clients, args))
        direct.append(stream(args.viewers, args.clients, args))
    ours, old = direct[-1], tasks[-1] if tasks else None
    kind = "text" if args.text else "SSE"
    client = "aiohttp" if args.aiohttp else "socket"
    print(f"\nfanout: {args.rate:,.0f} lines/s for {args.duration:g} s, {kind}, {client} clients")
    print(f"last trial of {args.trials}; the medians of all are below the table")
    runs = [base, old, ours] if old else [base, ours]
    heads = ["1 viewer", f"{args.viewers}, tasks", f"{args.viewers}, direct"]
    print(f"{'':<38}" + "".join(f"{h:>15}" for h in (heads if old else heads[::2])))
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("server CPU (% of one core)", lambda r: f"{r['server_cpu']:.1f}"),
        ("server waiting for a core (% time) [4]", lambda r: f"{r['server_waited']:.1f}"),
        ("guard + source CPU (% of a core)", lambda r: f"{r['children_cpu']:.1f}"),
        ("guard + source waiting (% time) [4]", lambda r: f"{r['children_waited']:.1f}"),
        ("client processes", lambda r: f"{r['clients']}"),
        ("client CPU, all (% of a core)", lambda r: f"{r['client_cpu']:.1f}"),
        ("client CPU, busiest (% of a core)", lambda r: f"{r['client_cpu_max']:.1f}"),
        ("clients waiting, all (% time) [4]", lambda r: f"{r['clients_waited']:.1f}"),
        ("machine busy (% of all cores) [1]", lambda r: f"{r['machine_busy']:.1f}"),
        ("server RSS, peak (MB)", lambda r: f"{r['rss_mb']:.1f}"),
        ("streaming wall time (s)", lambda r: f"{r['wall']:.2f}"),
        ("viewers that kept up (no gap, no loss)", lambda r: f"{r['kept_up']}"),
        ("lines received (all viewers)", lambda r: f"{r['received']:,}"),
        ("lines per read, mean [3]", lambda r: f"{r['received'] / max(r['deliveries'], 1):.1f}"),
        ("server writes to viewers [5]", lambda r: f"{r['chunks']:,}"),
        ("reads that found 2+ writes (%) [2]", lambda r: f"{merged_share(r):.1f}"),
        ("server CPU per write (µs) [5]", lambda r: f"{per_write(r):.1f}"),
        ("lines lost (all viewers)", lambda r: f"{r['lost']:,}"),
        ("lines skipped, as gap events said", lambda r: f"{r['skipped']:,}"),
        (
            "viewers with a gap / that lost any",
            lambda r: f"{r['viewers_gapped']} / {r['viewers_lost']}",
        ),
        ("duplicates / gap events / bad", lambda r: f"{r['dups']} / {r['gaps']} / {r['bad']}"),
        ("viewers failed / unfinished", lambda r: f"{r['failed']} / {r['unfinished']}"),
        ("delivery lag median (ms) [2]", lambda r: f"{r['lag']['median'] * 1000:.1f}"),
        ("delivery lag p99 (ms) [2]", lambda r: f"{r['lag']['p99'] * 1000:.1f}"),
        ("delivery lag max (ms)", lambda r: f"{r['lag']['max'] * 1000:.1f}"),
        ("read lag median (ms) [6]", lambda r: f"{r['read_lag']['median'] * 1000:.1f}"),
        ("read lag p99 (ms) [6]", lambda r: f"{r['read_lag']['p99'] * 1000:.1f}"),
    ]
    for label, cell in rows:
        print(f"{label:<38}" + "".join(f"{cell(r):>15}" for r in runs))
    print("[1] /proc/stat is tick-sampled: it undercounts light, timer-driven load")
    print(
        "[2] when the client's kernel received it (of the newest segment of a read), over every"
        " line delivered to every viewer; 0.1 ms bins (1 ms above 100 ms); a read that found"
        " two writes counts the older one's lines as late as the newer one's"
    )
    print("[3] lines a viewer got per read that brought any: how much the hub batched")
    print(
        "[4] its event loop's thread (theirs, summed) runnable but not running: the cores were"
        " taken"
    )
    print("[5] HTTP chunks the viewers got (one per write); all the server's CPU over them")
    print("[6] when the client read it: its own turn at a core included (as [2] with --aiohttp)")
    for run in [base, *tasks, *direct]:
        for error in run["errors"]:
            print(f"  error ({run['viewers']} viewers): {error}")

    def median(runs: list[dict[str, Any]], figure: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(figure(r) for r in runs)

    print(f"\nmedians over {args.trials} trial(s) of {args.viewers} viewers:")
    paths = [("tasks", tasks), ("direct", direct)] if tasks else [("direct", direct)]
    for name, trials in paths:
        p99 = median(trials, lambda r: r["lag"]["p99"] * 1000)
        p50 = median(trials, lambda r: r["lag"]["median"] * 1000)
        read = median(trials, lambda r: r["read_lag"]["p99"] * 1000)
        cpu = median(trials, lambda r: r["server_cpu"])
        each = median(trials, lambda r: per_viewer(r, base))
        write = median(trials, per_write)
        lost = sum(r["lost"] + r["skipped"] for r in trials)
        dups = sum(r["dups"] for r in trials)
        gaps = sum(r["gaps"] for r in trials)
        print(
            f"  {name:<7} lag p50 {p50:6.1f} ms  p99 {p99:6.1f} ms (read: {read:.1f})"
            f"  server CPU {cpu:5.1f}%"
            f"  per extra viewer {each:.4f}%  per write {write:.1f} µs"
            f"  lost {lost}, gaps {gaps}, duplicates {dups}"
        )
    if tasks:
        share = median(direct, lambda r: per_viewer(r, base)) / median(
            tasks, lambda r: per_viewer(r, base)
        )
        print(f"server CPU per extra viewer, direct / tasks: {share:.2f} (target: at most 0.5)")
        share = median(direct, per_write) / median(tasks, per_write)
        print(f"server CPU per write, direct / tasks: {share:.2f}")
    times = ratio(ours["server_cpu"], base["server_cpu"])
    print(f"server CPU ratio {args.viewers} / 1 viewer (direct, last trial): {times}")
    limit = 50.0 if args.viewers > 200 else 10.0
    p99 = median(direct, lambda r: r["lag"]["p99"] * 1000)
    met = all(clean(r) for r in direct) and p99 < limit
    print(
        f"target: {args.viewers} viewers at {args.rate:,.0f} lines/s, every one keeping up, "
        f"lag p99 < {limit:g} ms: " + ("met" if met else "MISSED")
    )
    if ours["client_cpu_max"] > 85:
        print("note: a client process was near one full core; the figures may be client-bound")
    if ours["machine_busy"] > 90:
        print("note: the machine was saturated; lag includes waiting for a core")
    if ours["server_cpu"] + ours["server_waited"] > 95:
        print("note: the server was never idle (running, or waiting for a core): it set the pace")
    print("json " + json.dumps({k: v for k, v in ours.items() if k != "errors"}))


if __name__ == "__main__":
    main()
