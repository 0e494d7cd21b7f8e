"""Benchmark client: many concurrent viewers of source `run`, in a process of their own.

Spoken to by lines. stdin: `open K` connects K more viewers; `quit` or EOF closes them all.
stdout: `opened CONNECTED FAILED` once those K have their response headers (or failed); `done`
when, with --lines M, every viewer has line M (or its stream ended); then `report {json}`.

With --lines M each viewer checks that it gets the numbers 1..M exactly once and in order
(lost, duplicated, gap events) and notes each line's delivery lag: when it arrived minus when
the source was due to write it (t0 + (k - 1) / rate, t0 from --t0-file). "Arrived" is the
kernel's receive time of the socket's data (SO_TIMESTAMPNS, of the newest segment a read
returns, so a line in an older one is counted late, never early): what the server did, as long
as this process reads each socket before the server writes to it again. A read that finds two
of the server's writes stamps the older one's lines with the newer one's time (at 200 viewers of
1,000 lines/s, 5 ms late), and no read could do better: the kernel merges a segment into an
unread one before it and keeps the newer time (tcp_try_coalesce). The report counts such reads
(`merged_reads`). When the line was
read is the read lag, reported beside it (this process's turn at a core included; the only lag
of --aiohttp). The lags go into the report as histograms, so that the reports of several client
processes merge (`merge`) into percentiles over every line delivered.

So the client must be light: whatever CPU it takes is taken from the cores the server, the
source and its guard share, and a client that falls behind its sockets adds its own delay to the
delivery lag. Each viewer is a plain socket in one epoll set per process (`Poller`); a read is
one recvmsg of at most 64 KiB, its times noted and its data kept, and a search for the last
line: the chunked framing, the events and the numbers are decoded after the run, read by read,
as they would have been at once (`Stream.replay`). At 200 viewers of 1,000 lines/s this takes
7.6 to 8.2 µs of client CPU per read, about a quarter of a core, where decoding every read at
once with a loop callback per socket took 29 to 32 µs (a 256 KiB read buffer mapped and unmapped
each time included) and a full core, and an aiohttp response 45 to 53 µs (--aiohttp, kept for
comparison). The viewers of client process --client-index C connect from
127.0.(C + 1).(n // 100 + 1): the server admits at most 200 streams per client address by
default, and a thousand viewers on one machine stand for as many browsers on many.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import select
import socket
import struct
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _common import HOST, raise_nofile

CONNECTS_AT_ONCE = 100  # beyond this the server's listen backlog overflows and SYNs are retried
VIEWERS_PER_ADDRESS = 100  # half the server's default limit of streams per client address
MAX_HEAD = 64 * 1024  # bytes of a response head before we call it broken

# Linux's, not in Python's socket module: a receive timestamp (struct timespec, CLOCK_REALTIME)
# with every recvmsg.
SO_TIMESTAMPNS = 35
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)
# Below glibc's mmap threshold (128 KiB): a 256 KiB read buffer was mapped and unmapped at every
# recvmsg here, 11-13 µs of a read's 1.7 (measured with 200 streams' worth of heap in use).
READ_SIZE = 64 * 1024

# Lag histogram: 0.1 ms bins below 100 ms, 1 ms bins above (keys are in 0.1 ms units, the
# lower edge of the bin). Percentiles from it are good to half a bin.
FINE = 1e-4
COARSE_FROM = 1000  # in FINE units: 100 ms


@dataclass
class Tally:
    """What one viewer received, against the numbers 1..M it should get."""

    expected: int = 1
    got: int = 0
    lost: int = 0
    dups: int = 0
    gaps: int = 0
    skipped: int = 0  # lines the gap events said were skipped
    bad: int = 0
    chunks: int = 0  # HTTP chunks of the body: one per write of the server's
    merged: int = 0  # reads that brought the starts of two or more chunks (see the docstring)
    done: bool = False
    failed: bool = False
    # arrival, read, first, last
    batches: list[tuple[float, float, int, int]] = field(default_factory=list)

    def take(
        self, nums: list[int], arrived: float | None = None, read_at: float | None = None
    ) -> None:
        """One delivery (one read from the socket): numbers in the order received; `arrived`:
        when the kernel received them, `read_at`: when they were read (None, or NaN: now)."""
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
            now = time.time() if read_at is None else read_at
            at = now if arrived is None or math.isnan(arrived) else arrived
            self.batches.append((at, now, first, self.expected - 1))

    def lags(self, t0: float, rate: float, read: bool = False) -> Iterable[float]:
        """Per line delivered: arrival (or, `read`, reading) minus when the source was due to
        write it."""
        return (
            (at_read if read else at) - t0 - (k - 1) / rate
            for at, at_read, first, last in self.batches
            for k in range(first, last + 1)
        )

    @property
    def kept_up(self) -> bool:
        """Every line, once, in order, no gap, to the end."""
        return self.done and not (self.failed or self.lost or self.dups or self.gaps or self.bad)


def lag_bin(lag: float) -> int:
    key = math.floor(lag / FINE)
    return key if key < COARSE_FROM else key // 10 * 10


def hist_percentile(hist: dict[int, int], q: float) -> float:
    """The q-th percentile (0-100, nearest rank) of a lag histogram, in seconds (bin middle)."""
    total = sum(hist.values())
    if not total:
        return math.nan
    rank, seen = max(1, math.ceil(total * q / 100)), 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return (key + (0.5 if key < COARSE_FROM else 5)) * FINE
    raise AssertionError("unreachable")


SUMMED = (
    *(
        "viewers",
        "failed",
        "received",
        "deliveries",
        "chunks",
        "merged_reads",
        "lost",
        "skipped",
        "viewers_lost",
        "viewers_gapped",
    ),
    *("kept_up", "dups", "gaps", "bad", "unfinished"),
)


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The reports of several client processes as one: counts summed, lags over all lines."""
    merged: dict[str, Any] = {key: sum(r[key] for r in reports) for key in SUMMED}
    merged["errors"] = sorted({e for r in reports for e in r["errors"]})[:5]
    for name in ("lag", "read_lag"):
        if all(name + "_hist" in r for r in reports):
            hist: Counter[int] = Counter()
            for r in reports:
                hist.update({int(k): v for k, v in r[name + "_hist"].items()})
            merged[name] = {q: hist_percentile(hist, p) for q, p in (("median", 50), ("p99", 99))}
            merged[name]["max"] = max((r[name]["max"] for r in reports), default=math.nan)
    return merged


