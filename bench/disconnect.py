"""Disconnect to dead process group: how long after the last viewer leaves is the command gone?

How: per trial, open the text stream of `perview run` with a raw socket, read the command's first
line ("up"), take its process-group id from /api/sources `pid`, close the socket, then poll
`os.killpg(pgid, 0)` every ~0.1 ms until ProcessLookupError. Zombies count as members, so
"gone" means killed *and* reaped. Two commands: a silent one (prints one line, then sleeps, with
a grandchild) and a chatty one (`yes`, flooding the pipe).

Baseline, interleaved trial by trial: the same command spawned here with start_new_session=True,
timed from `os.killpg(pgid, SIGTERM)` to the group gone, this process reaping (as a child
subreaper, like Perview's guard, so the orphaned grandchild is reaped too).

Target: p99 < 10 ms for the silent command.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence

import psutil  # type: ignore[import-untyped]
from _common import HOST, Server, ratio, serve, summary

COMMANDS = {
    "silent": ["sh", "-c", "echo up; sleep 300 & sleep 301; wait"],
    "chatty": ["sh", "-c", "echo up; yes"],
}
TARGET_P99 = 0.010
GONE_LIMIT = 5.0  # a group still alive after this is reported, not waited for
POLL = 0.0001
PR_SET_CHILD_SUBREAPER = 36


def set_subreaper(on: bool) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap_zombies() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def wait_gone(pgid: int, start: float, reap: bool) -> float | None:
    """Seconds from `start` until the group has no member; None if still there at GONE_LIMIT."""
    while True:
        if reap:
            reap_zombies()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return time.perf_counter() - start
        if time.perf_counter() - start > GONE_LIMIT:
            return None
        time.sleep(POLL)


def describe_group(pgid: int) -> str:
    members = []
    for proc in psutil.process_iter(["pid", "ppid", "status", "cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == pgid:
                info = proc.info
                members.append(
                    f"{info['pid']} ppid={info['ppid']} {info['status']} {info['cmdline']}"
                )
    return "; ".join(members) or "(no member found)"


def baseline_trial(command: Sequence[str]) -> float | None:
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    try:
        if not select.select([proc.stdout], [], [], 5.0)[0] or not proc.stdout.readline():
            raise RuntimeError("baseline command printed nothing within 5 s")
        start = time.perf_counter()
        os.killpg(proc.pid, signal.SIGTERM)
        elapsed = wait_gone(proc.pid, start, reap=True)
        if elapsed is None:
            print(f"  baseline group {proc.pid} alive after {GONE_LIMIT} s:")
            print(f"    {describe_group(proc.pid)}")
        return elapsed
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        proc.wait(5)  # already reaped above: Popen takes ECHILD as done


def perview_trial(server: Server) -> float | None:
    info = server.wait_source(lambda s: s["state"] != "running", 5.0)
    if info["state"] == "running":
        raise RuntimeError(f"previous run still running after 5 s: {info}")
    with socket.create_connection((HOST, server.port), timeout=5.0) as sock:
        sock.sendall(b"GET /api/sources/run/text HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        deadline = time.monotonic() + 5.0
        while b"up\n" not in received.partition(b"\r\n\r\n")[2]:
            if time.monotonic() > deadline or not (part := sock.recv(65536)):
                raise RuntimeError(f"no first line from the command: {received[:300]!r}")
            received += part
        info = server.source()
        pgid = info["pid"]
        if info["state"] != "running" or not pgid:
            raise RuntimeError(f"command not running: {info}")
        start = time.perf_counter()
        sock.close()
    elapsed = wait_gone(pgid, start, reap=False)
    if elapsed is None:
        print(f"  perview group {pgid} alive after {GONE_LIMIT} s: {describe_group(pgid)}")
    return elapsed


def report(name: str, how: str, values: list[float | None]) -> dict[str, float]:
    done = [v for v in values if v is not None]
    stats = summary(done)
    missing = len(values) - len(done)
    note = f"   ({missing} trials: group alive after {GONE_LIMIT:.0f} s)" if missing else ""
    cells = "".join(f"{stats[k] * 1000:>9.2f}" for k in ("median", "p99", "max"))
    print(f"{name:<8}{how:<10}{cells}{note}")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="trials per command and side")
    parser.add_argument("--quick", action="store_true", help="10 trials")
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    args = parser.parse_args()
    trials = 10 if args.quick else args.trials

    set_subreaper(True)
    results: dict[str, dict[str, list[float | None]]] = {}
    try:
        for name in args.commands:
            command = COMMANDS[name]
            results[name] = {"perview": [], "baseline": []}
            with serve(command) as server:
                for _ in range(trials):
                    results[name]["baseline"].append(baseline_trial(command))
                    results[name]["perview"].append(perview_trial(server))
    finally:
        reap_zombies()

    print(f"\ndisconnect -> process group gone, {trials} trials each (ms)")
    print(f"{'command':<8}{'side':<10}{'median':>9}{'p99':>9}{'max':>9}")
    for name, sides in results.items():
        ours = report(name, "perview", sides["perview"])
        base = report(name, "baseline", sides["baseline"])
        cells = "".join(f"{ratio(ours[k], base[k]):>9}" for k in ("median", "p99", "max"))
        print(f"{name:<8}{'ratio':<10}{cells}")
    if "silent" in results:
        p99 = summary([v for v in results["silent"]["perview"] if v is not None])["p99"]
        lost = any(v is None for v in results["silent"]["perview"])
        verdict = "met" if p99 < TARGET_P99 and not lost else "MISSED"
        print(f"target: silent p99 < {TARGET_P99 * 1000:.0f} ms: {verdict} ({p99 * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
