"""Browser burst: 100,000 lines written at once to a followed file, shown by the page; and a
million lines held in a tab.

Targets (DESIGN.md, issues 13 and 17): the last of 100,000 lines on screen within 1 s of its
write, the page answering input within 100 ms throughout, no line split or lost; with levels,
on screen within 1.3 times its time without them (the same burst from a `format = "raw"`
source, same run); with 1,000,000 lines held, the tab's renderer at most 1.3 times their text
above the same tab blank, and a filter over them answered within 300 ms.

How. One `perview serve` serves a fresh file per trial. A writer process builds the burst and
writes it in 1 MiB + 7 pieces, cutting lines anywhere. Every line starts with its number
(`%09d `), and every tenth has two characters beyond Latin-1 (which make a browser keep text two
bytes a character). What follows the number is `--content`:
- `lines` (the default): a level word and 83 bytes of `x` (100 bytes a line; 90 in 100 INFO, 8
  WARN, 2 ERROR). It measures the page's own cost a line; its text compresses about 20 times,
  far more than any log, so what it shows of memory held by a page that compresses is a floor.
- `corpus`: the real formats of tests/data/levels/*.log (nginx, syslog, Java, JSON, ...; 146
  lines, ANSI aside), one picked per line, with every digit drawn at random: numbers, times,
  ids and IPs differ line to line (about 94 bytes a line). It measures what a tab of real logs
  holds; with every digit random it repeats less than a real log (whose times share their
  leading digits), so it errs on the side of too much memory and too slow a filter.
Headless Chromium (Debian's, through Playwright) shows the source; `sync N` lines go first, so
the file is followed before the burst.
- On screen: a MutationObserver on the pane's rows notes when the row of the last line is in
  the DOM and inside the viewport (after layout); the page clock is mapped to CLOCK_MONOTONIC by
  the shortest `evaluate` round trip (its half is the error shown). From the end of the write.
- Baseline: a raw SSE client (a plain socket) reads the same burst from another source, from
  the end of the write to the read that brings the last line: page / baseline is what the
  browser adds to Perview's own serving.
- Lines: the page's stream is checked event by event (each continues the last, none split),
  and every line the tab holds against the exact format and for order.
- Answers: `page.evaluate("1")` every 5 ms from the write to 250 ms after the last line is on
  screen; the page also records its long tasks (> 50 ms) and how late a 10 ms timer ran, to
  tell its own stalls from the machine's, and the CPU of the renderers and of Perview.
- Memory: the tab's own renderer (tab_renderer), after a full garbage collection: blank first,
  then with the page live, peak during the burst, 1 s after.
- Scrollback: 1,000,000 lines written first to a page opened with `?max=1000000`: memory above
  the same tab blank, three filters timed (set to the next frame drawn), then the burst on top.
- `--seq N`: a command source `seq 1 N` (lines of 1-6 bytes), from `perview.show` to its last
  line on screen. `--filter RE`: the page trials filter with that regex (in its worker).

    python bench/browser_burst.py [--lines 100000] [--scrollback 1000000] [--seq 100000]
                                  [--content lines|corpus] [--trials 3] [--filter RE]
                                  [--no-raw] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil  # type: ignore[import-untyped]
from _common import (
    CHROMIUM,
    LIVE,
    ConfigServer,
    Helper,
    RawStream,
    append,
    cpu_seconds,
    descendants_cpu_seconds,
    launch,
    machine_cpu,
    page_clock,
    percentile,
    process_memory,
    ratio,
    serve_config,
    tab_renderer,
    until,
)
from playwright.async_api import Page, Playwright, async_playwright

SIZE = 100  # bytes a line, newline included: "%09d " + a 6-byte level word + 83 bytes + "\n"
CHUNK = 1024 * 1024 + 7  # bytes a write(2); not a multiple of SIZE, so writes cut lines
WIDE_EVERY = 10  # every tenth line has two characters beyond Latin-1 (the same bytes)
BODY = f"(?:x{{{SIZE - 17}}}|\u65e5\u672cx{{{SIZE - 23}}})"
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "levels"
WIDE = " \u65e5\u672c"  # what ends every tenth line of the corpus content
CONTENTS = ("lines", "corpus")


def regex_literal(text: str) -> str:
    """`text` as a regex that Python's re and JavaScript's RegExp read alike, its digits any."""
    out = []
    for ch in text:
        if ch.isascii() and ch.isdigit():
            out.append(r"\d")
        elif ch in "\\^$.|?*+()[]{}/":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def templates() -> list[str]:
    """The corpus content's formats: every line of tests/data/levels/*.log but ANSI-coloured ones
    (escapes are their own test) and lines over 400 bytes."""
    found = []
    for path in sorted(CORPUS.glob("*.log")):
        if path.stem == "ansi":
            continue
        found += [t for t in path.read_text().split("\n") if t and len(t) < 400]
    return found


def line_pattern(content: str) -> str:
    """What every line of the burst is, whole (no ^ or $), for re and RegExp alike."""
    if content == "lines":
        return f"\\d{{9}} (?:INFO  |WARN  |ERROR ){BODY}"
    alternatives = "|".join(sorted({regex_literal(t) for t in templates()}))
    return f"\\d{{9}} (?:{alternatives})(?:{WIDE})?"


SEQ_LINE = re.compile(rb"\d+")
PROBE_EVERY = 0.005  # s between two page.evaluate("1")
PROBE_TAIL = 0.25  # s of probing after the last line is on screen
RSS_EVERY = 0.05
SETTLE = 1.0  # s after the last line is on screen before memory is read
TARGET_SCREEN = 1.0
TARGET_ANSWER = 0.100
TARGET_LEVELS = 1.3  # on screen with levels, at most this many times as long as without
TARGET_TEXT = 1.3  # a million lines: the renderer above blank, in times their text
TARGET_FILTER = 0.300
# Filters timed on the million lines: a word (2 lines in 100), one beyond Latin-1 (1 in 10), none.
FILTERS = (("ERROR", "error"), ("\u65e5\u672c", "\u65e5\u672c"), ("none", ""))

# `prep PATH FIRST COUNT` builds a burst (answers `ready BYTES`, the bytes of its lines without
# their newlines); `go` appends it (answers `done START_NS END_NS`, CLOCK_MONOTONIC around the
# whole write). With a fifth argument, a JSON list of templates: the corpus content.
WRITER = """
import json, os, random, re, sys, time
size, chunk, wide_every = map(int, sys.argv[1:4])
pad = b"x" * (size - 17) + b"\\n"
wide = "\\u65e5\\u672c".encode() + pad[6:]
words = [b"INFO  "] * 90 + [b"WARN  "] * 8 + [b"ERROR "] * 2
templates = []
if len(sys.argv) > 4:
    with open(sys.argv[4]) as f:
        templates = [re.split(rb"(\\d+)", t.encode()) for t in json.load(f)]
