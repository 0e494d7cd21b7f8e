"""Other sites and other ports of this host, in a real browser: what a page elsewhere can make
Perview do through the browser (start nothing without a click) and what it can get from it
(nothing that works); and how the page gets and keeps its credential."""

from __future__ import annotations

import html
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from perview.accounts import hash_password
from tests.conftest import TOKEN, Server, wait_until

Serve = Callable[..., Server]

CHEAP = {"n": 2**10, "r": 8, "p": 1}


def config(tmp_path: Path, users: bool = False) -> str:
    """Sources `home` (the page's default), `a` and `b`; with `users`, olga may log in."""
    text = "".join(
        f'[sources.{name}]\ncommand = ["sh", "-c", "echo {name} runs; sleep 300"]\n\n'
        for name in ("home", "a", "b")
    )
    if users:
        text += f'[users.olga]\npassword = "{hash_password("olga-pw", **CHEAP)}"\n'
        text += 'role = "operator"\n'
    path = tmp_path / "perview.toml"
    path.write_text(text)
    return str(path)


@dataclass
class Elsewhere:
    """Another web server on this host: serves one page that goes to `target` by script,
    and keeps the headers of every request it gets."""

    port: int
    target: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)  # "": the path asked for

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/"


@pytest.fixture
def elsewhere() -> Iterator[Elsewhere]:
    found = Elsewhere(0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found.requests.append({k.lower(): v for k, v in self.headers.items()} | {"": self.path})
            go = f"<script>location.replace({json.dumps(found.target)})</script>"
            body = f"<!doctype html><title>elsewhere</title>{go if found.target else ''}"
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def sources(server: Server) -> dict[str, dict[str, object]]:
    request = urllib.request.Request(server.base + "/api/sources", headers=server.headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return {s["name"]: s for s in json.load(response)}


def runs(server: Server) -> dict[str, object]:
    return {name: info["runs"] for name, info in sources(server).items()}


def printed_url(server: Server) -> str:
    found = re.search(r"open\s+(\S+)", "".join(server.output))
    assert found, server.output
    return found[1]


def status(method: str, url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


# -- another site cannot start a source --------------------------------------------------------


@pytest.mark.parametrize("other_host", ["127.0.0.1", "localhost"])  # same-site, cross-site
def test_a_page_elsewhere_starts_nothing_until_the_person_clicks_start(
    serve: Serve, page: Page, tmp_path: Path, elsewhere: Elsewhere, other_host: str
) -> None:
    server = serve("serve", "-c", config(tmp_path), "--no-auth", token=None)
    elsewhere.target = f"{server.base}/?source=a&source=b"
    page.goto(elsewhere.url(other_host))
    expect(page).to_have_url(elsewhere.target)
    expect(page.get_by_test_id("start-gate")).to_be_visible()
    expect(page.get_by_test_id("start")).to_have_text("Start watching a, b")
    expect(page.get_by_test_id("connection")).to_have_text("not started")
    # The page has asked for the sources (that starts nothing) and stopped at the button.
    expect(page.get_by_test_id("source-item")).to_have_count(3)
    assert runs(server) == {"home": 0, "a": 0, "b": 0}
    assert server.commands() == []
    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("connection")).to_have_text("live")
    expect(page.get_by_test_id("start-gate")).to_be_hidden()
    wait_until(lambda: runs(server) == {"home": 0, "a": 1, "b": 1}, 10, 0.05)


def test_a_logged_in_browser_sent_by_another_site_waits_for_start(
    serve: Serve, page: Page, tmp_path: Path, elsewhere: Elsewhere
) -> None:
    server = serve("serve", "-c", config(tmp_path))
    page.goto(printed_url(server))  # logged in; the default source starts, as it should
    expect(page.get_by_test_id("connection")).to_have_text("live")
    elsewhere.target = f"{server.base}/?source=a&source=b"
    page.goto(elsewhere.url("localhost"))
    expect(page).to_have_url(elsewhere.target)
    expect(page.get_by_test_id("start")).to_have_text("Start watching a, b")
    assert {runs(server)[name] for name in ("a", "b")} == {0}
    page.get_by_test_id("start").click()
    wait_until(lambda: runs(server)["a"] == runs(server)["b"] == 1, 10, 0.05)


def test_an_old_token_link_on_another_site_waits_for_start(
    serve: Serve, page: Page, tmp_path: Path, elsewhere: Elsewhere
) -> None:
    # The redirect that moves the token to the fragment must not launder the cross-site
    # navigation into a same-origin one.
    server = serve("serve", "-c", config(tmp_path))
    elsewhere.target = f"{server.base}/?token={TOKEN}&source=a&source=b"
    page.goto(elsewhere.url("localhost"))
    expect(page.get_by_test_id("start")).to_have_text("Start watching a, b")
    assert page.url == f"{server.base}/?source=a&source=b"
    assert runs(server) == {"home": 0, "a": 0, "b": 0}
    page.get_by_test_id("start").click()
    wait_until(lambda: runs(server) == {"home": 0, "a": 1, "b": 1}, 10, 0.05)


def test_a_login_reached_from_another_site_still_waits_for_start(
    serve: Serve, page: Page, tmp_path: Path, elsewhere: Elsewhere
) -> None:
    server = serve("serve", "-c", config(tmp_path, users=True))
    elsewhere.target = f"{server.base}/?source=a&source=b"
    page.goto(elsewhere.url("localhost"))
    expect(page.get_by_test_id("login")).to_be_visible()
    page.get_by_label("User").fill("olga")
    page.get_by_label("Password").fill("olga-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("session-user")).to_have_text("olga (operator)")
    expect(page.get_by_test_id("start")).to_have_text("Start watching a, b")
    assert runs(server) == {"home": 0, "a": 0, "b": 0}


# -- another port gets nothing that works ------------------------------------------------------


def test_another_port_gets_nothing_that_works_from_a_logged_in_browser(
    serve: Serve, page: Page, tmp_path: Path, elsewhere: Elsewhere
) -> None:
    server = serve("serve", "-c", config(tmp_path, users=True))
    page.goto(f"{server.base}/?source=a")
    page.get_by_label("User").fill("olga")
    page.get_by_label("Password").fill("olga-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("connection")).to_have_text("live")
    page.goto(elsewhere.url())
    page.evaluate("fetch('/again')")
    wait_until(lambda: any(r[""] == "/again" for r in elsewhere.requests), 5, 0.05)
    assert all("cookie" not in headers for headers in elsewhere.requests)
    assert page.evaluate("localStorage.length") == 0  # Perview's storage is its origin's alone
    # Whatever the browser holds for this host, replayed from another program, is refused.
    for cookie in page.context.cookies():
        replay = {"Cookie": f"{cookie['name']}={cookie['value']}"}
        assert status("POST", f"{server.base}/api/sources/a/stop", replay) == 401
        assert status("GET", f"{server.base}/api/sources/a/text", replay) == 401


# -- how the page gets its credential ----------------------------------------------------------


def test_the_printed_url_signs_the_page_in_and_leaves_no_token_behind(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path))
    url = printed_url(server)
    assert url == f"{server.base}/#token={TOKEN}"
    page.goto(url)
    expect(page.get_by_test_id("connection")).to_have_text("live")
    assert "token" not in page.url and "#" not in page.url
    assert TOKEN not in page.evaluate("JSON.stringify(localStorage)")
    assert page.context.cookies() == []
    expect(page.get_by_test_id("logout")).to_be_visible()  # a token session can be ended
    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("signin")).to_contain_text("Not signed in.")


def test_an_old_query_token_link_still_signs_the_page_in(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path))
    page.goto(f"{server.base}/?token={TOKEN}&source=b")
    expect(page.get_by_test_id("connection")).to_have_text("live")
    expect(page.locator('[data-testid="line"] .text').last).to_have_text("b runs")
    assert page.url == f"{server.base}/?source=b"
    assert page.context.cookies() == []


def test_a_refused_token_says_how_to_sign_in_and_a_pasted_one_works(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path))
    page.goto(f"{server.base}/?source=a#token=wrong")
    notice = page.get_by_test_id("signin")
    expect(notice).to_contain_text("The token in the address was refused.")
    expect(notice).to_contain_text("Open the URL Perview printed")
    assert runs(server)["a"] == 0
    page.get_by_test_id("signin-token-input").fill("still wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(notice).to_contain_text("That token was refused.")
    page.get_by_test_id("signin-token-input").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(notice).to_be_hidden()
    expect(page.get_by_test_id("connection")).to_have_text("live")
    expect(page.locator('[data-testid="line"] .text').last).to_have_text("a runs")


def test_a_page_without_a_credential_says_so_rather_than_retrying(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path))
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{server.base}/")
    expect(page.get_by_test_id("signin")).to_contain_text("Not signed in.")
    expect(page.get_by_test_id("signin-token")).to_be_visible()
    assert not any("/api/events" in url for url in asked)
    assert html.escape(TOKEN) not in page.content()
