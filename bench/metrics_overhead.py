"""Metrics overhead: sampler CPU (this machine + 10 SSH hosts each second), history query time.

1. Sampler CPU (the issue's target: under 3 % of one core for this machine and 10 hosts). The
hosts are aliases pv-h1 .. pv-hN of a throwaway sshd on 127.0.0.1 (testbed/), so N ssh sessions
to this machine. `perview serve` runs with `metrics_every`, `[hosts.hK]` with `metrics = true`,
history in a temporary `data_dir` and one source nobody watches, in three phases, each its own
server: idle (no metrics at all: the baseline), local (this machine), local+N. Once every host
has a `cpu` value (and `--settle` s more), nothing talks to the server for `--seconds`; CPU
(user + system, % of one core) is read every `--window` s for the server, its descendants
(guards, ssh clients, and what they reaped) and the far side (everything below the sshd).
Samples per second are the rows of the history written during the measurement, read once the
server has stopped (which flushes them), so no viewer adds its own cost.

2. History query. A history as Perview keeps it (History.open: schema, WAL) holding 7 days of
20 series sampled every 2 s: one-minute rollups for 7 days and raw samples for the last 24 h,
inserted directly with sqlite3 (History.write and expire would take half a minute more for the
same end state). History.query is timed as the page asks (range/600 s per point) for 5 min, 1 h,
24 h and 7 d, for every series, `--rounds` times, against two baselines on the same thread
model: "scan", the same rows read through the same index with no GROUP BY (what reading the data
costs), and "list", the same buckets computed in Python over sorted in-memory lists.

    python bench/metrics_overhead.py [--hosts 10] [--every 1] [--seconds 30] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import math
import os
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from _common import ConfigServer, LoopbackSshd, machine_cpu, percentile, ratio

from perview.metrics.history import RAW_FOR, ROLLUP, History

TARGET = 3.0  # % of one core (the issue)
READY_LIMIT = 60.0  # for every host's cpu series to show a value
FAR_END_LIMIT = 10.0  # for far-side sessions to end after the server stopped
DAY = 86400.0
WEEK = 7 * DAY
RAW_EVERY = 2.0  # seconds between samples in the history built for part 2 (the default)
# (range, step): the page asks for range/600 seconds per point
RANGES = ((300.0, 1.0), (3600.0, 6.0), (DAY, 144.0), (WEEK, 1008.0))
LOCAL_PARTS = {"ssh": "ssh clients", "guards": "guards (and anything reaped)"}
FAR_PARTS = {"sshd": "sshd (sessions, crypto)", "loops": "sh loops: sh, cat, df, sleep"}


# -- the sampler -------------------------------------------------------------------------------


def write_config(
    path: Path, data_dir: Path, sshd: LoopbackSshd, hosts: int, system: bool, every: float
) -> None:
    every_toml = json.dumps(f"{every:g}s") if every == int(every) else repr(every)
    text = (
        f"[server]\ndata_dir = {json.dumps(str(data_dir))}\nmetrics_every = {every_toml}\n"
        f"system_metrics = {'true' if system else 'false'}\n\n"
    )
    for n in range(1, hosts + 1):
        text += (
            f'[hosts.h{n}]\nssh = "pv-h{n}"\n'
            f'ssh_args = ["-F", {json.dumps(str(sshd.config))}]\nmetrics = true\n\n'
        )
    text += '[sources.quiet]\ncommand = "sleep 3600"\n'
    path.write_text(text)


def api_metrics(server: ConfigServer) -> list[dict[str, Any]]:
    with urllib.request.urlopen(server.base + "/api/metrics", timeout=5) as response:
        series: list[dict[str, Any]] = json.load(response)
    return series


def wait_ready(server: ConfigServer, hosts: Sequence[str]) -> float:
    """Seconds until /api/metrics shows an ok `cpu` value for every host in `hosts`."""
    start = time.monotonic()
    missing = set(hosts)
    series: list[dict[str, Any]] = []
    while missing and time.monotonic() - start < READY_LIMIT:
        if server.proc.poll() is not None:
            raise RuntimeError(f"perview exited:\n{server.stderr_tail()}")
        with contextlib.suppress(OSError):
            series = api_metrics(server)
            live = {s["host"] for s in series if s["name"] == "cpu" and s["value"] is not None}
            missing = set(hosts) - live
        time.sleep(0.1)
    if missing:
        reasons = {s["host"]: s["reason"] for s in series if s["state"] != "ok"}
        raise RuntimeError(f"no cpu series for {sorted(missing)}: {reasons}")
    return time.monotonic() - start


def tree_cpu(
    root: Any, classify: Callable[[str], str], reaped: str, include_root: bool
) -> dict[str, float]:
    """CPU seconds (user + system) of the processes below `root` (and root's own, if
    `include_root`), by part: each living process under classify(its name); what any of them
    (root too) has reaped, which the kernel adds to children_user/system, under `reaped`. A
    process counted living in one reading and reaped by the next is counted once either way."""
    parts: dict[str, float] = {}
    procs = [root]
    with contextlib.suppress(psutil.Error):
        procs += root.children(recursive=True)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            with proc.oneshot():
                times = proc.cpu_times()
                name = proc.name()
            if proc is not root or include_root:
                key = classify(name)
                parts[key] = parts.get(key, 0.0) + times.user + times.system
            parts[reaped] = parts.get(reaped, 0.0) + times.children_user + times.children_system
    return parts


@dataclass
class Reading:
    at: float  # monotonic
    wall: float
    server: float
    local: dict[str, float]
    far: dict[str, float]
    busy: float  # the whole machine, all cores


def read_cpu(server: ConfigServer, sshd: LoopbackSshd) -> Reading:
    times = server.ps.cpu_times()
    return Reading(
        at=time.monotonic(),
        wall=time.time(),
        server=float(times.user + times.system),
        local=tree_cpu(server.ps, lambda n: "ssh" if n == "ssh" else "guards", "guards", False),
        far=tree_cpu(sshd.ps, lambda n: "sshd" if n.startswith("sshd") else "loops", "loops", True),
        busy=machine_cpu()[0],
    )


def delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {key: b.get(key, 0.0) - a.get(key, 0.0) for key in set(a) | set(b)}


@dataclass
class Phase:
    title: str
    hosts: list[str]
    ready: float = 0.0  # seconds from the server's start to every cpu series live
    seconds: float = 0.0
    server: float = 0.0  # CPU seconds over `seconds`
    local: dict[str, float] = field(default_factory=dict)
    far: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0
    windows: list[float] = field(default_factory=list)  # Perview % of one core, per window
    series: int = 0
    failing: int = 0
    samples: int = 0
    snapshots: dict[str, int] = field(default_factory=dict)  # per host

    def pct(self, cpu: float) -> float:
        return 100.0 * cpu / self.seconds if self.seconds else math.nan

    @property
    def perview(self) -> float:
        return self.server + sum(self.local.values())


def run_phase(
    root: Path, sshd: LoopbackSshd, title: str, system: bool, hosts: int, args: argparse.Namespace
) -> Phase:
    home = root / title
    home.mkdir()
    config = home / "perview.toml"
    write_config(config, home / "data", sshd, hosts, system, args.every)
    phase = Phase(title, (["local"] if system else []) + [f"h{n}" for n in range(1, hosts + 1)])
    server = ConfigServer(config, "quiet")
    try:
        phase.ready = wait_ready(server, phase.hosts)
        time.sleep(args.settle)
        readings = [read_cpu(server, sshd)]
        count = max(1, math.ceil(args.seconds / args.window))
        for k in range(1, count + 1):  # readings at fixed times, not after drifting sleeps
            due = readings[0].at + min(k * args.window, args.seconds)
            time.sleep(max(0.0, due - time.monotonic()))
            readings.append(read_cpu(server, sshd))
        series = api_metrics(server)
        phase.series = len(series)
        phase.failing = sum(s["state"] != "ok" for s in series)
    finally:
        server.stop()  # SIGTERM: the server stops its sources and flushes its history
    first, last = readings[0], readings[-1]
    phase.seconds = last.at - first.at
    phase.server = last.server - first.server
    phase.local = delta(first.local, last.local)
    phase.far = delta(first.far, last.far)
    phase.busy = last.busy - first.busy
    for a, b in itertools.pairwise(readings):
        cpu = b.server - a.server + sum(delta(a.local, b.local).values())
        phase.windows.append(100.0 * cpu / (b.at - a.at))
    db = home / "data" / "metrics.sqlite"
    phase.samples, phase.snapshots = count_samples(db, first.wall, last.wall)
    if not sshd.wait_no_sessions(FAR_END_LIMIT):
        print(f"  note: far-side sessions of phase {title} had to be killed")
    return phase


def count_samples(db: Path, since: float, until: float) -> tuple[int, dict[str, int]]:
    """Rows of `samples` taken in [since, until), and per host the distinct sampling times."""
    if not db.exists():
        return 0, {}
    with contextlib.closing(sqlite3.connect(db)) as con:
        rows = con.execute(
            "SELECT substr(series, 1, instr(series, '/') - 1) AS host, count(*), count(DISTINCT t) "
            "FROM samples WHERE t >= ? AND t < ? GROUP BY host",
            (since, until),
        ).fetchall()
    return sum(n for _, n, _ in rows), {host: snaps for host, _, snaps in rows}


def sampler(root: Path, args: argparse.Namespace) -> None:
    home = root / "sshd"
    home.mkdir()
    sshd = LoopbackSshd(home, args.hosts)
    try:
        plan = (("idle", False, 0), ("local", True, 0), (f"local+{args.hosts}", True, args.hosts))
        phases = [run_phase(root, sshd, title, on, n, args) for title, on, n in plan]
    finally:
        sshd.stop()
    report_sampler(phases, args)


def report_sampler(phases: list[Phase], args: argparse.Namespace) -> None:
    idle, local, full = phases

    def row(label: str, values: Sequence[str]) -> None:
        print(f"  {label:<34}" + "".join(f"{v:>12}" for v in values))

    def pct_row(label: str, get: Callable[[Phase], float]) -> None:
        row(label, [f"{p.pct(get(p)):.2f} %" for p in phases])

    print(
        f"sampler: every {args.every:g} s; {args.seconds:g} s measured per phase "
        f"({args.window:g} s windows), each after every series was live; CPU in % of one core"
    )
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    print(f"  (CPU times count {tick * 1000:g} ms ticks: +-{100 * tick / args.seconds:.2f} % here)")
    row("", [p.title for p in phases])
    row("series (failing)", [f"{p.series} ({p.failing})" for p in phases])
    row("all cpu series live after", [f"{p.ready:.1f} s" if p.hosts else "-" for p in phases])
    pct_row("Perview server process", lambda p: p.server)
    pct_row("its descendants", lambda p: sum(p.local.values()))
    for key, title in LOCAL_PARTS.items():
        row(f"  {title}", [f"{p.pct(p.local.get(key, 0.0)):.2f} %" for p in phases])
    pct_row("Perview total (server + below)", lambda p: p.perview)
    row("  per window: median", [f"{statistics.median(p.windows):.2f} %" for p in phases])
    row("  per window: max", [f"{max(p.windows):.2f} %" for p in phases])
    pct_row("far side (below the test sshd)", lambda p: sum(p.far.values()))
    for key, title in FAR_PARTS.items():
        row(f"  {title}", [f"{p.pct(p.far.get(key, 0.0)):.2f} %" for p in phases])
    pct_row("machine busy (every process)", lambda p: p.busy)
    row("samples/s (rows in history)", [f"{p.samples / p.seconds:.1f}" for p in phases])
    row("snapshots/s per host (min..max)", [spread(p) for p in phases])
    missing = [h for h in full.hosts if h not in full.snapshots]
    if missing:
        print(f"  hosts with no sample in history during the measurement: {missing}")

    total = full.pct(full.perview)
    print(f"\n  Perview, {full.title}: {total:.2f} % of one core (target < {TARGET:g} %): ", end="")
    print("met" if total < TARGET else "NOT met")
    print(
        f"  sampling cost ({full.title} - idle): {total - idle.pct(idle.perview):.2f} % of one "
        f"core; ratio {full.title} / idle: {ratio(total, idle.pct(idle.perview))}"
    )
    own = local.pct(local.perview) - idle.pct(idle.perview)
    print(f"  this machine's own sampling (local - idle): {own:.2f} %")
    hosts = len(full.hosts) - 1
    if hosts:
        per_host = (total - local.pct(local.perview)) / hosts
        far = full.pct(sum(full.far.values())) / hosts
        print(
            f"  per SSH host: {per_host:.3f} % here (Perview side), {far:.3f} % on the far host "
            f"(its sshd and loop)"
        )


def spread(phase: Phase) -> str:
    if not phase.snapshots:
        return "-"
    low, high = min(phase.snapshots.values()), max(phase.snapshots.values())
    return f"{low / phase.seconds:.2f}..{high / phase.seconds:.2f}"


# -- history -----------------------------------------------------------------------------------

LOCAL_SERIES = ["local/cpu", "local/cpu.core:0", "local/cpu.core:1", "local/load.1m"]
LOCAL_SERIES += ["local/load.5m", "local/mem.used", "local/mem.used_bytes", "local/disk.used:/"]
LOCAL_SERIES += ["local/net.rx:eth0", "local/net.tx:eth0"]


def series_names(count: int) -> list[str]:
    """Names like the ones Perview records: this machine's, then each host's cpu."""
    hosts = [f"h{n}/cpu" for n in range(1, count - len(LOCAL_SERIES) + 1)]
    return (LOCAL_SERIES[:count] + hosts)[:count]


def value(index: int, t: float) -> float:
    """A smooth daily-ish wave per series, with a deterministic wobble (no RNG per row)."""
    return 50.0 + 30.0 * math.sin(t / (3600.0 * (index + 2))) + 5.0 * math.sin(t * 0.7 + index)


def build_history(path: Path, names: list[str], end: float) -> tuple[int, int, float]:
    """Raw samples every RAW_EVERY s for the last RAW_FOR s, one-minute rollups for a week,
    inserted in time order, series interleaved as Perview's batches are, into the schema
    History.open created. Returns (raw rows, rollup rows, seconds)."""
    start = time.perf_counter()
    first, last = end - RAW_FOR, end - end % ROLLUP
    raw_times = [first + k * RAW_EVERY for k in range(1, int(RAW_FOR / RAW_EVERY) + 1)]
    minutes = [last - k * ROLLUP for k in range(int(WEEK / ROLLUP) - 1, -1, -1)]
    per_minute = int(ROLLUP / RAW_EVERY)
    with contextlib.closing(sqlite3.connect(path)) as con:
        with con:  # rows generated as they are inserted: 864,000 tuples would take ~100 MB
            con.executemany(
                "INSERT INTO samples VALUES (?, ?, ?)",
                ((name, t, value(i, t)) for t in raw_times for i, name in enumerate(names)),
            )
            con.executemany(
                "INSERT INTO rollup VALUES (?, ?, ?, ?)",
                (
                    (name, t, value(i, t + ROLLUP / 2), per_minute)
                    for t in minutes
                    for i, name in enumerate(names)
                ),
            )
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rows = len(names) * len(raw_times), len(names) * len(minutes)
    return *rows, time.perf_counter() - start


def table_for(since: float, step: float) -> str:
    """The table History._query reads (the same rule)."""
    return "samples" if step < ROLLUP and since >= time.time() - RAW_FOR else "rollup"


def scan_rows(con: sqlite3.Connection, table: str, name: str, since: float) -> int:
    """Baseline "scan": the same rows read through the same index (v too, from the table), with
    no GROUP BY: one average over them all, so one row comes back. Returns the rows read."""
    query = f"SELECT count(*), avg(v) FROM {table} WHERE series = ? AND t >= ?"  # one of two
    count: int = con.execute(query, (name, since)).fetchone()[0]
    return count


def list_buckets(
    points: tuple[list[float], list[float]], since: float, step: float
) -> list[tuple[float, float]]:
    """Baseline "list": the same averages over sorted in-memory lists, in one pass."""
    times, values = points
    out: list[tuple[float, float]] = []
    current, total, n = -1, 0.0, 0
    for k in range(bisect.bisect_left(times, since), len(times)):
        bucket = int(times[k] / step)
        if bucket != current:
            if n:
                out.append((current * step, total / n))
            current, total, n = bucket, 0.0, 0
        total += values[k]
        n += 1
    if n:
        out.append((current * step, total / n))
    return out


def load_points(con: sqlite3.Connection, table: str, name: str) -> tuple[list[float], list[float]]:
    rows = con.execute(f"SELECT t, v FROM {table} WHERE series = ? ORDER BY t", (name,))
    times, values = [], []
    for t, v in rows:
        times.append(float(t))
        values.append(float(v))
    return times, values


# (series, since, table, step) -> the answer: History.query or a baseline
Ask = Callable[[str, float, str, float], Awaitable[Any]]


@dataclass
class Timings:
    per_series: dict[str, list[float]] = field(default_factory=dict)  # seconds, per round
    totals: list[float] = field(default_factory=list)  # one round over every series

    async def timed(self, names: list[str], span: float, ask: Ask, table: str, step: float) -> Any:
        """Time `ask` for each series, one after the other (as History's one thread serves
        them); returns the last answer."""
        began = time.perf_counter()
        for name in names:
            t0 = time.perf_counter()
            answer = await ask(name, time.time() - span, table, step)
            self.per_series.setdefault(name, []).append(time.perf_counter() - t0)
        self.totals.append(time.perf_counter() - began)
        return answer

    def medians(self) -> list[float]:
        return [statistics.median(v) for v in self.per_series.values()]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


async def history_bench(root: Path, args: argparse.Namespace) -> None:
    path = root / "history" / "metrics.sqlite"
    history = History(path, WEEK)
    await history.open()  # the schema and WAL mode, exactly as Perview makes them
    await history.close()
    names = series_names(args.series)
    raw, rollup, built = build_history(path, names, time.time())
    print(
        f"\nhistory: {len(names)} series; {raw:,} raw rows (24 h at {RAW_EVERY:g} s) in samples, "
        f"{rollup:,} one-minute rows (7 d) in rollup, inserted directly with sqlite3 in "
        f"{built:.1f} s; file {path.stat().st_size / 1e6:.1f} MB"
    )
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baseline")  # as History's

    def off(function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return loop.run_in_executor(pool, function, *args)

    con = await off(lambda: sqlite3.connect(path, check_same_thread=False))
    tables = ("samples", "rollup")
    points = {(t, name): await off(load_points, con, t, name) for t in tables for name in names}
    for table in tables:
        plan = con.execute(
            "EXPLAIN QUERY PLAN SELECT CAST(t / ? AS INTEGER) * ? AS b, avg(v) FROM "
            f"{table} WHERE series = ? AND t >= ? GROUP BY b ORDER BY b",
            (60.0, 60.0, names[0], 0.0),
        ).fetchall()
        print(f"  query plan on {table}: " + "; ".join(str(step[-1]) for step in plan))

    history = History(path, WEEK)
    await history.open()

    async def ask_history(name: str, since: float, table: str, step: float) -> Any:
        return await history.query(name, since, step)

    async def ask_scan(name: str, since: float, table: str, step: float) -> Any:
        return await off(scan_rows, con, table, name, since)

    async def ask_list(name: str, since: float, table: str, step: float) -> Any:
        return await off(list_buckets, points[table, name], since, step)

    try:
        print(
            f"  History.query per series, {args.rounds} rounds of all {len(names)} series "
            "(ms; median and p99 over the series of each one's median over rounds; total = "
            "all series one after the other, median over rounds; cold = the first round)"
        )
        print(
            f"  {'range':>6} {'step':>6} {'table':>8} {'rows':>7} {'points':>6} "
            f"{'median':>8} {'p99':>8} {'total':>8} {'cold':>8} | {'scan':>7} {'list':>7} "
            f"{'q/scan':>6} {'q/list':>6}"
        )
        week_total = math.nan
        for span, step in RANGES:
            ours, scan_t, list_t = Timings(), Timings(), Timings()
            table = table_for(time.time() - span, step)
            for _ in range(args.rounds):
                got = await ours.timed(names, span, ask_history, table, step)
                rows = await scan_t.timed(names, span, ask_scan, table, step)
                mine = await list_t.timed(names, span, ask_list, table, step)
                if abs(len(mine) - len(got)) > 1:  # the range's ends may differ by a bucket
                    print(f"  note: {len(mine)} list buckets against {len(got)} from History")
            medians = ours.medians()
            q, r, li = (statistics.median(t.totals) for t in (ours, scan_t, list_t))
            if span == WEEK:
                week_total = q
            print(
                f"  {label(span):>6} {step:>5g}s {table:>8} {rows:>7,} {len(got):>6} "
                f"{ms(statistics.median(medians)):>8} {ms(percentile(medians, 99)):>8} "
                f"{ms(q):>8} {ms(ours.totals[0]):>8} | {ms(r):>7} {ms(li):>7} "
                f"{q / r:>5.1f}x {q / li:>5.1f}x"
            )
        print(
            "  (scan/list: the baselines' totals for all series, same rounds; q/x: "
            "History.query's total over theirs)"
        )
        print(
            f"  opening a 7-day view ({len(names)} series, one after the other as History's one "
            f"thread serves them): {ms(week_total)} ms (median over rounds)"
        )
        began = time.perf_counter()
        await history.expire()
        took = ms(time.perf_counter() - began)
        print(f"  History.expire (hourly, on the same thread as queries): {took} ms")
    finally:
        await history.close()
        await off(con.close)
        pool.shutdown(wait=True)


def label(span: float) -> str:
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", 60.0)):
        if span >= size and span % size == 0:
            return f"{span / size:g}{unit}"
    return f"{span:g}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    option = parser.add_argument
    option("--hosts", type=int, default=10, help="SSH hosts (default %(default)s)")
    option("--every", type=float, default=1.0, help="metrics_every, s (default %(default)s)")
    option("--seconds", type=float, default=30.0, help="measured per phase (default %(default)s)")
    option("--window", type=float, default=5.0, help="CPU read every, s (default %(default)s)")
    option("--settle", type=float, default=3.0, help="s after every series is live (default 3)")
    option("--series", type=int, default=20, help="history series (default 20)")
    option("--rounds", type=int, default=5, help="query rounds (default 5)")
    option("--part", choices=("all", "sampler", "history"), default="all")
    option("--quick", action="store_true", help="10 s per phase, 2 query rounds")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 10.0, 2
    with tempfile.TemporaryDirectory(prefix="perview-metrics-bench-") as tmp:
        root = Path(tmp)
        (root / "history").mkdir()
        if args.part in ("all", "sampler"):
            sampler(root, args)
        if args.part in ("all", "history"):
            asyncio.run(history_bench(root, args))


if __name__ == "__main__":
    main()
