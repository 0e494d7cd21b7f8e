"""SSH fan-in: one file followed on N hosts at once: time to every host's first line, loss, CPU.

How long until every host speaks, is any line lost, and what does it cost?

How: a throwaway sshd on 127.0.0.1 (its own host and client keys, as tests/sshd.py does), and an
ssh_config defining N aliases `pv-h1` .. `pv-hN` of it, so the N "hosts" are N ssh connections
to 127.0.0.1. A Perview config (`perview serve -c CONFIG --no-auth --port 0`) has
`[hosts.h1]` .. `[hosts.hN]` (`ssh = "pv-hK"`, `ssh_args = ["-F", SSH_CONFIG]`) and one source
`file = LOG` with `hosts = ["h1", ...]`: each far side runs `tail -n 10 -F LOG` on this machine.
LOG holds one line before the viewer comes, so every host starts with that backlog line.

A trial: open the SSE stream (`/api/events?source=fanin&backlog=0`, read with a plain socket)
and stamp the request; note when each host's first line of LOG arrives (time to first line from
all hosts = the slowest host; ssh's own messages, which reach the stream as lines of their host
since stderr is part of a source's output, do not count and are counted apart). Then a writer
process appends `--lines` numbered lines at `--rate` lines/s (`_common.APPENDER`, each stamped
with CLOCK_MONOTONIC) and every host must deliver each exactly once: lost and duplicated lines
are counted per host, and each line's delivery lag is arrival - write. CPU, to connect (request
to the last first line, in CPU-seconds) and while streaming (writer start to the last line from
every host, as % of one core), in three parts: the Perview server process; its descendants
(guards, ssh clients) plus any ssh ControlMaster not below it; sshd with all its descendants
(the far sides: sessions, sh, tail). The viewer then leaves, the source stops, and the next
trial begins. ssh failures that Perview retries show up as `waiting` states; they are counted,
and so are sshd's "past MaxStartups" drops (from its log).

Twice: without ControlMaster, then with `ControlMaster auto`, `ControlPersist 60` (trial 1 is
cold: it creates the masters; later trials reuse them). ControlPath is per alias (`cm-%n`) by
default: `%C` hashes host name, port and user, the same for every alias here, so `cm-%C` would
put all N "hosts" on ONE master connection (`--control-path shared` shows that), unlike N real
hosts. Masters are stopped (`ssh -O exit`, then SIGTERM) before each cold trial and at the end;
this script is a child subreaper, so orphaned masters become its children and it reaps them.

Baselines, same run: (1) the same with one host (one connection): the N-host / 1-host ratios;
(2) before each Perview trial, the very ssh commands Perview runs (perview.sources.ssh.ssh_argv)
started here directly, all at once, each stdout a pipe: time to first line from all, without
Perview (its stdin is then closed, which stops the far side as Perview does).

sshd's MaxStartups (default 10:30:100: beyond 10 unauthenticated connections it drops 30% or
more of new ones) throttles N simultaneous connections from one client, where N real hosts would
each have their own sshd. So this sshd has MaxStartups and MaxSessions 200 (as tests/sshd.py)
unless `--sshd-defaults`, which shows the throttling. And the far-side login shell does not read
~/.bashrc (sshd `SetEnv SHLVL=1`; bash reads it for ssh commands only at level 1): here root's
runs `pyenv init`, which adds about 0.1 s to every session; `--login-rc` keeps it.

    python bench/ssh_fanin.py [--hosts 20] [--lines 200] [--rate 100] [--trials 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from _common import (
    APPENDED,
    STOP_TIMEOUT,
    ConfigServer,
    LoopbackSshd,
    RawStream,
    cpu_seconds,
    descendants_cpu_seconds,
    machine_cpu,
    percentile,
    ratio,
    serve_config,
    start_appender,
    stop_process,
)

from perview.sources.remote_file import follow_file_command
from perview.sources.ssh import ssh_argv

SOURCE = "fanin"
BACKLOG = 10  # what Perview asks the far-side tail for (config.DEFAULT_FILE_LINES)
DRAIN = 10.0  # seconds past the writer's last line for every host to deliver it
STOP_LIMIT = 15.0  # for the source to stop after the viewer leaves
FAR_SIDE_LIMIT = 5.0  # for far-side processes to end by themselves (the watcher sleeps 1 s)
PR_SET_CHILD_SUBREAPER = 36
MODES = ("plain", "cm")
MODE_TITLE = {"plain": "no ControlMaster", "cm": "ControlMaster"}
PARTS = ("total", "server", "ssh", "far")  # CPU figures, see Measure
PART_TITLE = {
    "server": "Perview server process",
    "ssh": "guards, ssh clients, masters",
    "far": "sshd side (far sessions)",
}


# -- the loopback sshd -------------------------------------------------------------------------


class Sshd(LoopbackSshd):
    """The loopback sshd with what a fan-in measurement needs: `config(mode)` is the ssh_config
    for the aliases (mode "cm": with ControlMaster), sshd logs the connections it drops, and
    the ControlMasters and far sides it leaves are cleaned up."""

    def __init__(self, home: Path, aliases: int, args: argparse.Namespace) -> None:
        options = "" if args.sshd_defaults else "MaxStartups 200\nMaxSessions 200\n"
        options += "" if args.login_rc else "SetEnv SHLVL=1\n"
        options += "LogLevel VERBOSE\n"  # VERBOSE: sshd logs each connection it drops
        super().__init__(home, aliases, options)
        self.control_dir = home / "cm"
        self.control_dir.mkdir()
        path = "cm-%C" if args.control_path == "shared" else "cm-%n"
        master = (
            f"  ControlMaster auto\n  ControlPath {self.control_dir}/{path}\n  ControlPersist 60\n"
        )
        self.configs = {"plain": self.config, "cm": self.client_config("ssh_config_cm", master)}

    def mode_config(self, mode: str) -> Path:
        return self.configs[mode]

    def drops(self) -> int:
        """Connections sshd dropped so far for MaxStartups."""
        return self.log_text().count("past MaxStartups")  # `drop connection #N ... past ...`

    def masters(self) -> list[Any]:
        """The live ControlMaster processes of our control directory (psutil.Process)."""
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            with contextlib.suppress(psutil.Error):
                line = " ".join(proc.info["cmdline"] or ())
                ours = str(self.control_dir) in line and "[mux]" in line
                if ours and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    found.append(proc)
        return found

    def stop_masters(self) -> None:
        """`ssh -O exit` per alias, then SIGTERM whatever master is left; reap our children."""
        if self.masters():
            for alias in self.aliases:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    subprocess.run(
                        ["ssh", "-F", str(self.configs["cm"]), "-O", "exit", alias],
                        capture_output=True,
                        timeout=5,
                    )
        kill_matching(self.masters, STOP_TIMEOUT)

    def wait_far_sides(self, marker: str) -> None:
        """Wait for the far-side processes (their command line names `marker`, our temporary
        directory) to end by themselves, then kill what is left."""

        def far_sides() -> list[Any]:
            found = []
            for proc in psutil.process_iter(["cmdline", "status"]):
                with contextlib.suppress(psutil.Error):
                    line = " ".join(proc.info["cmdline"] or ())
                    if marker in line and proc.info["status"] != psutil.STATUS_ZOMBIE:
                        found.append(proc)
            return [p for p in found if p.pid not in (os.getpid(), self.proc.pid)]

        deadline = time.monotonic() + FAR_SIDE_LIMIT
        while far_sides() and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_matching(far_sides, STOP_TIMEOUT)

    def stop(self) -> None:
        super().stop()
        reap_children()  # this script is a subreaper: orphaned sessions come back to it


def kill_matching(find: Callable[[], list[Any]], limit: float) -> None:
    """SIGTERM what `find` returns until it returns nothing (SIGKILL in the last 2 s); reap."""
    deadline = time.monotonic() + limit
    while (left := find()) and time.monotonic() < deadline:
        late = time.monotonic() > deadline - 2
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL if late else signal.SIGTERM)
        time.sleep(0.05)
        reap_children()
    reap_children()


@contextlib.contextmanager
def loopback_sshd(home: Path, aliases: int, args: argparse.Namespace) -> Iterator[Sshd]:
    sshd = Sshd(home, aliases, args)
    try:
        yield sshd
    finally:
        try:
            sshd.stop_masters()
            sshd.wait_far_sides(str(home.parent))
        finally:
            sshd.stop()


def set_subreaper(on: bool) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap_children() -> None:
    """Reap our zombie children (orphans reparented to us: this process is a subreaper)."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)


