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
