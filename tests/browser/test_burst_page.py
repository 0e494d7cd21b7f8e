"""The page during a burst (many thousands of lines at once): it shows every line and draws the
pane at most once a frame (pane.js)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]

COUNT = 100_000

# Notes each pane draw and each animation frame (performance.now()) until window.__burst.stop.
WATCH = """
() => {
  const Pane = window.perview.panes[0].constructor; // the burst's pane is one too
  const w = { draws: [], frames: [], stop: false };
  const render = Pane.prototype.render;
  Pane.prototype.render = function (...args) {
    w.draws.push(performance.now());
    return render.apply(this, args);
  };
  const frame = () => {
    w.frames.push(performance.now());
    if (!w.stop) requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  window.__burst = w;
}
"""
# The lines the tab holds (marks aside): how many, the first and the last.
HELD = """
() => {
  const s = window.perview.store;
  const out = [];
  for (let q = s.first; q < s.next; q++) if (s.kind[s.slot(q)] === 0) out.push(s.text(q));
  return { count: out.length, first: out[0], last: out.at(-1) };
}
"""
LAST_SHOWN = f"""
() => [...document.querySelectorAll('[data-testid=line] .text')]
  .some((e) => e.textContent === '{COUNT}')
"""


def test_a_burst_is_shown_whole_and_drawn_at_most_once_a_frame(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    config = tmp_path / "perview.toml"
    sources = {"idle": "sleep 300", "burst": f"seq 1 {COUNT}"}
    config.write_text(
        "".join(f"[sources.{n}]\ncommand = {json.dumps(c)}\n\n" for n, c in sources.items())
    )
    server = serve("serve", "-c", str(config))
    page.goto(f"{server.base}/?token={TOKEN}&source=idle&max={2 * COUNT}")
    expect(page.get_by_test_id("connection")).to_have_text("live")
    page.evaluate(WATCH)  # first: its frame callback is asked for before any of the burst's
    page.evaluate('() => window.perview.show(["burst"], "merged")')
    page.wait_for_function(LAST_SHOWN, timeout=30_000)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))")
    w = page.evaluate("() => { window.__burst.stop = true; return window.__burst; }")
    store = page.evaluate(HELD)
    assert store == {"count": COUNT, "first": "1", "last": str(COUNT)}
    draws, frames = w["draws"], w["frames"]
    assert draws, "the pane never drew"
    # At most one draw between two frames: the watcher's frame callback runs first in each
    # frame (it was asked for first), so a draw in a frame and one after it, before the next
    # frame, fall between the same two.
    twice = [
        (round(a), round(b))
        for a, b in itertools.pairwise(frames)
        if sum(a < d < b for d in draws) > 1
    ]
    assert not twice, f"frames with more than one draw (ms): {twice}"
