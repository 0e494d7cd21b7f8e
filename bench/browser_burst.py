"""Browser burst: 100,000 lines written at once to a followed file, shown by the page.

The issue: "100,000 lines of ~100 bytes written as fast as possible to a followed file while the
page shows it. Report seconds until the last line is on screen, lines missing, the longest time
the page took to answer `page.evaluate("1")` during the burst, and the renderer's memory; and the
same after 1,000,000 lines of scrollback. Targets: last line on screen within 1 s, page answers
within 100 ms throughout, renderer under 150 MB (under 300 MB at a million lines), and no line
ever split."

How. One `perview serve -c CONFIG --no-auth --port 0` on 127.0.0.1 serves a fresh, empty file
per trial (`[sources.pageN] file = ...`). Headless Chromium (Debian's, through Playwright) opens
the page on that source and waits until it is live; `sync N` lines are appended until the page's
store holds one, so the file is followed before the burst. A writer process of its own builds the
burst first (`%09d ` + `x` padding: 100 bytes a line with its newline), then writes it with
os.write in 1 MiB + 7 pieces (cut anywhere, mid-line included: the reader must put lines back
together) and reports CLOCK_MONOTONIC at the start and the end of the write.

- "On screen": a MutationObserver on the pane's rows notes the page clock when a row whose text
  holds the last line's number is in the DOM *and* inside the log viewport (checked with
  getBoundingClientRect, i.e. after layout, just before paint; if the row is in the DOM but not
  yet in view, again in the next animation frame, where the page scrolls). The page clock is
  mapped to CLOCK_MONOTONIC by the `evaluate` round trip with the shortest time (error: half of
  it, shown). The figure is measured from the end of the write.
- Lines: a listener on the page's own event stream counts the lines of every `lines` event and
  checks that each event continues the previous one (`breaks`) and holds exactly last - first + 1
  lines (`extra`: a split line adds one); `gap` events are counted. After the burst, every line
  the tab's store still holds is checked against the exact format (a split or joined line cannot
  match) and for being consecutive. Missing = written - received (when nothing broke).
- Responsiveness: `page.evaluate("1")` in a loop (one every 5 ms) from the start of the write
  until 250 ms after the last line is on screen; the idle figures, measured just before, are its
  own floor. A round trip crosses this process, Playwright's driver, the browser process and the
  renderer, so to tell the page's own stalls from the machine's, the page also records its long
  tasks (PerformanceObserver, > 50 ms) and how late a 10 ms timer ran at worst, and the CPU used
  over the window is split between the renderers, the rest of Chromium, Playwright's driver and
  the writer, this script, Perview, and anything else on the machine.
- Memory: the renderer's RSS (psutil, the renderer with the largest RSS; the targets apply to
  this one: it is what the tab costs the machine, shared pages included) once the page is live
  and before any line (Chromium's own floor, the same-run baseline), sampled every 50 ms during
  the burst (peak) and 1 s after it; its PSS and USS (private pages); and, from CDP
  Performance.getMetrics, the JS heap in use (log text is not in it: an SSE event's data is a
  Blink string, which V8 holds as an external string) and the DOM node count (garbage included).
- Scrollback: the same burst on a page opened with `?max=1000000` after 1,000,000 lines were
  written to its file and have reached the page (one trial).
- `--seq`: a command source `seq 1 100000` (lines of 1-6 bytes); the page switches to it
  (`perview.show`), timed from that call to the last line on screen.

Baseline (same run, interleaved with the page trials): a raw SSE client in this process
(`_common.RawStream`, a plain socket) on `/api/events` of another fresh file source, same writer
and burst; its time is from the end of the write to the read that brings the last line, so
page / baseline is what the browser adds on top of Perview serving the burst. For `seq`, from
the request to the last line. Its lines are checked the same way.

`--filter RE` opens the page trials with that regular expression as the pane's filter (it runs
in the page's filter worker); it must keep the burst's lines, e.g. `--filter '^\\d{9} \\w+ *x+$'`.

Levels (issue 13): each burst line carries a level word where a log has one (`%09d INFO x...`:
90 in 100 INFO, 8 WARN, 2 ERROR), so the server classifies a realistic mix and the page gets a
level per line. Each trial shows the burst twice, from a classified source and from one with
`format = "raw"` (no levels: the page's work without them), interleaved; the report gives both
and their ratio (target: classified within 1.3 times raw), each with its raw SSE baseline (so
the server's share of the difference shows apart from the page's). `--no-raw` skips them.

    python bench/browser_burst.py [--lines 100000] [--scrollback 1000000] [--seq 100000]
                                  [--trials 3] [--filter RE] [--no-raw] [--quick]
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
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psutil  # type: ignore[import-untyped]
from _common import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE_NOW,
    ConfigServer,
    Helper,
    RawStream,
    chromium_renderers,
    cpu_seconds,
    descendants_cpu_seconds,
    machine_cpu,
    page_clock_offset,
    percentile,
    process_memory,
    ratio,
    serve_config,
)
from playwright.async_api import Browser, Page, Playwright, ViewportSize, async_playwright

SIZE = 100  # bytes a line, newline included: "%09d " + a 6-byte level word + 83 x + "\n"
CHUNK = 1024 * 1024 + 7  # bytes a write(2); not a multiple of SIZE, so writes cut lines
PROBE_EVERY = 0.005  # s between two page.evaluate("1")
RSS_EVERY = 0.05
PROBE_TAIL = 0.25  # s of probing after the last line is on screen
CPU_GROUPS = ("renderers", "other Chromium", "driver, writer", "this script", "perview", "all")
SETTLE = 1.0  # s after the last line is on screen before memory is read
MARKER = 32 << 20  # bytes a page allocates for a moment to tell its renderer (tab_renderer)
VIEWPORT: ViewportSize = {"width": 1280, "height": 720}
TARGET_SCREEN = 1.0
TARGET_ANSWER = 0.100
TARGET_RSS = 150e6
TARGET_RSS_MILLION = 300e6
TARGET_TEXT = 1.3  # a million lines: renderer RSS above a blank page's, in times their text
TARGET_FILTER_MS = 300
WIDE_EVERY = 10  # every tenth line has two characters beyond Latin-1 (the same bytes)
BODY = f"(?:x{{{SIZE - 17}}}|\u65e5\u672cx{{{SIZE - 23}}})"
BURST_LINE = re.compile(rb"\d{9} (?:INFO  |WARN  |ERROR )" + BODY.encode())
TARGET_LEVELS = 1.3  # on screen with levels, at most this many times as long as without
SEQ_LINE = re.compile(rb"\d+")

# Builds a burst on `prep PATH FIRST COUNT` (answers `ready`), appends it on `go` (answers
# `done START_NS END_NS`, CLOCK_MONOTONIC around the whole write).
WRITER = """
import os, sys, time
size, chunk, WIDE_EVERY = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pad = b"x" * (size - 17) + b"\\n"
# Beyond Latin-1 (as UTF-8, the same size): in a browser one such character makes a whole piece
# of text two bytes a character.
wide = "\\u65e5\\u672c".encode() + pad[6:]
# A level in every line, as most logs have: 90 in 100 INFO, 8 WARN, 2 ERROR.
words = [b"INFO  "] * 90 + [b"WARN  "] * 8 + [b"ERROR "] * 2
for command in sys.stdin:
    word, *rest = command.split()
    if word == "prep":
        path, first, count = rest[0], int(rest[1]), int(rest[2])
        lines = (
            b"%09d " % n + words[n % 100] + (wide if n % WIDE_EVERY == 0 else pad)
            for n in range(first, first + count)
        )
        payload = memoryview(b"".join(lines))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        print("ready", flush=True)
    elif word == "go":
        start = time.monotonic_ns()
        at = 0
        while at < len(payload):
            at += os.write(fd, payload[at:at + chunk])
        end = time.monotonic_ns()
        os.close(fd)
        print("done", start, end, flush=True)
