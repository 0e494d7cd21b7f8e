"""What a hostile log line or link cannot do to the page: reorder or hide text, freeze the tab."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]

LINE = '[data-testid="line"]'


def serve_script(serve: Serve, tmp_path: Path, scripts: dict[str, str]) -> Server:
    """A live server whose sources run these `sh -c` scripts (then stay quiet)."""
    text = "".join(
        f"[sources.{name}]\ncommand = {json.dumps(['sh', '-c', script + '; exec sleep 300'])}\n\n"
        for name, script in scripts.items()
    )
    path = tmp_path / "perview.toml"
    path.write_text(text)
    return serve("serve", "-c", str(path))


def open_page(page: Page, server: Server, query: str = "") -> None:
    page.goto(f"{server.base}/?token={TOKEN}&{query}")
    expect(page.get_by_test_id("connection")).to_have_text("live")


def test_bidi_controls_and_a_bare_escape_are_visible_marks(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    # U+202E (RIGHT-TO-LEFT OVERRIDE) would draw what follows it backwards; ESC [ 1 followed by a
    # space is a malformed CSI, which leaves a bare ESC; a CR inside a line reaches the page as
    # U+240D, a control picture Debian's fonts draw as an empty box.
    script = r"printf 'left \342\200\256right \033[1 end 10%%\r20%%\n'"
    server = serve_script(serve, tmp_path, {"hostile": script})
    open_page(page, server)
    text = page.locator(f"{LINE} .text").first
    expect(text).to_have_text("left <U+202E>right ^[[1 end 10%^M20%")
    marks = text.locator(".ctl")
    expect(marks).to_have_count(3)
    assert marks.evaluate_all("els => els.map(e => e.title)") == ["U+202E", "U+001B", "U+000D"]
    raw = text.evaluate("e => e.textContent")
    assert not any(c in raw for c in "\u202e\x1b\u240d\r")
    # Drawn left to right: each part starts to the right of the one before it.
    lefts = text.evaluate(
        """e => ["left", "<U+202E>", "right", "^[", "end"].map(part => {
               const walker = document.createTreeWalker(e, NodeFilter.SHOW_TEXT);
               for (let node; (node = walker.nextNode()); ) {
                 const at = node.data.indexOf(part);
                 if (at < 0) continue;
                 const range = document.createRange();
                 range.setStart(node, at);
                 range.setEnd(node, at + part.length);
                 return range.getBoundingClientRect().left;
               }
               return null;
             })"""
    )
    assert None not in lefts and lefts == sorted(lefts), lefts


def test_a_regex_filter_from_a_link_filters_live_lines(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    ticker = 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'
    server = serve_script(serve, tmp_path, {"ticker": ticker})
    open_page(page, server, "source=ticker&filter=tick%20%5Cd*%5B02468%5D%24&regex=1")
    count = "() => parseInt(document.querySelector('[data-testid=match-count]').textContent)"
    page.wait_for_function(f"() => ({count})() >= 4")
    before = page.evaluate(count)
    page.wait_for_function(f"() => ({count})() >= {before + 4}")  # and more keep coming
    ticks = [int(t.split()[1]) for t in page.locator(f"{LINE} .text").all_text_contents()]
    assert all(n % 2 == 0 for n in ticks) and ticks == sorted(ticks), ticks
    expect(page.get_by_test_id("filter-note")).to_be_hidden()
    expect(page.get_by_test_id("match-count")).to_contain_text("matching")


def test_an_invalid_pattern_is_said_next_to_the_filter_box(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_script(serve, tmp_path, {"w": "printf 'one\\ntwo\\n'"})
    open_page(page, server, "source=w&filter=(&regex=1")
    note = page.get_by_test_id("filter-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Invalid regular expression")
    expect(page.locator(LINE)).to_have_count(2)  # a filter that cannot run hides nothing
    page.get_by_test_id("filter").fill("^t")
    expect(note).to_be_hidden()
    expect(page.locator(f"{LINE} .text")).to_have_text(["two"])


def test_a_notice_quoting_a_bidi_override_shows_it_as_a_mark(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    config = tmp_path / "perview.toml"
    config.write_text('[sources.x]\ncommand = ["perview-no-such-\\u202etxt.exe"]\n')
    server = serve("serve", "-c", str(config))
    open_page(page, server)
    notice = page.get_by_test_id("marker").filter(has_text="failed to start")
    expect(notice).to_have_text(
        "failed to start: perview-no-such-<U+202E>txt.exe: command not found"
    )
