"""SSH fan-in: one source on N hosts (time to every host's first line, loss, CPU), and the far
side's cost of charting N hosts' system metrics.

The N "hosts" are N aliases `pv-h1` .. `pv-hN` of one throwaway sshd on 127.0.0.1
(testbed/sshd.py), so each is an ssh connection of its own to this machine. That sshd has
MaxStartups and MaxSessions raised to 200 (the defaults, 10:30:100 and 10, throttle N
simultaneous connections from one client, where N real hosts would each have their own sshd;
`--sshd-defaults` shows that), and the far login shell skips ~/.bashrc (`SetEnv SHLVL=1`: here
root's runs `pyenv init`, about 0.1 s per session).

1. Fan-in. `perview serve` with `[hosts.hK]` (`ssh = "pv-hK"`) and one source `file = LOG` with
`hosts = ["h1", ...]`, started afresh for each trial. A trial: first the baseline, the very ssh
commands Perview runs (ssh.ssh_argv, follow_file_command) started here directly, all at once,
until each printed its first line of LOG; then a viewer opens the SSE stream and the time until
every host's first line of LOG is taken; then `--lines` numbered lines are appended at `--rate`
lines/s, and every host must deliver each exactly once (lost and duplicated lines are counted,
and each line's lag). CPU while streaming: the server process; its descendants (the guard, ssh
clients); the far side (sshd and everything below it). The target (issue 17): first line from
all within 1.5 times the direct baseline, nothing lost or duplicated.

2. Far-side metrics. CPU of everything below the sshd over `--window` seconds while N sessions
sample every `--every` seconds, per host, in % of one core: "before", the loop Perview ran
until now (cat, df and sleep per sample, OLD_LOOP) over ssh started here; "after", today's loop
(collect.remote_script, clocked by a newline per sample) over ssh started here, which also
counts our reads per snapshot; and "Perview", a server charting the N hosts (`metrics = true`).
The target: under 0.1 % of a core per host, one read per snapshot.

    python bench/ssh_fanin.py [--hosts 20] [--lines 200] [--rate 100] [--trials 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    APPENDED,
    ConfigServer,
    LoopbackSshd,
    RawStream,
    cpu_seconds,
    descendants_cpu_seconds,
    percentile,
    ratio,
    serve_config,
    start_appender,
    stop_process,
    stop_processes,
)

from perview.metrics.collect import END_LINE, remote_script
from perview.sources.remote_file import follow_file_command
from perview.sources.ssh import ssh_argv

SOURCE = "fanin"
BACKLOG = 10  # what Perview asks the far-side tail for (config.DEFAULT_FILE_LINES)
DRAIN = 10.0  # seconds past the writer's last line for every host to deliver it
FAR_SIDE_LIMIT = 10.0  # for the far sessions of one phase to end before the next
SETTLE = 1.0  # seconds after a server starts before anything is measured
BACKLOG_LINE = b"a line written before the viewer came"  # in every far tail's backlog
SNAPSHOT_END = END_LINE[1:]  # old and new loops alike
# The far-side loop of Perview before this change (one cat per file, df and sleep per sample).
OLD_LOOP = (
    "while :; do echo @@stat; cat /proc/stat; echo @@loadavg; cat /proc/loadavg; "
    "echo @@meminfo; cat /proc/meminfo; echo @@net; cat /proc/net/dev; echo @@diskstats; "
    "cat /proc/diskstats; echo @@df; df -P -T -k; echo @@end; sleep {every:g}; done"
)


def far_cpu(sshd: LoopbackSshd) -> float:
    """CPU seconds of sshd and everything below it, the reaped included."""
    return cpu_seconds(sshd.ps) + descendants_cpu_seconds(sshd.ps)


# -- 1. fan-in ---------------------------------------------------------------------------------


def direct_first_line(sshd: LoopbackSshd, log: Path, count: int, limit: float) -> float | None:
    """Perview's own ssh commands for `count` hosts, started here at once: seconds until every
    one printed its first line of the log (None if one failed or did not within `limit`)."""
    command = follow_file_command(str(log), BACKLOG)
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            ssh_argv(alias, ["-F", str(sshd.config)], command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for alias in sshd.aliases[:count]
    ]
    waiting = {proc.stdout.fileno(): b"" for proc in procs if proc.stdout is not None}
    last: float | None = None
    try:
        deadline = start + limit
        while waiting and (left := deadline - time.monotonic()) > 0:
            for fd in select.select(list(waiting), [], [], left)[0]:
                data = os.read(fd, 65536)
                if not data:
                    return None  # ssh ended without a line: nothing retries here
                # A line of the log, not just the far script's first words (its hello).
                waiting[fd] += data
                if BACKLOG_LINE in waiting[fd] or APPENDED.search(waiting[fd]):
                    last = time.monotonic()
                    del waiting[fd]
    finally:
        stop_processes(procs)  # their stdin closes first, which stops the far side
    return None if waiting or last is None else last - start


@dataclass
class Host:
    first_ns: int | None = None  # when its first line of LOG arrived
    seqs: set[int] = field(default_factory=set)
    dups: int = 0
    lags: list[float] = field(default_factory=list)


class Tally:
    """The SSE stream of one trial, per host."""

    def __init__(self, hosts: list[str], first: int, count: int) -> None:
        self.hosts = {name: Host() for name in hosts}
        self.first, self.count = first, count
        self.waiting = 0  # `waiting` states: ssh failed, Perview retries
        self.buffer = b""

    def feed(self, at: int, data: bytes) -> None:
        self.buffer += data
        *events, self.buffer = self.buffer.split(b"\n\n")
        for event in events:
            lines = event.split(b"\n")
            data_lines = [line[6:] for line in lines if line.startswith(b"data: ")]
            if lines[0] == b"event: lines":
                host = self.hosts.get(json.loads(data_lines[0]).get("part"))
                if host is not None:
                    self.lines(host, at, data_lines[1:])
            elif lines[0] == b"event: state" and b'"waiting"' in data_lines[0]:
                self.waiting += 1

    def lines(self, host: Host, at: int, lines: list[bytes]) -> None:
        for line in lines:
            found = APPENDED.match(line)
            if found is None and line != BACKLOG_LINE:
                continue  # not the log's (ssh says its own apart, so nothing should be here)
            if host.first_ns is None:
                host.first_ns = at
            if found is None or not self.first <= int(found[1]) < self.first + self.count:
                continue  # the backlog line, or an earlier trial's line in a far tail's backlog
            if int(found[1]) in host.seqs:
                host.dups += 1
            else:
                host.seqs.add(int(found[1]))
                host.lags.append((at - int(found[2])) / 1e9)

    def all_first(self) -> bool:
        return all(h.first_ns is not None for h in self.hosts.values())

    def all_lines(self) -> bool:
        return all(len(h.seqs) == self.count for h in self.hosts.values())


@dataclass
class Trial:
    direct: float | None  # seconds: the same ssh commands started directly, first line from all
    first_all: float | None  # seconds from the request to the last host's first line
    lost: int
    dups: int
    retries: int
    drops: int  # connections sshd dropped past MaxStartups
    lags: list[float]
    cpu: dict[str, float]  # CPU seconds while streaming: server, guard + ssh, far side
    wall: float  # seconds of that streaming


def read_until(stream: RawStream, tally: Tally, done: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not done() and (left := deadline - time.monotonic()) > 0:
        tally.feed(*stream.read(min(left, 0.2)))


def cpu_parts(server: ConfigServer, sshd: LoopbackSshd) -> dict[str, float]:
    return {
        "server": cpu_seconds(server.ps),
        "local": descendants_cpu_seconds(server.ps),
        "far": far_cpu(sshd),
    }


def trial(
    server: ConfigServer, sshd: LoopbackSshd, log: Path, args: argparse.Namespace, n: int
) -> Trial:
    time.sleep(SETTLE)  # the server's start-up done, its spare guard started
    direct = direct_first_line(sshd, log, args.hosts, args.connect_timeout)
    sshd.wait_no_sessions(FAR_SIDE_LIMIT)  # their far sides' ends must not slow Perview's start
    first = (n + 1) * 1_000_000
    tally = Tally([f"h{k}" for k in range(1, args.hosts + 1)], first, args.lines)
    drops = sshd.drops()
    stream = RawStream(server.port, f"/api/events?source={SOURCE}&backlog=0")
    writer = None
    try:
        read_until(stream, tally, tally.all_first, args.connect_timeout)
        cpu0, began = cpu_parts(server, sshd), time.monotonic()
        writer = start_appender(log, args.rate, args.lines, first, args.size)
        read_until(stream, tally, tally.all_lines, args.lines / args.rate + DRAIN)
        cpu1, wall = cpu_parts(server, sshd), time.monotonic() - began
    finally:
        if writer is not None:
            stop_process(writer)
        stream.close()
    firsts = [h.first_ns for h in tally.hosts.values() if h.first_ns is not None]
    return Trial(
        direct=direct,
        first_all=(max(firsts) - stream.sent_ns) / 1e9 if tally.all_first() else None,
        lost=sum(args.lines - len(h.seqs) for h in tally.hosts.values()),
        dups=sum(h.dups for h in tally.hosts.values()),
        retries=tally.waiting,
        drops=sshd.drops() - drops,
        lags=[lag for h in tally.hosts.values() for lag in h.lags],
        cpu={k: cpu1[k] - cpu0[k] for k in cpu0},
        wall=wall,
    )


def hosts_toml(sshd: LoopbackSshd, count: int, extra: str = "") -> str:
    return "".join(
        f'[hosts.h{k}]\nssh = "{sshd.alias(k)}"\nssh_args = ["-F", "{sshd.config}"]\n{extra}\n'
        for k in range(1, count + 1)
    )


def fan_in(sshd: LoopbackSshd, tmp: Path, args: argparse.Namespace) -> list[Trial]:
    log = tmp / "app.log"
    log.write_bytes(BACKLOG_LINE + b"\n")
    names = json.dumps([f"h{k}" for k in range(1, args.hosts + 1)])
    config = tmp / "fanin.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp / "data"}"\nsystem_metrics = false\n\n'
        + hosts_toml(sshd, args.hosts)
        + f'[sources.{SOURCE}]\nfile = "{log}"\nhosts = {names}\n'
    )
    trials = []
    for n in range(args.trials):
        # A server of its own each time: its far sides start the file afresh, as the direct
        # commands do (a source's next run resumes where the last one left the file).
        with serve_config(config, SOURCE) as server:
            trials.append(trial(server, sshd, log, args, n))
        t = trials[-1]
        print(
            f"  fan-in trial {n + 1}: first line from all {ms(t.first_all)} ms "
            f"(direct ssh {ms(t.direct)} ms), lost {t.lost}, dups {t.dups}, "
            f"retries {t.retries}, MaxStartups drops {t.drops}",
            flush=True,
        )
        sshd.wait_no_sessions(FAR_SIDE_LIMIT)
    return trials


# -- 2. far-side metrics -----------------------------------------------------------------------


@dataclass
class FarCost:
    per_host: float  # % of one core, far side, per host
    snapshots: int = 0  # snapshots read (directly started loops only)
    reads: int = 0  # our reads that took them


def direct_loops(sshd: LoopbackSshd, args: argparse.Namespace, old: bool) -> FarCost:
    """N sampling sessions over ssh started here (old: OLD_LOOP under the far-side watcher;
    else today's loop, sent a newline every `--every`), read for `--window` seconds."""
    every = args.every
    command = OLD_LOOP.format(every=every) if old else remote_script(every)
    procs = [
        subprocess.Popen(
            ssh_argv(alias, ["-F", str(sshd.config)], command, wrap=old),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for alias in sshd.aliases[: args.hosts]
    ]
    pipes = {p.stdout.fileno(): p for p in procs if p.stdout is not None}
    cost = FarCost(0.0)
    seen = {fd: b"" for fd in pipes}
    try:
        tick = time.monotonic()
        settle = tick + min(args.window, 5.0)  # sessions connected and sampling
        start: tuple[float, float] | None = None
        while start is None or time.monotonic() < start[0] + args.window:
            if not old and time.monotonic() >= tick:
                for proc in procs:
                    assert proc.stdin is not None
                    proc.stdin.write(b"\n")
                    proc.stdin.flush()
                tick += every
            if start is None and time.monotonic() >= settle:
                start, cost.snapshots, cost.reads = (time.monotonic(), far_cpu(sshd)), 0, 0
            for fd in select.select(list(pipes), [], [], 0.05)[0]:
                joined = seen[fd] + os.read(fd, 262144)
                cost.reads += 1
                cost.snapshots += joined.count(SNAPSHOT_END)
                seen[fd] = joined[1 - len(SNAPSHOT_END) :]  # an end cut between two reads
        wall = time.monotonic() - start[0]
        cost.per_host = 100 * (far_cpu(sshd) - start[1]) / wall / args.hosts
    finally:
        stop_processes(procs)
    sshd.wait_no_sessions(FAR_SIDE_LIMIT)
    return cost


def perview_metrics(sshd: LoopbackSshd, tmp: Path, args: argparse.Namespace) -> FarCost:
    """A server charting the N hosts: far-side CPU per host once every host has a cpu value."""
    config = tmp / "metrics.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp / "data"}"\nsystem_metrics = false\n'
        f'metrics_every = "{args.every:g}s"\n\n'
        + hosts_toml(sshd, args.hosts, "metrics = true\n")
        + '[sources.quiet]\ncommand = "sleep 3600"\n'
    )
    with serve_config(config, "quiet") as server:
        deadline = time.monotonic() + args.connect_timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(server.base + "/api/metrics", timeout=5) as answer:
                charted = {s["host"] for s in json.load(answer) if s["name"] == "cpu"}
            if len(charted) == args.hosts:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"only {len(charted)} of {args.hosts} hosts were charted")
        time.sleep(min(args.window, 5.0))
        cpu0, began = far_cpu(sshd), time.monotonic()
        time.sleep(args.window)
        per_host = 100 * (far_cpu(sshd) - cpu0) / (time.monotonic() - began) / args.hosts
    sshd.wait_no_sessions(FAR_SIDE_LIMIT)
    return FarCost(per_host)