def numbers(lines: list[bytes], tally: Tally) -> list[int]:
    try:
        return list(map(int, lines))
    except ValueError:
        good = [line for line in lines if line.isdigit()]
        tally.bad += len(lines) - len(good)
        return list(map(int, good))


def take_events(
    block: bytes, tally: Tally, arrived: float | None = None, read_at: float | None = None
) -> None:
    """Complete SSE events (separated by blank lines)."""
    lines: list[bytes] = []
    for event in block.split(b"\n\n"):
        if event.startswith(b"event: lines\n"):
            parts = event.split(b"\ndata: ")  # [event, header, line, line, "line\nid: ..."]
            parts[-1] = parts[-1].partition(b"\n")[0]
            lines += parts[2:]
        elif event.startswith(b"event: gap\n"):
            tally.gaps += 1
            tally.skipped += json.loads(event.partition(b"data: ")[2].partition(b"\n")[0])["count"]
        elif event.startswith(b"event: state\n"):
            state = json.loads(event.partition(b"data: ")[2])
            if not state["history"] and state["state"] in ("exited", "failed"):
                tally.done = True
    tally.take(numbers(lines, tally), arrived, read_at)


def take_text(
    block: bytes, tally: Tally, arrived: float | None = None, read_at: float | None = None
) -> None:
    """Complete text lines; `[perview] N lines skipped` is a gap."""
    lines = block.split(b"\n")
    if b"[perview]" in block:
        notices = [line for line in lines if line.startswith(b"[perview]")]
        tally.gaps += len(notices)
        tally.skipped += sum(int(n.split()[1]) for n in notices if n.endswith(b"lines skipped"))
        lines = [line for line in lines if not line.startswith(b"[perview]")]
    tally.take(numbers(lines, tally), arrived, read_at)


