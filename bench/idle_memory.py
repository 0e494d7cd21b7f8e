"""Idle viewers: server memory per connected viewer of a quiet source.

How: `perview run` serves a source that prints one line and then sleeps. A separate client
process (bench/_viewers.py: asyncio + aiohttp) opens one SSE viewer, then K - 1 more; each time,
once /api/sources shows them all and the server has settled, psutil reads the server's RSS and
open file descriptors. Both processes get RLIMIT_NOFILE raised to the hard limit (or
--server-nofile); a server that runs out of descriptors shows up as failed viewers, reported with
the server's own log.

Baseline, same run and same server: RSS with one viewer. Figure: (RSS_K - RSS_1) / (K - 1).

Target: under 50 KB per idle viewer.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import psutil  # type: ignore[import-untyped]
from _common import VIEWERS, Helper, Server, raise_nofile, serve

COMMAND = ["sh", "-c", "echo up; sleep 300"]
TARGET_KB = 50.0
CONNECT_TIMEOUT = 20.0  # per viewer, in the client


def settle_and_measure(server: Server, seconds: float) -> tuple[int, int]:
    """The server's RSS (median of a few reads after `seconds`) and its open fds."""
    time.sleep(seconds)
    samples = []
    for _ in range(5):
        samples.append(server.ps.memory_info().rss)
        time.sleep(0.1)
    return sorted(samples)[2], server.ps.num_fds()


def connect(client: Helper, server: Server, add: int, total: int) -> tuple[int, str | None]:
    """Open `add` more viewers; (viewers connected, None if all `total` are, else the problem)."""
    client.send(f"open {add}")
    opened = client.expect("opened ", CONNECT_TIMEOUT + 10)
    info = server.wait_source(lambda s: s["viewers"] >= total, 10.0)
    if opened is None:
        return info["viewers"], f"the client was not done connecting; server: {info['viewers']}"
    connected, failed = (int(n) for n in opened.split())
    if connected == total == info["viewers"]:
        return total, None
    said = f"{info['viewers']} viewers" if info["viewers"] >= 0 else info["state"]
    return connected, f"the client connected {connected}, failed {failed}; /api/sources: {said}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=1000, help="idle viewers K")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--server-nofile", type=int, help="the server's fd limit (default: hard)")
    parser.add_argument("--quick", action="store_true", help="200 viewers, 1 s settle")
    args = parser.parse_args()
    if args.quick:
        args.viewers, args.settle = min(args.viewers, 200), 1.0
    k = max(args.viewers, 2)
    raise_nofile()

    with serve(COMMAND) as server:
        if args.server_nofile:
            server.ps.rlimit(psutil.RLIMIT_NOFILE, (args.server_nofile, args.server_nofile))
        nofile = server.ps.rlimit(psutil.RLIMIT_NOFILE)
        port, timeout = str(server.port), str(CONNECT_TIMEOUT)
        client = Helper(
            [sys.executable, str(VIEWERS), "--port", port, "--connect-timeout", timeout]
        )
        try:
            seen, problem = connect(client, server, 1, 1)
            if problem:
                raise RuntimeError(f"one viewer: {problem}\n{server.stderr_tail()}")
            rss_1, fds_1 = settle_and_measure(server, args.settle)
            seen, problem = connect(client, server, k - 1, k)
            rss_k, fds_k = settle_and_measure(server, args.settle)
            client_fds = client.ps.num_fds()
        finally:
            client.close()
            log = server.stderr()

    print(f"\nidle viewers: server memory, 1 viewer then {k} (SSE, quiet source)")
    ours = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"fd limits (soft, hard): server {nofile}, this process and the client {ours}")
    print(f"{'':<28}{'1 viewer':>12}{f'{seen} viewers':>16}")
    print(f"{'server RSS (MB)':<28}{rss_1 / 2**20:>12.1f}{rss_k / 2**20:>16.1f}")
    print(f"{'server open fds':<28}{fds_1:>12}{fds_k:>16}")
    print(f"client open fds: {client_fds}")
    if problem:
        print(f"NOT ALL {k} VIEWERS CONNECTED: {problem}")
        emfile = [line for line in log.splitlines() if "Too many open files" in line]
        if emfile:
            print(f"the server ran out of file descriptors (soft limit {nofile[0]}):")
            print(f"  {len(emfile)} log lines like: {emfile[0].strip()}")
        print("server log (tail):\n" + "\n".join(log.splitlines()[-8:]))
    per_viewer = (rss_k - rss_1) / max(seen - 1, 1) / 1024
    print(f"RSS per idle viewer: {per_viewer:.1f} KB over {seen - 1} viewers")
    print(f"ratio to the {TARGET_KB:.0f} KB target: {per_viewer / TARGET_KB:.2f}")
    met = per_viewer < TARGET_KB and not problem
    print(f"target: < {TARGET_KB:.0f} KB per idle viewer: " + ("met" if met else "MISSED"))


if __name__ == "__main__":
    main()