# Random digits to draw from, and a template for line n picked by a hash of n (the same lines
# in every run, in no order a packer could lean on).
pool = random.Random(17).randbytes(1 << 24).translate(bytes(48 + b % 10 for b in range(256)))
at_pool = 0
def corpus(n):
    global at_pool
    parts = templates[(n * 2654435761 >> 8) % len(templates)]
    out = [b"%09d " % n]
    for i, part in enumerate(parts):
        if i & 1:
            if at_pool + len(part) > len(pool):
                at_pool = 0
            out.append(pool[at_pool:at_pool + len(part)])
            at_pool += len(part)
        else:
            out.append(part)
    out.append(" \\u65e5\\u672c\\n".encode() if n % wide_every == 0 else b"\\n")
    return b"".join(out)
def line(n):
    if templates:
        return corpus(n)
    return b"%09d " % n + words[n % 100] + (wide if n % wide_every == 0 else pad)
for command in sys.stdin:
    word, *rest = command.split()
    if word == "prep":
        path, first, count = rest[0], int(rest[1]), int(rest[2])
        payload = memoryview(b"".join(line(n) for n in range(first, first + count)))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        print("ready", len(payload) - count, flush=True)
    elif word == "go":
        start = time.monotonic_ns()
        at = 0
        while at < len(payload):
            at += os.write(fd, payload[at:at + chunk])
        end = time.monotonic_ns()
        os.close(fd)
        print("done", start, end, flush=True)