"""

# Installed in the page: window.__benchSetup({source, target}) watches the first pane and the
# current event stream (app.stream); window.__bench holds what they saw.
SETUP = """
() => {
  window.__benchSetup = ({ source, target }) => {
    const app = window.perview;
    const pane = app.panes[0];
    const b = { seenAt: null, events: 0, lines: 0, breaks: 0, extra: 0, gaps: 0 };
    b.first = b.last = null;
    b.long = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) b.long.push(entry.duration);
    }).observe({ type: "longtask" });
    b.late = 0; // the most a 10 ms timer on the page's main thread ran late, ms
    const tick = (due) => {
      b.late = Math.max(b.late, performance.now() - due);
      if (window.__bench === b) setTimeout(tick, 10, performance.now() + 10);
    };
    setTimeout(tick, 10, performance.now() + 10);
    window.__bench = b;
    // The row can be in the DOM before it is scrolled into view (the page may scroll in the next
    // animation frame, before it paints): then it is looked at again in that frame.
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
    // An event of the page's own stream holds its data lines (e.lines: the JSON header, then the
    // log lines); EventSource gives one string (e.data), which is read without copying it.
    const count = (e) => {
      const l = e.lines;
      if (l) return [l[0], l.length - 1, parseInt(l[1], 10), parseInt(l[l.length - 1], 10)];
      const d = e.data;
      const nl = d.indexOf("\\n");
      let n = 1;
      for (let i = d.indexOf("\\n", nl + 1); i >= 0; i = d.indexOf("\\n", i + 1)) n++;
      const first = parseInt(d.slice(nl + 1, nl + 12), 10);
      const last = parseInt(d.slice(d.lastIndexOf("\\n") + 1), 10);
      return [d.slice(0, nl), n, first, last];
    };
    app.stream.addEventListener("lines", (e) => {
      const [head, n, first, last] = count(e);
      if (JSON.parse(head).source !== source) return;
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
BENCH = (
    "(({seenAt, events, lines, breaks, extra, gaps, first, last, long, late}) =>"
    " ({seenAt, events, lines, breaks, extra, gaps, first, last, long, late}))(window.__bench)"
)

# Every line of `source` the store holds: does it match `pattern` exactly, and are those in
# [lo, hi] consecutive? Lines starting with `sync ` are the set-up's.
STORE_CHECK = """
({ source, pattern, lo, hi }) => {
  const s = window.perview.store;
  const re = new RegExp(pattern);
  const out = { held: 0, malformed: 0, samples: [], disorder: 0, lo: null, hi: null };
  let prev = null;
  for (let seq = s.first; seq < s.next; seq++) {
    const slot = seq % s.capacity;
    if (s.kind[slot] !== 0 || s.sources[s.source[slot]] !== source) continue;
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
    if (out.lo === null) out.lo = n;
    out.hi = n;
    prev = n;
    out.held++;
  }
  return out;
}
"""
STORE_HAS = """
(prefix) => {
  const s = window.perview.store;
  for (let q = Math.max(s.first, s.next - 64); q < s.next; q++) {
    const slot = q % s.capacity;
    if (s.kind[slot] === 0 && s.text(q).startsWith(prefix)) return true;
  }
  return false;
}
"""
# Filters timed on the million lines: from setting the filter to the next frame drawn.
FILTERS = (("ERROR", "error"), ("wide", "\u65e5\u672c"), ("none", ""))
FILTER = """
async (text) => {
  const pane = window.perview.panes[0];
  const start = performance.now();
  pane.filterInput.value = pane.settings.text = text;
  pane.applyFilter();
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
  return { drawn: performance.now() - start, matches: pane.matches };
}
"""
LIVE = '() => document.querySelector(\'[data-testid="connection"]\')?.dataset.state === "live"'
SEEN = "() => window.__bench.seenAt !== null"


@dataclass
class PageRun:
    to_screen: float | None  # s from the end of the write (or show()) to the last line on screen
    wrote: float  # s the write took (0 for seq)
    probes: list[float]  # evaluate("1") round trips during the burst, s
    idle: list[float]  # the same just before
    clock_error: float  # s, half the calibration round trip
    rss_peak: int  # sampled during the burst
    load: dict[str, float]  # memory once the page is live, before any line: memory()
    after: dict[str, float]  # memory SETTLE s after the last line is on screen
    seen: dict[str, Any]  # the stream listener's counts: BENCH
    store: dict[str, Any]  # STORE_CHECK
    cpu: dict[str, float]  # CPU_GROUPS' share of one core over the burst
    prefill: dict[str, float] = field(default_factory=dict)  # scrollback: ingest s and memory


@dataclass
class BaseRun:
    to_last: float | None  # s from the end of the write (or the request) to the last line read
    received: int
    malformed: int
    dups: int


# -- the raw SSE client (baseline) ------------------------------------------------------------


def sync_stream(stream: RawStream, path: Path, limit: float) -> None:
    """Append `sync N` lines until the stream shows one: the file is followed from here on."""
    deadline = time.monotonic() + limit
    n = 0
    while time.monotonic() < deadline:
        with path.open("ab") as f:
            f.write(b"sync %d\n" % n)
        n += 1
        until = time.monotonic() + 0.05
        while (left := until - time.monotonic()) > 0:
            if b"data: sync " in stream.read(left)[1]:
                return
    raise RuntimeError(f"the SSE client saw no line of {path.name} within {limit:.0f} s")


def check_events(
    body: bytes, source: str, lo: int, hi: int, pattern: re.Pattern[bytes]
) -> tuple[int, int, int]:
    """(distinct lines lo..hi received, malformed lines, duplicates) in an SSE body."""
    seen: set[int] = set()
    malformed = dups = 0
    for event in body.split(b"\n\n"):
        parts = event.split(b"\n")
        if parts[0] != b"event: lines" or len(parts) < 3:
            continue
        if json.loads(parts[1][6:])["source"] != source:
            continue
        for part in parts[2:]:
            if not part.startswith(b"data: ") or part.startswith(b"data: sync "):
                continue
            text = part[6:]
            if not pattern.fullmatch(text):
                malformed += 1
                continue
            n = int(text.split(b" ", 1)[0])
            if lo <= n <= hi:
                dups += n in seen
                seen.add(n)
    return len(seen), malformed, dups


def read_until(stream: RawStream, target: bytes, limit: float) -> tuple[int | None, bytes]:
    """Read until `target` has come: (CLOCK_MONOTONIC ns of that read or None, the body)."""
    chunks: list[bytes] = []
    tail = b""
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        try:
            at, data = stream.read(min(left, 0.2))
        except EOFError:
            break
        if not data:
            continue
        chunks.append(data)
        if target in data or target in tail + data[: len(target)]:
            return at, b"".join(chunks)
        tail = data[-len(target) :]
    return None, b"".join(chunks)


def sse_burst(
    port: int, writer: Helper, path: Path, source: str, first: int, count: int, limit: float
) -> BaseRun:
    stream = RawStream(port, f"/api/events?source={source}&backlog=0")
    try:
        sync_stream(stream, path, 10.0)
        writer.send(f"prep {path} {first} {count}")
        if writer.expect("ready", 120) is None:
            raise RuntimeError("the writer did not get ready")
        last = first + count - 1
        writer.send("go")
        at, body = read_until(stream, b"data: %09d " % last, limit)
        done = writer.expect("done", limit)
    finally:
        stream.close()
    if done is None:
        raise RuntimeError("the writer did not finish")
    end_ns = int(done.split()[1])
    received, malformed, dups = check_events(body, source, first, last, BURST_LINE)
    to_last = None if at is None else (at - end_ns) / 1e9
    return BaseRun(to_last, received, malformed, dups)


def sse_seq(port: int, source: str, count: int, limit: float) -> BaseRun:
    stream = RawStream(port, f"/api/events?source={source}&backlog=0")
    try:
        at, body = read_until(stream, b"\ndata: %d\n" % count, limit)
    finally:
        stream.close()
    received, malformed, dups = check_events(body, source, 1, count, SEQ_LINE)
    to_last = None if at is None else (at - stream.sent_ns) / 1e9
    return BaseRun(to_last, received, malformed, dups)


# -- the page ---------------------------------------------------------------------------------


async def launch(pw: Playwright) -> Browser:
    return await pw.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
    )


async def open_page(page: Page, url: str) -> Page:
    await page.goto(url)
    if not await until(page, LIVE, None, 15.0, 0.02):
        raise RuntimeError(f"the page did not connect: {url}")
    await page.evaluate(SETUP)
    return page


async def until(page: Page, predicate: str, arg: Any, limit: float, every: float) -> bool:
    """Poll `predicate` (a JS function of `arg`) with page.evaluate until it is true; False if it
    is not within `limit` s. (page.wait_for_function would need eval, which the page's CSP
    forbids.)"""
    deadline = time.monotonic() + limit
    while True:
        if await page.evaluate(predicate, arg):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)


