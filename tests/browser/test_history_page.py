"""History in a real browser against a live server: a search from a pane, the range picker, a
result's surroundings, back to live, and a chart's moment opening the logs around it; file
sources (here and on a host) searched in place."""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_page import open_page
from tests.conftest import Server, wait_until
from tests.sshd import Sshd
from tests.test_history_live import damage_middle_segment, matches, search_json, write_store

Serve = Callable[..., Server]

CONFIG = """
[server]
data_dir = "{data}"
metrics_every = "1s"

[sources.app]
command = "echo boot; echo ERROR needle-one; i=0; while sleep .2; do i=$((i+1)); echo tick $i; done"
shell = true
record = "1h"

[sources.other]
command = "echo other says hello; exec sleep 300"
shell = true
record = "1h"

[sources.plain]
command = "echo plain needle-one; exec sleep 300"
shell = true
"""

HISTORY_LINE = '[data-testid="history-line"]'


def history_server(serve: Serve, tmp_path: Path) -> Server:
    """`app` (recorded) prints a needle then a numbered tick every 200 ms; `other` (recorded)
    says one thing; `plain` (not recorded) prints the same needle as `app`."""
    path = tmp_path / "perview.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    server = serve("serve", "-c", str(path), env={"XDG_STATE_HOME": str(tmp_path / "state")})
    # The recorder writes in batches: the page's searches start once the lines are on disk.
    wait_until(lambda: matches(search_json(server, q="needle-one")), 15, step=0.1)
    wait_until(lambda: matches(search_json(server, q="other says")), 15, step=0.1)
    return server


def search(page: Page, query: str) -> None:
    page.get_by_test_id("history-search").fill(query)
    page.get_by_test_id("history-search").press("Enter")


