"""Levels, entries and fields in a real browser against a live server: the corpus's Python log
(with tracebacks) and a pino JSON log, classified by the server."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]

CORPUS = Path(__file__).resolve().parent.parent / "data" / "levels"
LINE = '[data-testid="line"]'
HEAD = "ERROR:app.db:query failed"  # python.log: an error whose traceback follows
TRACEBACK = [  # its continuation lines
    "Traceback (most recent call last):",
    '  File "/srv/app/db.py", line 42, in run',
    "    cursor.execute(sql)",
    'psycopg2.errors.UndefinedTable: relation "users" does not exist',
]


def serve_corpus(serve: Serve, tmp_path: Path, *, raw: bool = False) -> Server:
    """A server with `python` and `pino` sources, each printing its corpus file once."""
    text = ""
    for name, file in (("python", "python.log"), ("pino", "pino.log")):
        command = ["sh", "-c", f'cat "{CORPUS / file}"; exec sleep 300']
        # keep: one run whatever the viewers do (a reload must not print the file again)
        text += f"[sources.{name}]\ncommand = {json.dumps(command)}\nkeep = true\n"
        if raw:
            text += 'format = "raw"\n'
    path = tmp_path / "perview.toml"
    path.write_text(text)
    return serve("serve", "-c", str(path))


def open_source(page: Page, server: Server, source: str, query: str = "") -> None:
    page.goto(f"{server.base}/?token={TOKEN}&source={source}{query}")
    expect(page.get_by_test_id("connection")).to_have_text("live")


def row(page: Page, text: str) -> Locator:
    """The row whose line text is `text` (its text, or its JSON message)."""
    return page.locator(LINE).filter(has=page.locator(".text", has_text=text)).first


def texts(page: Page) -> list[str]:
    shown: list[str] = page.locator(f"{LINE} .text").all_text_contents()
    return shown


def lines_of(file: str) -> int:
    return len((CORPUS / file).read_text().splitlines())


def test_every_line_has_a_level_mark_that_reads_without_colour(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "python")
    expect(page.locator(LINE)).to_have_count(lines_of("python.log"))
    mark = row(page, HEAD).get_by_test_id("level-mark")
    expect(mark).to_have_attribute("data-level", "error")
    expect(mark).to_have_text("E")
    continued = row(page, TRACEBACK[0]).get_by_test_id("level-mark")
    expect(continued).to_have_attribute("data-level", "error")
    expect(continued).to_have_text("e")  # lower case: part of the entry above
    expect(row(page, "INFO:root:starting worker 3").get_by_test_id("level-mark")).to_have_text("I")
    # An INFO line whose message says "error" is info.
    expect(row(page, "could not connect: error 5").get_by_test_id("level-mark")).to_have_text("I")
    expect(page.locator(f'{LINE} [data-testid="level-mark"]')).to_have_count(lines_of("python.log"))


def test_a_source_without_levels_shows_no_level_on_its_lines(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path, raw=True)
    open_source(page, server, "python")
    expect(page.locator(LINE)).to_have_count(lines_of("python.log"))
    levels = page.locator(f'{LINE} [data-testid="level-mark"]').evaluate_all(
        "marks => [...new Set(marks.map(m => m.dataset.level))]"
    )
    assert levels == ["none"]


def test_the_minimum_level_hides_whole_entries_and_stays_in_the_link(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "python")
    expect(page.locator(LINE)).to_have_count(lines_of("python.log"))
    page.get_by_test_id("level-min").select_option("error")
    expect(page.locator(LINE).first).to_contain_text(HEAD)
    levels = page.locator(f'{LINE} [data-testid="level-mark"]').evaluate_all(
        "marks => [...new Set(marks.map(m => m.dataset.level))].sort()"
    )
    assert levels == ["error", "fatal"]
    assert texts(page)[:5] == [HEAD, *TRACEBACK]  # the traceback stays with its head
    assert "level=error" in page.url
    page.reload()
    expect(page.get_by_test_id("level-min")).to_have_value("error")
    expect(page.locator(LINE).first).to_contain_text(HEAD)
    page.get_by_test_id("level-min").select_option("")
    expect(page.locator(LINE)).to_have_count(lines_of("python.log"))
    assert "level=" not in page.url


def test_a_filter_matching_inside_a_traceback_shows_the_whole_entry(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "python")
    expect(page.locator(LINE)).to_have_count(lines_of("python.log"))
    page.get_by_test_id("filter").fill("UndefinedTable")
    expect(page.locator(LINE)).to_have_count(5)
    assert texts(page) == [HEAD, *TRACEBACK]


def test_a_traceback_folds_to_its_head_and_unfolds(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "python")
    total = lines_of("python.log")
    expect(page.locator(LINE)).to_have_count(total)
    row(page, HEAD).get_by_test_id("level-mark").click()
    expect(page.locator(LINE)).to_have_count(total - len(TRACEBACK))
    expect(row(page, HEAD).get_by_test_id("folded")).to_have_text(" ▸ 4 more")
    assert TRACEBACK[0] not in texts(page)[:5]
    # The key folds the current entry too: here, unfolds it.
    page.get_by_test_id("log").focus()
    page.keyboard.press("z")
    expect(page.locator(LINE)).to_have_count(total)
    assert texts(page)[2:7] == [HEAD, *TRACEBACK]
    expect(row(page, HEAD).get_by_test_id("folded")).to_have_count(0)


def test_keys_and_buttons_jump_to_the_next_and_previous_error(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "python")
    expect(page.locator(LINE)).to_have_count(lines_of("python.log"))
    current = page.locator(f"{LINE}.current .text")
    page.get_by_test_id("log").focus()
    page.keyboard.press("e")
    expect(current).to_have_text(HEAD)
    page.keyboard.press("e")  # the next error is the CRITICAL line (fatal is an error and worse)
    expect(current).to_contain_text("CRITICAL - out of memory")
    page.keyboard.press("e")
    expect(current).to_have_text("Traceback (most recent call last):")
    page.keyboard.press("E")
    expect(current).to_contain_text("CRITICAL - out of memory")
    page.get_by_test_id("prev-problem").click()  # warnings count for the buttons
    expect(current).to_have_text(HEAD)
    page.get_by_test_id("prev-problem").click()
    expect(current).to_contain_text("WARNING:urllib3")
    page.keyboard.press("?")
    expect(page.get_by_test_id("help")).to_contain_text("next / previous error")


def sources_api(server: Server) -> dict[str, dict[str, object]]:
    request = urllib.request.Request(
        server.base + "/api/sources", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return {s["name"]: s for s in json.load(response)}


def test_the_sidebar_counts_each_sources_errors_and_warnings(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "python")
    expect(page.locator(LINE)).to_have_count(lines_of("python.log"))
    item = page.locator('[data-testid="source-item"][data-source="python"]')
    errors = item.get_by_test_id("source-errors")
    expect(errors).not_to_have_attribute("data-total", "0")  # polled, as the sidebar is
    levels = sources_api(server)["python"]["levels"]
    assert isinstance(levels, dict)
    want = levels["error"]["total"] + levels["fatal"]["total"]
    expect(errors).to_have_attribute("data-total", str(want))
    expect(errors).to_have_attribute("data-minute", str(want))  # all came within the minute
    expect(errors).to_have_text(f"E {want}/{want}/{want}")
    expect(item.get_by_test_id("source-warnings")).to_have_attribute(
        "data-total", str(levels["warning"]["total"])
    )


def test_json_lines_read_as_fields_with_a_toggle_to_the_raw_line(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "pino")
    expect(page.locator(LINE)).to_have_count(lines_of("pino.log"))
    boom = page.locator(LINE).nth(1)
    expect(boom.get_by_test_id("json")).to_have_text(
        "2024-01-15T10:23:46.123Z error boom pid=1234 hostname=web1 err.type=Error"
        ' err.message=boom err.stack="Error: boom\\n    at /srv/app/index.js:10:11"'
    )
    page.get_by_test_id("opt-raw").click()
    expect(boom.locator(".text")).to_have_text((CORPUS / "pino.log").read_text().splitlines()[1])
    expect(page.get_by_test_id("json")).to_have_count(0)


def test_the_filter_takes_fields_and_a_listed_value_filters_by_a_click(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve_corpus(serve, tmp_path)
    open_source(page, server, "pino")
    expect(page.locator(LINE)).to_have_count(lines_of("pino.log"))
    page.get_by_test_id("filter").fill("level:>=error")
    expect(page.locator(f'{LINE} [data-testid="level-mark"]')).to_have_text(["E", "F"])
    page.get_by_test_id("filter").fill("level:>=error -msg:boom")
    expect(page.locator(f"{LINE} .jm")).to_have_text(["cannot continue"])
    page.get_by_test_id("filter").fill("")
    expect(page.locator(LINE)).to_have_count(lines_of("pino.log"))
    page.get_by_test_id("fields-button").click()
    value = page.locator('[data-testid="field-value"][data-key="req.method"]')
    expect(value).to_contain_text("GET 1")
    value.click()
    expect(page.get_by_test_id("filter")).to_have_value("req.method:GET")
    expect(page.locator(f"{LINE} .jm")).to_have_text(["incoming request"])
    assert "filter=req.method%3AGET" in page.url