async def clock(page: Page) -> tuple[float, float]:
    """(page clock - CLOCK_MONOTONIC in ms, the error bound in s)."""
    samples = []
    for _ in range(30):
        before = time.monotonic()
        now = await page.evaluate(PAGE_NOW)
        samples.append((before, float(now), time.monotonic()))
    best = min(s[2] - s[0] for s in samples)
    return page_clock_offset(samples), best / 2


async def sync_page(page: Page, path: Path, limit: float) -> None:
    deadline = time.monotonic() + limit
    n = 0
    while time.monotonic() < deadline:
        await asyncio.to_thread(append, path, b"sync %d\n" % n)
        n += 1
        if await until(page, STORE_HAS, "sync ", 0.1, 0.01):
            return
    raise RuntimeError(f"the page showed no line of {path.name} within {limit:.0f} s")


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


async def probe(page: Page, stop: asyncio.Event, out: list[float], limit: float) -> None:
    """page.evaluate("1") round trips (s) until `stop`, one every PROBE_EVERY."""
    deadline = time.monotonic() + limit
    while not stop.is_set() and time.monotonic() < deadline:
        start = time.perf_counter()
        await asyncio.wait_for(page.evaluate("1"), limit)
        out.append(time.perf_counter() - start)
        await asyncio.sleep(PROBE_EVERY)