"""

# window.__benchSetup({source, target}) watches the first pane and the page's event stream;
# window.__bench holds what they saw.
SETUP = """
() => {
  window.__benchSetup = ({ source, target }) => {
    const app = window.perview;
    const pane = app.panes[0];
    const b = { seenAt: null, events: 0, lines: 0, breaks: 0, extra: 0, gaps: 0, first: null,
                last: null, long: [], late: 0 };
    new PerformanceObserver((list) => b.long.push(...list.getEntries().map((e) => e.duration)))
      .observe({ type: "longtask" });
    const tick = (due) => {
      b.late = Math.max(b.late, performance.now() - due);
      if (window.__bench === b) setTimeout(tick, 10, performance.now() + 10);
    };
    setTimeout(tick, 10, performance.now() + 10);
    window.__bench = b;
    // A row in the DOM may not be scrolled into view yet: then it is looked at in the next frame.
    const look = () => {
      if (b.seenAt !== null) return;
      const rows = pane.rows.children;
      for (let i = rows.length - 1; i >= 0; i--) {
        const row = rows[i];
        if (row.dataset.source !== source || !row.textContent.includes(target)) continue;
        const r = row.getBoundingClientRect();
        const v = pane.viewport.getBoundingClientRect();
        const now = performance.timeOrigin + performance.now();
        if (r.top < v.bottom && r.bottom > v.top) b.seenAt = now;
        else requestAnimationFrame(look);
        return;
      }
    };
    new MutationObserver(look).observe(pane.rows, { childList: true });
    app.stream.addEventListener("lines", (e) => {
      if (JSON.parse(e.line(0)).source !== source) return;
      const n = e.ends.length - 1;
      const first = parseInt(e.line(1), 10);
      const last = parseInt(e.line(n), 10);
      b.events++;
      b.lines += n;
      if (b.last !== null && first !== b.last + 1) b.breaks++;
      if (last - first + 1 !== n) b.extra += n - (last - first + 1);
      if (b.first === null) b.first = first;
      b.last = last;
    });
    app.stream.addEventListener("gap", () => b.gaps++);
  };
}
"""
BENCH = "() => { const { seenAt, events, lines, breaks, extra, gaps, long, late } = window.__bench;"
BENCH += " return { seenAt, events, lines, breaks, extra, gaps, long, late }; }"
# Every line of `source` the tab holds: does it match `pattern`, and are those in [lo, hi] in
# order? `sync ` lines are the set-up's.
STORE_CHECK = """
({ source, pattern, lo, hi }) => {
  const s = window.perview.store;
  const re = new RegExp(pattern);
  const out = { held: 0, malformed: 0, samples: [], disorder: 0, lo: null, hi: null };
  for (let seq = s.first, prev = null; seq < s.next; seq++) {
    if (s.kind[s.slot(seq)] !== 0 || s.sources[s.source[s.slot(seq)]] !== source) continue;
    const text = s.text(seq);
    if (text.startsWith("sync ")) continue;
    if (!re.test(text)) {
      out.malformed++;
      if (out.samples.length < 3) out.samples.push(text.slice(0, 120));
      continue;
    }
    const n = parseInt(text, 10);
    if (n < lo || n > hi) continue;
    if (prev !== null && n !== prev + 1) out.disorder++;
    out.lo ??= n;
    out.hi = prev = n;
    out.held++;
  }
  return out;
}
"""
STORE_HAS = """
(prefix) => {
  const s = window.perview.store;
  for (let q = Math.max(s.first, s.next - 64); q < s.next; q++) {
    if (s.kind[s.slot(q)] === 0 && s.text(q).startsWith(prefix)) return true;
  }
  return false;
}
"""
SEEN = "() => window.__bench.seenAt !== null"
FILTER = """
async (text) => {
  const pane = window.perview.panes[0];
  const start = performance.now();
  pane.filterInput.value = pane.settings.text = text;
  pane.applyFilter();
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  return { took: (performance.now() - start) / 1000, shown: pane.matches };
}
"""
SHOW = """
(a) => {
  const t = performance.timeOrigin + performance.now();
  window.perview.show([a.source], "merged");
  window.__benchSetup(a);
  return t;
}
"""


@dataclass
class PageRun:
    to_screen: float | None  # s from the end of the write (or show()) to the last line on screen
    clock_error: float  # s, half the calibration round trip
    probes: list[float]  # evaluate("1") round trips during the burst, s
    idle: list[float]  # the same just before
    peak: int  # the tab's renderer's RSS, sampled during the burst
    load: dict[str, float]  # memory(), the page live before any line
    after: dict[str, float]  # memory(), SETTLE s after the last line is on screen
    seen: dict[str, Any]  # BENCH
    store: dict[str, Any]  # STORE_CHECK
    cpu: dict[str, float]  # s of CPU over the burst: the renderer, perview, machine; and wall
    scrollback: dict[str, float] = field(default_factory=dict)


@dataclass
class BaseRun:
    to_last: float | None  # s from the end of the write (or the request) to the last line read
    received: int
    malformed: int
    dups: int


# -- the raw SSE client (baseline) ------------------------------------------------------------


def check_events(
    body: bytes, source: str, lo: int, hi: int, pattern: re.Pattern[bytes]
) -> tuple[int, int, int]:
    """(distinct lines lo..hi received, malformed lines, duplicates) in an SSE body."""
    seen: set[int] = set()
    malformed = dups = 0
    for event in body.split(b"\n\n"):
        parts = event.split(b"\n")
        if parts[0] != b"event: lines" or json.loads(parts[1][6:])["source"] != source:
            continue
        for part in parts[2:]:
            text = part.removeprefix(b"data: ")
            if text is part or text.startswith(b"sync "):
                continue
            if not pattern.fullmatch(text):
                malformed += 1
            elif lo <= (n := int(text.split(b" ", 1)[0])) <= hi:
                dups += n in seen
                seen.add(n)
    return len(seen), malformed, dups


def read_until(stream: RawStream, target: bytes, limit: float) -> tuple[int | None, bytes]:
    """Read until `target` has come: (CLOCK_MONOTONIC ns of that read or None, the body)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        try:
            at, data = stream.read(min(left, 0.2))
        except EOFError:
            break
        chunks.append(data)
        if target in b"".join(chunks[-2:]):
            return at, b"".join(chunks)
    return None, b"".join(chunks)


