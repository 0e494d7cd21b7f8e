"""Classification: lines per second given a level and an entry, against the relay's own cost.

Four payloads, each cut into the blocks the hub holds (reads of the sources' size through the
LineFramer): text (the corpus's text formats repeated to a few MB), JSON lines (its JSON
formats), `seq` numbers, and plain text (lines without a level or anything a rule reads). For
each, the classifier's time over all blocks is set beside two baselines measured in the same
run on the same blocks: the framer's own work (what every relayed byte costs already) and a
`bytes.count(b"\\n")` pass (the floor of any per-block scan). The ratio `classify/framer`
says how much classifying on the event loop would add to the relay's Python work.

Last, whether the work can leave the event loop: the share of its solo speed a busy main thread
keeps while another thread classifies (Python's `re` holds the GIL, and so does the C scanner for
a block under 8 MiB) or runs one long RE2 search (google-re2 releases it inside a match, not
between matches).

Each line's token is found by the C scanner (perview/_levels.c) where it is built, else by the
regexes; `PERVIEW_NO_C=1` runs the regexes, to compare the two (the first line says which ran).

`--per-format` prints, instead, each corpus format's cost in µs a line, on its own in blocks (a
real source is one format; the mixed payload above is a worst case for skipping rules).

    python bench/classify.py [--quick] [--mb 4] [--per-format]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import re2

from perview.classify import SCAN, Classifier
from perview.framing import LineFramer
from perview.sources.reader import READ_SIZE

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "levels"
JSON_FORMATS = ("journald_json", "pino", "bunyan")
READ = READ_SIZE  # the sources' read size, so blocks are the hub's
# Plain text: lines with neither a level nor anything else a rule reads, as much of a real log
# is (a web server's access log, dpkg.log, a program's progress lines).
PLAIN_WORDS = ["processing", "item", "batch", "took", "user", "request", "served", "cache", "queue"]


def payload(names: list[str], size: int) -> bytes:
    one = b"".join((CORPUS / f"{name}.log").read_bytes() for name in names)
    return one * (size // len(one) + 1)


def plain_text(size: int) -> bytes:
    lines, n = [], 0
    while n < size:
        words = " ".join(PLAIN_WORDS[(n + k) % len(PLAIN_WORDS)] for k in range(3))
        line = f"2024-01-15 10:23:{n % 60:02d} {words} {n} of 9000 (batch {n % 7}), {n % 13} ms\n"
        lines.append(line)
        n += len(line)
    return "".join(lines).encode()


def blocks_of(data: bytes) -> list[bytes]:
    framer = LineFramer()
    blocks = [framer.feed(data[i : i + READ])[0] for i in range(0, len(data), READ)]
    return [b for b in blocks if b] + [framer.flush()[0]]


def best(
    fn: Callable[[], object], trials: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    times = []
    for _ in range(trials):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def measure(name: str, data: bytes, trials: int) -> None:
    blocks = [b for b in blocks_of(data) if b]
    lines = sum(b.count(b"\n") for b in blocks)
    classifier = Classifier()

    def frame() -> None:
        framer = LineFramer()
        for i in range(0, len(data), READ):
            framer.feed(data[i : i + READ])

    def count() -> None:
        for b in blocks:
            b.count(b"\n")

    counts = [b.count(b"\n") for b in blocks]  # the framer's, which the hub passes on

    def classify() -> None:
        carry = b""
        for b, n in zip(blocks, counts, strict=True):
            _, carry = classifier.classify(b, carry, n)

    framed, counted, classified = (best(f, trials) for f in (frame, count, classify))
    mb = len(data) / 1e6
    print(
        f"  {name:5s} {mb:5.1f} MB {lines:9,d} lines  classify {lines / classified / 1e6:6.2f} M "
        f"lines/s {mb / classified:7.1f} MB/s   framer {mb / framed:6.0f} MB/s   "
        f"count {mb / counted:6.0f} MB/s   classify/framer {classified / framed:6.2f}"
    )


def classify_blocks(classifier: Classifier, blocks: list[bytes], counts: list[int]) -> None:
    carry = b""
    for b, n in zip(blocks, counts, strict=True):
        _, carry = classifier.classify(b, carry, n)


def per_format(size: int, trials: int) -> None:
    """Each corpus format alone, repeated to `size` bytes: µs a line, best of `trials`, in this
    process's CPU time (steadier than wall time on a machine shared with other work)."""
    classifier = Classifier()
    scanner = "regexes" if SCAN is None else "C"
    print(f"per format, {size / 1e6:g} MB each in {READ // 1024} KiB blocks, CPU time, {scanner}")
    names = sorted(p.stem for p in CORPUS.glob("*.log"))
    # "mixed" is every format in turn, as `bench/throughput.py --log` relays them.
    for name, formats in [*((n, [n]) for n in names), ("mixed", names)]:
        blocks = [b for b in blocks_of(payload(formats, size)) if b]
        counts = [b.count(b"\n") for b in blocks]
        run = functools.partial(classify_blocks, classifier, blocks, counts)
        cost = best(run, trials, time.process_time) / sum(counts)
        print(f"  {name:16s} {cost * 1e6:7.2f} µs a line")


def main_thread_share(work: Callable[[], object]) -> float:
    """The main thread's loop speed while `work` runs in another thread, over its solo speed."""

    def spin(done: threading.Event) -> float:
        n, start = 0, time.perf_counter()
        while not done.is_set():
            n += 1
        return n / (time.perf_counter() - start)

    solo_done = threading.Event()
    timer = threading.Timer(0.2, solo_done.set)
    timer.start()
    solo = spin(solo_done)
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    shared = spin(done)
    worker.join()
    return shared / solo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0, help="payload size (default 4)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 MB, 2 trials")
    parser.add_argument("--per-format", action="store_true", help="µs a line of each format")
    args = parser.parse_args()
    size = int((1 if args.quick else args.mb) * 1e6)
    trials = 2 if args.quick else args.trials
    if args.per_format:
        per_format(size, trials)
        return
    text_names = sorted(p.stem for p in CORPUS.glob("*.log") if p.stem not in JSON_FORMATS)
    seq_lines = size // 7
    numbers = subprocess.run(["seq", "1", str(seq_lines)], capture_output=True, check=True).stdout

    scanner = "regexes" if SCAN is None else "C (perview/_levels.c)"
    print(f"blocks of {READ // 1024} KiB through the LineFramer; best of {trials}; {scanner}")
    measure("text", payload(text_names, size), trials)
    measure("json", payload(list(JSON_FORMATS), size), trials)
    measure("seq", numbers, trials)
    measure("plain", plain_text(size), trials)

    text_blocks = blocks_of(payload(text_names, size))
    classifier = Classifier()
    haystack = b"abcdefghij0123456789 " * (size // 21 * 4)
    search = re2.compile(rb"zz[A-Z]{3}q")
    shares = {
        "classify in a thread": [
            main_thread_share(lambda: [classifier.classify(b) for b in text_blocks])
            for _ in range(3)
        ],
        "one RE2 search in a thread": [
            main_thread_share(lambda: search.search(haystack)) for _ in range(3)
        ],
    }
    print("main thread's speed while another thread works (median of 3; 100% = not slowed):")
    for what, values in shares.items():
        print(f"  {what:28s} {100 * statistics.median(values):4.0f}%")


if __name__ == "__main__":
    main()
