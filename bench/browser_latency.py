"""Browser latency: a line appended to a followed file, how long until it is in the page's DOM?

The issue: "200 lines at 20 per second, p50/p99 of write-to-DOM latency (target p99 under 3 ms:
frontail and tailon reach 3 ms, log.io 13 ms; batching must never delay the first line after a
quiet spell)." At 20 lines/s every line comes after a 50 ms quiet spell, so every line is a
"first line".

How. One `perview serve -c CONFIG --no-auth --port 0` on 127.0.0.1 follows an empty file
(`[sources.lat] file = ...`). A writer process appends `--lines` lines (`%09d ` + `x` padding,
100 bytes with the newline) at `--rate` lines/s, one write(2) each on an O_APPEND descriptor,
paced by a fixed schedule, and notes CLOCK_MONOTONIC right after each write. Four readers watch
the same writes at once, so each line gives a paired comparison:

- `tail -F -n 0 FILE` into a pipe read by this process: the floor of following a file;
- a raw SSE client in this process (`_common.RawStream`, a plain socket) on
  `/api/events?source=lat`: what Perview adds (the baseline for the page);
- the page in headless Chromium (Debian's, through Playwright), in two places:
  * `event`: when a `lines` event reaches JavaScript (an init script adds a listener to every
    EventSource before the page's own, and stamps events the page dispatches itself, for a
    stream read with fetch), i.e. Perview + the browser's network and SSE parsing;
  * `DOM`: when a row with that line's number is added to the pane's rows (a MutationObserver:
    its callback runs as a microtask right after the mutation, i.e. in the same frame, before
    paint).

Readers in this process stamp CLOCK_MONOTONIC as each read returns. The page stamps
`performance.timeOrigin + performance.now()`, mapped to CLOCK_MONOTONIC by the `evaluate`
round trip with the shortest time among 50 before and 50 after the run (error: half of it,
printed, with how much the mapping moved in between). Before the writer starts, `sync N` lines
are appended until every reader has shown one, so all of them follow the file.

Printed: p50 / p99 / max per reader, lines lost, the page's ratios to the raw SSE client, and,
inside the page, event -> DOM (what the page's own batching adds).

    python bench/browser_latency.py [--lines 200] [--rate 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from _common import (
    LIVE,
    PAGE_NOW,
    RawStream,
    append,
    cpu_seconds,
    descendants_cpu_seconds,
    launch,
    machine_cpu,
    page_clock_offset,
    ratio,
    serve_config,
    stop_process,
    summary,
    until,
)
from playwright.async_api import Page, async_playwright

SOURCE = "lat"
SIZE = 100  # bytes a line, newline included
TARGET_P99 = 0.003
SYNC_LIMIT = 15.0
DRAIN = 2.0  # s after the writer's last line for every reader to have it
NUMBER = re.compile(rb"(\d{9}) x")

# Appends lines 1..count at `rate`, line k due at start + (k - 1) / rate; prints the
# CLOCK_MONOTONIC ns taken right after each write, as a JSON list.
WRITER = """
import json, os, sys, time
path, rate, count, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pad = b"x" * (size - 11) + b"\\n"
lines = [b"%09d " % n + pad for n in range(1, count + 1)]
written = []
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
start = time.monotonic()
for k, line in enumerate(lines):
    delay = start + k / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    os.write(fd, line)
    written.append(time.monotonic_ns())