def sse_burst(
    server: ConfigServer, writer: Helper, path: Path, count: int, pattern: str, limit: float
) -> BaseRun:
    source = path.stem
    stream = RawStream(server.port, f"/api/events?source={source}&backlog=0")
    try:
        for n in range(200):  # `sync N` lines until the stream shows one: the file is followed
            append(path, b"sync %d\n" % n)
            if b"data: sync " in read_until(stream, b"data: sync ", 0.05)[1]:
                break
        prepare(writer, path, 1, count)
        writer.send("go")
        at, body = read_until(stream, b"data: %09d " % count, limit)
        done = writer.expect("done", limit)
    finally:
        stream.close()
    if done is None:
        raise RuntimeError("the writer did not finish")
    received, malformed, dups = check_events(body, source, 1, count, re.compile(pattern.encode()))
    return BaseRun(
        None if at is None else (at - int(done.split()[1])) / 1e9, received, malformed, dups
    )


def sse_seq(server: ConfigServer, source: str, count: int, limit: float) -> BaseRun:
    stream = RawStream(server.port, f"/api/events?source={source}&backlog=0")
    try:
        at, body = read_until(stream, b"\ndata: %d\n" % count, limit)
    finally:
        stream.close()
    received, malformed, dups = check_events(body, source, 1, count, SEQ_LINE)
    return BaseRun(None if at is None else (at - stream.sent_ns) / 1e9, received, malformed, dups)


def prepare(writer: Helper, path: Path, first: int, count: int) -> int:
    """Have the writer build lines first .. first + count - 1; returns their bytes, newlines
    aside."""
    writer.send(f"prep {path} {first} {count}")
    if (ready := writer.expect("ready", 300)) is None:
        raise RuntimeError("the writer did not get ready")
    return int(ready)


async def go(writer: Helper, limit: float) -> str:
    writer.send("go")
    if (done := await asyncio.to_thread(writer.expect, "done", limit)) is None:
        raise RuntimeError("the writer did not finish")
    return done


# -- the page ---------------------------------------------------------------------------------


