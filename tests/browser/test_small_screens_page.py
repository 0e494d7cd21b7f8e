"""The page at the sizes it is used at: three panes at 1280x720, and a phone at 390x844."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.test_page import LINE, config, open_page
from tests.conftest import Server

Serve = Callable[..., Server]

LONG = "start " + "y" * 300 + " end"
QUIET = f"sh -c 'echo {LONG}; sleep 300'"


def boxes(page: Page, selector: str) -> list[dict[str, float]]:
    found: list[dict[str, float]] = page.locator(selector).evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; })"
    )
    return found


def test_three_panes_at_1280_keep_every_toolbar_button_inside_their_pane(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path, {n: QUIET for n in ["a", "b", "c"]}))
    open_page(page, server, "source=a&source=b&source=c&view=split")
    panes = page.get_by_test_id("pane")
    expect(panes).to_have_count(3)
    for n in range(3):
        pane = boxes(page, f'[data-testid="pane"] >> nth={n}')[0]
        buttons = boxes(page, f'[data-testid="pane"] >> nth={n} >> .toolbar button')
        assert len(buttons) >= 12
        for b in buttons:
            assert pane["left"] - 0.5 <= b["left"] and b["right"] <= pane["right"] + 0.5, (n, b)
        for i, one in enumerate(buttons):
            for other in buttons[i + 1 :]:
                apart = (
                    one["right"] <= other["left"] + 0.5
                    or other["right"] <= one["left"] + 0.5
                    or one["bottom"] <= other["top"] + 0.5
                    or other["bottom"] <= one["top"] + 0.5
                )
                assert apart, (n, one, other)
    close = panes.nth(2).get_by_test_id("close-pane")
    close.click()  # clickable: nothing covers it
    expect(panes).to_have_count(2)


def test_on_a_phone_the_log_takes_the_screen_and_long_lines_wrap(
    serve: Serve, browser: Browser, tmp_path: Path
) -> None:
    server = serve(
        "serve", "-c", config(tmp_path, {"a": QUIET, "b": "sh -c 'echo bee; sleep 300'"})
    )
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        open_page(page, server, "source=a")
        line = page.locator(f"{LINE} .text").first
        expect(line).to_have_text(LONG)
        log = boxes(page, '[data-testid="log"]')[0]
        assert log["bottom"] - log["top"] > 0.7 * 844, log
        assert page.locator("nav").is_hidden()
        # The line is all on screen: wrapped within the log's width, its end visible.
        text = boxes(page, f"{LINE} .text")[0]
        assert text["right"] <= log["right"] and text["bottom"] - text["top"] > 18 * 3, text
        page.get_by_test_id("sidebar-toggle").click()
        expect(page.locator("nav")).to_be_visible()
        page.locator('[data-source="b"] .name').click()
        expect(page.locator("nav")).to_be_hidden()
        expect(page.locator(f"{LINE} .text")).to_have_text("bee")
    finally:
        context.close()