os.close(fd)
print(json.dumps(written))
"""

# Before the page's scripts: each `lines` event's lines are stamped with the time the event
# reached JavaScript, before the page's own listeners run: a first listener on every EventSource,
# or, for a stream read in JavaScript (fetch), when the page dispatches the event.
INIT = """
window.__lat = { event: new Map(), dom: new Map() };
const stamp = (d) => {
  const t = performance.timeOrigin + performance.now();
  for (let i = d.indexOf("\\n"); i >= 0; i = d.indexOf("\\n", i + 1)) {
    const n = parseInt(d.slice(i + 1, i + 10), 10);
    if (!Number.isNaN(n) && !window.__lat.event.has(n)) window.__lat.event.set(n, t);
  }
};
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener("lines", (e) => stamp(e.data));
  }
};
const nativeDispatch = EventTarget.prototype.dispatchEvent;
EventTarget.prototype.dispatchEvent = function (e) {
  if (e.type === "lines") stamp(e.data);
  return nativeDispatch.call(this, e);
};
"""
# After load: stamp each line's first row in the pane.
OBSERVE = """
() => {
  const rows = window.perview.panes[0].rows;
  new MutationObserver((records) => {
    const t = performance.timeOrigin + performance.now();
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.dataset?.testid !== "line") continue;
        const n = parseInt(node.textContent, 10);
        if (!Number.isNaN(n) && !window.__lat.dom.has(n)) window.__lat.dom.set(n, t);
      }
    }
  }).observe(rows, { childList: true });
}
"""
COLLECT = "() => ({ event: [...window.__lat.event], dom: [...window.__lat.dom] })"
HAS_SYNC = """
() => {
  const s = window.perview.store;
  for (let q = s.first; q < s.next; q++) {
    if (s.text(q).startsWith("sync ")) return true;
  }
  return false;
}
"""


class TailReader:
    """`tail -F -n 0 FILE`, its stdout a pipe."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            ["tail", "-F", "-n", "0", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()

    def read(self, timeout: float) -> tuple[int, bytes]:
        if not select.select([self.fd], [], [], max(timeout, 0.0))[0]:
            return time.monotonic_ns(), b""
        data = os.read(self.fd, 262144)
        at = time.monotonic_ns()
        if not data:
            raise EOFError
        return at, data

    def close(self) -> None:
        stop_process(self.proc)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class Collector(threading.Thread):
    """Reads a reader until told to stop: the CLOCK_MONOTONIC ns at which each line number first
    arrived, and whether a `sync` line has."""

    def __init__(self, read: Callable[[float], tuple[int, bytes]]) -> None:
        super().__init__(daemon=True)
        self.read = read
        self.arrived: dict[int, int] = {}
        self.synced = threading.Event()
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        buffer = b""
        try:
            while not self.halt.is_set():
                at, data = self.read(0.1)
                if not data:
                    continue
                buffer += data
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    continue
                if b"sync " in buffer[:cut]:
                    self.synced.set()
                for found in NUMBER.finditer(buffer, 0, cut):
                    self.arrived.setdefault(int(found[1]), at)
                buffer = buffer[cut + 1 :]
        except EOFError:
            pass
        except BaseException as exc:  # reported by the main thread
            self.error = exc


async def samples(page: Page, n: int) -> list[tuple[float, float, float]]:
    out = []
    for _ in range(n):
        before = time.monotonic()
        now = await page.evaluate(PAGE_NOW)
        out.append((before, float(now), time.monotonic()))
    return out


async def sync(path: Path, collectors: list[Collector], page: Page) -> None:
    """Append `sync N` lines until every reader has shown one."""
    deadline = time.monotonic() + SYNC_LIMIT
    n = 0
    while time.monotonic() < deadline:
        await asyncio.to_thread(append, path, b"sync %d\n" % n)
        n += 1
        await asyncio.sleep(0.05)
        if all(c.synced.is_set() for c in collectors) and await page.evaluate(HAS_SYNC):
            return
    raise RuntimeError(f"not every reader showed a line within {SYNC_LIMIT:.0f} s")


def cpu_now() -> tuple[float, float]:
    """(CPU seconds of this process and everything it started, busy CPU seconds of the machine)."""
    me = psutil.Process()
    return cpu_seconds(me) + descendants_cpu_seconds(me), machine_cpu()[0]


def latencies(written: list[int], arrived: dict[int, float]) -> list[float]:
    """Seconds from each line's write to its arrival (arrival times in ns, CLOCK_MONOTONIC)."""
    return [(arrived[n] - w) / 1e9 for n, w in enumerate(written, 1) if n in arrived]