async def rss_peak(stop: asyncio.Event, limit: float) -> int:
    procs = chromium_renderers()
    peak = 0
    deadline = time.monotonic() + limit
    while not stop.is_set() and time.monotonic() < deadline:
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, int(proc.memory_info().rss))
        await asyncio.sleep(RSS_EVERY)
    return peak


async def memory(page: Page) -> dict[str, float]:
    """The renderer's rss, pss, uss (bytes) and renderers (_common.renderer_memory), and the
    page's JS heap in use (bytes) and DOM nodes (CDP Performance.getMetrics), after a full
    garbage collection: what the page holds, not when V8 last happened to collect."""
    renderer = await tab_renderer(page)
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("HeapProfiler.collectGarbage")
    await cdp.send("Performance.enable")
    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
    await cdp.detach()
    found: dict[str, float] = dict(await asyncio.to_thread(process_memory, renderer))
    found["renderers"] = len(chromium_renderers())
    return found | {
        "heap": metrics["JSHeapUsedSize"],
        "heap_total": metrics["JSHeapTotalSize"],
        "nodes": metrics["Nodes"],
    }


async def tab_renderer(page: Page) -> Any:
    """The renderer process that holds `page`. Nothing says which it is (and a blank tab's is not
    the largest: another renderer held 165 MB RSS where the blank tab's held 119), so the page
    allocates MARKER bytes for a moment, and the renderer whose own memory grew by them is it."""
    before = {p.pid: process_memory(p)["uss"] for p in chromium_renderers()}
    await page.evaluate("(n) => { window.__marker = new Uint8Array(n).fill(1); }", MARKER)
    grew = {p: process_memory(p)["uss"] - before.get(p.pid, 0) for p in chromium_renderers()}
    await page.evaluate("() => { delete window.__marker; }")
    return max(grew, key=lambda p: grew[p])


async def idle_probes(page: Page, n: int = 100) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await page.evaluate("1")
        out.append(time.perf_counter() - start)
        await asyncio.sleep(PROBE_EVERY)
    return out