async def memory(page: Page) -> dict[str, float]:
    """The tab's renderer's rss, pss, uss (bytes), and the page's JS heap used and its total
    (CDP Performance.getMetrics), after a full garbage collection: what the page holds."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("HeapProfiler.collectGarbage")  # first: garbage freed meanwhile hides the marker
    renderer = await tab_renderer(page)
    await cdp.send("HeapProfiler.collectGarbage")  # the marker
    await cdp.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    await cdp.detach()
    found: dict[str, float] = dict(await asyncio.to_thread(process_memory, renderer))
    return found | {"heap": metrics["JSHeapUsedSize"], "heap_total": metrics["JSHeapTotalSize"]}


async def probe(page: Page, stop: asyncio.Event, out: list[float], limit: float) -> None:
    """page.evaluate("1") round trips (s) until `stop`, one every PROBE_EVERY."""
    deadline = time.monotonic() + limit
    while not stop.is_set() and time.monotonic() < deadline:
        start = time.perf_counter()
        await asyncio.wait_for(page.evaluate("1"), limit)
        out.append(time.perf_counter() - start)
        await asyncio.sleep(PROBE_EVERY)


async def rss_peak(renderer: Any, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        with contextlib.suppress(psutil.Error):
            peak = max(peak, int(renderer.memory_info().rss))
        await asyncio.sleep(RSS_EVERY)
    return peak


def cpu(server: ConfigServer, renderer: Any) -> dict[str, float]:
    """CPU seconds so far: the tab's renderer, Perview (with its descendants), the machine."""
    mine = 0.0
    with contextlib.suppress(psutil.Error):
        mine = cpu_seconds(renderer)
    perview = cpu_seconds(server.ps) + descendants_cpu_seconds(server.ps)
    return {"renderer": mine, "perview": perview, "machine": machine_cpu()[0]}


async def watch(
    page: Page, server: ConfigServer, work: Awaitable[str | None], limit: float
) -> tuple[list[float], int, str | None, dict[str, float]]:
    """Run `work` while probing the page and sampling its renderer's RSS, until the last line is
    on screen and PROBE_TAIL s more: (probes, peak RSS, what `work` returned, CPU seconds of
    the tab's renderer, Perview and the machine, and the wall time they were taken over)."""
    renderer = await tab_renderer(page)
    stop = asyncio.Event()
    probes: list[float] = []
    before, wall = cpu(server, renderer), time.monotonic()
    prober = asyncio.create_task(probe(page, stop, probes, limit + PROBE_TAIL))
    sampler = asyncio.create_task(rss_peak(renderer, stop))
    try:
        result = await work
        if await until(page, SEEN, None, limit):
            await asyncio.sleep(PROBE_TAIL)
    finally:
        stop.set()
        await prober
        peak = await sampler
    after, wall = cpu(server, renderer), time.monotonic() - wall
    used = {k: after[k] - before[k] for k in after}
    return probes, peak, result, used | {"wall": wall}


async def idle_probes(page: Page, n: int = 100) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await page.evaluate("1")
        out.append(time.perf_counter() - start)
        await asyncio.sleep(PROBE_EVERY)
    return out


async def open_page(page: Page, url: str) -> None:
    await page.goto(url)
    if not await until(page, LIVE, None, 15.0):
        raise RuntimeError(f"the page did not connect: {url}")
    await page.evaluate(SETUP)


@dataclass
class Burst:
    """Where a page trial writes and what it shows."""

    path: Path  # the source's file, named after it
    count: int  # lines in the measured burst
    scrollback: int = 0  # lines written (and shown) before it, in a page of that capacity
    query: str = ""  # more of the page's URL: `&filter=...&regex=1` (--filter)
    pattern: str = line_pattern("lines")  # what every line is (line_pattern)


