"""The page in a real browser against a live server: following, filtering, panes, resuming."""

from __future__ import annotations

import datetime
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import TOKEN, Server, start_server, stop_server, wait_until

Serve = Callable[..., Server]

TICKER = "sh -c 'i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 0.1; done'"
LINE = '[data-testid="line"]'


def config(tmp_path: Path, sources: dict[str, str]) -> str:
    """A config file with these `name = command` sources; returns its path."""
    text = "".join(
        f"[sources.{name}]\ncommand = {json.dumps(command)}\n\n"
        for name, command in sources.items()
    )
    path = tmp_path / "perview.toml"
    path.write_text(text)
    return str(path)


def open_page(page: Page, server: Server, query: str = "") -> None:
    page.goto(f"{server.base}/?token={TOKEN}&{query}")
    expect(page.get_by_test_id("connection")).to_have_text("live")


def shown(page: Page, pane: int = 0) -> list[str]:
    """The text of every line row a pane has on screen (markers excluded)."""
    texts: list[str] = (
        page.get_by_test_id("pane")
        .nth(pane)
        .locator('[data-testid="line"] .text')
        .all_text_contents()
    )
    return texts


def last_tick(page: Page, pane: int = 0) -> int:
    ticks = [int(t.split()[-1]) for t in shown(page, pane) if t.startswith("tick ")]
    return max(ticks, default=0)


