"""History: ingest, disk and search, each against a baseline measured in the same run.

    python bench/history.py [--mb 200] [--full] [--only ingest|disk|search|files|remote] [--quick]

The text is the test corpus (tests/data/levels) replayed (`replay`): each line's times and dates
rewritten to its moment in the span, epoch stamps too, hex ids and numbers of 5+ digits fresh,
and ` req=<6 hex> ms=<n>` appended; about 100 bytes a line.
- ingest (a): one viewer reads a source writing flat out through a hub (the default
  classification on), without and with a recorder, interleaved: the relay's rate recorded over
  unrecorded (target >= 0.9), the lines the recorder lost, and the loop thread's CPU per MB.
- ingest (b): the same source paced at 50, 100 and 200 MB/s, recorded: lines recorded and
  lost at each; the highest rate with none lost (target >= 50 MB/s, ~500,000 lines/s).
- disk: the store's directory (segments and index) over the raw text: the 11 KB corpus as it
  is, 64 MB of it replayed over a day in 256 KiB blocks (a busy source's), and the same in 2 KB
  blocks with a read per line (a source writing 10 lines a second; target <= 0.25).
- search: --mb of replayed text over 7 days (--full: 1 GB, 10 million lines): the first result
  for a rare term (a third from the start, and in the oldest block; target 100 ms), a whole scan
  (a substring every block may hold, and a pattern) against `zstdcat | grep` over the same text
  (target >= 0.5), and one hour anywhere in the 7 days as the text download sends it (target
  100 ms). Medians of --trials.
- files: a file source's file and its gzipped sibling (--files-mb of text each) searched for
  three rare lines in place: here against `grep -F` and `zcat | grep -F` over the same files, and
  on a host (a loopback sshd) against pulling the text over ssh and grepping it here: time, and
  the bytes that cross the link.
- remote (--remote-mb, default 500): one file of that size on a host (the loopback sshd) searched
  for five rare lines: the bytes that crossed the link (ssh's own count, and the payload) against
  the file's size, and the time against `grep -F` over the same file here, medians of --trials.

    python bench/history.py --only remote --remote-mb 500   (--part remote: the same)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perview import loop as event_loop  # the loop Perview serves on
from perview.history.block import Block
from perview.history.far import scan_remote
from perview.history.files import FileQuery, Target, scan_local
from perview.history.recorder import BLOCK_BYTES, Recorder, Writer
from perview.history.search import Line, Lines, Matcher, Query, Total, run
from perview.history.store import Retention, Store
from perview.hub import Ended, Hub, Output
from perview.web.history.render import download  # the range download's own rendering

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "levels"
READ = 64 * 1024
WEEK = 7 * 86400.0
RATES = (50, 100, 200)  # MB/s the paced source writes at, for the recorder's sustained rate
PACED_SECONDS = 2.0


def corpus() -> bytes:
    return b"".join(p.read_bytes() for p in sorted(CORPUS.glob("*.log")))


# The fields of a corpus line that change from line to line in a real log, each written afresh
# by `replay`: times and dates (in the line's own layout), epoch stamps, hex ids, long numbers.
FIELDS = re.compile(
    rb"(?P<clock>(?<!\d)\d\d:\d\d:\d\d)(?P<frac>[.,]\d{1,6})?"
    rb"|(?P<ymd>(?<!\d)\d{4}-\d\d-\d\d)|(?P<ymd_slash>(?<!\d)\d{4}/\d\d/\d\d)"
    rb"|(?P<dmy>(?<!\d)\d\d/[A-Z][a-z]{2}/\d{4})|(?P<d_b_y>(?<!\d)\d\d [A-Z][a-z]{2} \d{4})"
    rb"|(?P<b_d>\b[A-Z][a-z]{2} \d\d\b)"
    rb"|(?P<epoch>(?<!\d)17053142\d{2,8}(?!\d))"
    rb"|(?P<hexid>\b[0-9a-f]{8,}\b)|(?P<number>(?<!\d)\d{5,}(?!\d))"
)
DATES = {"ymd": "%Y-%m-%d", "ymd_slash": "%Y/%m/%d", "dmy": "%d/%b/%Y", "d_b_y": "%d %b %Y"}
DATES["b_d"] = "%b %d"
Template = tuple[list[bytes], list[tuple[str, int]]]


def templates() -> list[Template]:
    """Each corpus line as its fixed pieces and, between them, the fields `replay` rewrites."""
    found: list[Template] = []
    for line in corpus().split(b"\n"):
        if not line:
            continue
        pieces: list[bytes] = []
        slots: list[tuple[str, int]] = []
        pos = 0
        for m in FIELDS.finditer(line):
            pieces.append(line[pos : m.start()])
            if m.group("clock") is not None:
                slots.append(("clock", 0))
                if m.group("frac"):
                    pieces.append(m.group("frac")[:1])
                    slots.append(("frac", len(m.group("frac")) - 1))
            else:
                slots.append((str(m.lastgroup), len(m.group())))
            pos = m.end()
        pieces.append(line[pos:])
        found.append((pieces, slots))
    return found


def replay(size: int, seed: int = 1, start: float | None = None, span: float = WEEK) -> bytes:
    """`size` bytes of the corpus's lines replayed as a log written over `span` seconds up to
    now: each line's times and dates are its moment's (arrivals spread at random), its epoch
    stamps too, its hex ids and numbers of 5 digits or more are new, and it ends with a request
    id and a duration (` req=5f3a9c ms=412`), as access and application logs do: about 100
    bytes a line, about 16 lines a second over 7 days for 1 GB."""
    rng = random.Random(seed)
    shapes = templates()
    start = time.time() - span if start is None else start
    step = span / max(1, size // 100)
    cache: dict[tuple[str, int], bytes] = {}
    out: list[bytes] = []
    total, at = 0, start
    while total < size:
        pieces, slots = shapes[rng.randrange(len(shapes))]
        second = int(at)
        parts = [pieces[0]]
        for (kind, width), piece in zip(slots, pieces[1:], strict=True):
            if kind == "clock" or kind in DATES:
                value = cache.get((kind, second))
                if value is None:
                    if len(cache) > 4096:
                        cache.clear()
                    layout = "%H:%M:%S" if kind == "clock" else DATES[kind]
                    value = cache[kind, second] = time.strftime(
                        layout, time.gmtime(second)
                    ).encode()
            elif kind == "frac":
                value = b"%0*d" % (width, int((at - second) * 10**width))
            elif kind == "epoch":
                value = b"%d" % int(at * 10 ** (width - 10))
            elif kind == "hexid":
                value = b"%0*x" % (width, rng.getrandbits(4 * width))
            else:
                value = b"%d" % rng.randrange(10 ** (width - 1), 10**width)
            parts += (value, piece)
        parts.append(b" req=%06x ms=%d\n" % (rng.getrandbits(24), rng.randrange(999)))
        line = b"".join(parts)
        out.append(line)
        total += len(line)
        at += rng.expovariate(1 / step)
    return b"".join(out)


class Flood:
    """A source that writes `data` in 64 KiB reads as fast as the hub takes them, or at `rate`
    bytes a second (on a schedule: a late write is made up for, never skipped)."""

    kind = "command"

    def __init__(self, data: bytes, rate: float | None = None) -> None:
        self.data = data
        self.rate = rate

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        out.started(None)
        view = memoryview(self.data)
        begun = time.perf_counter()
        for pos in range(0, len(view), READ):
            if self.rate is not None:
                ahead = begun + pos / self.rate - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await out.write(bytes(view[pos : pos + READ]))
        return Ended(status=0)


@dataclass
class Relayed:
    rate: float  # MB/s the viewer read
    loop_cpu: float  # CPU seconds of the event loop's thread while it relayed
    lines: int = 0
    recorded: int = 0  # lines the writer wrote
    gaps: int = 0  # lines the recorder lost
    drained: float = 0.0  # seconds from the viewer's last line to the writer's last write


async def relay(data: bytes, directory: Path | None, rate: float | None = None) -> Relayed:
    """One viewer reads a Flood of `data` through a hub (the default classification on), with
    a recorder and its writer into `directory` where given."""
    hub = Hub("app", Flood(data, rate))  # a source's default ring
    writer = recorder = None
    if directory is not None:
        writer = Writer(Store(directory, Retention()))
        recorder = Recorder(hub, writer, 1)
    received = 0
    started = time.perf_counter()
    cpu = time.thread_time()
    with hub.watch() as viewer:
        while True:
            items = viewer.read()
            received += sum(len(getattr(item, "data", b"")) for item in items)
            if items:
                continue
            if hub.state is not None and hub.state.state == "exited":
                break
            await viewer.wait(0.5)
    elapsed = time.perf_counter() - started
    cpu = time.thread_time() - cpu
    assert received == len(data), (received, len(data))
    found = Relayed(len(data) / elapsed / 1e6, cpu, data.count(b"\n"))
    if recorder is not None and writer is not None:
        await recorder.close()
        ended = time.perf_counter()
        await writer.close()
        found.drained = time.perf_counter() - ended
        found.recorded, found.gaps = writer.written, recorder.gaps
    return found


def ingest(mb: int, work: Path, trials: int) -> None:
    data = replay(mb * 1_000_000, span=3600)
    lines = data.count(b"\n")
    bare: list[Relayed] = []
    recorded: list[Relayed] = []
    for trial in range(trials):  # interleaved, so that a change in load hits both alike
        bare.append(event_loop.run(relay(data, None)))
        recorded.append(event_loop.run(relay(data, work / f"ingest-{trial}")))
        shutil.rmtree(work / f"ingest-{trial}")
    ratio = statistics.median(recorded[i].rate / bare[i].rate for i in range(trials))
    cpu = statistics.median(bare[i].loop_cpu / recorded[i].loop_cpu for i in range(trials))
    print(f"ingest (a) the live relay ({mb} MB, {lines:,} lines, one viewer, flat out,")
    print(f"    the default classification in both; medians of {trials}):")
    print(f"  unrecorded                   {statistics.median(r.rate for r in bare):8.0f} MB/s")
    print(
        f"  recorded                     {statistics.median(r.rate for r in recorded):8.0f} MB/s"
        f"  ratio {ratio:.2f} (>= 0.9); the recorder lost "
        f"{statistics.median(r.gaps for r in recorded):,.0f} of {lines:,} lines (it yields)"
    )
    print(
        f"  the loop's CPU a MB, unrecorded / recorded: {cpu:.2f} (what recording costs the "
        "loop itself, apart from the cores it shares)"
    )
    print("ingest (b) the recorder, the source paced at a rate (one viewer; no loss wanted):")
    best = 0.0
    for rate in RATES:
        size = int(rate * 1e6 * PACED_SECONDS)
        paced = replay(size, seed=5, span=PACED_SECONDS)
        count = paced.count(b"\n")
        found = event_loop.run(relay(paced, work / f"paced-{rate}", rate * 1e6))
        shutil.rmtree(work / f"paced-{rate}")
        whole = found.gaps == 0 and found.recorded == count
        if whole and found.drained < 1.0:
            best = rate
        print(
            f"  {rate:4d} MB/s ({count / PACED_SECONDS:9,.0f} lines/s): recorded "
            f"{found.recorded:,} of {count:,} lines, lost {found.gaps:,}; "
            f"written {found.drained:.2f} s after the last line"
        )
    print(f"  sustained with no loss: {best:.0f} MB/s (>= 50 MB/s, about 500,000 lines/s)")


def stored(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def stored_index(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("index.sqlite*"))


def write_store(
    directory: Path,
    data: bytes,
    start: float,
    span: float,
    size: int = BLOCK_BYTES,
    read: int = 16384,
) -> Store:
    """`data` recorded as a recorder would: blocks of `size` (256 KiB, as a busy source's),
    each line at its moment (`start` to `start + span`, spread evenly) with an arrival time per
    `read` bytes (1: a read per line, as a slow source's), 16 blocks a write."""
    store = Store(directory, Retention(total=2**62))
    first, pos, pending = 1, 0, []
    while pos < len(data):
        end = data.rfind(b"\n", pos, pos + size) + 1 or len(data)
        chunk = data[pos:end]
        times = []
        cut = 0
        while cut < len(chunk):  # a run of arrival times per read
            stop = chunk.find(b"\n", cut + read - 1) + 1 or len(chunk)
            at = start + span * (pos + stop) / len(data)
            times.append((chunk.count(b"\n", cut, stop), at))
            cut = stop
        count = chunk.count(b"\n")
        t0 = start + span * pos / len(data)
        pending.append(
            Block("app", None, "lines", first, count, t0, times[-1][1], chunk, tuple(times))
        )
        if len(pending) == 16:
            store.write(pending)
            pending = []
        first, pos = first + count, end
    if pending:
        store.write(pending)
    return store


def disk(work: Path) -> None:
    print("disk (the store's directory, index included, over the raw text; <= 0.25):")
    replayed = replay(64_000_000, seed=4, span=86400)
    cases = (
        ("the 11 KB corpus as it is", corpus(), BLOCK_BYTES, 16384),
        ("the corpus replayed, 64 MB", replayed, BLOCK_BYTES, 16384),
        # A source writing 10 lines a second, a read each, seals a block every FLUSH_AGE (2 s).
        ("the same in 2 KB blocks", replayed, 2048, 1),
    )
    for name, data, size, read in cases:
        directory = work / f"disk-{size}-{len(data)}"
        write_store(directory, data, time.time() - 86400, 86400, size, read).close()
        total = stored(directory)
        index = stored_index(directory)
        print(
            f"  {name:28} {len(data):>12,} bytes -> {total:>11,}  ratio {total / len(data):.3f} "
            f"(segments {(total - index) / len(data):.3f}, index {index / len(data):.3f})"
        )
        shutil.rmtree(directory)


def search(mb: int, work: Path, trials: int) -> None:
    size = mb * 1_000_000
    data = replay(size, seed=2)
    rare = b"ERROR the-rare-term-42\n"
    cut = data.rfind(b"\n", 0, len(data) // 3) + 1  # a third from the start: not the newest
    oldest = b"ERROR the-oldest-term-7\n"
    data = oldest + data[:cut] + rare + data[cut:]
    lines = data.count(b"\n")
    now = time.time()
    started = time.perf_counter()
    store = write_store(work / "search", data, now - WEEK, WEEK)
    wrote = time.perf_counter() - started
    raw = work / "search.log.zst"
    subprocess.run(["zstd", "-1", "-q", "-o", str(raw)], input=data, check=True)
    held = stored(work / "search")

    def timed(q: str) -> tuple[float, float, int, int]:
        """Seconds to the first result and to the end, matches, blocks scanned."""
        begun = time.perf_counter()
        first_at = None
        total = Total(0, 0, 0, 0.0, True)
        for item in run(store, Query(("app",), 0, 2e9, Matcher(q), limit=10**9)):
            if first_at is None and isinstance(item, Line):
                first_at = time.perf_counter() - begun
            if isinstance(item, Total):
                total = item
        return first_at or 0.0, time.perf_counter() - begun, total.matches, total.blocks

    def grep(flag: str, pattern: str) -> float:
        begun = time.perf_counter()
        command = f"zstdcat {raw} | grep -c {flag} -e '{pattern}'"
        subprocess.run(command, shell=True, capture_output=True, check=False)
        return time.perf_counter() - begun

    def median(figures: list[float]) -> float:
        return statistics.median(figures)

    with store.reader() as reader:
        blocks = len(reader.rows(["app"], 0, 2e9, newest_first=False))
    print(
        f"search ({len(data) / 1e6:,.0f} MB of text, {lines:,} lines over 7 days, {blocks:,} "
        f"blocks; stored {held / len(data):.3f} of it; written at "
        f"{len(data) / wrote / 1e6:.0f} MB/s; medians of {trials}):"
    )
    for what, q in (
        ("a third from the start", "the-rare-term-42"),
        ("oldest", "the-oldest-term-7"),
    ):
        runs = [timed(q) for _ in range(trials)]
        _, _, found, scanned = runs[0]
        print(
            f"  first result, rare term ({what:22}) {median([r[0] for r in runs]) * 1000:7.1f} ms "
            f"(target 100; found {found}, {scanned} blocks read)"
        )
    # A whole scan reads every block: a substring in no line whose trigrams every block holds
    # (ids are 6 hex digits: never 3), and a pattern (summaries do not rule out patterns).
    for what, q, flag, pattern in (
        ("substring, in no line", "req=abc ms=", "-F", "req=abc ms="),
        ("re:, in no line", "re:req=[0-9a-f]{3} ms=", "-E", "req=[0-9a-f]{3} ms="),
    ):
        scans = [timed(q) for _ in range(trials)]
        base = median([grep(flag, pattern) for _ in range(trials)])
        scan = median([s[1] for s in scans])
        print(
            f"  whole scan, {what:24} {len(data) / scan / 1e6:7.0f} MB/s, zstdcat | grep "
            f"{len(data) / base / 1e6:5.0f} MB/s: ratio {base / scan:.2f} (>= 0.5; "
            f"{scans[0][3]} blocks read, {scans[0][2]} matches)"
        )
    rng = random.Random(9)
    spans = []
    for _ in range(trials):
        since = now - WEEK + rng.uniform(0, WEEK - 3600)
        begun = time.perf_counter()
        sent = count = 0
        # As GET /api/sources/{name}/history sends it as text.
        hour = Query(("app",), since, since + 3600, None, False, limit=10**9, as_text=True)
        for item in run(store, hour):
            if isinstance(item, Lines):
                count += item.count
            sent += len(download(item))
        spans.append((time.perf_counter() - begun, count, sent))
    took = median([s[0] for s in spans])
    print(
        f"  one hour anywhere in the 7 days   {took * 1000:7.1f} ms (target 100; "
        f"{median([s[1] for s in spans]):,.0f} lines, {median([s[2] for s in spans]) / 1e6:.1f} MB "
        "as text)"
    )
    store.close()
    shutil.rmtree(work / "search")


async def scan_to_total(target: Target, query: FileQuery) -> Total:
    """Search a file on a host to the end; its Total."""
    last = None
    async for batch in scan_remote(target, query):
        last = batch[-1]
    assert isinstance(last, Total)
    return last


def files(mb: int, work: Path) -> None:
    from testbed.sshd import LoopbackSshd

    directory = work / "files"
    directory.mkdir()
    log = directory / "app.log"
    data = replay(mb * 1_000_000, seed=3)
    cuts = [data.rfind(b"\n", 0, len(data) * k // 4) + 1 for k in (1, 2, 3)]
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    data = b"".join(p + b"the-rare-file-term %d\n" % i for i, p in enumerate(pieces[:3]))
    data += pieces[3]
    log.write_bytes(data)
    subprocess.run(f"gzip -1 -c {log} > {log}.1.gz", shell=True, check=True)
    size = (len(data) * 2) / 1e6
    q = "the-rare-file-term"
    query = FileQuery(Matcher(q), q, 0, 2e9, newest_first=False, limit=10**9)

    started = time.perf_counter()
    found = [i for i in scan_local(Target("app", None, str(log)), query) if isinstance(i, Total)]
    here = time.perf_counter() - started
    started = time.perf_counter()
    baseline = f"grep -c -F {q} {log}; zcat {log}.1.gz | grep -c -F {q}"
    subprocess.run(baseline, shell=True, capture_output=True, check=False)
    grep = time.perf_counter() - started
    print(f"files ({size:.0f} MB of text: a file and its gzipped sibling):")
    print(f"  here, 6 matches              {size / here:8.0f} MB/s  ({found[0].matches} found)")
    print(f"  grep + zcat | grep (baseline) {size / grep:7.0f} MB/s  ratio {grep / here:.2f}")

    (work / "sshd").mkdir()
    sshd = LoopbackSshd(work / "sshd", 1)
    try:
        alias = sshd.alias(1)
        target = Target("app", None, str(log), alias, ("-F", str(sshd.config)))

        started = time.perf_counter()
        total = asyncio.run(scan_to_total(target, query))
        remote = time.perf_counter() - started
        started = time.perf_counter()
        pulled = subprocess.run(
            ["ssh", "-F", str(sshd.config), alias, f"cat {log}; gzip -dc {log}.1.gz"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["grep", "-c", "-F", q], input=pulled, capture_output=True)
        pull = time.perf_counter() - started
        print(
            f"  on a host: {remote:.2f} s, {total.received:,} bytes back "
            f"({total.matches} matches); pulled and grepped here: {pull:.2f} s, "
            f"{len(pulled):,} bytes (time ratio {pull / remote:.1f}, "
            f"bytes {len(pulled) / max(total.received, 1):,.0f}x)"
        )
    finally:
        sshd.stop()


def remote(mb: int, work: Path, trials: int) -> None:
    from testbed.sshd import LoopbackSshd

    directory = work / "remote"
    directory.mkdir()
    log = directory / "app.log"
    q = "the-rare-remote-term"
    piece = replay(10_000_000, seed=5)  # 10 MB of replayed lines, written over and over
    with log.open("wb") as f:
        for i in range(mb // 10):
            f.write(piece)
            if i % max(1, mb // 50) == 0 and i // max(1, mb // 50) < 5:
                f.write(b"%s %d\n" % (q.encode(), i))
    size = log.stat().st_size
    (work / "sshd-remote").mkdir()
    sshd = LoopbackSshd(work / "sshd-remote", 1)
    try:
        alias = sshd.alias(1)
        query = FileQuery(Matcher(q), q, 0, 2e9, newest_first=True)
        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)  # page cache
        greps, numbered, connects, fars, links = [], [], [], [], []
        total: Total | None = None
        for trial in range(trials):
            # Baseline and far search alternate, so that load on this shared machine hits both.
            started = time.perf_counter()
            found = subprocess.run(["grep", "-c", "-F", q, str(log)], capture_output=True)
            greps.append(time.perf_counter() - started)
            assert found.stdout.strip() == b"5", found.stdout
            # What the far side runs, here: grep numbering the lines it prints costs a count of
            # every newline.
            started = time.perf_counter()
            subprocess.run(["grep", "-a", "-n", "-F", "-e", q, str(log)], capture_output=True)
            numbered.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(["ssh", "-F", str(sshd.config), alias, "true"], check=True)
            connects.append(time.perf_counter() - started)
            ssh_log = directory / f"ssh-{trial}.log"
            ssh_args = ("-F", str(sshd.config), "-v", "-E", str(ssh_log))
            target = Target("app", None, str(log), alias, ssh_args)

            started = time.perf_counter()
            total = asyncio.run(scan_to_total(target, query))
            fars.append(time.perf_counter() - started)
            assert total.matches == 5 and total.complete, total
            said = re.search(
                rb"Transferred: sent (\d+), received (\d+) bytes", ssh_log.read_bytes()
            )
            assert said is not None, "ssh -v did not say what it transferred"
            links.append(int(said[1]) + int(said[2]))
    finally:
        sshd.stop()
    assert total is not None
    grep, remote_s = statistics.median(greps), statistics.median(fars)
    grep_n, connect = statistics.median(numbered), statistics.median(connects)
    link = statistics.median(links)
    print(f"remote file search ({size / 1e6:.0f} MB file on a loopback host, {trials} trials):")
    print(f"  grep -F here (baseline)   {grep:6.2f} s  {size / grep / 1e6:6.0f} MB/s")
    print(f"  grep -a -n -F here        {grep_n:6.2f} s  (the far side's grep, run here)")
    print(f"  ssh HOST true             {connect:6.2f} s  (an ssh connection's cost)")
    times = ", ".join(f"{t:.2f}" for t in fars)
    print(
        f"  search on the host        {remote_s:6.2f} s  {size / remote_s / 1e6:6.0f} MB/s"
        f"  (time ratio grep/host {grep / remote_s:.2f}; each: {times})"
    )
    print(
        f"  crossed the link: {link:,.0f} bytes both ways by ssh's count "
        f"({total.received:,} bytes of results) for a {size:,} byte file: "
        f"{link / size:.2e} of it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MB of text to search (default 200)")
    parser.add_argument(
        "--full",
        action="store_true",
        help="search 1 GB (10 million lines over 7 days), the target's size: about 5 minutes, "
        "3 GB of memory and 1.5 GB of disk under /tmp",
    )
    parser.add_argument("--ingest-mb", type=int, default=200)
    parser.add_argument("--files-mb", type=int, default=100, help="MB of text per file")
    parser.add_argument("--remote-mb", type=int, default=500, help="MB of the remote file")
    parser.add_argument("--trials", type=int, default=3, help="trials of each timed part")
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 trials")
    parser.add_argument("--only", choices=["ingest", "disk", "search", "files", "remote"])
    # The first spelling of `--only remote`.
    parser.add_argument("--part", choices=["all", "remote"], default="all", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "remote":
        args.only = "remote"
    # The recorder's gaps are counted and printed; its warning for each would drown the figures.
    logging.getLogger("perview.history").setLevel(logging.ERROR)
    if args.full:
        args.mb = 1000
    if args.quick:
        args.mb, args.ingest_mb, args.files_mb, args.remote_mb = 50, 50, 20, 50
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    work = Path(tempfile.mkdtemp(prefix="perview-bench-history-"))
    try:
        if args.ingest_mb and args.only in (None, "ingest"):
            ingest(args.ingest_mb, work, args.trials)
        if args.only in (None, "disk"):
            disk(work)
        if args.only in (None, "search"):
            search(args.mb, work, args.trials)
        if args.files_mb and args.only in (None, "files"):
            files(args.files_mb, work)
        if args.remote_mb and args.only in (None, "remote"):
            remote(args.remote_mb, work, args.trials)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