async def page_burst(
    pw: Playwright, server: ConfigServer, writer: Helper, burst: Burst, limit: float
) -> PageRun:
    browser = await launch(pw)
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 720})
        held: dict[str, float] = {}
        if burst.scrollback:
            await page.goto("about:blank")
            await asyncio.sleep(SETTLE)
            held |= {f"blank_{k}": v for k, v in (await memory(page)).items()}
        capacity = f"&max={burst.scrollback}" if burst.scrollback else ""
        source, path = burst.path.stem, burst.path
        await open_page(page, f"{server.base}/?source={source}{capacity}{burst.query}")
        for n in range(100):  # `sync N` lines until the tab holds one: the file is followed
            await asyncio.to_thread(append, path, b"sync %d\n" % n)
            if await until(page, STORE_HAS, "sync ", 0.1):
                break
        load = await memory(page)
        first = 1 + burst.scrollback
        if burst.scrollback:
            held["text"] = await asyncio.to_thread(prepare, writer, path, 1, burst.scrollback)
            await go(writer, 300)
            if not await until(page, STORE_HAS, f"{burst.scrollback:09d} ", 600):
                raise RuntimeError(f"the page did not get {burst.scrollback:,} lines")
            await asyncio.sleep(SETTLE)
            held |= await memory(page)
            renderer = await tab_renderer(page)
            for name, text in FILTERS:
                used = cpu_seconds(renderer)
                timed = await page.evaluate(FILTER, text)
                held |= {f"filter {name}": timed["took"], f"shown {name}": timed["shown"]}
                held[f"cpu {name}"] = cpu_seconds(renderer) - used
        last = first + burst.count - 1
        setup = {"source": source, "target": f"{last:09d} "}
        await page.evaluate("(a) => window.__benchSetup(a)", setup)
        offset, error = await page_clock(page)
        idle = await idle_probes(page)
        await asyncio.to_thread(prepare, writer, path, first, burst.count)
        probes, peak, done, shares = await watch(page, server, go(writer, limit), limit)
        seen = await page.evaluate(BENCH)
        end_ns = int(str(done).split()[1])
        to_screen = (
            None if seen["seenAt"] is None else (seen["seenAt"] - offset) / 1000 - end_ns / 1e9
        )
        await asyncio.sleep(SETTLE)
        after = await memory(page)
        check = {"source": source, "pattern": f"^{burst.pattern}$", "lo": first, "hi": last}
        store = await page.evaluate(STORE_CHECK, check)
        return PageRun(to_screen, error, probes, idle, peak, load, after, seen, store, shares, held)
    finally:
        await browser.close()


async def page_seq(
    pw: Playwright, server: ConfigServer, source: str, count: int, limit: float
) -> PageRun:
    """The page, open on the (empty) `idle` source, switches to `source`, a `seq 1 count`."""
    browser = await launch(pw)
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 720})
        await open_page(page, f"{server.base}/?source=idle")
        load = await memory(page)
        idle = await idle_probes(page)
        started = await page.evaluate(SHOW, {"source": source, "target": str(count)})
        probes, peak, _, shares = await watch(page, server, asyncio.sleep(0), limit)
        seen = await page.evaluate(BENCH)
        to_screen = None if seen["seenAt"] is None else (seen["seenAt"] - started) / 1000
        await asyncio.sleep(SETTLE)
        after = await memory(page)
        store = await page.evaluate(
            STORE_CHECK, {"source": source, "pattern": r"^\d+$", "lo": 1, "hi": count}
        )
        return PageRun(to_screen, 0.0, probes, idle, peak, load, after, seen, store, shares)
    finally:
        await browser.close()