# -- the baseline without Perview --------------------------------------------------------------


def direct_trial(
    sshd: Sshd, log: Path, aliases: list[str], mode: str, args: argparse.Namespace
) -> tuple[float | None, int]:
    """Perview's own ssh commands for `aliases`, started here at once: seconds until every one
    has printed its first line (None: not all did within --connect-timeout), and how many
    ended without printing anything (ssh failed: nothing retries here)."""
    config = ["-F", str(sshd.mode_config(mode))]
    command = follow_file_command(str(log), BACKLOG)
    start = time.monotonic_ns()
    procs = [
        subprocess.Popen(
            ssh_argv(alias, config, command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for alias in aliases
    ]
    waiting = {proc.stdout.fileno(): proc for proc in procs if proc.stdout is not None}
    last = None
    failed = 0
    try:
        deadline = time.monotonic() + args.connect_timeout
        while waiting and (left := deadline - time.monotonic()) > 0:
            for fd in select.select(list(waiting), [], [], left)[0]:
                if os.read(fd, 65536):
                    last = time.monotonic_ns()
                else:
                    failed += 1  # EOF before any output
                del waiting[fd]
    finally:
        for proc in procs:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the far side stops, as it does for Perview
        for proc in procs:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
            assert proc.stdout is not None
            proc.stdout.close()
    done = not waiting and not failed and last is not None
    return ((last - start) / 1e9 if done and last is not None else None), failed


# -- one viewer, N hosts -----------------------------------------------------------------------


# The line LOG holds before the viewer comes: every far-side tail starts with it.
BACKLOG_LINE = b"backlog line written before the viewer came"


@dataclass
class HostTally:
    first_ns: int | None = None  # when its first line of LOG arrived (not an ssh message)
    other: int = 0  # lines not from LOG: ssh's own messages (stderr is part of the output)
    seqs: set[int] = field(default_factory=set)
    dups: int = 0
    lags: list[float] = field(default_factory=list)


class Tally:
    """The SSE stream of one trial, per host."""

    def __init__(self, hosts: list[str], first: int, count: int) -> None:
        self.hosts = {name: HostTally() for name in hosts}
        self.only = hosts[0] if len(hosts) == 1 else None  # one host: lines carry no part
        self.first, self.count = first, count
        self.waiting: list[str] = []  # reasons of `waiting` states (ssh failed; retrying)
        self.unknown = 0
        self.buffer = b""

    def feed(self, at: int, data: bytes) -> None:
        self.buffer += data
        *events, self.buffer = self.buffer.split(b"\n\n")
        for event in events:
            self.event(at, event)

    def event(self, at: int, event: bytes) -> None:
        lines = event.split(b"\n")
        data = [line[6:] for line in lines if line.startswith(b"data: ")]
        if lines[0] == b"event: lines":
            name = json.loads(data[0]).get("part", self.only)
            host = self.hosts.get(name)
            if host is None:
                self.unknown += len(data) - 1
                return
            for line in data[1:]:
                found = APPENDED.match(line)
                if found is None and line != BACKLOG_LINE:
                    host.other += 1
                    continue
                if host.first_ns is None:
                    host.first_ns = at
                if found is None:
                    continue
                seq = int(found[1])
                if not self.first <= seq < self.first + self.count:
                    continue  # an earlier trial's line, in a far tail's backlog
                if seq in host.seqs:
                    host.dups += 1
                else:
                    host.seqs.add(seq)
                    host.lags.append((at - int(found[2])) / 1e9)
        elif lines[0] == b"event: state":
            state = json.loads(data[0])
            if state["state"] == "waiting" and not state.get("history"):
                self.waiting.append(str(state["reason"]))

    def all_first(self) -> bool:
        return all(h.first_ns is not None for h in self.hosts.values())

    def all_lines(self) -> bool:
        return all(len(h.seqs) == self.count for h in self.hosts.values())


def read_until(stream: RawStream, tally: Tally, done: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not done() and (left := deadline - time.monotonic()) > 0:
        at, data = stream.read(min(left, 0.2))
        tally.feed(at, data)


class Measure:
    """CPU seconds of everything the traffic goes through: the Perview server process; its
    descendants plus ControlMasters outside them (the ssh side); sshd and its descendants."""

    def __init__(self, server: ConfigServer, sshd: Sshd) -> None:
        self.server, self.sshd = server, sshd

    def cpu(self) -> dict[str, float]:
        parts = dict.fromkeys(PARTS, 0.0)
        below: set[int] = set()
        with contextlib.suppress(psutil.Error):
            parts["server"] = cpu_seconds(self.server.ps)
            parts["ssh"] = descendants_cpu_seconds(self.server.ps)
            below = {p.pid for p in self.server.ps.children(recursive=True)}
        for master in self.sshd.masters():
            if master.pid not in below:
                with contextlib.suppress(psutil.Error):
                    parts["ssh"] += cpu_seconds(master)
        with contextlib.suppress(psutil.Error):
            parts["far"] = cpu_seconds(self.sshd.ps) + descendants_cpu_seconds(self.sshd.ps)
        parts["total"] = parts["server"] + parts["ssh"] + parts["far"]
        return parts


@dataclass
class Trial:
    direct: float | None  # the baseline: Perview's ssh commands started here, first line from all
    direct_failed: int  # of those ssh commands, how many failed (no retry there)
    first_all: float | None  # seconds from the request to the last host's first line
    first_each: list[float]  # seconds, per host that spoke
    lost: int
    hosts_lost: int
    dups: int
    unknown: int
    other: int  # lines that were not from LOG (ssh's messages)
    lags: list[float]
    waiting: list[str]
    drops: int  # sshd MaxStartups drops during the Perview trial
    cpu_connect: dict[str, float]  # CPU seconds from the request to the last first line
    cpu_stream: dict[str, float]  # CPU seconds while streaming
    stream_wall: float  # seconds of that streaming period
    masters: int  # ControlMaster processes alive at the end of the trial


def trial(
    server: ConfigServer, sshd: Sshd, log: Path, hosts: list[str], args: argparse.Namespace, n: int
) -> Trial:
    info = server.wait_source(lambda s: s["viewers"] == 0 and s["state"] != "running", STOP_LIMIT)
    if info["viewers"] != 0 or info["state"] == "running":
        raise RuntimeError(f"the source did not stop after the last viewer left: {info}")
    first = (n + 1) * 1_000_000
    tally = Tally(hosts, first, args.lines)
    measure = Measure(server, sshd)
    drops, cpu0 = sshd.drops(), measure.cpu()
    stream = RawStream(server.port, f"/api/events?source={SOURCE}&backlog=0")
    writer = None
    try:
        read_until(stream, tally, tally.all_first, args.connect_timeout)
        cpu1 = measure.cpu()
        began = time.monotonic()
        writer = start_appender(log, args.rate, args.lines, first, args.size)
        read_until(stream, tally, tally.all_lines, args.lines / args.rate + DRAIN)
        cpu2, wall = measure.cpu(), time.monotonic() - began
        writer.wait(DRAIN)
    finally:
        if writer is not None:
            stop_process(writer)
        stream.close()
    arrivals = [h.first_ns for h in tally.hosts.values()]
    first_each = [(at - stream.sent_ns) / 1e9 for at in arrivals if at is not None]
    lost = [args.lines - len(h.seqs) for h in tally.hosts.values()]
    return Trial(
        direct=None,
        direct_failed=0,
        first_all=max(first_each) if tally.all_first() else None,
        first_each=first_each,
        lost=sum(lost),
        hosts_lost=sum(x > 0 for x in lost),
        dups=sum(h.dups for h in tally.hosts.values()),
        unknown=tally.unknown,
        other=sum(h.other for h in tally.hosts.values()),
        lags=[lag for h in tally.hosts.values() for lag in h.lags],
        waiting=tally.waiting,
        drops=sshd.drops() - drops,
        cpu_connect={k: cpu1[k] - cpu0[k] for k in PARTS},
        cpu_stream={k: cpu2[k] - cpu1[k] for k in PARTS},
        stream_wall=wall,
        masters=len(sshd.masters()),
    )


def configuration(
    sshd: Sshd, tmp: Path, mode: str, count: int, args: argparse.Namespace
) -> list[Trial]:
    """One server whose source follows a fresh log on `count` hosts; `args.trials` trials, each
    after a direct-ssh baseline trial. With ControlMaster, trial 1 of each starts without any."""
    hosts = [f"h{k}" for k in range(1, count + 1)]
    log = tmp / f"app-{mode}-{count}.log"
    log.write_bytes(BACKLOG_LINE + b"\n")
    config = tmp / f"perview-{mode}-{count}.toml"
    tables = "".join(
        f'[hosts.{name}]\nssh = "{sshd.aliases[k]}"\n'
        f'ssh_args = ["-F", "{sshd.mode_config(mode)}"]\n\n'
        for k, name in enumerate(hosts)
    )
    names = ", ".join(f'"{name}"' for name in hosts)
    config.write_text(tables + f'[sources.{SOURCE}]\nfile = "{log}"\nhosts = [{names}]\n')
    trials = []
    with serve_config(config, SOURCE) as server:
        for n in range(args.trials):
            cold = mode == "cm" and n == 0
            if cold:
                sshd.stop_masters()
            direct, failed = direct_trial(sshd, log, sshd.aliases[:count], mode, args)
            if cold:
                sshd.stop_masters()
            trials.append(trial(server, sshd, log, hosts, args, n))
            trials[-1].direct, trials[-1].direct_failed = direct, failed
            print(f"  {MODE_TITLE[mode]}, {count} host(s), trial {n + 1}: {brief(trials[-1])}")
    return trials


def brief(t: Trial) -> str:
    return (
        f"first line from all {ms(t.first_all)} ms (direct ssh {ms(t.direct)} ms, "
        f"{t.direct_failed} failed), lost {t.lost},"
        f" dups {t.dups}, retries {len(t.waiting)}, MaxStartups drops {t.drops}, "
        f"CPU streaming {streaming_cpu([t]):.1f} %"
    )


# -- the report --------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value * 1000:.0f}"


def median_of(values: list[float | None]) -> float | None:
    """Median of the trials that have a value (None if none do)."""
    done = [v for v in values if v is not None]
    return statistics.median(done) if done else None


def streaming_cpu(trials: list[Trial], part: str = "total") -> float:
    """% of one core over the trials' streaming periods together (CPU times are counted in
    10 ms ticks, so one short trial alone is coarse)."""
    return 100 * sum(t.cpu_stream[part] for t in trials) / sum(t.stream_wall for t in trials)


def split(mode: str, trials: list[Trial]) -> tuple[list[Trial], list[Trial]]:
    """(cold, warm) trials: with ControlMaster the first one creates the masters."""
    return (trials[:1], trials[1:]) if mode == "cm" else (trials, trials)


def report(results: dict[tuple[str, int], list[Trial]], args: argparse.Namespace) -> None:
    n = args.hosts
    columns = [(mode, count) for mode in MODES for count in (1, n)]
    heads = [f"{'plain' if m == 'plain' else 'CM'} {c}h" for m, c in columns]
    print(
        f"\nssh fan-in: {n} aliases of one loopback sshd, {args.lines} lines at {args.rate:g} "
        f"lines/s per trial, {args.trials} trials per column"
    )
    print(
        f"sshd MaxStartups/MaxSessions: {'defaults' if args.sshd_defaults else '200 (raised)'}; "
        f"far-side ~/.bashrc: {'read' if args.login_rc else 'skipped (SetEnv SHLVL=1)'}; "
        f"ControlPath: {'cm-%C (one master for all)' if args.control_path == 'shared' else 'cm-%n'}"
    )
    print(f"{'':<40}" + "".join(f"{h:>10}" for h in heads))

    def row(label: str, cell: Callable[[str, list[Trial]], str]) -> None:
        print(f"{label:<40}" + "".join(f"{cell(m, results[m, c]):>10}" for m, c in columns))

    def first_all(phase: int, direct: bool = False) -> Callable[[str, list[Trial]], str]:
        def cell(mode: str, trials: list[Trial]) -> str:
            if phase and mode != "cm":
                return ""
            chosen = split(mode, trials)[phase]
            return ms(median_of([t.direct if direct else t.first_all for t in chosen]))

        return cell

    def lags(q: float) -> Callable[[str, list[Trial]], str]:
        return lambda m, ts: f"{percentile([x for t in ts for x in t.lags], q) * 1000:.1f}"

    row("first line from all hosts, ms [1]", first_all(0))
    row("  direct ssh, no Perview, ms [1]", first_all(0, direct=True))
    row("  warm (masters exist), ms [1]", first_all(1))
    row("  warm, direct ssh, ms [1]", first_all(1, direct=True))
    row(
        "first line per host, median, ms [1]",
        lambda m, ts: ms(median_of([percentile(t.first_each, 50) for t in split(m, ts)[0]])),
    )
    row("trials without every host's line", lambda m, ts: str(sum(t.first_all is None for t in ts)))
    row("ssh retries (waiting states)", lambda m, ts: str(sum(len(t.waiting) for t in ts)))
    row("sshd MaxStartups drops", lambda m, ts: str(sum(t.drops for t in ts)))
    row("direct ssh commands that failed", lambda m, ts: str(sum(t.direct_failed for t in ts)))
    row("lines lost (all hosts, trials)", lambda m, ts: str(sum(t.lost for t in ts)))
    row("hosts x trials that lost any", lambda m, ts: str(sum(t.hosts_lost for t in ts)))
    row("ssh messages among the lines", lambda m, ts: str(sum(t.other for t in ts)))
    row(
        "duplicates / lines of unknown host",
        lambda m, ts: f"{sum(t.dups for t in ts)}/{sum(t.unknown for t in ts)}",
    )
    row("delivery lag p50, ms", lags(50))
    row("delivery lag p99, ms", lags(99))

    def cpu(kind: str, part: str) -> Callable[[str, list[Trial]], str]:
        def cell(mode: str, trials: list[Trial]) -> str:
            if kind == "stream":
                return f"{streaming_cpu(trials, part):.1f}"
            if kind == "warm" and mode != "cm":
                return ""
            chosen = split(mode, trials)[kind == "warm"]
            return ms(median_of([t.cpu_connect[part] for t in chosen]))

        return cell

    for kind, title in (
        ("connect", "CPU to connect, CPU-ms [2]"),
        ("warm", "  warm: CPU to connect, CPU-ms"),
        ("stream", "CPU streaming, % of a core [2]"),
    ):
        for part in PARTS if kind != "warm" else ("total", "server", "ssh"):
            label = title if part == "total" else f"  {PART_TITLE[part]}"
            row(label if kind != "warm" or part == "total" else f"  {label}", cpu(kind, part))
    row("ControlMaster processes after a trial", lambda m, ts: str(max(t.masters for t in ts)))
    print("[1] median over trials; with ControlMaster, the unmarked rows are trial 1 (cold: it")
    print("    creates the masters) and `warm` the median of the later trials")
    print("[2] connect: request to the last host's first line, median (CM: cold trial, and warm")
    print("    ones below); streaming: the writing periods of all trials together. Server, its")
    print("    descendants + ControlMasters, sshd + its descendants; % of one core")

    print(f"\nratio {n} hosts / 1 host (same run):")
    for mode in MODES:
        one, many = results[mode, 1], results[mode, n]
        parts = []
        for phase, index in (("cold", 0), ("warm", 1)) if mode == "cm" else (("", 0),):
            a = median_of([t.first_all for t in split(mode, many)[index]])
            b = median_of([t.first_all for t in split(mode, one)[index]])
            label = f"first line from all ({phase})" if phase else "first line from all"
            parts.append(f"{label} {ratio(a or 0.0, b or 0.0)}")
        a_cpu, b_cpu = streaming_cpu(many), streaming_cpu(one)
        parts.append(f"CPU streaming {ratio(a_cpu, b_cpu)}")
        print(f"  {MODE_TITLE[mode]:<18}" + ", ".join(parts))
    print("ratio Perview / direct ssh, first line from all (same trials):")
    for mode in MODES:
        cells = []
        for count in (1, n):
            trials = split(mode, results[mode, count])[0]
            ours = median_of([t.first_all for t in trials])
            base = median_of([t.direct for t in trials])
            cells.append(f"{count} host(s) {ratio(ours or 0.0, base or 0.0)}")
        print(f"  {MODE_TITLE[mode]:<18}" + ", ".join(cells) + (" (cold)" if mode == "cm" else ""))
    for (mode, count), trials in results.items():
        reasons = sorted({r for t in trials for r in t.waiting})
        for reason in reasons[:3]:
            print(f"  retry reason ({MODE_TITLE[mode]}, {count}h): {reason}")
    drops = sum(t.drops for ts in results.values() for t in ts)
    retries = sum(len(t.waiting) for ts in results.values() for t in ts)
    if drops or retries:
        print(
            f"note: sshd dropped {drops} connections past MaxStartups during Perview trials and "
            f"Perview retried ssh {retries} times (each retry waits 1 s first)"
        )
    lost = sum(t.lost + t.dups for ts in results.values() for t in ts)
    print("every host delivered every line exactly once: " + ("yes" if not lost else "NO"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=20, help="aliases of the one sshd")
    parser.add_argument("--lines", type=int, default=200, help="lines written per trial")
    parser.add_argument("--rate", type=float, default=100.0, help="lines per second")
    parser.add_argument("--size", type=int, default=100, help="bytes per line, newline included")
    parser.add_argument("--trials", type=int, default=3, help="per column (CM: 1 cold + warm)")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="per trial (s)")
    parser.add_argument(
        "--sshd-defaults",
        action="store_true",
        help="leave sshd's MaxStartups (10:30:100) and MaxSessions (10) at their defaults",
    )
    parser.add_argument(
        "--login-rc", action="store_true", help="let the far-side login shell read ~/.bashrc"
    )
    parser.add_argument(
        "--control-path",
        choices=("per-host", "shared"),
        default="per-host",
        help="ControlPath cm-%%n (one master per alias) or cm-%%C (one master for all)",
    )
    parser.add_argument("--quick", action="store_true", help="2 trials of 50 lines")
    args = parser.parse_args()
    if args.hosts < 2:
        parser.error("--hosts must be at least 2 (1 host is the baseline)")
    if args.quick:
        args.trials, args.lines = min(args.trials, 2), min(args.lines, 50)
    args.trials = max(args.trials, 2)  # CM needs a cold and a warm trial

    set_subreaper(True)
    results: dict[tuple[str, int], list[Trial]] = {}
    busy0, total0 = machine_cpu()
    try:
        with tempfile.TemporaryDirectory(prefix="perview-fanin-") as name:
            tmp = Path(name)
            home = tmp / "sshd"
            home.mkdir()
            with loopback_sshd(home, args.hosts, args) as sshd:
                for mode in MODES:
                    for count in (1, args.hosts):
                        results[mode, count] = configuration(sshd, tmp, mode, count, args)
    finally:
        reap_children()
    busy1, total1 = machine_cpu()
    report(results, args)
    busy = 100 * (busy1 - busy0) / (total1 - total0)
    print(
        f"machine busy over the run, this benchmark included: {busy:.0f} % "
        f"of {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