def cpu_by_group(server: Any) -> dict[str, float]:
    """CPU seconds so far of: Chromium's renderers, the rest of Chromium, Playwright's driver,
    this process, the Perview server (with its descendants), and the whole machine ("all", busy
    seconds summed over cores), so that a window's difference shows who used the CPU."""
    groups = dict.fromkeys(CPU_GROUPS, 0.0)
    me = psutil.Process()
    for proc in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if proc.pid == server.ps.pid or server.ps in proc.parents():
                continue
            cmdline = " ".join(proc.cmdline())
            if "--type=renderer" in cmdline:
                groups["renderers"] += cpu_seconds(proc)
            elif "chrom" in proc.name() or "chrom" in cmdline:
                groups["other Chromium"] += cpu_seconds(proc)
            else:
                groups["driver, writer"] += cpu_seconds(proc)
    groups["this script"] = cpu_seconds(me)
    groups["perview"] = cpu_seconds(server.ps) + descendants_cpu_seconds(server.ps)
    groups["all"] = machine_cpu()[0]
    return groups


async def watch_until_seen(
    page: Page, limit: float, work: Coroutine[Any, Any, str | None], server: Any
) -> tuple[list[float], int, str | None, dict[str, float]]:
    """Run `work` while probing the page and sampling the renderers' RSS, until the last line is
    on screen and PROBE_TAIL s more: (probes, peak RSS, what `work` returned, CPU used over that
    window by each of CPU_GROUPS as a share of one core)."""
    stop = asyncio.Event()
    probes: list[float] = []
    cpu_before, wall = cpu_by_group(server), time.monotonic()
    prober = asyncio.create_task(probe(page, stop, probes, limit + PROBE_TAIL))
    sampler = asyncio.create_task(rss_peak(stop, limit + PROBE_TAIL))
    try:
        result = await work
        if await until(page, SEEN, None, limit, 0.02):
            await asyncio.sleep(PROBE_TAIL)
    finally:
        stop.set()
        await prober
        peak = await sampler
    cpu_after, wall = cpu_by_group(server), time.monotonic() - wall
    cpu = {k: (cpu_after[k] - cpu_before[k]) / wall for k in CPU_GROUPS}
    return probes, peak, result, cpu


@dataclass
class Burst:
    """Where a page trial writes and what it shows."""

    source: str
    path: Path
    count: int  # lines in the measured burst
    capacity: int | None = None  # ?max=, None: the page's default
    prefill: int = 0  # lines written (and shown) before it
    query: str = ""  # more of the page's URL: `&filter=...&regex=1` (--filter)


async def page_burst(
    pw: Playwright, server: ConfigServer, writer: Helper, burst: Burst, limit: float
) -> PageRun:
    browser = await launch(pw)
    try:
        filled: dict[str, float] = {}
        page = await browser.new_page(viewport=VIEWPORT)
        if burst.prefill:
            await page.goto("about:blank")
            await asyncio.sleep(SETTLE)
            filled |= {f"blank_{k}": v for k, v in (await memory(page)).items()}
        url = f"{server.base}/?source={burst.source}"
        if burst.capacity:
            url += f"&max={burst.capacity}"
        url += burst.query
        await open_page(page, url)
        await sync_page(page, burst.path, 10.0)
        load = await memory(page)
        first = 1
        if burst.prefill:
            await prepare(writer, burst.path, first, burst.prefill)
            done = await go(writer, 300)
            last_filled = f"{first + burst.prefill - 1:09d} "
            if not await until(page, STORE_HAS, last_filled, 600, 0.1):
                raise RuntimeError(f"the page did not get {burst.prefill:,} lines within 600 s")
            filled["ingest"] = time.monotonic() - int(done.split()[1]) / 1e9
            filled["text"] = burst.prefill * (SIZE - 1)  # bytes of the lines, newlines aside
            await asyncio.sleep(SETTLE)
            filled |= await memory(page)
            for name, text in FILTERS:
                timed = await page.evaluate(FILTER, text)
                filled |= {f"filter_{name}": timed["drawn"], f"matches_{name}": timed["matches"]}
            first += burst.prefill
        last = first + burst.count - 1
        setup = {"source": burst.source, "target": f"{last:09d} "}
        await page.evaluate("(a) => window.__benchSetup(a)", setup)
        offset, error = await clock(page)
        idle = await idle_probes(page)
        await prepare(writer, burst.path, first, burst.count)
        probes, peak, result, cpu = await watch_until_seen(page, limit, go(writer, limit), server)
        start_ns, end_ns = map(int, str(result).split())
        seen = await page.evaluate(BENCH)
        to_screen = None
        if seen["seenAt"] is not None:
            to_screen = (seen["seenAt"] - offset) / 1000 - end_ns / 1e9
        await asyncio.sleep(SETTLE)
        after = await memory(page)
        pattern = rf"^\d{{9}} (?:INFO  |WARN  |ERROR ){BODY}$"
        check = {"source": burst.source, "pattern": pattern, "lo": first, "hi": last}
        store = await page.evaluate(STORE_CHECK, check)
        wrote = (end_ns - start_ns) / 1e9
        return PageRun(
            to_screen, wrote, probes, idle, error, peak, load, after, seen, store, cpu, filled
        )
    finally:
        await browser.close()


