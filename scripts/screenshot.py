#!/usr/bin/env python3
"""Take docs/screenshot.png: the page of a real Perview run, 1280x720.

Starts `python -m perview serve -c CONFIG --port 0` (a random PERVIEW_TOKEN) on 127.0.0.1 with a
small demo config in a temporary directory: a web server's access log and an application log
(both made-up, with ANSI colours, from a ticker script written next to the config) in a group
`web-1`, and a third, idle source. Headless Chromium (Debian's, through Playwright) opens the
printed URL with both sources side by side and two highlight rules, waits until both panes show
lines and the sidebar shows rates, and takes the screenshot. Everything started is stopped.

    python scripts/screenshot.py [--out docs/screenshot.png] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from playwright.async_api import Page, async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for testbed/
from testbed.chromium import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"open\s+(http://127\.0\.0\.1:\d+/#token=\S+)")
START_TIMEOUT = 15.0
ROWS_WANTED = 25  # rows each pane shows before the picture is taken
SETTLE = 8.0  # s more: the sidebar shows rates, and the start-up CPU is out of the host figures

# `ticker.py access|app`: a burst of made-up history, then a few lines a second, forever.
TICKER = r"""
import random, sys, time
from datetime import datetime, timedelta, timezone

kind = sys.argv[1]
rng = random.Random(7 if kind == "access" else 11)
GREEN, YELLOW, RED, CYAN, DIM, BOLD, RESET = (
    "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[36m", "\x1b[2m", "\x1b[1m", "\x1b[0m")
PATHS = ["/", "/api/cart", "/api/checkout", "/api/orders/{}", "/api/products?page={}",
         "/static/app.{}.js", "/api/session", "/healthz", "/api/search?q=lamp"]


def access(at):
    path = rng.choice(PATHS).format(rng.randint(1000, 9999))
    method = "POST" if path in ("/api/cart", "/api/checkout") else "GET"
    status = rng.choices([200, 201, 304, 404, 499, 502], [70, 6, 10, 8, 2, 3])[0]
    colour = GREEN if status < 300 else CYAN if status < 400 else YELLOW if status < 500 else RED
    took = rng.expovariate(1 / 0.04) if status != 502 else 30.0
    return (f"{DIM}{at:%H:%M:%S}{RESET} 203.0.113.{rng.randint(2, 250):<3} "
            f"{colour}{status}{RESET} {method:<4} {path} {rng.randint(120, 48000)}B {took:.3f}s")


def app(at):
    stamp = f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}"
    worker = f"w{rng.randint(1, 4)}"
    order = rng.randint(8800, 8899)
    level, logger, text = rng.choices([
        ("INFO", "orders.checkout", f"order {order} paid: EUR {rng.uniform(5, 240):.2f}"),
        ("INFO", "http", f"GET /api/products 200 in {rng.randint(3, 60)} ms"),
        ("DEBUG", "cache", f"hit ratio {rng.uniform(0.80, 0.99):.2f}"),
        ("WARN", "payments", f"psp slow: {rng.randint(900, 2900)} ms, order {order}"),
        ("ERROR", "payments", f"order {order}: psp timeout after 30 s"),
        ("INFO", "mail", f"receipt queued for order {order}"),
    ], [30, 30, 12, 8, 3, 10])[0]
    colour = {"INFO": GREEN, "DEBUG": DIM, "WARN": YELLOW, "ERROR": BOLD + RED}[level]
    return f"{DIM}{stamp}{RESET} {colour}{level:<5}{RESET} [{worker}] {CYAN}{logger}{RESET} {text}"


make = access if kind == "access" else app
now = datetime.now(timezone.utc)
for k in range(80):
    print(make(now - timedelta(seconds=(80 - k) * 0.7)))
sys.stdout.flush()
while True:
    time.sleep(rng.uniform(0.1, 0.5))
    print(make(datetime.now(timezone.utc)), flush=True)
"""


def write_demo(directory: Path) -> Path:
    ticker = directory / "ticker.py"
    ticker.write_text(TICKER)
    jobs = directory / "jobs.log"
    jobs.write_text("03:00:02 nightly export: 18204 rows in 41 s\n")
    python = json.dumps(sys.executable)
    config = directory / "perview.toml"
    config.write_text(
        f"""
[sources.jobs]
file = {json.dumps(str(jobs))}
title = "nightly jobs"

[sources.nginx]
command = [{python}, "-u", {json.dumps(str(ticker))}, "access"]
title = "nginx access"
group = "web-1"

[sources.app]
command = [{python}, "-u", {json.dumps(str(ticker))}, "app"]
title = "shop-api"
group = "web-1"

"""
    )
    return config


def start_server(config: Path, logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`perview serve` on a free loopback port; (the process, the URL it printed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PERVIEW_PORT", "PERVIEW_PROC_PORT")}
    env["PERVIEW_TOKEN"] = secrets.token_urlsafe(16)
    out = logs / "stdout"
    with out.open("wb") as stdout, (logs / "stderr").open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perview", "serve", "-c", str(config), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=ROOT,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        found = URL_LINE.search(out.read_text(errors="replace"))
        if found:
            return proc, found[1]
        time.sleep(0.05)
    stop_server(proc)
    raise SystemExit(f"perview did not start:\n{(logs / 'stderr').read_text(errors='replace')}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def rows_shown(page: Page) -> list[int]:
    return list(
        await page.evaluate(
            """() => [...document.querySelectorAll('[data-testid="pane"]')].map(
                 (pane) => pane.querySelectorAll('[data-testid="line"]').length)"""
        )
    )


async def shoot(url: str, out: Path, chromium: str) -> None:
    query = urlencode(
        [
            ("source", "nginx"),
            ("source", "app"),
            ("view", "split"),
            ("hl", "yellow:checkout\nred:timeout"),
        ]
    )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 720})
            base, _, fragment = url.partition("#")  # the token rides in the fragment
            await page.goto(f"{base}?{query}#{fragment}")
            deadline = time.monotonic() + 20
            while True:
                shown = await rows_shown(page)
                if len(shown) == 2 and min(shown) >= ROWS_WANTED:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"the panes show {shown} rows, not {ROWS_WANTED} each")
                await asyncio.sleep(0.1)
            await asyncio.sleep(SETTLE)  # polls of /api/sources: the sidebar shows lines/s
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out))
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perview-shot-") as name:
        directory = Path(name)
        config = write_demo(directory)
        proc, url = start_server(config, directory)
        try:
            asyncio.run(shoot(url, args.out, args.chromium))
        finally:
            stop_server(proc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