async def run(args: argparse.Namespace, directory: Path) -> None:
    path = directory / "lat.log"
    path.touch()
    config = directory / "perview.toml"
    config.write_text(f"[sources.{SOURCE}]\nfile = {json.dumps(str(path))}\n")
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with serve_config(config, SOURCE) as server:
        tail = TailReader(path)
        stream = RawStream(server.port, f"/api/events?source={SOURCE}&backlog=0")
        collectors = [Collector(tail.read), Collector(stream.read)]
        for collector in collectors:
            collector.start()
        try:
            async with async_playwright() as pw:
                browser = await launch(pw)
                try:
                    page = await browser.new_page(viewport={"width": 1280, "height": 720})
                    await page.add_init_script(INIT)
                    await page.goto(f"{server.base}/?source={SOURCE}")
                    if not await until(page, LIVE, None, 15.0):
                        raise RuntimeError("the page did not connect")
                    await page.evaluate(OBSERVE)
                    await sync(path, collectors, page)
                    before = await samples(page, 50)
                    cpu_before, wall = cpu_now(), time.monotonic()
                    argv = [sys.executable, "-I", "-c", WRITER, str(path), str(args.rate)]
                    writer = await asyncio.create_subprocess_exec(
                        *argv, str(args.lines), str(SIZE), stdout=subprocess.PIPE
                    )
                    try:
                        limit = args.lines / args.rate + 30
                        out, _ = await asyncio.wait_for(writer.communicate(), limit)
                    finally:
                        if writer.returncode is None:
                            writer.kill()
                            await writer.wait()
                    written: list[int] = json.loads(out)
                    cpu = [b - a for a, b in zip(cpu_before, cpu_now(), strict=True)]
                    wall = time.monotonic() - wall
                    await asyncio.sleep(DRAIN)
                    after = await samples(page, 50)
                    seen: dict[str, list[list[float]]] = await page.evaluate(COLLECT)
                finally:
                    await browser.close()
        finally:
            for collector in collectors:
                collector.halt.set()
                collector.join(5)
            tail.close()
            stream.close()
        for collector in collectors:
            if collector.error is not None:
                raise collector.error
    offset = page_clock_offset(before + after)  # page ms - monotonic ms
    error = min(s[2] - s[0] for s in before + after) / 2
    drift = page_clock_offset(after) - page_clock_offset(before)

    def page_ns(pairs: list[list[float]]) -> dict[int, float]:
        return {int(n): (t - offset) * 1e6 for n, t in pairs}

    tail_name, sse_name = "tail -F -n 0, a pipe", "raw SSE client (/api/events)"
    event_name, dom_name = "page: `lines` event in JS", "page: row in the DOM"
    readers: dict[str, dict[int, float]] = {
        tail_name: {n: float(t) for n, t in collectors[0].arrived.items()},
        sse_name: {n: float(t) for n, t in collectors[1].arrived.items()},
        event_name: page_ns(seen["event"]),
        dom_name: page_ns(seen["dom"]),
    }
    figures = {name: summary(latencies(written, got)) for name, got in readers.items()}
    print(
        f"latency: {args.lines} lines of {SIZE} bytes at {args.rate:g}/s appended to a followed"
        f" file; the four readers at once, so each line is a paired comparison; write -> reader"
    )
    print(f"  {'reader':32} {'p50':>7} {'p99':>7} {'max':>7}  lost")
    for name, got in readers.items():
        f = figures[name]
        lost = sum(1 for n in range(1, args.lines + 1) if n not in got)
        print(
            f"  {name:32} {f['median'] * 1000:6.2f}  {f['p99'] * 1000:6.2f}  {f['max'] * 1000:6.2f}"
            f"  {lost}   (ms)"
        )
    page_clock = f"page clock error <= {error * 1000:.2f} ms, moved {drift:.2f} ms during the run"
    print(f"  ({page_clock})")
    floor, sse, event, dom = (figures[k] for k in (tail_name, sse_name, event_name, dom_name))

    def both(a: dict[str, float], b: dict[str, float]) -> str:
        return f"{ratio(a['median'], b['median'])} / {ratio(a['p99'], b['p99'])}"

    print(
        f"  ratios p50 / p99: page DOM / raw SSE {both(dom, sse)}; page event / raw SSE"
        f" {both(event, sse)}; raw SSE / tail -F {both(sse, floor)}"
    )
    inside = summary(
        [
            (readers[dom_name][n] - readers[event_name][n]) / 1e9
            for n in range(1, args.lines + 1)
            if n in readers[dom_name] and n in readers[event_name]
        ]
    )
    print(
        f"  inside the page, event -> DOM: p50 {inside['median'] * 1000:.2f} ms,"
        f" p99 {inside['p99'] * 1000:.2f} ms, max {inside['max'] * 1000:.2f} ms"
    )
    met = dom["p99"] < TARGET_P99
    print(
        f"  target: write -> DOM p99 < {TARGET_P99 * 1000:.0f} ms:"
        f" {'met' if met else 'NOT MET'} ({dom['p99'] * 1000:.2f} ms)"
    )
    print(
        f"  CPU while writing, share of one core: this benchmark and all it started (Perview,"
        f" Chromium, readers) {cpu[0] / wall:.0%}, anything else {(cpu[1] - cpu[0]) / wall:.0%},"
        f" of {psutil.cpu_count() * 100}%"
    )
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="lines a second")
    parser.add_argument("--quick", action="store_true", help="60 lines")
    args = parser.parse_args()
    if args.quick:
        args.lines = min(args.lines, 60)
    with tempfile.TemporaryDirectory(prefix="perview-browser-latency-") as directory:
        asyncio.run(run(args, Path(directory)))


if __name__ == "__main__":
    main()