class Stream:
    """One viewer on a plain socket read with recvmsg (for the kernel's receive time): sends the
    request, checks the response head, then keeps what each read brings, with its receive and
    read times, and decodes it all (chunked framing, events, numbers) only once the run is over
    (`replay`), exactly as if it had been decoded read by read. While streaming, a read costs one
    recvmsg and a search for the stream's last line, so that the client process takes as little
    of the cores the server needs as it can (see the module's docstring). `opened` resolves with
    the head, `ended` when the stream has its last line or the connection is gone."""

    def __init__(
        self,
        request: bytes,
        tally: Tally,
        lines: int,
        take: Callable[[bytes, Tally, float | None, float | None], None],
        separator: bytes,
        poller: Poller,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.request, self.tally, self.lines = request, tally, lines
        self.take, self.separator, self.poller = take, separator, poller
        self.opened: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[str | None] = loop.create_future()  # None, or the error
        self.sock: socket.socket | None = None
        self.head = b""
        self.raw = b""  # chunked framing not yet decoded (part of a size line)
        self.left = 0  # bytes of the current chunk still to come
        self.crlf = 0  # bytes of the CRLF closing a chunk still to skip
        self.last_chunk = False
        self.buffer = b""  # decoded, not yet a whole event
        # Reads kept for `replay`: the data, and when the kernel received it and we read it.
        self.reads: list[bytes] = []
        self.received = array("d")
        self.read_at = array("d")
        # The stream is done once its last line's event (or line) is in: the last line's bytes,
        # then the separator that closes its event. `tail` carries a search across reads.
        self.last = (b"\n%d\n" if separator == b"\n" else b"\ndata: %d\n") % lines
        self.last_seen = False
        self.tail = b""
        self.finished = False  # the last line's event is in (decoded or not)

    async def connect(self, server: tuple[str, int], local: str) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((local, 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock = sock
        await loop.sock_connect(sock, server)
        await loop.sock_sendall(sock, self.request)
        self.poller.add(sock, self)

    def readable(self) -> None:
        sock = self.sock
        assert sock is not None
        try:
            data, ancillary, _, _ = sock.recvmsg(READ_SIZE, TIMESTAMP_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.replay()
            self.connection_lost(exc)
            return
        read_at = time.time()
        if not data:
            self.replay()
            self.connection_lost(None)
            return
        arrived = math.nan
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                seconds, nanoseconds = struct.unpack("qq", value[:16])
                arrived = seconds + nanoseconds / 1e9
        if not self.opened.done():
            self.data_received(data, arrived, read_at)
        elif self.lines and not self.ended.done():
            self.reads.append(data)
            self.received.append(arrived)
            self.read_at.append(read_at)
            self._watch(data)
        # An idle viewer (no --lines) only keeps its socket drained.

    def _watch(self, data: bytes) -> None:
        """End the stream if `data` brings the close of its last line's event; decode what it
        has at once if it brings a state (a source that ended early ends the stream too)."""
        probe = self.tail + data if self.tail else data
        if not self.last_seen:
            at = probe.find(self.last)
            if at < 0:
                self.tail = probe[-len(self.last) + 1 :]
                if b"event: state" in probe:  # rare: at the start, and if the source ends early
                    self.replay()
                    if self.tally.done:
                        self._end(None)
                return
            self.last_seen = True
            probe = probe[at + len(self.last) - 1 :]  # from the last line's newline
        if self.separator in probe:
            self.finished = True
            self._end(None)
        else:
            self.tail = probe[-len(self.separator) + 1 :] if len(self.separator) > 1 else b""

    def replay(self) -> None:
        """Decode the reads kept so far, each as if just read (see the class's docstring)."""
        reads, received, read_at = self.reads, self.received, self.read_at
        self.reads, self.received, self.read_at = [], array("d"), array("d")
        for data, arrived, at in zip(reads, received, read_at, strict=True):
            self.decode(data, arrived, at)

    def data_received(self, data: bytes, arrived: float, read_at: float) -> None:
        """The response head, then the body: decoded at once (the head, and what comes with
        it)."""
        if not self.opened.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > MAX_HEAD:
                    self._fail("response head too long")
                return
            head, data = self.head[:end], self.head[end + 4 :]
            status = head.partition(b"\r\n")[0]
            if status.split(b" ")[1:2] != [b"200"]:
                self._fail(f"connect: {status.decode(errors='replace')}")
                return
            if b"transfer-encoding: chunked" not in head.lower():
                self._fail("the response is not chunked")
                return
            self.opened.set_result(None)
        if self.lines and data and not self.ended.done():
            self.decode(data, arrived, read_at)
            if self.tally.done:
                self._end(None)

    def decode(self, data: bytes, arrived: float, read_at: float) -> None:
        """One read's data into the tally (lines complete at this read count as received by
        the kernel at `arrived`, read at `read_at`)."""
        if self.tally.done:
            return  # what came after the last line is not counted (as if the stream had ended)
        chunks = self.tally.chunks
        self.buffer += self._dechunk(data)
        if self.tally.chunks - chunks > 1:
            self.tally.merged += 1
        cut = self.buffer.rfind(self.separator)
        if cut >= 0:
            self.take(self.buffer[:cut], self.tally, arrived, read_at)
            self.buffer = self.buffer[cut + len(self.separator) :]
        if self.tally.expected > self.lines or self.tally.done or self.last_chunk:
            self.tally.done = True

    def _dechunk(self, data: bytes) -> bytes:
        raw = self.raw + data if self.raw else data
        out: list[bytes] = []
        pos, size = 0, len(raw)
        while pos < size:
            if self.left:
                piece = raw[pos : pos + self.left]
                out.append(piece)
                pos += len(piece)
                self.left -= len(piece)
                if not self.left:
                    self.crlf = 2
            elif self.crlf:
                skip = min(self.crlf, size - pos)
                pos += skip
                self.crlf -= skip
            else:
                end = raw.find(b"\r\n", pos)
                if end < 0:
                    break
                self.left = int(raw[pos:end].partition(b";")[0], 16)
                self.tally.chunks += 1
                pos = end + 2
                if not self.left:
                    self.last_chunk = True
                    break
        self.raw = raw[pos:] if pos < size and not self.last_chunk else b""
        return b"".join(out)

    def _fail(self, error: str) -> None:
        self.tally.failed = True
        if not self.opened.done():
            self.opened.set_exception(RuntimeError(error))
        self._end(error)

    def _end(self, error: str | None) -> None:
        if not self.ended.done():
            self.ended.set_result(error)
        if self.sock is not None:
            self.poller.remove(self.sock)
            self.sock.close()
            self.sock = None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():  # the server hung up before we were done
            self._fail(f"stream: {exc!r}" if exc else "stream: closed before the last chunk")


class Poller:
    """The streams' sockets in one epoll set of our own, itself watched by the loop: one loop
    callback then reads every socket that is ready, where the loop's own reader per socket cost
    a callback handle and a dispatch each."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.streams: dict[int, Stream] = {}
        asyncio.get_running_loop().add_reader(self.epoll.fileno(), self.ready)

    def add(self, sock: socket.socket, stream: Stream) -> None:
        self.streams[sock.fileno()] = stream
        self.epoll.register(sock.fileno(), select.EPOLLIN)

    def remove(self, sock: socket.socket) -> None:
        if self.streams.pop(sock.fileno(), None) is not None:
            self.epoll.unregister(sock.fileno())

    def ready(self) -> None:
        streams = self.streams
        for fd, _ in self.epoll.poll(0):
            stream = streams.get(fd)
            if stream is not None:  # one read above may have ended another stream: not so
                stream.readable()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.epoll.fileno())
        self.epoll.close()


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.path = "/api/sources/run/text" if args.text else "/api/events?source=run"
        self.tallies: list[Tally] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.errors: list[str] = []
        self.connected = 0
        self.gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.streams: list[Stream] = []
        self.poller: Poller | None = None

    def address(self, n: int) -> str:
        """Where viewer n of this process connects from (see the module's docstring)."""
        return f"127.0.{self.args.client_index + 1}.{n // VIEWERS_PER_ADDRESS + 1}"

    async def view(self, n: int, opened: asyncio.Future[bool]) -> None:
        tally = Tally()
        self.tallies.append(tally)
        view = self.view_aiohttp if self.args.aiohttp else self.view_raw
        await view(self.address(n), tally, opened)

    def _failed(self, tally: Tally, opened: asyncio.Future[bool], error: str) -> None:
        self.errors.append(error)
        tally.failed = True
        if not opened.done():
            opened.set_result(False)

    async def view_raw(self, address: str, tally: Tally, opened: asyncio.Future[bool]) -> None:
        separator, take = (b"\n", take_text) if self.args.text else (b"\n\n", take_events)
        request = f"GET {self.path} HTTP/1.1\r\nHost: {HOST}:{self.args.port}\r\n\r\n".encode()
        if self.poller is None:
            self.poller = Poller()
        stream = Stream(request, tally, self.args.lines, take, separator, self.poller)
        self.streams.append(stream)

        async def connect() -> None:
            async with self.gate:
                await stream.connect((HOST, self.args.port), address)
                await stream.opened

        try:
            await asyncio.wait_for(connect(), self.args.connect_timeout)
        except Exception as exc:
            self._failed(tally, opened, f"connect: {exc!r}")
            stream._end(None)
            return
        self.connected += 1
        opened.set_result(True)
        try:
            error = await stream.ended
        finally:
            stream._end(None)
        if error is not None:
            self.errors.append(error)

    async def view_aiohttp(self, address: str, tally: Tally, opened: asyncio.Future[bool]) -> None:
        separator, take = (b"\n", take_text) if self.args.text else (b"\n\n", take_events)
        session = self.sessions.get(address)
        if session is None:
            connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0))
            timeout = aiohttp.ClientTimeout(total=None)  # streams are long; our own bounds apply
            session = aiohttp.ClientSession(connector=connector, timeout=timeout)
            self.sessions[address] = session

        async def connect() -> aiohttp.ClientResponse:
            async with self.gate:
                return await session.get(f"http://{HOST}:{self.args.port}{self.path}")

        try:
            response = await asyncio.wait_for(connect(), self.args.connect_timeout)
            response.raise_for_status()
        except Exception as exc:
            self._failed(tally, opened, f"connect: {exc!r}")
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
                        take(buffer[:cut], tally, None)
                        buffer = buffer[cut + len(separator) :]
                    if tally.expected > self.args.lines or tally.done:
                        break
        except (aiohttp.ClientError, OSError) as exc:
            self._failed(tally, opened, f"stream: {exc!r}")
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
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    command = await asyncio.wait_for(commands.get(), min(left, 0.05))
                except TimeoutError:
                    command = ""
                if command.startswith("open "):
                    first = len(self.tasks)
                    futures = [loop.create_future() for _ in range(int(command.split()[1]))]
                    self.tasks += [
                        asyncio.create_task(self.view(first + i, f)) for i, f in enumerate(futures)
                    ]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.gather(*futures), max(left, 1.0))
                    print(f"opened {self.connected} {len(self.errors)}", flush=True)
                elif command == "quit" or (self.args.lines and self.all_done()):
                    break
            print("done", flush=True)
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            for session in self.sessions.values():
                await session.close()
            if self.poller is not None:
                self.poller.close()
        for stream in self.streams:  # now that every viewer is done (see Stream)
            stream.replay()
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
            "deliveries": sum(len(t.batches) for t in tallies),  # reads that brought lines
            "chunks": sum(t.chunks for t in tallies),
            "merged_reads": sum(t.merged for t in tallies),
            "lost": sum(t.lost for t in tallies),
            "skipped": sum(t.skipped for t in tallies),
            "viewers_lost": sum(t.lost > 0 for t in tallies),
            "viewers_gapped": sum(t.gaps > 0 for t in tallies),
            "kept_up": sum(t.kept_up for t in tallies),
            "dups": sum(t.dups for t in tallies),
            "gaps": sum(t.gaps for t in tallies),
            "bad": sum(t.bad for t in tallies),
            "unfinished": sum(not t.done for t in tallies),
        }
        if self.args.t0_file:
            with open(self.args.t0_file) as file:
                t0 = float(file.read())
            for name, read in (("lag", False), ("read_lag", True)):
                hist: Counter[int] = Counter()
                top = -math.inf
                for tally in tallies:
                    lags = list(tally.lags(t0, self.args.rate, read))
                    hist.update(map(lag_bin, lags))
                    top = max(top, max(lags, default=top))
                result[name + "_hist"] = {str(k): v for k, v in hist.items()}
                percentiles = (("median", 50), ("p99", 99))
                result[name] = {q: hist_percentile(hist, p) for q, p in percentiles}
                result[name]["max"] = top if top > -math.inf else math.nan
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
    parser.add_argument("--client-index", type=int, default=0, help="this client process's")
    parser.add_argument("--aiohttp", action="store_true", help="aiohttp responses, not sockets")
    args = parser.parse_args()
    raise_nofile()
    asyncio.run(Client(args).run())


if __name__ == "__main__":
    main()
