"""Benchmark client: many concurrent viewers of source `run`, in a process of their own.

Spoken to by lines. stdin: `open K` connects K more viewers; `quit` or EOF closes them all.
stdout: `opened CONNECTED FAILED` once those K have their response headers (or failed); `done`
when, with --lines M, every viewer has line M (or its stream ended); then `report {json}`.

With --lines M each viewer checks that it gets the numbers 1..M exactly once and in order
(lost, duplicated, gap events) and notes each line's delivery lag: when it was read from the
socket minus when the source was due to write it (t0 + (k - 1) / rate, t0 from --t0-file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _common import HOST, percentile, raise_nofile

CONNECTS_AT_ONCE = 100  # beyond this the server's listen backlog overflows and SYNs are retried


@dataclass
class Tally:
    """What one viewer received, against the numbers 1..M it should get."""

    expected: int = 1
    got: int = 0
    lost: int = 0
    dups: int = 0
    gaps: int = 0
    bad: int = 0
    done: bool = False
    batches: list[tuple[float, int, int]] = field(default_factory=list)  # arrival, first, last

    def take(self, nums: list[int]) -> None:
        """One delivery (one read from the socket): numbers in the order received."""
        if not nums:
            return
        first = self.expected
        if nums == list(range(first, first + len(nums))):  # the usual case, at C speed
            self.got += len(nums)
            self.expected += len(nums)
        else:
            for n in nums:
                if n < self.expected:
                    self.dups += 1
                    continue
                self.lost += n - self.expected
                self.got += 1
                self.expected = n + 1
        if self.expected > first:
            self.batches.append((time.time(), first, self.expected - 1))

    def lags(self, t0: float, rate: float) -> list[float]:
        """Per line delivered: arrival minus when the source was due to write it."""
        return [
            at - t0 - (k - 1) / rate
            for at, first, last in self.batches
            for k in range(first, last + 1)
        ]


def numbers(lines: list[bytes], tally: Tally) -> list[int]:
    try:
        return list(map(int, lines))
    except ValueError:
        good = [line for line in lines if line.isdigit()]
        tally.bad += len(lines) - len(good)
        return list(map(int, good))


def take_events(block: bytes, tally: Tally) -> None:
    """Complete SSE events (separated by blank lines)."""
    lines: list[bytes] = []
    for event in block.split(b"\n\n"):
        if event.startswith(b"event: lines\n"):
            parts = event.split(b"\ndata: ")  # [event, header, line, line, "line\nid: ..."]
            parts[-1] = parts[-1].partition(b"\n")[0]
            lines += parts[2:]
        elif event.startswith(b"event: gap\n"):
            tally.gaps += 1
        elif event.startswith(b"event: state\n"):
            state = json.loads(event.partition(b"data: ")[2])
            if not state["history"] and state["state"] in ("exited", "failed"):
                tally.done = True
    tally.take(numbers(lines, tally))


def take_text(block: bytes, tally: Tally) -> None:
    """Complete text lines; `[perview] N lines skipped` is a gap."""
    lines = block.split(b"\n")
    if b"[perview]" in block:
        tally.gaps += sum(line.startswith(b"[perview]") for line in lines)
        lines = [line for line in lines if not line.startswith(b"[perview]")]
    tally.take(numbers(lines, tally))


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url = f"http://{HOST}:{args.port}" + (
            "/api/sources/run/text" if args.text else "/api/events?source=run"
        )
        self.tallies: list[Tally] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.errors: list[str] = []
        self.connected = 0
        self.gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def connect(self, session: aiohttp.ClientSession) -> aiohttp.ClientResponse:
        async with self.gate:
            return await session.get(self.url)

    async def view(self, session: aiohttp.ClientSession, opened: asyncio.Future[bool]) -> None:
        tally = Tally()
        self.tallies.append(tally)
        separator, take = (b"\n", take_text) if self.args.text else (b"\n\n", take_events)
        try:
            response = await asyncio.wait_for(self.connect(session), self.args.connect_timeout)
            response.raise_for_status()
        except Exception as exc:
            self.errors.append(f"connect: {exc!r}")
            opened.set_result(False)
            return
        self.connected += 1
        opened.set_result(True)
        try:
            async with response:
                buffer = b""
                async for data in response.content.iter_any():
                    if not self.args.lines:
                        continue  # idle viewer: just keep the socket drained
                    buffer += data
                    cut = buffer.rfind(separator)
                    if cut >= 0:
                        take(buffer[:cut], tally)
                        buffer = buffer[cut + len(separator) :]
                    if tally.expected > self.args.lines or tally.done:
                        break
        except (aiohttp.ClientError, OSError) as exc:
            self.errors.append(f"stream: {exc!r}")
            return
        tally.done = True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[str] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(commands.put_nowait, line.strip())
            loop.call_soon_threadsafe(commands.put_nowait, "quit")

        threading.Thread(target=read_stdin, daemon=True).start()
        deadline = loop.time() + self.args.timeout
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=None)  # streams are long; our own bounds apply
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while (left := deadline - loop.time()) > 0:
                try:
                    command = await asyncio.wait_for(commands.get(), min(left, 0.05))
                except TimeoutError:
                    command = ""
                if command.startswith("open "):
                    futures = [loop.create_future() for _ in range(int(command.split()[1]))]
                    self.tasks += [asyncio.create_task(self.view(session, f)) for f in futures]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.gather(*futures), max(left, 1.0))
                    print(f"opened {self.connected} {len(self.errors)}", flush=True)
                elif command == "quit" or (self.args.lines and self.all_done()):
                    break
            print("done", flush=True)
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        print("report " + json.dumps(self.report()), flush=True)

    def all_done(self) -> bool:
        return bool(self.tasks) and all(task.done() for task in self.tasks)

    def report(self) -> dict[str, Any]:
        tallies, lines = self.tallies, self.args.lines
        for tally in tallies:  # lines never received at the end count as lost too
            tally.lost += max(0, lines + 1 - tally.expected) if lines else 0
        result: dict[str, Any] = {
            "viewers": len(tallies),
            "failed": len(self.errors),  # connections refused or streams cut
            "errors": sorted(set(self.errors))[:5],
            "received": sum(t.got for t in tallies),
            "lost": sum(t.lost for t in tallies),
            "viewers_lost": sum(t.lost > 0 for t in tallies),
            "dups": sum(t.dups for t in tallies),
            "gaps": sum(t.gaps for t in tallies),
            "bad": sum(t.bad for t in tallies),
            "unfinished": sum(not t.done for t in tallies),
        }
        if self.args.t0_file:
            with open(self.args.t0_file) as file:
                t0 = float(file.read())
            lags = [lag for t in tallies for lag in t.lags(t0, self.args.rate)]
            result["lag"] = {q: percentile(lags, p) for q, p in (("median", 50), ("p99", 99))}
            result["lag"]["max"] = max(lags, default=float("nan"))
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description="many viewers of one Perview source")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--text", action="store_true", help="text stream instead of SSE")
    parser.add_argument("--lines", type=int, default=0, help="expect lines 1..N (0: idle)")
    parser.add_argument("--rate", type=float, default=1000.0, help="the source's lines/s")
    parser.add_argument("--t0-file", help="where the source writes when line 1 was due")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after (s)")
    parser.add_argument("--connect-timeout", type=float, default=20.0, help="per viewer (s)")
    args = parser.parse_args()
    raise_nofile()
    asyncio.run(Client(args).run())


if __name__ == "__main__":
    main()