def sources_api(server: Server) -> dict[str, dict[str, object]]:
    request = urllib.request.Request(
        server.base + "/api/sources", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return {s["name"]: s for s in json.load(response)}


def test_lines_appear_and_the_view_follows_them(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = serve("serve", "-c", config(tmp_path, {"ticker": TICKER}))
    open_page(page, server)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=line]').length > 3")
    first = last_tick(page)
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('[data-testid=line] .text')]
                 .some(e => e.textContent === 'tick {first + 5}')"""
    )
    at_bottom = page.get_by_test_id("log").evaluate(
        "v => v.scrollTop + v.clientHeight >= v.scrollHeight - 20"
    )
    assert at_bottom


def test_scrolling_up_pauses_and_the_new_lines_control_resumes(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    script = "sh -c 'seq 1 200; i=200; while true; do i=$((i+1)); echo $i; sleep 0.1; done'"
    server = serve("serve", "-c", config(tmp_path, {"numbers": script}))
    open_page(page, server)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=line]').length > 30")
    log = page.get_by_test_id("log")
    log.evaluate("v => { v.scrollTop = 0; }")
    new_lines = page.get_by_test_id("new-lines")
    expect(new_lines).to_be_visible()
    expect(new_lines).to_contain_text("new lines")
    assert "1" in shown(page)  # still at the top: following paused
    new_lines.click()
    expect(new_lines).to_be_hidden()
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=log]');"
        " return v.scrollTop + v.clientHeight >= v.scrollHeight - 20; }"
    )
    page.keyboard.press("End")


def test_filter_with_substring_regex_case_and_invert(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    script = "printf 'alpha one\\nBeta two\\nalpha three\\ngamma four\\n'"
    server = serve("serve", "-c", config(tmp_path, {"words": f'sh -c "{script}; sleep 300"'}))
    open_page(page, server)
    expect(page.locator(LINE)).to_have_count(4)
    page.keyboard.press("/")
    page.keyboard.type("alpha")
    expect(page.locator(LINE)).to_have_count(2)
    expect(page.get_by_test_id("match-count")).to_have_text("2 matching")
    page.get_by_test_id("filter-invert").click()
    expect(page.get_by_test_id("match-count")).to_have_text("2 matching")
    assert sorted(shown(page)) == ["Beta two", "gamma four"]
    page.get_by_test_id("filter-invert").click()
    page.get_by_test_id("filter").fill("^(beta|gamma)")
    page.get_by_test_id("filter-regex").click()
    expect(page.get_by_test_id("match-count")).to_have_text("2 matching")
    assert sorted(shown(page)) == ["Beta two", "gamma four"]
    page.get_by_test_id("filter-case").click()
    expect(page.get_by_test_id("match-count")).to_have_text("1 matching")
    assert shown(page) == ["gamma four"]
    page.get_by_test_id("filter").press("Escape")
    expect(page.locator(LINE)).to_have_count(4)  # nothing was lost while hidden
    assert "filter=" not in page.url


def test_highlights_mark_text_and_survive_a_reload(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path, {"w": "sh -c 'echo disk is full; sleep 300'"}))
    open_page(page, server)
    page.get_by_test_id("highlight-add").click()
    page.get_by_test_id("highlight-pattern").first.fill("full")
    page.get_by_test_id("highlight-color").first.select_option("red")
    page.get_by_test_id("highlight-save").click()
    expect(page.locator("mark.hl-red")).to_have_text("full")
    page.goto(page.url.split("?")[0] + "?source=w")
    # The history shows the line of the first run, and the source's new run prints it again.
    expect(page.locator("mark.hl-red").first).to_have_text("full")


def test_ansi_colours_are_rendered_and_nothing_else_is(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    script = (
        "printf '\\033[31mred\\033[0m plain \\033[1mbold\\033[0m "
        "\\033[38;5;208morange\\033[0m \\033[38;2;1;2;3mtrue\\033[0m\\n'"
    )
    server = serve("serve", "-c", config(tmp_path, {"c": f'sh -c "{script}; sleep 300"'}))
    open_page(page, server)
    text = page.locator(f"{LINE} .text").first
    expect(text).to_have_text("red plain bold orange true")
    assert text.locator(".fg-1").inner_text() == "red"
    assert text.locator(".b").inner_text() == "bold"
    colours = text.locator("span").evaluate_all("els => els.map(e => e.style.color)")
    assert "rgb(1, 2, 3)" in colours and "rgb(255, 135, 0)" in colours


def test_markup_in_a_log_line_is_text_and_creates_no_element(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    hostile = "<img src=x onerror=alert(1)><script>alert(2)</script><a href=//evil>x</a>"
    server = serve("serve", "-c", config(tmp_path, {"x": ["echo", hostile]}))  # type: ignore[dict-item]
    open_page(page, server)
    expect(page.locator(f"{LINE} .text")).to_have_text(hostile)
    assert page.locator("#panes img, #panes script, #panes a").count() == 0


def test_a_gap_shows_where_lines_were_missed(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = serve(
        "run",
        "--backlog",
        "50",
        "--",
        "sh",
        "-c",
        "for i in $(seq 0 19); do seq $((i*50+1)) $((i*50+50)); sleep 0.02; done; sleep 300",
    )
    open_page(page, server)
    page.wait_for_function("() => window.perview.lastIds.get('run') > 1000")
    # As if this page had been away since line 1: the ring no longer holds what it missed.
    page.evaluate("() => { window.perview.lastIds.set('run', 1); window.perview.connect(); }")
    marker = page.get_by_test_id("marker").filter(has_text="lines skipped")
    expect(marker).to_be_visible()


def test_exit_status_and_start_failure_show_inline(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    sources = {"bye": "sh -c 'echo last words; exit 3'", "nope": "perview-no-such-command"}
    server = serve("serve", "-c", config(tmp_path, sources))
    open_page(page, server, "source=bye&source=nope")
    expect(page.get_by_test_id("marker").filter(has_text="exited with status 3")).to_be_visible()
    expect(
        page.get_by_test_id("marker").filter(has_text="perview-no-such-command: command not found")
    ).to_be_visible()
    bye = page.locator(
        '[data-testid="source-item"][data-source="bye"] [data-testid="source-state"]'
    )
    expect(bye).to_have_text("exited 3")


def test_stop_and_restart_from_the_page(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = serve("serve", "-c", config(tmp_path, {"ticker": TICKER}))
    open_page(page, server)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=line]').length > 2")
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("marker").filter(has_text="stopped by an operator")).to_be_visible()
    assert sources_api(server)["ticker"]["state"] == "stopped"
    page.get_by_test_id("restart").click()
    expect(page.get_by_test_id("marker").filter(has_text="started")).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=line] .text')]"
        ".filter(e => e.textContent === 'tick 1').length === 2"
    )


def test_merged_view_tags_each_line_with_its_source(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    sources = {
        "left": "sh -c 'echo from left; sleep 300'",
        "right": "sh -c 'echo from right; sleep 300'",
    }
    server = serve("serve", "-c", config(tmp_path, sources))
    open_page(page, server, "source=left&source=right")
    expect(page.get_by_test_id("pane")).to_have_count(1)
    expect(page.locator(LINE)).to_have_count(2)
    rows = page.locator(LINE).evaluate_all(
        "els => els.map(e => [e.querySelector('.tag').textContent,"
        " e.querySelector('.text').textContent])"
    )
    assert sorted(rows) == [["left", "from left"], ["right", "from right"]]


def test_a_glob_s_lines_are_tagged_with_their_file_not_as_a_host(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("from a\n")
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[sources.files]\nfile = "{logs}/*.log"\n\n'
        "[sources.other]\ncommand = \"sh -c 'echo from other; sleep 300'\"\n"
    )
    server = serve("serve", "-c", str(path))
    open_page(page, server, "source=files&source=other")
    expect(page.locator(LINE)).to_have_count(2)
    rows = page.locator(LINE).evaluate_all(
        "els => els.map(e => [e.querySelector('.tag').textContent,"
        " e.querySelector('.text').textContent])"
    )
    assert sorted(rows) == [
        ["files \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} a.log", "from a"],
        ["other", "from other"],
    ]


def test_three_panes_share_one_event_stream(serve: Serve, page: Page, tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    server = serve(
        "serve", "-c", config(tmp_path, {n: f"sh -c 'echo {n}; sleep 300'" for n in names})
    )
    open_page(page, server, "source=a")
    for name in names:
        page.locator(f'[data-source="{name}"] [data-testid="source-select"]').check()
    page.get_by_test_id("view-split").click()
    expect(page.get_by_test_id("pane")).to_have_count(3)
    for n in range(3):
        expect(page.get_by_test_id("pane").nth(n).locator(LINE)).to_have_count(1)
    wait_until(lambda: all(s["viewers"] == 1 for s in sources_api(server).values()), 10, 0.05)
    assert all(info["viewers"] == 1 for info in sources_api(server).values())


def test_page_resumes_after_perview_restarts_without_duplicates(page: Page, tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 21)))
    path = tmp_path / "perview.toml"
    # One data directory across the restart, as in real use: it keeps the key of the login.
    data = tmp_path / "state"
    path.write_text(f'[server]\ndata_dir = "{data}"\n[sources.app]\nfile = "{log}"\n')
    server = start_server(["serve", "-c", str(path)])
    port = server.port
    try:
        open_page(page, server)
        expect(page.locator(f"{LINE} .text").last).to_have_text("line 20")
        stop_server(server)
        expect(page.get_by_test_id("connection")).to_have_text("reconnecting")
        # While Perview is down the log goes on: 31 lines, more than the 10 a new Perview
        # shows of an existing file, so lines 21-41 are missed and the page must say so.
        with log.open("a") as f:
            f.write("".join(f"line {n}\n" for n in range(21, 52)))
        server = start_server(["serve", "-c", str(path)], port=port)
        expect(page.get_by_test_id("connection")).to_have_text("live", timeout=15_000)
        expect(page.locator(f"{LINE} .text").last).to_have_text("line 51")
        rows = page.evaluate(
            "() => { const s = window.perview.store, out = [];"
            " for (let q = s.first; q < s.next; q++)"
            " out.push([s.kind[s.slot(q)], s.text(q)]);"
            " return out; }"
        )
        lines = [text for kind, text in rows if kind == 0]
        assert lines == [f"line {n}" for n in [*range(11, 21), *range(42, 52)]]
        # Between the last line before and the first after, only notices, the restart among them.
        between = rows[rows.index([0, "line 20"]) + 1 : rows.index([0, "line 42"])]
        assert all(kind == 1 for kind, _ in between)
        assert any("Perview restarted" in text for _, text in between), between
        expect(page.get_by_test_id("marker").filter(has_text="Perview restarted")).to_be_visible()
    finally:
        stop_server(server)


def test_keyboard_help_and_the_url_keeps_the_view(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = serve("serve", "-c", config(tmp_path, {"k": "sh -c 'echo key; sleep 300'"}))
    open_page(page, server)
    page.keyboard.press("?")
    expect(page.get_by_test_id("help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("help")).to_be_hidden()
    page.keyboard.press("/")
    page.keyboard.type("ke")
    page.wait_for_url(lambda url: "filter=ke" in url)  # the input is handled after the keys
    assert "source=k" in page.url
    assert "token" not in page.url


def test_download_what_is_shown(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = serve(
        "serve", "-c", config(tmp_path, {"d": "sh -c 'printf \"one\\ntwo\\n\"; sleep 300'"})
    )
    open_page(page, server)
    expect(page.locator(LINE)).to_have_count(2)
    with page.expect_download() as download:
        page.get_by_test_id("download-shown").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("[perview] started (pid ")  # Perview's note, marked as such
    assert lines[1:] == ["one", "two"]


def test_the_time_column_shows_when_the_server_got_a_line(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    path = tmp_path / "perview.toml"
    path.write_text(
        "[sources.early]\ncommand = \"sh -c 'echo early; exec sleep 600'\"\nkeep = true\n"
    )
    server = serve("serve", "-c", str(path))
    wait_until(lambda: sources_api(server)["early"]["lines"] == 1, 10.0)
    arrived = time.time()
    time.sleep(2.0)  # what is tested is the passing of time: history must keep its own
    open_page(page, server, "time=1")
    stamp = page.locator(f"{LINE} .ts").first.text_content() or ""
    shown_at = datetime.datetime.strptime(stamp, "%H:%M:%S.%f").time()
    expected = datetime.datetime.fromtimestamp(arrived).time()
    gap = datetime.datetime.combine(datetime.date.min, shown_at) - datetime.datetime.combine(
        datetime.date.min, expected
    )
    assert abs(gap.total_seconds()) < 1.0, (stamp, expected)


def test_an_operator_reloads_the_config_from_the_page(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    path = config(tmp_path, {"ticker": TICKER})
    server = serve("serve", "-c", path)
    open_page(page, server)
    config(tmp_path, {"ticker": TICKER, "fresh": "echo fresh"})
    page.get_by_test_id("reload").click()
    expect(page.locator("#flash")).to_have_text("config reloaded: added fresh")
    expect(page.locator('[data-testid="source-item"][data-source="fresh"]')).to_be_visible()
    (tmp_path / "perview.toml").write_text("[sources.x]\nbogus = 1\n")
    page.get_by_test_id("reload").click()
    expect(page.locator("#flash")).to_contain_text("sources.x.bogus: unknown key")


def test_clicking_a_name_shows_that_source_alone_and_ticks_only_it(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    quiet = {n: f"sh -c 'echo {n}; sleep 300'" for n in ["a", "b", "c"]}
    server = serve("serve", "-c", config(tmp_path, quiet))
    open_page(page, server, "source=a")
    box = '[data-source="{}"] [data-testid="source-select"]'
    page.locator('[data-source="b"] .name').click()
    expect(page.get_by_test_id("pane")).to_have_attribute("data-sources", "b")
    expect(page.locator(box.format("b"))).to_be_checked()
    expect(page.locator(box.format("a"))).not_to_be_checked()
    page.locator(box.format("c")).check()
    page.get_by_test_id("view-merged").click()  # merges what was ticked, not what was glanced at
    expect(page.get_by_test_id("pane")).to_have_attribute("data-sources", "b,c")


def test_a_waiting_source_and_an_unreachable_host_say_why_in_the_sidebar(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    host = "webserver-number-01"
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path}"\n'
        f'[hosts.{host}]\nssh = "perview-no-such-host.invalid"\nmetrics = true\n'
        f'[sources.gone]\nfile = "{tmp_path}/missing.log"\n'
    )
    server = serve("serve", "-c", str(path))
    open_page(page, server)
    reason = page.locator('[data-source="gone"] [data-testid="source-reason"]')
    expect(reason).to_contain_text("missing.log")
    item = page.locator(f'[data-testid="host-item"][data-host="{host}"]')
    expect(item.get_by_test_id("host-reason")).to_contain_text("perview-no-such-host.invalid")
    name = item.locator(".name")
    expect(name).to_have_text(host)
    assert name.evaluate("e => e.scrollWidth <= e.clientWidth"), "the host's name is cut"


def colour_of(page: Page, name: str) -> str:
    classes = page.locator(f'[data-source="{name}"] .name').get_attribute("class") or ""
    return next(c for c in classes.split() if c.startswith("tag-text-"))


def test_a_source_keeps_its_colour_when_other_sources_come_and_go(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    quiet = "sh -c 'sleep 300'"
    server = serve("serve", "-c", config(tmp_path, {"b": quiet}))
    open_page(page, server)
    alone = colour_of(page, "b")
    # Seven sources before it, as a config that grew: in order of appearance it would be tag 7.
    server = serve(
        "serve", "-c", config(tmp_path, {**{f"s{i}": quiet for i in range(7)}, "b": quiet})
    )
    open_page(page, server)
    assert colour_of(page, "b") == alone


def test_save_and_save_all_write_the_same_plain_text(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    script = "printf '\\033[31mred\\033[0m plain\\n'"
    server = serve("serve", "-c", config(tmp_path, {"c": f'sh -c "{script}; sleep 300"'}))
    open_page(page, server)
    expect(page.locator(f"{LINE} .text")).to_have_text("red plain")
    saved = []
    for testid in ["download-shown", "download-full"]:
        button = page.get_by_test_id(testid)
        assert "plain text" in (button.get_attribute("title") or "")
        with page.expect_download() as download:
            button.click()
        saved.append(Path(download.value.path()).read_text())
    for text in saved:
        assert "red plain\n" in text and "\x1b" not in text, text


def test_a_highlight_can_be_a_regular_expression_and_a_bad_one_is_refused(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path, {"w": "sh -c 'echo disk is fuuull; sleep 300'"}))
    open_page(page, server)
    page.get_by_test_id("highlight-add").click()
    page.get_by_test_id("highlight-pattern").first.fill("(")
    page.get_by_test_id("highlight-regex").first.click()
    page.get_by_test_id("highlight-save").click()
    expect(page.get_by_test_id("highlight-error").first).to_contain_text(
        "Invalid regular expression"
    )
    page.get_by_test_id("highlight-pattern").first.fill("fu+l+")
    page.get_by_test_id("highlight-color").first.select_option("green")
    page.get_by_test_id("highlight-save").click()
    expect(page.locator("mark.hl-green")).to_have_text("fuuull")
    assert "green.*" in page.url  # the address carries it, marked as a pattern
    page.reload()
    expect(page.locator("mark.hl-green").first).to_have_text("fuuull")


def test_an_open_tab_stays_signed_in_across_a_restart_with_a_generated_token(
    page: Page, tmp_path: Path
) -> None:
    path = tmp_path / "perview.toml"
    data = tmp_path / "state"  # one data directory across the restart, as in real use
    command = "sh -c 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done'"
    path.write_text(f'[server]\ndata_dir = "{data}"\n[sources.t]\ncommand = "{command}"\n')
    server = start_server(["serve", "-c", str(path)], token=None)  # Perview makes the token
    port = server.port
    try:
        [url] = [line.split()[1] for line in server.output if line.strip().startswith("open ")]
        assert "#token=" in url
        page.goto(url)
        expect(page.get_by_test_id("connection")).to_have_text("live")
        stop_server(server)
        expect(page.get_by_test_id("connection")).to_have_text("reconnecting")
        server = start_server(["serve", "-c", str(path)], token=None, port=port)
        expect(page.get_by_test_id("connection")).to_have_text("live", timeout=15_000)
        seen = page.locator(f"{LINE} .text").count()
        expect(page.locator(f"{LINE} .text")).not_to_have_count(seen)  # lines flow again
        expect(page.get_by_test_id("connection")).to_have_text("live")  # not "signed out"
    finally:
        stop_server(server)
