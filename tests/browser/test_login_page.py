"""Password users in a real browser: the login page, roles on the page, logging out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from perview.accounts import hash_password
from tests.conftest import Server, start_server, stop_server

Serve = Callable[..., Server]

CHEAP = {"n": 2**10, "r": 8, "p": 1}


def config(tmp_path: Path) -> str:
    path = tmp_path / "perview.toml"
    path.write_text(
        f"""
[sources.app]
command = ["sh", "-c", "echo hello from app; sleep 300"]

[users.olga]
password = "{hash_password("olga-pw", **CHEAP)}"
role = "operator"

[users.vic]
password = "{hash_password("vic-pw", **CHEAP)}"
"""
    )
    return str(path)


def log_in(page: Page, user: str, password: str) -> None:
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_user_logs_in_watches_and_logs_out(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = serve("serve", "-c", config(tmp_path))
    page.goto(f"{server.base}/?source=app")
    expect(page).to_have_url(f"{server.base}/login?next=%2F%3Fsource%3Dapp")
    log_in(page, "olga", "wrong")
    expect(page.get_by_test_id("login-message")).to_have_text("Wrong user name or password.")
    log_in(page, "olga", "olga-pw")
    expect(page).to_have_url(f"{server.base}/?source=app")
    expect(page.get_by_test_id("connection")).to_have_text("live")
    expect(page.locator('[data-testid="line"] .text').last).to_have_text("hello from app")
    expect(page.get_by_test_id("session-user")).to_have_text("olga (operator)")
    expect(page.get_by_test_id("stop")).to_be_visible()
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(f"{server.base}/login")
    page.goto(f"{server.base}/")
    expect(page.get_by_test_id("login")).to_be_visible()  # the session is over


def test_a_viewer_is_not_offered_stop_or_restart(serve: Serve, page: Page, tmp_path: Path) -> None:
    server = serve("serve", "-c", config(tmp_path))
    page.goto(f"{server.base}/login?next=%2F%3Fsource%3Dapp")
    log_in(page, "vic", "vic-pw")
    expect(page.locator('[data-testid="line"] .text').last).to_have_text("hello from app")
    expect(page.get_by_test_id("session-user")).to_have_text("vic (viewer)")
    expect(page.get_by_test_id("stop")).to_be_hidden()
    expect(page.get_by_test_id("restart")).to_be_hidden()


def test_a_page_whose_session_ended_asks_for_a_login(page: Page, tmp_path: Path) -> None:
    path = config(tmp_path)
    server = start_server(["serve", "-c", path])
    try:
        page.goto(f"{server.base}/login?next=%2F%3Fsource%3Dapp")
        log_in(page, "olga", "olga-pw")
        expect(page.get_by_test_id("connection")).to_have_text("live")
        # The session ends behind the page's back (as when it expires: the new server has a
        # new data directory, so a new signing key), and the stream drops: when the page
        # reconnects it is refused, and asks for a login rather than retrying.
        port = server.port
        stop_server(server)
        server = start_server(["serve", "-c", path], port=port)
        expect(page.get_by_test_id("signin")).to_be_visible(timeout=15_000)
        expect(page.get_by_test_id("connection")).to_have_text("signed out")
        page.get_by_test_id("signin-login").click()
        expect(page).to_have_url(f"{server.base}/login?next=%2F%3Fsource%3Dapp")
    finally:
        stop_server(server)