async def prepare(writer: Helper, path: Path, first: int, count: int) -> None:
    writer.send(f"prep {path} {first} {count}")
    if await asyncio.to_thread(writer.expect, "ready", 300) is None:
        raise RuntimeError("the writer did not get ready")


async def go(writer: Helper, limit: float) -> str:
    writer.send("go")
    done = await asyncio.to_thread(writer.expect, "done", limit)
    if done is None:
        raise RuntimeError("the writer did not finish")
    return done


SHOW = """
(a) => {
  const t = performance.timeOrigin + performance.now();
  window.perview.show([a.source], "merged");
  window.__benchSetup(a);
  return t;
}
"""


async def page_seq(
    pw: Playwright, server: ConfigServer, idle: str, source: str, count: int, limit: float
) -> PageRun:
    """The page opened on the (empty) `idle` source switches to `source`, a `seq 1 count`."""
    browser = await launch(pw)
    try:
        page = await open_page(
            await browser.new_page(viewport=VIEWPORT), f"{server.base}/?source={idle}"
        )
        load = await memory(page)
        idle_rtts = await idle_probes(page)
        started = await page.evaluate(SHOW, {"source": source, "target": str(count)})

        async def nothing() -> None:
            return None

        probes, peak, _, cpu = await watch_until_seen(page, limit, nothing(), server)
        seen = await page.evaluate(BENCH)
        to_screen = None if seen["seenAt"] is None else (seen["seenAt"] - started) / 1000
        await asyncio.sleep(SETTLE)
        after = await memory(page)
        check = {"source": source, "pattern": r"^\d+$", "lo": 1, "hi": count}
        store = await page.evaluate(STORE_CHECK, check)
        return PageRun(to_screen, 0.0, probes, idle_rtts, 0.0, peak, load, after, seen, store, cpu)
    finally:
        await browser.close()


# -- the run ----------------------------------------------------------------------------------


def write_config(directory: Path, trials: int, seq: int, raw: bool) -> None:
    lines = []
    names = [f"page{i}" for i in range(trials)] + [f"base{i}" for i in range(trials)]
    for name in [*names, "million", "idle"]:
        (directory / f"{name}.log").touch()
        lines += [f"[sources.{name}]", f"file = {json.dumps(str(directory / f'{name}.log'))}", ""]
    raws = [name for i in range(trials if raw else 0) for name in (f"raw{i}", f"rawbase{i}")]
    for name in raws:  # the same burst with no levels: the page and the baseline without them
        (directory / f"{name}.log").touch()
        path = json.dumps(str(directory / f"{name}.log"))
        lines += [f"[sources.{name}]", f"file = {path}", 'format = "raw"', ""]
    for i in range(trials if seq else 0):
        for name in (f"seq{i}", f"seqbase{i}"):
            lines += [f"[sources.{name}]", f'command = ["seq", "1", "{seq}"]', ""]
    (directory / "perview.toml").write_text("\n".join(lines))


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def ms(s: float | None) -> str:
    return "never" if s is None else f"{s * 1000:.0f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def median_or_none(values: Sequence[float | None]) -> float | None:
    """The median; None (never) if there is none or a trial never got there."""
    if not values or any(v is None for v in values):
        return None
    return statistics.median(v for v in values if v is not None)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def report_lines(written: int, runs: Sequence[PageRun]) -> None:
    for i, run in enumerate(runs):
        seen, store = run.seen, run.store
        broken = seen["breaks"] or seen["extra"]
        missing = "unknown (see breaks)" if broken else f"{written - seen['lines']:,}"
        print(
            f"    trial {i + 1}: received {seen['lines']:,} lines in {seen['events']:,} events,"
            f" missing {missing}, breaks {seen['breaks']}, extra (split) {seen['extra']},"
            f" gaps {seen['gaps']}; the tab holds {store['held']:,} of them"
            f" ({store['lo']}..{store['hi']}, consecutive: {store['disorder'] == 0}),"
            f" malformed lines in the tab: {store['malformed']} {store['samples'] or ''}"
        )


