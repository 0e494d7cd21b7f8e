"""The tab's store in a real browser: lines kept as the bytes they came as (store.js), shown,
filtered and saved as the text they are."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]

LINE = '[data-testid="line"]'
LINES = [
    "caf\u00e9 ok",
    "\u65e5\u672c\u8a9e ERROR here",
    "\x1b[31mred\x1b[0m Error in colour",
    "emoji \U0001f600 error",
    "plain",
]


def serve_lines(serve: Serve, tmp_path: Path) -> Server:
    log = tmp_path / "lines.log"
    log.write_text("".join(f"{line}\n" for line in LINES), encoding="utf-8")
    command = f"sh -c 'cat {log}; sleep 300'"
    config = tmp_path / "perview.toml"
    config.write_text(f"[sources.lines]\ncommand = {json.dumps(command)}\n")
    return serve("serve", "-c", str(config))


def test_lines_beyond_latin_1_are_shown_filtered_and_saved_as_they_came(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_lines(serve, tmp_path)
    page.goto(f"{server.base}/?token={TOKEN}")
    texts = page.locator(f"{LINE} .text")
    plain = [line.replace("\x1b[31m", "").replace("\x1b[0m", "") for line in LINES]
    expect(texts).to_have_text(plain)
    filter_box = page.get_by_test_id("filter")
    # Looked for in the lines' bytes, in any case; the coloured line by its plain text.
    filter_box.fill("error")
    expect(texts).to_have_text([plain[1], plain[2], plain[3]])
    filter_box.fill("\u65e5\u672c")
    expect(texts).to_have_text([plain[1]])
    filter_box.fill("CAF\u00c9")  # a letter beyond ASCII in another case: the text's own test
    expect(texts).to_have_text([plain[0]])
    filter_box.fill("")
    expect(texts).to_have_count(len(LINES))
    with page.expect_download() as download:
        page.get_by_test_id("download-shown").click()
    saved = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert saved[1:] == plain


OLD_LINES = 60_000  # of 114 bytes: 6.8 MB, so all but the newest 2 MiB are packed (store.js)
OLD = """
import sys, time
for n in range(60000):
    word = "caf\\u00e9 needle" if n % 9000 == 5 else "plain"
    sys.stdout.write(f"{n:06d} {word} " + "x" * 100 + "\\n")
sys.stdout.flush()
time.sleep(300)
"""
# Segments are packed when the page is idle (store.js).
PACKED = "() => window.perview.store.segments.filter((segment) => segment.packed).length >= 2"


def test_old_lines_in_packed_segments_are_filtered_and_saved_as_they_came(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    config = tmp_path / "perview.toml"
    config.write_text(f"[sources.old]\ncommand = {json.dumps(['python3', '-c', OLD])}\n")
    server = serve("serve", "-c", str(config))
    page.goto(f"{server.base}/?token={TOKEN}&max={2 * OLD_LINES}")
    last = f"{OLD_LINES - 1:06d} plain {'x' * 100}"
    expect(page.locator(f"{LINE} .text").last).to_have_text(last, timeout=30_000)
    page.wait_for_function(PACKED, timeout=10_000)
    wanted = [f"{n:06d} caf\u00e9 needle {'x' * 100}" for n in range(5, OLD_LINES, 9000)]
    texts = page.locator(f"{LINE} .text")
    filter_box = page.get_by_test_id("filter")
    filter_box.fill("NEEDLE")  # found in the lines' bytes
    expect(texts).to_have_text(wanted)
    filter_box.fill("CAF\u00c9")  # found in their decoded text
    expect(texts).to_have_text(wanted)
    with page.expect_download() as download:
        page.get_by_test_id("download-shown").click()
    saved = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert saved[1:] == wanted
