"""History: ingest, disk and search, each against a baseline measured in the same run.

    python bench/history.py [--mb 200]

- ingest: a source writing corpus-like log lines as fast as it can into a hub with one reading
  viewer, without and then with a recorder; the viewer's rate with it over the rate without
  (target >= 0.9), the recorder's rate, and its loss (target: none at >= 50 MB/s).
- disk: stored bytes over raw text, for the corpus (tests/data/levels) as it is, and for a
  stream of its lines with varying numbers (target <= 0.25).
- search: over --mb of recorded text, the first result for a rare term, and a whole scan (a
  term that is nowhere) against `zstdcat FILE | grep -c` over the same text.
- files: a file source's file and its gzipped sibling (--files-mb of text each) searched for
  three rare lines in place: here against `grep -F` and `zcat | grep -F` over the same files, and
  on a host (a loopback sshd) against pulling the text over ssh and grepping it here: time, and
  the bytes that cross the link.
- remote (--remote-mb, default 500): one file of that size on a host (the loopback sshd) searched
  for five rare lines: the bytes that crossed the link (ssh's own count, and the payload) against
  the file's size, and the time against `grep -F` over the same file here, medians of --trials.

    python bench/history.py --part remote --remote-mb 500
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perview.history.block import Block
from perview.history.far import scan_remote
from perview.history.files import FileQuery, Target, scan_local
from perview.history.recorder import Recorder, Writer
from perview.history.search import Matcher, Query, Total, run
from perview.history.store import Retention, Store
from perview.hub import Ended, Hub, Output

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "levels"
READ = 64 * 1024


def corpus() -> bytes:
    return b"".join(p.read_bytes() for p in sorted(CORPUS.glob("*.log")))


def varied(size: int, seed: int = 1) -> bytes:
    """The corpus's lines with a varying number in each, as real logs vary: `size` bytes."""
    rng = random.Random(seed)
    lines = [line for line in corpus().split(b"\n") if line]
    out: list[bytes] = []
    total = 0
    while total < size:
        line = b"%s req=%d ms=%d\n" % (rng.choice(lines), rng.getrandbits(24), rng.randrange(999))
        out.append(line)
        total += len(line)
    return b"".join(out)


class Flood:
    """A source that writes `data` in 64 KiB reads as fast as the hub takes them."""

    kind = "command"

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        out.started(None)
        view = memoryview(self.data)
        for pos in range(0, len(view), READ):
            await out.write(bytes(view[pos : pos + READ]))
        return Ended(status=0)


async def relay(
    data: bytes, directory: Path | None
) -> tuple[float, Writer | None, Recorder | None]:
    hub = Hub("app", Flood(data), max_lines=10_000)
    writer = recorder = None
    if directory is not None:
        writer = Writer(Store(directory, Retention()))
        recorder = Recorder(hub, writer, 1)
    received = 0
    started = time.perf_counter()
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
    assert received == len(data), (received, len(data))
    if recorder is not None and writer is not None:
        await recorder.close()
        await writer.close()
    return len(data) / elapsed / 1e6, writer, recorder


def ingest(mb: int, work: Path) -> None:
    data = varied(mb * 1_000_000)
    lines = data.count(b"\n")
    bare, _, _ = asyncio.run(relay(data, None))
    started = time.perf_counter()
    recorded, writer, recorder = asyncio.run(relay(data, work / "ingest"))
    recorder_rate = len(data) / (time.perf_counter() - started) / 1e6
    assert writer is not None and recorder is not None
    print(f"ingest ({mb} MB, {lines:,} lines, one viewer):")
    print(f"  live relay, unrecorded   {bare:8.0f} MB/s")
    print(f"  live relay, recorded     {recorded:8.0f} MB/s  ratio {recorded / bare:.2f} (>= 0.9)")
    print(
        f"  recorder, to the disk    {recorder_rate:8.0f} MB/s  "
        f"recorded {writer.written:,} of {lines:,} lines, gaps {recorder.gaps:,} (target: none)"
    )