def report_page(runs: Sequence[PageRun], base: Sequence[BaseRun], rss_target: float) -> bool:
    """Print the figures of `runs` (page trials) against `base` (raw SSE trials); True if every
    target is met."""
    screen = median_or_none([r.to_screen for r in runs])
    baseline = median_or_none([b.to_last for b in base])
    probes = [p for r in runs for p in r.probes]
    idle = [p for r in runs for p in r.idle]
    worst = max(probes, default=math.nan)
    peak = max(r.rss_peak for r in runs)

    def med(key: str, where: str = "after") -> float:
        return float(statistics.median(getattr(r, where)[key] for r in runs))

    if base:
        print(
            f"  raw SSE client (baseline): last line read after {ms(baseline)}"
            f" (trials: {', '.join(ms(b.to_last) for b in base)})"
        )
        for i, b in enumerate(base):
            print(
                f"    trial {i + 1}: received {b.received:,} lines, malformed {b.malformed},"
                f" duplicates {b.dups}"
            )
    print(
        f"  page: last line on screen after {ms(screen)}"
        f" (trials: {', '.join(ms(r.to_screen) for r in runs)};"
        f" clock error <= {max(r.clock_error for r in runs) * 1000:.1f} ms)"
    )
    if screen is not None and baseline:
        print(f"    page / raw SSE client: {ratio(screen, baseline)}")
    wrote = [r.wrote for r in runs if r.wrote]
    if wrote:
        print(f"    (the write itself took {statistics.median(wrote) * 1000:.0f} ms)")
    print(
        f'  page answers evaluate("1"): from the write to the last line on screen'
        f" (+{PROBE_TAIL * 1000:.0f} ms) median {percentile(probes, 50) * 1000:.1f} ms,"
        f" p99 {percentile(probes, 99) * 1000:.1f} ms, max {worst * 1000:.0f} ms"
        f" ({len(probes)} probes); idle, just before: median {percentile(idle, 50) * 1000:.1f} ms,"
        f" max {max(idle) * 1000:.1f} ms"
    )
    cpu = {k: statistics.median(r.cpu[k] for r in runs) for k in CPU_GROUPS}
    shares = ", ".join(f"{k} {v:.0%}" for k, v in cpu.items() if k != "all")
    others = max(0.0, cpu["all"] - sum(v for k, v in cpu.items() if k != "all"))  # ~: sampled
    print(
        f"    CPU over that window, share of one core: {shares}; anything else {others:.0%};"
        f" the machine {cpu['all']:.0%} of {psutil.cpu_count() * 100}%"
    )
    long = [t for r in runs for t in r.seen["long"]]
    print(
        f"    the page's main thread: long tasks (> 50 ms, PerformanceObserver) {len(long)},"
        f" longest {max(long, default=0):.0f} ms; a 10 ms timer ran at most"
        f" {max(r.seen['late'] for r in runs):.0f} ms late"
    )
    print(
        f"  renderer RSS: {mb(med('rss', 'load'))} once the page is live (no line yet),"
        f" peak {mb(peak)} during the burst, {mb(med('rss'))} {SETTLE:.0f} s after;"
        f" then PSS {mb(med('pss'))}, USS {mb(med('uss'))}, JS heap used {mb(med('heap'))}"
        f" ({mb(med('heap', 'load'))} at load), DOM nodes {med('nodes'):.0f};"
        f" {runs[0].after['renderers']:.0f} renderers, the largest taken"
    )
    ok_screen = screen is not None and screen <= TARGET_SCREEN
    ok_answer = worst <= TARGET_ANSWER
    ok_rss = peak <= rss_target
    intact = all(
        r.seen["breaks"] == 0
        and r.seen["extra"] == 0
        and r.store["malformed"] == 0
        and r.store["disorder"] == 0
        for r in runs
    ) and all(b.malformed == 0 for b in base)
    print(
        f"  targets: on screen <= {TARGET_SCREEN:.0f} s {verdict(ok_screen)};"
        f" answers <= {TARGET_ANSWER * 1000:.0f} ms {verdict(ok_answer)};"
        f" RSS peak <= {mb(rss_target)} {verdict(ok_rss)}; no line split {verdict(intact)}"
    )
    return ok_screen and ok_answer and ok_rss and intact


def report_levels(pages: Sequence[PageRun], raws: Sequence[PageRun]) -> bool:
    """Print the burst's time on screen with levels against without; True if within target."""
    with_levels = median_or_none([r.to_screen for r in pages])
    without = median_or_none([r.to_screen for r in raws])
    if with_levels is None or not without:
        print("  levels: a trial never showed its last line")
        return False
    ok = with_levels <= TARGET_LEVELS * without
    print(
        f"  levels: on screen after {ms(with_levels)} with levels, {ms(without)} without:"
        f" {with_levels / without:.2f} times; <= {TARGET_LEVELS} {verdict(ok)}"
    )
    return ok