# -- the report -------------------------------------------------------------------------------


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def ms(s: float | None) -> str:
    return "never" if s is None else f"{s * 1000:.0f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def median(values: Sequence[float | None]) -> float | None:
    """The median; None (never) if there is none or a trial never got there."""
    if not values or any(v is None for v in values):
        return None
    return statistics.median(v for v in values if v is not None)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(
    title: str, runs: Sequence[PageRun], base: Sequence[BaseRun], written: int
) -> float | None:
    """Print `runs` (page trials) against `base` (raw SSE trials); returns the median time to
    screen."""
    print(f"  {title}:")
    screen, baseline = median([r.to_screen for r in runs]), median([b.to_last for b in base])
    probes = [p for r in runs for p in r.probes]
    worst = max(probes, default=math.nan)
    against = (
        f"; raw SSE client {ms(baseline)}, page / it {ratio(screen, baseline)}"
        if screen and baseline
        else ""
    )
    print(
        f"    last line on screen after {ms(screen)}"
        f" (trials: {', '.join(ms(r.to_screen) for r in runs)};"
        f" clock error <= {max(r.clock_error for r in runs) * 1000:.1f} ms){against}"
    )
    long = [t for r in runs for t in r.seen["long"]]
    shares = {k: statistics.median(r.cpu[k] for r in runs) for k in runs[0].cpu}
    print(
        f'    evaluate("1") answered: median {percentile(probes, 50) * 1000:.1f} ms, p99'
        f" {percentile(probes, 99) * 1000:.1f}, max {worst * 1000:.0f} ms ({len(probes)} probes;"
        f" idle max {max(p for r in runs for p in r.idle) * 1000:.1f} ms); long tasks {len(long)},"
        f" longest {max(long, default=0):.0f} ms; a 10 ms timer at most"
        f" {max(r.seen['late'] for r in runs):.0f} ms late"
    )
    # CPU seconds are what a busy machine does not inflate (much): the page's and the server's
    # own work, where times to screen on a loaded machine measure the other sessions.
    print(
        f"    CPU from the write until {PROBE_TAIL * 1000:.0f} ms after the last line on screen:"
        f" the tab's renderer {ms(shares['renderer'])}, perview {ms(shares['perview'])}; the"
        f" machine busy {shares['machine'] / shares['wall']:.0%} of one core"
        f" ({psutil.cpu_count() * 100}% is all)"
    )

    def med(key: str, where: str) -> float:
        return float(statistics.median(getattr(r, where)[key] for r in runs))

    print(
        f"    the tab's renderer: RSS {mb(med('rss', 'load'))} live before any line, peak"
        f" {mb(max(r.peak for r in runs))}, {mb(med('rss', 'after'))} {SETTLE:.0f} s after (PSS"
        f" {mb(med('pss', 'after'))}, USS {mb(med('uss', 'after'))},"
        f" JS heap {mb(med('heap', 'after'))})"
    )
    intact = True
    for i, r in enumerate(runs):
        seen, store = r.seen, r.store
        broken = seen["breaks"] or seen["extra"]
        intact = intact and not broken and not store["malformed"] and not store["disorder"]
        missing = "?" if broken else f"{written - seen['lines']:,}"
        print(
            f"    trial {i + 1}: {seen['lines']:,} lines in {seen['events']:,} events, missing"
            f" {missing}, breaks {seen['breaks']}, split {seen['extra']}, gaps {seen['gaps']};"
            f" the tab holds {store['held']:,} ({store['lo']}..{store['hi']}, in order:"
            f" {store['disorder'] == 0}), malformed {store['malformed']} {store['samples'] or ''}"
        )
    intact = intact and all(b.malformed == 0 and b.received == written for b in base)
    print(
        f"    targets: on screen <= {TARGET_SCREEN:.0f} s"
        f" {verdict(screen is not None and screen <= TARGET_SCREEN)}; answers <="
        f" {TARGET_ANSWER * 1000:.0f} ms {verdict(worst <= TARGET_ANSWER)}; every line, none split"
        f" {verdict(intact)}"
    )
    return screen


def report_scrollback(run: PageRun, lines: int) -> None:
    s = run.scrollback
    text = s["text"]  # bytes of the lines, newlines aside
    above = {k: s[k] - s[f"blank_{k}"] for k in ("rss", "pss", "uss")}
    print(
        f"\nscrollback: {lines:,} lines ({mb(text)} of text, {text / lines + 1:.0f} bytes a line"
        f" with its newline) held by a page opened with"
        f" ?max={lines}: its renderer RSS {mb(s['rss'])}, blank {mb(s['blank_rss'])} (the same tab,"
        f" before): {mb(above['rss'])} above blank, {above['rss'] / text:.2f} times the text"
        f" (target {TARGET_TEXT}: {verdict(above['rss'] <= TARGET_TEXT * text)}); PSS"
        f" {mb(above['pss'])} and USS {mb(above['uss'])} above blank; JS heap {mb(s['heap'])} used"
        f" of {mb(s['heap_total'])}; live before any line it was {mb(run.load['rss'])}"
    )
    for name, _ in FILTERS:
        took = s[f"filter {name}"]
        print(
            f"  filter {name!r}: {ms(took)} to the next frame, {s[f'shown {name}']:,.0f} lines"
            f" shown (target {ms(TARGET_FILTER)}: {verdict(took <= TARGET_FILTER)}); the"
            f" renderer's CPU meanwhile {ms(s[f'cpu {name}'])} (what a busy machine cannot inflate)"
        )


# -- the run ----------------------------------------------------------------------------------


def write_config(directory: Path, trials: int, seq: int, raw: bool) -> None:
    files = [f"{kind}{i}" for i in range(trials) for kind in ("page", "base")]
    raws = [f"{kind}{i}" for i in range(trials if raw else 0) for kind in ("raw", "rawbase")]
    lines = []
    for name in [*files, *raws, "million", "idle"]:
        (directory / f"{name}.log").touch()
        lines += [f"[sources.{name}]", f"file = {json.dumps(str(directory / f'{name}.log'))}"]
        lines += ['format = "raw"', ""] if name in raws else [""]  # no levels: the page without
    for name in [f"{kind}{i}" for i in range(trials if seq else 0) for kind in ("seq", "seqbase")]:
        lines += [f"[sources.{name}]", f'command = ["seq", "1", "{seq}"]', ""]
    (directory / "perview.toml").write_text("\n".join(lines))