def disk(work: Path) -> None:
    print("disk (stored bytes / raw text, <= 0.25):")
    for name, data in (("corpus as it is", corpus()), ("corpus-like, 64 MB", varied(64_000_000))):
        store = Store(work / name.replace(" ", "-"), Retention())
        first = 1
        for pos in range(0, len(data), 256 * 1024):
            end = data.rfind(b"\n", pos, pos + 256 * 1024) + 1 or len(data)
            chunk = data[pos:end]
            count = chunk.count(b"\n")
            store.write(
                [Block("app", None, "lines", first, count, 1.0, 1.0, chunk, ((count, 1.0),))]
            )
            first += count
        stored = sum(store.held().values())
        store.close()
        print(
            f"  {name:22} {len(data):>12,} bytes -> {stored:>11,}  ratio {stored / len(data):.3f}"
        )


def search(mb: int, work: Path) -> None:
    data = varied(mb * 1_000_000, seed=2)
    rare = b"ERROR the-rare-term-42\n"
    cut = data.rfind(b"\n", 0, len(data) // 3) + 1  # a third from the start: not the newest
    data = data[:cut] + rare + data[cut:]
    store = Store(work / "search", Retention())
    first, pos, block = 1, 0, 256 * 1024
    week = 7 * 86400
    base = time.time() - week
    while pos < len(data):
        end = data.rfind(b"\n", pos, pos + block) + 1 or len(data)
        chunk = data[pos:end]
        count = chunk.count(b"\n")
        at = base + week * pos / len(data)
        store.write([Block("app", None, "lines", first, count, at, at, chunk, ((count, at),))])
        first, pos = first + count, end
    raw = work / "search.log.zst"
    subprocess.run(["zstd", "-1", "-q", "-o", str(raw)], input=data, check=True)

    def timed(q: str) -> tuple[float, float, int]:
        started = time.perf_counter()
        first_at = None
        total = 0
        for item in run(store, Query(("app",), 0, 2e9, Matcher(q), limit=10**9)):
            if first_at is None and not isinstance(item, Total):
                first_at = time.perf_counter() - started
            if isinstance(item, Total):
                total = item.matches
        return (first_at or 0.0), time.perf_counter() - started, total

    first_hit, _, found = timed("the-rare-term-42")
    _, scan, none = timed("nowhere-to-be-found")
    _, scan_re, _ = timed("re:nowhere-[0-9]+-found")
    started = time.perf_counter()
    subprocess.run(f"zstdcat {raw} | grep -c nowhere-to-be-found", shell=True, capture_output=True)
    baseline = time.perf_counter() - started
    size = len(data) / 1e6
    lines = data.count(b"\n")
    print(f"search ({size:.0f} MB of text, {lines:,} lines over 7 days):")
    print(f"  first result, rare term      {first_hit * 1000:8.1f} ms (found {found})")
    print(f"  whole scan, substring        {size / scan:8.0f} MB/s  ({none} matches)")
    print(f"  whole scan, re:              {size / scan_re:8.0f} MB/s")
    print(
        f"  zstdcat | grep (baseline)    {size / baseline:8.0f} MB/s  "
        f"ratio {baseline / scan:.2f} (>= 0.5)"
    )
    store.close()


def files(mb: int, work: Path) -> None:
    from testbed.sshd import LoopbackSshd

    directory = work / "files"
    directory.mkdir()
    log = directory / "app.log"
    data = varied(mb * 1_000_000, seed=3)
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

        async def far() -> Total:
            last = None
            async for batch in scan_remote(target, query):
                last = batch[-1]
            assert isinstance(last, Total)
            return last

        started = time.perf_counter()
        total = asyncio.run(far())
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
    piece = varied(10_000_000, seed=5)  # 10 MB of varied lines, written over and over
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

            async def far(target: Target = target) -> Total:
                last = None
                async for batch in scan_remote(target, query):
                    last = batch[-1]
                assert isinstance(last, Total)
                return last

            started = time.perf_counter()
            total = asyncio.run(far())
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
    parser.add_argument("--ingest-mb", type=int, default=200)
    parser.add_argument("--files-mb", type=int, default=100, help="MB of text per file")
    parser.add_argument("--remote-mb", type=int, default=500, help="MB of the remote file")
    parser.add_argument("--trials", type=int, default=3, help="trials of the remote search")
    parser.add_argument("--part", choices=["all", "remote"], default="all")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="perview-bench-history-"))
    try:
        if args.part == "all":
            if args.ingest_mb:
                ingest(args.ingest_mb, work)
            disk(work)
            search(args.mb, work)
            if args.files_mb:
                files(args.files_mb, work)
        if args.remote_mb:
            remote(args.remote_mb, work, args.trials)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
