"""A link whose regex filter backtracks forever cannot freeze the tab.

Async Playwright, unlike the other browser tests: a frozen page never answers `evaluate`, and only
an async call can be given up after a bound. (Sync Playwright keeps an event loop of its own for
the module's life, so this test has a module to itself.)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from playwright.async_api import async_playwright

from testbed.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]

ANSWER = 1.0  # s: the page must answer every probe within this
WITHIN = 20.0  # s: the bound on the whole test's waiting
AFTER = 1.0  # s of probing once the notice is shown (the worker is ended by then)
SLOW_NOTICE = "this pattern is too slow on these lines: stopped, every line shown"
CATASTROPHIC = "a" * 40 + "b"  # `^(a+)+$` tries 2^40 ways to split the a's before failing


async def test_a_permalink_with_a_backtracking_pattern_leaves_the_page_responsive(
    serve: Serve, tmp_path: Path
) -> None:
    script = f"printf 'ordinary line\\n{CATASTROPHIC}\\n'; exec sleep 300"
    config = tmp_path / "perview.toml"
    config.write_text(f"[sources.x]\ncommand = {json.dumps(['sh', '-c', script])}\n")
    server = serve("serve", "-c", str(config))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{server.base}/?token={TOKEN}&source=x&filter=^(a%2B)%2B$&regex=1")
            note = page.get_by_test_id("filter-note")
            start = time.monotonic()
            slowest, shown_at = 0.0, None
            while shown_at is None or time.monotonic() - shown_at < AFTER:
                assert time.monotonic() - start < WITHIN, "no notice that the filter was stopped"
                asked = time.monotonic()
                try:
                    await asyncio.wait_for(page.evaluate("1"), ANSWER)
                except TimeoutError:
                    raise AssertionError(f"the page did not answer within {ANSWER} s") from None
                slowest = max(slowest, time.monotonic() - asked)
                if shown_at is None and await asyncio.wait_for(note.is_visible(), ANSWER):
                    shown_at = time.monotonic()
                await asyncio.sleep(0.02)
            assert await note.text_content() == SLOW_NOTICE
            # Stopped, the filter shows every line as it is.
            texts = await page.locator('[data-testid="line"] .text').all_text_contents()
            assert texts == ["ordinary line", CATASTROPHIC]
            assert errors == []
            print(f"slowest answer {slowest * 1000:.0f} ms")
        finally:
            await browser.close()