async def run(args: argparse.Namespace, directory: Path) -> None:
    write_config(directory, args.trials, args.seq, args.raw)
    query = "&" + urlencode({"filter": args.filter, "regex": "1"}) if args.filter else ""
    pattern = line_pattern(args.content)
    argv = [sys.executable, "-I", "-c", WRITER, str(SIZE), str(CHUNK), str(WIDE_EVERY)]
    if args.content == "corpus":
        (directory / "templates.json").write_text(json.dumps(templates()))
        argv.append(str(directory / "templates.json"))
    print(f"{load()}; Chromium {CHROMIUM}, headless, viewport 1280x720; content {args.content}")
    with serve_config(directory / "perview.toml", "idle") as server:
        writer = Helper(argv)
        try:
            async with async_playwright() as pw:
                runs: dict[str, list[PageRun]] = {"page": [], "raw": []}
                base: dict[str, list[BaseRun]] = {"page": [], "raw": []}
                for i in range(args.trials):  # interleaved, so both see the same machine
                    for kind in ("page", "raw") if args.raw else ("page",):
                        path = directory / f"{'rawbase' if kind == 'raw' else 'base'}{i}.log"
                        base[kind].append(
                            await asyncio.to_thread(
                                sse_burst, server, writer, path, args.lines, pattern, args.limit
                            )
                        )
                        burst = Burst(directory / f"{kind}{i}.log", args.lines, 0, query, pattern)
                        runs[kind].append(await page_burst(pw, server, writer, burst, args.limit))
                print(
                    f"\nburst: {args.lines:,} lines of content {args.content!r} appended to a"
                    f" followed file in {CHUNK:,}-byte writes; {args.trials} trials, medians"
                )
                with_levels = report(
                    "with levels (a classified source)", runs["page"], base["page"], args.lines
                )
                if args.raw:
                    without = report(
                        'without levels (format = "raw")', runs["raw"], base["raw"], args.lines
                    )
                    if with_levels and without:
                        ok = with_levels <= TARGET_LEVELS * without
                        print(
                            f"  levels: {with_levels / without:.2f} times as long as without"
                            f" (target {TARGET_LEVELS}: {verdict(ok)})"
                        )
                if args.scrollback:
                    burst = Burst(
                        directory / "million.log", args.lines, args.scrollback, query, pattern
                    )
                    million = await page_burst(pw, server, writer, burst, args.limit)
                    report_scrollback(million, args.scrollback)
                    report("the same burst on top of them", [million], [], args.lines)
                if args.seq:
                    seq_runs, seq_base = [], []
                    for i in range(args.trials):
                        seq_base.append(
                            await asyncio.to_thread(
                                sse_seq, server, f"seqbase{i}", args.seq, args.limit
                            )
                        )
                        seq_runs.append(await page_seq(pw, server, f"seq{i}", args.seq, args.limit))
                    print(f"\nseq: `seq 1 {args.seq}` as a source, from switching the page to it")
                    report("seq", seq_runs, seq_base, args.seq)
        finally:
            writer.close()
    print(f"\n{load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines a burst")
    parser.add_argument(
        "--scrollback", type=int, default=1_000_000, help="lines held first (0: skip)"
    )
    parser.add_argument("--seq", type=int, default=100_000, help="seq 1 N as a source (0: skip)")
    parser.add_argument(
        "--content",
        choices=CONTENTS,
        default="lines",
        help="what the lines say: the same padded line (lines) or real log formats (corpus)",
    )
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--filter", metavar="RE", help="the page filters with this regex (it must keep the burst)"
    )
    parser.add_argument(
        "--no-raw", dest="raw", action="store_false", help="skip the trials without levels"
    )
    parser.add_argument("--limit", type=float, default=60.0, help="s to wait for anything")
    parser.add_argument("--quick", action="store_true", help="1 trial, 200,000 lines of scrollback")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.scrollback = 1, min(args.scrollback, 200_000)
    with tempfile.TemporaryDirectory(prefix="perview-burst-") as directory:
        asyncio.run(run(args, Path(directory)))


if __name__ == "__main__":
    main()