async def run(args: argparse.Namespace, directory: Path) -> None:
    write_config(directory, args.trials, args.seq, args.raw)
    limit = args.limit
    query = "&" + urlencode({"filter": args.filter, "regex": "1"}) if args.filter else ""
    print(f"{load()}; Chromium {CHROMIUM}, headless, viewport 1280x720")
    if args.filter:
        print(f"the page trials filter with the regular expression {args.filter!r}")
    with serve_config(directory / "perview.toml", "idle") as server:
        writer = Helper(
            [sys.executable, "-I", "-c", WRITER, str(SIZE), str(CHUNK), str(WIDE_EVERY)]
        )
        try:
            async with async_playwright() as pw:
                pages: list[PageRun] = []
                raws: list[PageRun] = []
                raw_base: list[BaseRun] = []
                base: list[BaseRun] = []
                for i in range(args.trials):  # interleaved, so both see the same machine
                    path = directory / f"base{i}.log"
                    base.append(
                        await asyncio.to_thread(
                            sse_burst, server.port, writer, path, f"base{i}", 1, args.lines, limit
                        )
                    )
                    burst = Burst(f"page{i}", directory / f"page{i}.log", args.lines, query=query)
                    pages.append(await page_burst(pw, server, writer, burst, limit))
                    if args.raw:
                        path = directory / f"rawbase{i}.log"
                        raw_base.append(
                            await asyncio.to_thread(
                                sse_burst,
                                server.port,
                                writer,
                                path,
                                f"rawbase{i}",
                                1,
                                args.lines,
                                limit,
                            )
                        )
                        burst = Burst(f"raw{i}", directory / f"raw{i}.log", args.lines, query=query)
                        raws.append(await page_burst(pw, server, writer, burst, limit))
                print(
                    f"\nburst: {args.lines:,} lines of {SIZE} bytes appended to a followed file"
                    f" in {CHUNK:,}-byte writes; the page at its default capacity;"
                    f" {args.trials} trials, medians"
                )
                print("  with levels (a classified source):")
                report_page(pages, base, TARGET_RSS)
                report_lines(args.lines, pages)
                if raws:
                    print('  without levels (the same burst from a source with format = "raw"):')
                    report_page(raws, raw_base, TARGET_RSS)
                    report_lines(args.lines, raws)
                    report_levels(pages, raws)

                if args.scrollback:
                    path = directory / "million.log"
                    burst = Burst(
                        "million", path, args.lines, args.scrollback, args.scrollback, query
                    )
                    million = await page_burst(pw, server, writer, burst, limit)
                    f = million.prefill
                    text = f["text"]
                    above = {k: f[k] - f[f"blank_{k}"] for k in ("rss", "pss", "uss")}
                    print(
                        f"\nscrollback memory: the tab's renderer holds {mb(f['blank_rss'])} RSS"
                        f" blank; with {args.scrollback:,} lines ({mb(text)} of text)"
                        f" {mb(f['rss'])}: {mb(above['rss'])} above blank,"
                        f" {above['rss'] / text:.2f} times the text (target {TARGET_TEXT}:"
                        f" {verdict(above['rss'] <= TARGET_TEXT * text)}); PSS"
                        f" {mb(above['pss'])} and USS {mb(above['uss'])} above blank; JS heap"
                        f" {mb(f['heap'])} used of {mb(f['heap_total'])}"
                    )
                    for name, _ in FILTERS:
                        took = f[f"filter_{name}"]
                        print(
                            f"  filter {name!r}: {took:.0f} ms to the next frame,"
                            f" {f[f'matches_{name}']:,.0f} lines shown"
                            f" (target {TARGET_FILTER_MS} ms: {verdict(took <= TARGET_FILTER_MS)})"
                        )
                    print(
                        f"\nscrollback: {args.scrollback:,} lines written first, the page opened"
                        f" with ?max={args.scrollback}; it held them all {f['ingest']:.1f} s"
                        f" after their write; then RSS {mb(f['rss'])} (PSS {mb(f['pss'])},"
                        f" USS {mb(f['uss'])}), JS heap used {mb(f['heap'])}, DOM nodes"
                        f" {f['nodes']:.0f}. The same burst on top, 1 trial:"
                    )
                    report_page([million], [], TARGET_RSS_MILLION)
                    report_lines(args.lines, [million])

                if args.seq:
                    seq_pages: list[PageRun] = []
                    seq_base: list[BaseRun] = []
                    for i in range(args.trials):
                        seq_base.append(
                            await asyncio.to_thread(
                                sse_seq, server.port, f"seqbase{i}", args.seq, limit
                            )
                        )
                        seq_pages.append(
                            await page_seq(pw, server, "idle", f"seq{i}", args.seq, limit)
                        )
                    print(
                        f"\nseq: a command source `seq 1 {args.seq}`, from switching the page"
                        f" to it (the baseline: from its request) to the last line;"
                        f" {args.trials} trials, medians"
                    )
                    report_page(seq_pages, seq_base, TARGET_RSS)
                    report_lines(args.seq, seq_pages)
        finally:
            writer.close()
    print(f"\n{load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines a burst")
    parser.add_argument(
        "--scrollback", type=int, default=1_000_000, help="lines before the second burst (0: skip)"
    )
    parser.add_argument("--seq", type=int, default=100_000, help="seq 1 N as a source (0: skip)")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--filter", metavar="RE", help="the page filters with this regex (it must keep the burst)"
    )
    parser.add_argument(
        "--no-raw",
        dest="raw",
        action="store_false",
        help='skip the trials from a source without levels (format = "raw")',
    )
    parser.add_argument("--limit", type=float, default=60.0, help="s to wait for anything")
    parser.add_argument("--quick", action="store_true", help="1 trial, 200,000 lines of scrollback")
    args = parser.parse_args()
    if args.quick:
        args.trials = 1
        args.scrollback = min(args.scrollback, 200_000)
    with tempfile.TemporaryDirectory(prefix="perview-burst-") as directory:
        asyncio.run(run(args, Path(directory)))


if __name__ == "__main__":
    main()
