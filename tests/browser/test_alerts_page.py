"""The alerts view in a real browser: a firing arrives with its lines, a badge and a notification;
its lines in context from history; an operator's silence, which a viewer is neither offered nor
granted."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from perview.accounts import hash_password
from tests.browser.test_login_page import CHEAP, log_in
from tests.browser.test_page import open_page
from tests.conftest import Server

Serve = Callable[..., Server]

# Prints its matching line only once the test creates the trigger file, so the firing arrives
# while the page watches (through the stream's `alert` event), not before it loaded.
SOURCE = """
import os, sys, time
print("app started", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
print("ERROR disk on fire", flush=True)
time.sleep(600)
"""
WRITER = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')"

# Every Notification the page raises, recorded on the way to the browser's own.
SPY = """
(() => {
  const Real = window.Notification;
  window.notified = [];
  window.permissionAsked = 0;
  class Spy extends Real {
    constructor(title, options) {
      super(title, options);
      window.notified.push({ title, body: options.body });
    }
    static get permission() { return Real.permission; }
    static requestPermission() { window.permissionAsked++; return Real.requestPermission(); }
  }
  window.Notification = Spy;
})();
"""


def config(tmp_path: Path, users: bool = False, recorded: bool = True) -> str:
    trigger = tmp_path / "trigger"
    record = '"1d"' if recorded else "false"
    writer = json.dumps([sys.executable, "-c", WRITER, str(tmp_path / "sent")])
    text = (
        f'[server]\nsystem_metrics = false\ndata_dir = "{tmp_path / "data"}"\n'
        f"[sources.app]\ncommand = {json.dumps([sys.executable, '-c', SOURCE, str(trigger)])}\n"
        f"record = {record}\n"
        f"[notify.file]\ncommand = {writer}\n"
        '[alerts.fire]\nsource = "app"\nmatch = "on fire"\nnotify = "file"\n'
    )
    if users:
        text += (
            f'[users.olga]\npassword = "{hash_password("olga-pw", **CHEAP)}"\nrole = "operator"\n'
            f'[users.vic]\npassword = "{hash_password("vic-pw", **CHEAP)}"\n'
        )
    path = tmp_path / "perview.toml"
    path.write_text(text)
    return str(path)


def fire(tmp_path: Path) -> None:
    (tmp_path / "trigger").touch()


def test_a_firing_shows_with_its_lines_a_badge_and_a_notification(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path))
    page.context.grant_permissions(["notifications"])
    page.add_init_script(SPY)
    open_page(page, server, "source=app")
    page.get_by_test_id("view-alerts").click()
    rule = page.locator('[data-testid="alert"][data-name="fire"]')
    expect(rule.get_by_test_id("alert-state")).to_have_text("ok")
    expect(page.get_by_test_id("alerts-badge")).to_be_hidden()
    expect(page.get_by_test_id("alerts-notify")).to_have_text("notifications on in this browser")
    fire(tmp_path)
    expect(rule.get_by_test_id("alert-state")).to_have_text("firing")
    expect(rule.get_by_test_id("firing-line")).to_have_text("ERROR disk on fire")
    expect(page.get_by_test_id("alerts-badge")).to_have_text("1")
    page.wait_for_function("() => window.notified.length === 1")
    notified = page.evaluate("window.notified")
    assert notified == [
        {"title": "alert: fire", "body": "app: a line matched 'on fire'\nERROR disk on fire"}
    ]
    assert page.evaluate("window.permissionAsked") == 0, "asked on load"
    # A send's outcome comes after the firing's event: the open view's next poll brings it.
    channel = page.locator('[data-testid="channel"][data-name="file"]')
    expect(channel.get_by_test_id("channel-sent")).to_have_text("1", timeout=15_000)
    expect(channel.get_by_test_id("channel-failed")).to_have_text("0")
    # The log pane was only hidden: back to it, with its lines.
    page.get_by_test_id("view-logs").click()
    expect(page.get_by_test_id("alerts-view")).to_be_hidden()
    expect(page.locator('[data-testid="line"] .text').last).to_have_text("ERROR disk on fire")


def test_a_firings_lines_show_in_context_from_recorded_history(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path))
    fire(tmp_path)
    open_page(page, server, "source=app")
    page.get_by_test_id("view-alerts").click()
    firing = page.get_by_test_id("firing")
    expect(firing.get_by_test_id("firing-line")).to_have_text("ERROR disk on fire")
    matched = firing.locator('[data-testid="context-line"][data-matched="true"]')
    # History is written in batches off the live path: ask again until it holds the line.
    for _ in range(50):
        firing.get_by_test_id("firing-context").click()
        if matched.count():
            break
        page.wait_for_timeout(100)
    expect(matched).to_have_count(1)
    expect(matched).to_contain_text("ERROR disk on fire")
    expect(firing.locator('[data-testid="context-line"][data-matched="false"]')).to_contain_text(
        ["app started"]
    )


def test_an_unrecorded_sources_firing_opens_its_pane_for_context(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path, recorded=False))
    page.add_init_script(SPY)
    fire(tmp_path)
    open_page(page, server)
    page.get_by_test_id("view-alerts").click()
    # Notifications not yet allowed: the page asks the browser when the person clicks, not before.
    notify = page.get_by_test_id("alerts-notify")
    expect(notify).to_have_text("notify me in this browser")
    assert page.evaluate("window.permissionAsked") == 0
    notify.click()
    page.wait_for_function("() => window.permissionAsked === 1")
    firing = page.get_by_test_id("firing")
    expect(firing.get_by_test_id("firing-line")).to_have_text("ERROR disk on fire")
    firing.get_by_test_id("firing-context").click()
    expect(page.locator("#flash")).to_contain_text("app is not recorded")
    expect(page.get_by_test_id("alerts-view")).to_be_hidden()
    expect(page.locator('[data-testid="line"] .text').last).to_have_text("ERROR disk on fire")


def test_an_operator_silences_an_alert_for_an_hour_and_lifts_it(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path, users=True))
    page.goto(f"{server.base}/login?next=%2F%3Fsource%3Dapp")
    log_in(page, "olga", "olga-pw")
    fire(tmp_path)
    page.get_by_test_id("view-alerts").click()
    rule = page.locator('[data-testid="alert"][data-name="fire"]')
    expect(rule.get_by_test_id("alert-state")).to_have_text("firing")
    rule.get_by_test_id("alert-silence").click()
    expect(rule.get_by_test_id("alert-state")).to_have_text("silenced")
    expect(rule.get_by_test_id("alert-since")).to_have_text("silenced for 1 h more by olga")
    expect(page.get_by_test_id("alerts-badge")).to_be_hidden()  # someone already knows
    rule.get_by_test_id("alert-unsilence").click()
    expect(rule.get_by_test_id("alert-state")).to_have_text("firing")


def test_a_viewer_is_not_offered_a_silence_and_is_refused_one(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = serve("serve", "-c", config(tmp_path, users=True))
    page.goto(f"{server.base}/login?next=%2F%3Fsource%3Dapp")
    log_in(page, "vic", "vic-pw")
    fire(tmp_path)
    page.get_by_test_id("view-alerts").click()
    rule = page.locator('[data-testid="alert"][data-name="fire"]')
    expect(rule.get_by_test_id("firing-line")).to_have_text("ERROR disk on fire")
    expect(rule.get_by_test_id("alert-silence")).to_have_count(0)
    status = page.evaluate(
        """async () => {
          const key = Object.keys(localStorage).find((k) => k.startsWith("perview.session:"));
          const headers = { Authorization: `Bearer ${localStorage.getItem(key)}` };
          const url = "api/alerts/fire/silence?for=1h";
          return (await fetch(url, { method: "POST", headers })).status;
        }"""
    )
    assert status == 403
    expect(rule.get_by_test_id("alert-state")).to_have_text("firing")


def test_a_server_without_alerts_shows_no_alerts_button(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    path = tmp_path / "perview.toml"
    path.write_text("[sources.app]\ncommand = \"sh -c 'echo hi; sleep 300'\"\n")
    server = serve("serve", "-c", str(path))
    open_page(page, server)
    expect(page.locator('[data-testid="line"] .text').last).to_have_text("hi")
    expect(page.get_by_test_id("view-alerts")).to_be_hidden()