# -- the report --------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def median(values: list[float | None]) -> float | None:
    done = [v for v in values if v is not None]
    return statistics.median(done) if done else None


def report(trials: list[Trial], far: dict[str, FarCost], args: argparse.Namespace) -> None:
    n = args.hosts
    ours, base = median([t.first_all for t in trials]), median([t.direct for t in trials])
    print(f"\nssh fan-in: {n} aliases of one loopback sshd, {args.trials} trials")
    print(
        "sshd MaxStartups/MaxSessions: "
        + ("defaults" if args.sshd_defaults else "200 (raised for the loopback test sshd)")
    )
    print(f"first line from all {n} hosts, median:  {ms(ours)} ms")
    print(f"  the same ssh commands started directly:  {ms(base)} ms")
    print(f"  ratio Perview / direct ssh:  {ratio(ours or 0.0, base or 0.0)} (target <= 1.5)")
    print(f"  trials where some host never spoke: {sum(t.first_all is None for t in trials)}")
    lost, dups = sum(t.lost for t in trials), sum(t.dups for t in trials)
    print(f"lines: {args.lines} per host per trial at {args.rate:g}/s; lost {lost}, dups {dups}")
    lags = [x for t in trials for x in t.lags]
    if lags:
        p50, p99 = percentile(lags, 50) * 1000, percentile(lags, 99) * 1000
        print(f"  delivery lag p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(
        f"ssh retries (waiting states) {sum(t.retries for t in trials)}, "
        f"sshd MaxStartups drops {sum(t.drops for t in trials)}"
    )
    wall = sum(t.wall for t in trials)
    cpu = {k: 100 * sum(t.cpu[k] for t in trials) / wall for k in trials[0].cpu}
    print(
        f"CPU while streaming, % of one core: server {cpu['server']:.1f}, guard + ssh clients "
        f"{cpu['local']:.1f}, far side (sshd and below) {cpu['far']:.1f}"
    )
    print(f"\nfar-side metrics, every {args.every:g} s, {args.window:g} s, % of one core per host:")
    for name, title in (
        ("before", "before (cat, df, sleep a sample)"),
        ("after", "today's loop over ssh"),
        ("perview", "Perview charting the hosts"),
    ):
        cost = far[name]
        # Only today's loop waits to be asked; the old one's snapshots pile up between reads.
        reads = f", {cost.reads / cost.snapshots:.2f} reads a snapshot" if name == "after" else ""
        print(f"  {title:<34} {cost.per_host:.3f} %{reads}")
    print(
        f"  ratio today / before: {ratio(far['after'].per_host, far['before'].per_host)} "
        "(target: under 0.1 % a host)"
    )
    print("every host delivered every line exactly once: " + ("yes" if not lost + dups else "NO"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=20, help="aliases of the one sshd")
    parser.add_argument("--lines", type=int, default=200, help="lines written per trial")
    parser.add_argument("--rate", type=float, default=100.0, help="lines per second")
    parser.add_argument("--size", type=int, default=100, help="bytes per line, newline included")
    parser.add_argument("--trials", type=int, default=3, help="fan-in trials")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="per trial (s)")
    parser.add_argument("--every", type=float, default=1.0, help="metrics interval (s)")
    parser.add_argument("--window", type=float, default=20.0, help="metrics measured (s)")
    parser.add_argument(
        "--sshd-defaults", action="store_true", help="sshd's MaxStartups and MaxSessions"
    )
    parser.add_argument("--quick", action="store_true", help="2 trials of 50 lines, 10 s windows")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.lines, args.window = min(args.trials, 2), min(args.lines, 50), 10.0
    options = "" if args.sshd_defaults else "MaxStartups 200\nMaxSessions 200\n"
    options += "SetEnv SHLVL=1\nLogLevel VERBOSE\n"  # VERBOSE: sshd logs what it drops
    with tempfile.TemporaryDirectory(prefix="perview-fanin-") as name:
        tmp = Path(name)
        (tmp / "sshd").mkdir()
        sshd = LoopbackSshd(tmp / "sshd", args.hosts, options)
        try:
            print(f"load average at the start: {os.getloadavg()}", flush=True)
            trials = fan_in(sshd, tmp, args)
            far = {
                "before": direct_loops(sshd, args, old=True),
                "after": direct_loops(sshd, args, old=False),
                "perview": perview_metrics(sshd, tmp, args),
            }
            print(f"load average at the end: {os.getloadavg()}")
        finally:
            sshd.stop()
    report(trials, far, args)


if __name__ == "__main__":
    main()