def test_a_search_finds_a_recorded_line_with_the_match_marked_and_a_total(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = history_server(serve, tmp_path)
    open_page(page, server, "source=app")
    search(page, "needle-one")
    found = page.locator(HISTORY_LINE)
    expect(found).to_have_count(1)
    expect(found.locator(".text")).to_have_text("ERROR needle-one")
    expect(found.get_by_test_id("history-match")).to_have_text("needle-one")
    expect(page.get_by_test_id("history-status")).to_contain_text("1 match;")
    expect(page.get_by_test_id("log")).to_be_hidden()  # the results are over the live view
    # A pattern: newest first, every tick so far.
    search(page, r"re:tick \d+$")
    expect(page.get_by_test_id("history-status")).to_contain_text(re.compile(r"^\d+ matches;"))
    ticks = page.locator(f"{HISTORY_LINE} .text").all_text_contents()
    numbers = [int(text.split()[1]) for text in ticks]
    assert len(numbers) > 1 and numbers == sorted(numbers, reverse=True)


def test_a_source_that_is_not_recorded_says_so_and_every_recorded_source_can_be_searched(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = history_server(serve, tmp_path)
    open_page(page, server, "source=plain")
    search(page, "needle-one")
    expect(page.get_by_test_id("history-status")).to_have_text(
        "nothing to search: no source of this pane is recorded"
    )
    expect(page.get_by_test_id("history-note")).to_contain_text("plain: not recorded")
    page.get_by_test_id("history-scope").select_option("all")
    search(page, "needle-one")
    expect(page.get_by_test_id("history-status")).to_contain_text("1 match;")
    expect(page.locator(HISTORY_LINE)).to_have_attribute("data-source", "app")


def test_a_damaged_block_is_a_marker_among_the_results(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_store(data, "old", 3, lambda i: b"block %d needle-old\n" % i * 100)
    damage_middle_segment(data)
    server = history_server(serve, tmp_path)
    open_page(page, server, "source=app")
    page.get_by_test_id("history-scope").select_option("all")
    page.get_by_test_id("history-range").select_option("7d")
    search(page, "needle-old")
    expect(page.get_by_test_id("history-status")).to_contain_text("200 matches;")
    marker = page.get_by_test_id("history-marker")
    expect(marker).to_have_count(1)
    expect(marker).to_have_attribute("data-type", "damaged")
    expect(marker).to_contain_text("old: 100 lines unreadable")
    expect(marker).to_contain_text("checksum mismatch")


def test_the_range_picker_narrows_the_search(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = history_server(serve, tmp_path)
    open_page(page, server, "source=app")
    page.get_by_test_id("history-range").select_option("custom")
    before = datetime.now() - timedelta(hours=2)
    page.get_by_test_id("history-from").fill(before.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_test_id("history-to").fill(
        (before + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    search(page, "needle-one")
    expect(page.get_by_test_id("history-status")).to_contain_text("0 matches;")
    expect(page.locator(HISTORY_LINE)).to_have_count(0)
    # From a minute before the server started to an open end: found.
    page.get_by_test_id("history-from").fill(
        (datetime.now() - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    page.get_by_test_id("history-to").fill("")
    search(page, "needle-one")
    expect(page.get_by_test_id("history-status")).to_contain_text("1 match;")
    page.get_by_test_id("history-range").select_option("15m")
    search(page, "needle-one")
    expect(page.get_by_test_id("history-status")).to_contain_text("1 match;")
    # A range that ends before it starts is said, not sent.
    page.get_by_test_id("history-range").select_option("custom")
    page.get_by_test_id("history-to").fill(before.strftime("%Y-%m-%dT%H:%M:%S"))
    search(page, "needle-one")
    expect(page.get_by_test_id("history-status")).to_have_text("the range ends before it starts")


def test_a_click_on_a_result_shows_the_lines_around_it_and_the_results_come_back(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = history_server(serve, tmp_path)
    wait_until(lambda: matches(search_json(server, q="tick 30")), 15, step=0.1)
    open_page(page, server, "source=app")
    search(page, "needle-one")
    page.locator(HISTORY_LINE).click()
    current = page.locator(f"{HISTORY_LINE}.current")
    expect(current.locator(".text")).to_have_text("ERROR needle-one")
    expect(current.get_by_test_id("history-match")).to_have_text("needle-one")
    texts = page.locator(f"{HISTORY_LINE} .text").all_text_contents()
    at = texts.index("ERROR needle-one")
    assert texts[at - 1] == "boot"
    assert texts[at + 1 : at + 4] == ["tick 1", "tick 2", "tick 3"]
    assert len(texts) - at - 1 == 25  # as many lines after it as the view shows
    expect(page.get_by_test_id("history-status")).to_contain_text("the lines around")
    page.get_by_test_id("history-back-results").click()
    expect(page.locator(HISTORY_LINE)).to_have_count(1)
    expect(page.get_by_test_id("history-status")).to_contain_text("1 match;")


def last_tick(page: Page) -> int:
    texts = page.locator('[data-testid="line"] .text').all_text_contents()
    ticks = [int(text.split()[1]) for text in texts if text.startswith("tick ")]
    return ticks[-1] if ticks else 0


def test_back_to_live_shows_the_live_pane_as_it_was_still_following(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = history_server(serve, tmp_path)
    open_page(page, server, "source=app")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=line]').length > 5")
    filter_box = page.get_by_test_id("filter")
    filter_box.fill("tick")  # the live view's own state, which must survive the search
    search(page, "needle-one")
    expect(page.locator(HISTORY_LINE)).to_have_count(1)
    seen = last_tick(page)
    page.get_by_test_id("back-to-live").click()
    expect(page.get_by_test_id("history")).to_be_hidden()
    expect(page.get_by_test_id("log")).to_be_visible()
    expect(filter_box).to_have_value("tick")
    # Lines that came meanwhile are there, and new ones keep coming at the bottom, in view.
    wait_until(lambda: last_tick(page) > seen + 3, 10, step=0.05)
    assert page.evaluate("() => window.perview.panes[0].following")
    expect(page.get_by_test_id("new-lines")).to_be_hidden()
    newest = page.locator('[data-testid="line"]').last
    expect(newest).to_be_in_viewport()


def test_a_click_on_a_chart_opens_every_recorded_source_around_that_moment(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = history_server(serve, tmp_path)
    open_page(page, server, "metrics=5m")
    cpu = '[data-testid="chart"][data-series="local/cpu"] canvas'
    page.wait_for_function(f"() => Number(document.querySelector('{cpu}')?.dataset.points) > 0")
    canvas = page.locator(cpu)
    box = canvas.bounding_box()
    assert box is not None
    canvas.click(position={"x": box["width"] - 8, "y": box["height"] / 2})  # about now
    expect(page.get_by_test_id("metrics-view")).to_be_hidden()
    expect(page.get_by_test_id("history-moment")).to_be_visible()
    expect(page.get_by_test_id("history-note")).to_contain_text("plain: not recorded")
    expect(page.get_by_test_id("history-status")).to_contain_text("lines of app, other from")
    lines = page.locator(HISTORY_LINE)
    expect(lines.filter(has_text="ERROR needle-one")).to_have_count(1)
    expect(lines.filter(has_text="other says hello")).to_have_count(1)
    # Merged in time order: the sources' lines interleave by when they came.
    times = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=history-line]')]"
        ".map((row) => row.record.at)"
    )
    assert times == sorted(times) and len(times) > 2
    page.get_by_test_id("back-to-live").click()
    expect(page.get_by_test_id("log")).to_be_visible()


def rotated_file(directory: Path) -> Path:
    """app.log and its rotated, gzipped sibling app.log.1.gz, which alone holds the needle (with
    numbered lines around it); both written within the hour, the page's default range."""
    directory.mkdir(parents=True)
    log = directory / "app.log"
    log.write_text("today 1\ntoday 2\n")
    old = "".join(f"old {i}\n" for i in range(1, 40)) + "ERROR needle-old\n"
    old += "".join(f"after {i}\n" for i in range(1, 40))
    (directory / "app.log.1.gz").write_bytes(gzip.compress(old.encode()))
    return log


def test_a_file_source_s_search_reaches_yesterday_s_rotated_file_unless_a_range_is_chosen(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    log = rotated_file(tmp_path / "logs")
    yesterday = (datetime.now() - timedelta(days=1)).timestamp()
    os.utime(f"{log}.1.gz", (yesterday, yesterday))  # logrotate moved it a day ago
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n[sources.files]\nfile = "{log}"\n'
    )
    server = serve("serve", "-c", str(path), env={"XDG_STATE_HOME": str(tmp_path / "state")})
    open_page(page, server, "source=files")
    search(page, "needle-old")
    expect(page.locator(HISTORY_LINE)).to_have_count(1)
    expect(page.get_by_test_id("history-range")).to_have_value("all")
    # A range the person chooses is theirs: the last hour skips the file written yesterday.
    page.get_by_test_id("history-range").select_option("1h")
    search(page, "needle-old")
    expect(page.get_by_test_id("history-status")).to_contain_text("0 matches;")
    expect(page.locator(HISTORY_LINE)).to_have_count(0)
    expect(page.get_by_test_id("history-range")).to_have_value("1h")


@pytest.mark.parametrize("where", ["here", "host"])
def test_a_file_source_is_searched_from_the_page_in_its_rotated_gzipped_sibling(
    serve: Serve, page: Page, tmp_path: Path, sshd: Sshd, where: str
) -> None:
    log = rotated_file(tmp_path / "logs")
    hosts = sshd.hosts_toml("web1") if where == "host" else ""
    on = '\nhost = "web1"' if where == "host" else ""
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\n\n{hosts}'
        f'[sources.files]\nfile = "{log}"{on}\n'
    )
    server = serve("serve", "-c", str(path), env={"XDG_STATE_HOME": str(tmp_path / "state")})
    open_page(page, server, "source=files")
    search(page, "needle-old")
    found = page.locator(HISTORY_LINE)
    expect(found).to_have_count(1)
    expect(found).to_have_attribute("data-file", f"{log}.1.gz")
    expect(found.locator(".ts")).to_have_text("app.log.1.gz:40")
    expect(found.get_by_test_id("history-match")).to_have_text("needle-old")
    expect(page.get_by_test_id("history-status")).to_contain_text("1 match;")
    expect(page.get_by_test_id("history-note")).to_be_hidden()  # nothing said to be unrecorded
    # Its context: the lines around it in its file, 25 each side.
    found.click()
    current = page.locator(f"{HISTORY_LINE}.current")
    expect(current.locator(".text")).to_have_text("ERROR needle-old")
    expect(page.get_by_test_id("history-status")).to_contain_text(
        "the lines around app.log.1.gz:40 in files"
    )
    texts = page.locator(f"{HISTORY_LINE} .text").all_text_contents()
    assert texts == [f"old {i}" for i in range(15, 40)] + ["ERROR needle-old"] + [
        f"after {i}" for i in range(1, 26)
    ]
    page.get_by_test_id("history-back-results").click()
    expect(page.locator(HISTORY_LINE)).to_have_count(1)
    page.get_by_test_id("back-to-live").click()
    expect(page.get_by_test_id("history")).to_be_hidden()
    expect(page.get_by_test_id("log")).to_be_visible()
