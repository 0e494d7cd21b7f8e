"""The metrics view in a real browser: live charts, the read-out, thresholds, the sidebar."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import Page, expect

from perview.metrics.history import History
from tests.browser.test_page import open_page, sources_api
from tests.conftest import Server

Serve = Callable[..., Server]

CONFIG = """
[server]
metrics_every = "1s"
data_dir = "{data}"

[sources.quiet]
command = "sh -c 'echo hi; sleep 300'"

[metrics.answer]
command = "echo 42"
every = "1s"
unit = "req"
warn = 40
crit = 50

[metrics.broken]
command = "sh -c 'echo no such queue; exit 3'"
every = "1s"
"""

CPU = '[data-testid="chart"][data-series="local/cpu"]'
ANSWER = '[data-testid="chart"][data-series="local/answer"]'


def metrics_server(serve: Serve, tmp_path: Path) -> Server:
    """A server whose one log source is quiet, sampling this machine every second, with a
    custom metric above its warn threshold and one whose command fails."""
    path = tmp_path / "perview.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    return serve("serve", "-c", str(path), env={"XDG_STATE_HOME": str(tmp_path / "state")})


def canvas_data(page: Page, chart: str, key: str) -> str | None:
    value: str | None = page.locator(f"{chart} canvas").get_attribute(f"data-{key}")
    return value


def test_metrics_view_charts_cpu_live_and_reads_out_under_the_cursor(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = metrics_server(serve, tmp_path)
    open_page(page, server)
    page.get_by_test_id("view-metrics").click()
    expect(page.get_by_test_id("panes")).to_be_hidden()
    expect(page.locator('[data-testid="metrics-host"][data-host="local"]')).to_be_visible()
    page.get_by_test_id("range").select_option("5m")
    assert "metrics=5m" in page.url
    page.wait_for_function(
        f"() => Number(document.querySelector('{CPU} canvas')?.dataset.points) > 0"
    )
    first = float(canvas_data(page, CPU, "last-at") or 0)
    page.wait_for_function(
        f"() => Number(document.querySelector('{CPU} canvas').dataset.lastAt) > {first}"
    )
    assert 0 <= float(canvas_data(page, CPU, "last") or -1) <= 100

    canvas = page.locator(f"{CPU} canvas")
    box = canvas.bounding_box()
    assert box is not None
    canvas.hover(position={"x": box["width"] - 10, "y": box["height"] / 2})
    readout = page.locator(f'{CPU} [data-testid="readout"]')
    expect(readout).to_be_visible()
    expect(readout).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\s+\d+(\.\d+)?%$"))
    page.mouse.move(0, 0)
    expect(readout).to_be_hidden()


def test_a_custom_series_shows_its_value_unit_and_level(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = metrics_server(serve, tmp_path)
    open_page(page, server, "metrics=1h")  # a link can open the view directly
    answer = page.locator(ANSWER)
    expect(answer).to_have_attribute("data-level", "warn")
    expect(answer.get_by_test_id("chart-value")).to_have_text("42 req")
    page.wait_for_function(f"() => document.querySelector('{ANSWER} canvas').dataset.last === '42'")
    expect(answer.get_by_test_id("chart-error")).to_be_hidden()
    broken = page.locator('[data-testid="chart"][data-series="local/broken"]')
    expect(broken.get_by_test_id("chart-error")).to_contain_text("exited with status 3")
    expect(broken).to_have_attribute("data-state", "failing")


def test_sidebar_sparkline_and_switching_back_keeps_the_log_pane(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = metrics_server(serve, tmp_path)
    open_page(page, server)
    expect(page.locator('[data-testid="line"] .text')).to_have_text("hi")
    spark = page.locator('[data-testid="sparkline"][data-host="local"]')
    expect(spark).to_be_visible()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=sparkline]').dataset.points) > 0"
    )
    host = page.locator('[data-testid="host-item"][data-host="local"]')
    figures = host.get_by_test_id("host-figures")
    expect(figures).to_have_text(re.compile(r"cpu [\d.]+% · mem [\d.]+%"))

    page.get_by_test_id("view-metrics").click()
    expect(page.locator(CPU)).to_be_visible()
    page.get_by_test_id("view-logs").click()
    expect(page.get_by_test_id("pane")).to_be_visible()
    expect(page.locator('[data-testid="line"] .text')).to_have_text("hi")  # the pane was kept
    assert "metrics=" not in page.url
    page.get_by_test_id("view-metrics").click()
    page.locator('[data-source="quiet"] .name').click()  # a source returns to the logs too
    expect(page.get_by_test_id("pane")).to_be_visible()
    expect(page.get_by_test_id("metrics-view")).to_be_hidden()
    # Metrics ride on the page's one event stream: the source still has a single viewer.
    assert sources_api(server)["quiet"]["viewers"] == 1


def test_a_chart_of_10000_points_draws_two_points_per_column_within_a_frame(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = metrics_server(serve, tmp_path)
    open_page(page, server)
    result = page.evaluate(
        """async () => {
          const { Chart } = await import("./static/chart.js");
          const chart = new Chart({ unit: "%", range: 86400, step: 144, warn: 70, crit: 90 });
          chart.root.style.width = "600px";
          document.body.append(chart.root);
          const now = Date.now() / 1000;
          const points = [];
          for (let i = 0; i < 10000; i++)
            points.push([now - 86400 + i * 8.64, 50 + 45 * Math.sin(i / 30)]);
          chart.setData(0, points);
          await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
          // Each draw timed alone, and the median taken, as the benchmarks do: on a loaded
          // machine a few draws are descheduled midway, which says nothing of the chart's work.
          const times = [];
          for (let k = 0; k < 21; k++) {
            const start = performance.now();
            chart.draw();
            times.push(performance.now() - start);
          }
          const ms = times.sort((a, b) => a - b)[10];
          const pairs = chart.decimate(chart.data[0], now - 86400, now, 0, chart.width / 86400);
          return { ms, pairs, width: chart.width, held: Number(chart.canvas.dataset.points) };
        }"""
    )
    assert result["held"] == 10000
    assert 0 < result["pairs"] <= 2 * (result["width"] + 2)
    assert result["ms"] < 16, result


def test_the_view_opens_on_the_smallest_range_that_holds_the_data(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = metrics_server(serve, tmp_path)
    open_page(page, server)
    page.get_by_test_id("view-metrics").click()
    expect(page.locator(CPU)).to_be_visible()
    expect(page.get_by_test_id("range")).to_have_value("5m")  # just started: minutes of data
    assert "metrics=5m" in page.url


def test_three_hours_of_history_open_on_24_hours(serve: Serve, page: Page, tmp_path: Path) -> None:
    history = History(tmp_path / "data" / "metrics.sqlite", retention=7 * 86400.0)

    async def write() -> None:
        await history.open()
        now = time.time()
        await history.write([("local/cpu", now - 3 * 3600 + i * 60, 10.0) for i in range(170)])
        await history.close()

    with ThreadPoolExecutor(1) as thread:  # sync Playwright holds this thread's event loop
        thread.submit(asyncio.run, write()).result(timeout=30)
    server = metrics_server(serve, tmp_path)
    open_page(page, server)
    page.get_by_test_id("view-metrics").click()
    expect(page.get_by_test_id("range")).to_have_value("24h")
    page.wait_for_function(
        f"() => Number(document.querySelector('{CPU} canvas')?.dataset.points) > 50"
    )


def test_hovering_anywhere_on_a_chart_reads_out_the_nearest_value(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    server = metrics_server(serve, tmp_path)
    open_page(page, server, "metrics=1h")  # an hour's range holding seconds of data
    page.wait_for_function(
        f"() => Number(document.querySelector('{CPU} canvas')?.dataset.points) > 0"
    )
    canvas = page.locator(f"{CPU} canvas")
    readout = page.locator(f'{CPU} [data-testid="readout"]')
    box = canvas.bounding_box()
    assert box is not None
    value = re.compile(r"^\d\d:\d\d:\d\d\s+\d+(\.\d+)?%$")
    # The middle of the chart (before the first sample), its right edge, and over the axis.
    for x in (box["width"] / 2, box["width"] - 1, 3):
        canvas.hover(position={"x": x, "y": box["height"] / 2})
        expect(readout).to_be_visible()
        expect(readout).to_have_text(value)
    page.mouse.move(0, 0)
    expect(readout).to_be_hidden()


def test_a_config_of_metrics_alone_opens_on_them_live(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[server]\nsystem_metrics = true\nmetrics_every = "1s"\ndata_dir = "{tmp_path}"\n'
    )
    server = serve("serve", "-c", str(path))
    open_page(page, server)  # "live": no source to stream, so the view polls, and says so
    expect(page.get_by_test_id("metrics-view")).to_be_visible()
    expect(page.get_by_test_id("panes")).to_be_hidden()
    page.wait_for_function(
        f"() => Number(document.querySelector('{CPU} canvas')?.dataset.points) > 0"
    )
    first = float(canvas_data(page, CPU, "last-at") or 0)
    page.wait_for_function(
        f"() => Number(document.querySelector('{CPU} canvas').dataset.lastAt) > {first}"
    )
    assert sources_api(server) == {}


def test_each_source_has_an_errors_per_minute_chart_with_its_limits(
    serve: Serve, page: Page, tmp_path: Path
) -> None:
    path = tmp_path / "perview.toml"
    path.write_text(
        f'[server]\nsystem_metrics = false\nmetrics_every = "1s"\ndata_dir = "{tmp_path}"\n\n'
        "[sources.app]\n"
        "command = \"sh -c 'echo ERROR one; echo FATAL two; echo WARNING three; sleep 300'\"\n"
        "keep = true\n\n"
        '[metrics."log.app.error"]\nwarn = 1\ncrit = 5\n'
    )
    server = serve("serve", "-c", str(path))
    open_page(page, server, "metrics=5m")
    errors = page.locator('[data-testid="chart"][data-series="local/log.app.error"]')
    expect(errors.locator(".title")).to_have_text("Errors per minute: app")
    expect(errors.get_by_test_id("chart-value")).to_have_text("2 lines/min")
    expect(errors).to_have_attribute("data-level", "warn")
    expect(errors).to_have_attribute("title", "warn 1 lines/min, crit 5 lines/min")
    page.wait_for_function(
        "() => document.querySelector("
        "'[data-series=\"local/log.app.error\"] canvas')?.dataset.last === '2'"
    )
    warnings = page.locator('[data-testid="chart"][data-series="local/log.app.warning"]')
    expect(warnings.locator(".title")).to_have_text("Warnings per minute: app")
    expect(warnings.get_by_test_id("chart-value")).to_have_text("1 lines/min")
    titles = page.locator('[data-testid="metrics-host"][data-host="local"] .title')
    expect(titles).to_have_text(["Errors per minute: app", "Warnings per minute: app"])
