"""Alerts in-process: the config tables, webhooks against a real receiver on loopback, command
channels as real processes, a storm, metric and silence rules, restarts, and the API."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from perview.accounts import SessionKeys, hash_password
from perview.alerts import watch
from perview.alerts.channels import Channel
from perview.alerts.engine import AlertEngine
from perview.alerts.rules import Firing, LinesRule, Rule, SilenceRule
from perview.alerts.template import render
from perview.config import AlertConfig, ConfigError, NotifyConfig, UserConfig, parse
from perview.hub import Hub
from perview.metrics.service import MetricsService
from perview.ring import Chunk
from perview.sources.process import GuardPool
from perview.web.app import WebSettings, create_app
from perview.web.auth import Access
from tests.conftest import eventually
from tests.test_hub import ScriptedSource

MakeServer = Callable[..., Awaitable[TestServer]]
Client = TestClient[Any, Any]
PWNED = Path("/tmp/perview-pwned")  # what HOSTILE would make, were it run by a shell


def pwned() -> bool:
    return PWNED.exists()


HOSTILE = 'ERROR "},"x":"$(touch /tmp/perview-pwned)`id`\\\n'  # a line that tries to escape


# -- the config --------------------------------------------------------------------------------

GOOD = """
[sources.app]
command = "tail -F app.log"

[notify.mail]
command = ["mail", "-s", "perview", "me@example.org"]

[notify.ntfy]
webhook = "https://ntfy.example.org/alerts"
template = '{"topic": "ops", "message": "{summary}"}'
headers = { Authorization = "Bearer ${NTFY_TOKEN}" }
timeout = "5s"
retries = 3
backoff = "2s"

[alerts.errors]
source = "app"
level = "error"
count = 5
window = "1m"
notify = ["mail", "ntfy"]

[alerts.disk]
metric = "disk.used:/"
above = 90
for = "5m"
notify = "mail"

[alerts.heartbeat]
source = "app"
for = "10m"
cooldown = "1h"
"""


def test_alert_and_notify_tables_become_typed_records() -> None:
    config = parse(GOOD)
    errors, disk, heartbeat = config.alerts
    assert errors == AlertConfig(
        "errors", "lines", ("app",), level="error", count=5, window=60.0, notify=("mail", "ntfy")
    )
    assert (disk.kind, disk.metric, disk.host, disk.above, disk.duration) == (
        "metric",
        "disk.used:/",
        "local",
        90.0,
        300.0,
    )
    assert (heartbeat.kind, heartbeat.duration, heartbeat.cooldown) == ("silence", 600.0, 3600.0)
    assert config.notify["ntfy"].headers == {"Authorization": "Bearer ${NTFY_TOKEN}"}
    assert (config.notify["ntfy"].retries, config.notify["ntfy"].backoff) == (3, 2.0)
    assert config.alerted == {"app"}


def test_alert_mistakes_are_named_with_file_line_and_key() -> None:
    text = (
        '[sources.app]\ncommand = "true"\n'  # 1-2
        '[notify.hook]\nwebhook = "ftp://x"\n'  # 3-4
        'template = \'{"t": "{summry}"}\'\n'  # 5
        '[alerts.a]\nsource = "nope"\n'  # 6-7
        'match = "(unclosed"\n'  # 8
        'notify = "mail"\n'  # 9
        "above = 3\n"  # 10
        '[alerts.b]\nsource = "app"\n'  # 11-12
        '[alerts.c]\nsource = "app"\nlevel = "loud"\ncount = 3\n'  # 13-16
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, "p.toml")
    message = str(caught.value)
    for expected in (
        "p.toml:4: notify.hook.webhook: must be an http:// or https:// URL",
        "p.toml:5: notify.hook.template: {summry} is not a field",
        "p.toml:7: alerts.a.source: 'nope' is not a [sources] table",
        "p.toml:8: alerts.a.match: is not a valid RE2 regular expression",
        "p.toml:9: alerts.a.notify: 'mail' is not a [notify] table",
        "p.toml:10: alerts.a.above: does not apply to an alert on lines",
        "p.toml:11: alerts.b: needs match or level",
        "p.toml:15: alerts.c.level: must be one of trace, debug",
        'p.toml:16: alerts.c.count: needs a window, e.g. window = "1m"',
    ):
        assert expected in message


def test_a_template_cannot_be_broken_out_of_by_a_line() -> None:
    body = render('{"text": "{summary}", "lines": "{lines}"}', {"summary": "s", "lines": HOSTILE})
    assert json.loads(body) == {"text": "s", "lines": HOSTILE}


# -- a webhook receiver on loopback ------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP endpoint that records what it is sent and answers as told."""

    statuses: list[int] = field(default_factory=list)  # answers, in order; then 200
    hang: bool = False  # never answer
    got: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((time.monotonic(), dict(request.headers), await request.read()))
        if self.hang:
            await asyncio.sleep(3600)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.got]


@pytest.fixture
async def receiver(aiohttp_server: MakeServer) -> Receiver:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    found.url = str(server.make_url("/hook"))
    return found


@pytest.fixture
async def guards() -> AsyncIterator[GuardPool]:
    pool = GuardPool()
    yield pool
    await pool.close()


@contextlib.asynccontextmanager
async def channel_for(config: NotifyConfig, guards: GuardPool) -> AsyncIterator[Channel]:
    async with aiohttp.ClientSession() as session:
        channel = Channel(config, guards, session)
        channel.start()
        try:
            yield channel
        finally:
            await channel.close()


def firing(lines: str = HOSTILE) -> Firing:
    return Firing(
        "errors",
        "firing",
        "app: a line matched 'ERROR'",
        source="app",
        lines=[{"id": 7, "part": None, "host": None, "text": lines}],
    )


def submit(channel: Channel, what: Firing | None = None) -> None:
    what = what or firing()
    channel.submit(what.alert, what.document(), what.fields())


async def test_a_webhook_posts_the_alert_as_json_with_a_token_from_the_environment(
    receiver: Receiver, guards: GuardPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "t0k3n")
    config = NotifyConfig(
        "hook", webhook=receiver.url, headers={"Authorization": "Bearer ${HOOK_TOKEN}"}
    )
    async with channel_for(config, guards) as channel:
        submit(channel)
        await eventually(lambda: channel.describe()["sent"] == 1, 5)
    ((_, headers, _),) = receiver.got
    assert headers["Authorization"] == "Bearer t0k3n"
    assert headers["Content-Type"] == "application/json"
    (document,) = receiver.documents()
    assert document["alert"] == "errors" and document["state"] == "firing"
    assert document["lines"] == [{"id": 7, "part": None, "host": None, "text": HOSTILE}]
    assert not pwned()


async def test_a_webhook_template_makes_a_chat_body_with_the_line_escaped(
    receiver: Receiver, guards: GuardPool
) -> None:
    template = '{"text": "{summary}\\n{lines}", "username": "perview"}'
    config = NotifyConfig("slack", webhook=receiver.url, template=template)
    async with channel_for(config, guards) as channel:
        submit(channel)
        await eventually(lambda: channel.describe()["sent"] == 1, 5)
    (body,) = receiver.documents()
    assert body == {"text": f"app: a line matched 'ERROR'\n{HOSTILE}", "username": "perview"}


async def test_a_webhook_answering_500_is_retried_with_growing_back_off(
    receiver: Receiver, guards: GuardPool
) -> None:
    receiver.statuses = [500, 503]
    config = NotifyConfig("hook", webhook=receiver.url, retries=3, backoff=0.2)
    async with channel_for(config, guards) as channel:
        submit(channel)
        await eventually(lambda: channel.describe()["sent"] == 1, 5)
    times = [at for at, _, _ in receiver.got]
    assert len(times) == 3
    first, second = times[1] - times[0], times[2] - times[1]
    assert 0.2 <= first < 0.35 and 0.4 <= second < 0.6, (first, second)
    assert channel.describe()["failed"] == 0


async def test_a_webhook_that_keeps_failing_is_given_up_and_said(
    receiver: Receiver, guards: GuardPool
) -> None:
    receiver.statuses = [500] * 10
    config = NotifyConfig("hook", webhook=receiver.url, retries=2, backoff=0.05)
    async with channel_for(config, guards) as channel:
        submit(channel)
        await eventually(lambda: channel.describe()["failed"] == 1, 5)
        assert len(receiver.got) == 3
        info = channel.describe()
    assert (
        info["sent"] == 0 and info["last_error"] == "answered 500 Internal Server Error (3 tries)"
    )


async def test_a_webhook_refusing_the_request_is_not_retried(
    receiver: Receiver, guards: GuardPool
) -> None:
    receiver.statuses = [403]
    config = NotifyConfig("hook", webhook=receiver.url, retries=3, backoff=0.05)
    async with channel_for(config, guards) as channel:
        submit(channel)
        await eventually(lambda: channel.describe()["failed"] == 1, 5)
    assert len(receiver.got) == 1


async def test_a_receiver_that_never_answers_times_out_and_blocks_no_other_channel(
    receiver: Receiver, guards: GuardPool, aiohttp_server: MakeServer
) -> None:
    receiver.hang = True
    good = Receiver()
    app = web.Application()
    app.router.add_post("/hook", good.handle)
    good.url = str((await aiohttp_server(app, host="127.0.0.1")).make_url("/hook"))
    stuck = NotifyConfig("stuck", webhook=receiver.url, timeout=0.5, retries=1, backoff=0.1)
    async with (
        channel_for(stuck, guards) as hanging,
        channel_for(NotifyConfig("good", webhook=good.url), guards) as working,
    ):
        started = time.monotonic()
        submit(hanging)
        submit(working)
        await eventually(lambda: working.describe()["sent"] == 1, 5)
        assert time.monotonic() - started < 0.4  # not behind the stuck one
        await eventually(lambda: hanging.describe()["failed"] == 1, 5)
        assert hanging.describe()["last_error"] == "no answer within 0.5 s (2 tries)"


# -- command channels --------------------------------------------------------------------------

WRITER = (
    "import os, sys, json\n"
    "doc = json.load(sys.stdin)\n"
    "with open(sys.argv[1], 'a') as out:\n"
    "    seen = [os.environ['PERVIEW_ALERT'], os.environ['PERVIEW_LINES'], doc]\n"
    "    out.write(json.dumps(seen) + '\\n')\n"
)


async def test_a_command_gets_the_alert_in_its_environment_and_on_stdin(
    guards: GuardPool, tmp_path: Path
) -> None:
    out = tmp_path / "got"
    config = NotifyConfig("file", command=(sys.executable, "-c", WRITER, str(out)), timeout=10)
    async with channel_for(config, guards) as channel:
        submit(channel)
        await eventually(lambda: channel.describe()["sent"] == 1, 10)
    alert, lines, document = json.loads(out.read_text())
    assert (alert, lines) == ("errors", HOSTILE)
    assert document["lines"][0]["text"] == HOSTILE
    assert not pwned()


async def test_a_command_that_hangs_is_killed_at_its_timeout(
    guards: GuardPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    )
    config = NotifyConfig("stuck", command=(sys.executable, "-c", script), timeout=0.5)
    async with channel_for(config, guards) as channel:
        started = time.monotonic()
        submit(channel)
        await eventually(lambda: channel.describe()["failed"] == 1, 10)
        took = time.monotonic() - started
        info = channel.describe()
    assert 0.5 <= took < 3, took
    assert info["last_error"] == "killed after its timeout of 0.5 s"
    assert not psutil.pid_exists(int(pid_file.read_text()))


async def test_a_command_not_found_is_a_failure_that_says_so(guards: GuardPool) -> None:
    config = NotifyConfig("gone", command=("no-such-notifier-x",), timeout=5)
    async with channel_for(config, guards) as channel:
        submit(channel)
        await eventually(lambda: channel.describe()["failed"] == 1, 10)
        error = channel.describe()["last_error"]
    assert "no-such-notifier-x" in str(error) and "status 127" in str(error)


# -- the engine over real sources --------------------------------------------------------------


@dataclass
class Running:
    config: Any
    catalog: Any
    engine: AlertEngine
    metrics: MetricsService
    stopped: bool = False


@pytest.fixture
async def run_alerts(
    guards: GuardPool, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start a config's sources, metrics and alerts in-process (data in tmp_path); all are
    stopped at the end."""
    from perview.catalog import Catalog

    started: list[Running] = []

    async def start(text: str, directory: Path = tmp_path) -> Running:
        config = parse(f'[server]\nsystem_metrics = false\ndata_dir = "{directory}"\n' + text)
        catalog = Catalog(config, guards)
        metrics = MetricsService(config, guards)
        engine = AlertEngine(config, catalog.hubs, metrics.hub, guards, directory)
        await metrics.start()
        await engine.start()
        catalog.start_kept()
        running = Running(config, catalog, engine, metrics)
        started.append(running)
        return running

    yield start
    for running in started:
        await stop(running)


async def stop(running: Running) -> None:
    if running.stopped:
        return
    running.stopped = True
    await running.engine.close()
    await running.catalog.close()
    await running.metrics.close()


def python(script: str) -> str:
    return json.dumps([sys.executable, "-u", "-c", script])


STORM = (
    "import sys, time\n"
    "line = b'ERROR storm\\n' * 1000\n"
    "start = time.monotonic()\n"
    "for i in range(100):\n"
    "    sys.stdout.buffer.write(line); sys.stdout.flush()\n"
    "    time.sleep(max(0, start + (i + 1) / 100 - time.monotonic()))\n"
    "time.sleep(600)\n"
)


async def test_a_storm_sends_one_notification_then_one_per_cooldown_with_the_count(
    run_alerts: Callable[..., Awaitable[Running]], receiver: Receiver
) -> None:
    running = await run_alerts(
        f"[sources.app]\ncommand = {python(STORM)}\n"
        f'[notify.hook]\nwebhook = "{receiver.url}"\n'
        '[alerts.storm]\nsource = "app"\nmatch = "ERROR"\ncooldown = "400ms"\nnotify = "hook"\n'
    )
    rule = running.engine.rules["storm"]
    await eventually(lambda: sum(d["count"] for d in receiver.documents()) == 100_000, 15)
    documents = receiver.documents()
    first, *rest = documents
    assert (first["count"], first["suppressed"]) == (1, 0)
    assert first["lines"][0] == {"id": 1, "part": None, "host": None, "text": "ERROR storm"}
    assert rest and all(d["suppressed"] == d["count"] > 0 for d in rest)
    assert "more times since the last notification" in rest[0]["summary"]
    # One a cooldown, timed where the rule sends (each send starts a cooldown), not where the
    # receiver gets it: a loaded machine delays a delivery, never the rule's decision.
    sends = [e["quiet_until"] - 0.4 for _, e in running.engine.events if e["firing"] is not None]
    assert len(sends) == len(documents)
    assert all(later - earlier >= 0.4 - 1e-6 for earlier, later in itertools.pairwise(sends))
    assert rule.gaps == 0
    # A whole cooldown without a match: the rule is ok again, and nothing more is sent.
    await eventually(lambda: rule.state() == "ok", 5)
    assert len(receiver.got) == len(documents)


class Sent:
    """A rule's outlet that keeps what the rule sends, and each state it changed to."""

    def __init__(self) -> None:
        self.firings: list[Firing] = []
        self.states: list[str] = []

    def emit(self, rule: Rule, firing: Firing) -> None:
        self.firings.append(firing)
        self.changed(rule)

    def changed(self, rule: Rule) -> None:
        if not self.states or self.states[-1] != rule.state():
            self.states.append(rule.state())


def test_a_match_after_the_cooldown_but_before_the_clock_goes_out_with_the_held_back_count() -> (
    None
):
    sent = Sent()
    (config,) = parse(
        '[sources.app]\ncommand = "true"\n'
        '[alerts.storm]\nsource = "app"\nmatch = "ERROR"\ncooldown = "400ms"\n'
    ).alerts
    rule = LinesRule(config, sent)

    def storm(now: float) -> None:
        hits = rule.matcher.scan(b"ERROR storm\n" * 1000, None)
        assert hits is not None
        rule.lines("app", 1, None, now, hits, now)

    storm(0.0)
    storm(0.1)
    # A busy loop runs the clock late: the next block is scanned before the cooldown's tick.
    storm(0.45)
    rule.tick(0.46)
    assert [(f.count, f.suppressed) for f in sent.firings] == [(1, 0), (2999, 2999)]
    assert rule.state() == "firing"
    assert rule.quiet_until == 0.45 + 0.4


@contextlib.asynccontextmanager
async def stalled_scanner() -> AsyncIterator[Callable[[], None]]:
    """The alerts' scanner thread held until the block calls what it is given (or ends)."""
    held = threading.Event()
    stall = watch._scanner.submit(held.wait)
    try:
        yield held.set
    finally:
        held.set()
        await asyncio.wrap_future(stall)


@contextlib.asynccontextmanager
async def watched(cooldown: str) -> AsyncIterator[tuple[Hub, LinesRule, Sent]]:
    """A storm rule (`ERROR`, `cooldown`) watching a hub the test writes to, firing once."""
    (config,) = parse(
        '[sources.app]\ncommand = "true"\n'
        f'[alerts.storm]\nsource = "app"\nmatch = "ERROR"\ncooldown = "{cooldown}"\n'
    ).alerts
    sent = Sent()
    rule = LinesRule(config, sent)
    hub = Hub("app", ScriptedSource(), keep=True)
    watching = asyncio.create_task(watch.Watch(hub, [rule]).run())
    try:
        await hub.write(b"ERROR one\n")
        await eventually(lambda: len(sent.firings) == 1, 10)
        yield hub, rule, sent
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await hub.close()


async def test_a_storm_rule_is_not_ok_while_lines_of_its_cooldown_wait_for_a_stalled_scanner() -> (
    None
):
    async with watched("30s") as (hub, rule, sent):
        async with stalled_scanner() as release:
            await hub.write(b"ERROR two\n")  # within the cooldown; not scanned yet
            rule.tick(rule.quiet_until + 1)  # the clock, at the end of the cooldown
            assert rule.state() == "firing"
            release()
            await eventually(lambda: rule.suppressed == 1, 10)
        # The line was within the cooldown: counted for the next notification, and never "ok".
        assert (rule.state(), rule.suppressed, len(sent.firings)) == ("firing", 1, 1)
        assert sent.states == ["firing"]


async def test_a_storm_rule_is_ok_once_the_scanner_has_looked_at_the_whole_cooldown() -> None:
    async with watched("300ms") as (hub, rule, sent):
        async with stalled_scanner() as release:
            await hub.write(b"INFO fine\n")
            await eventually(lambda: time.time() > rule.quiet_until, 10)
            rule.tick(time.time())
            assert rule.state() == "firing"  # the line may yet match: not ok before it is seen
            release()
            await eventually(lambda: rule.state() == "ok", 10)
        assert sent.states == ["firing", "ok"]


async def test_a_silence_rule_hears_a_line_that_waits_for_a_stalled_scanner() -> None:
    (config,) = parse(
        '[sources.app]\ncommand = "true"\n[alerts.quiet]\nsource = "app"\nfor = "30s"\n'
    ).alerts
    sent = Sent()
    rule = SilenceRule(config, sent)
    rule.last = time.time() - 3600  # it printed nothing for an hour
    hub = Hub("app", ScriptedSource(), keep=True)
    watching = asyncio.create_task(watch.Watch(hub, [rule]).run())
    try:
        async with stalled_scanner():
            await hub.write(b"a line\n")
            chunk = hub.ring.get(hub.ring.oldest_seq)
            assert chunk is not None and chunk.count == 1
            await eventually(lambda: rule.last == chunk.at, 10)
            rule.tick(time.time())  # the clock: nothing to say, the source just printed
            assert (rule.state(), sent.firings) == ("ok", [])
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await hub.close()


async def test_a_level_rule_counts_entries_within_its_window(
    run_alerts: Callable[..., Awaitable[Running]], receiver: Receiver
) -> None:
    script = (
        "import time\n"
        "for i in range(3):\n"
        "    print(f'ERROR failed {i}'); print('Traceback (most recent call last):');"
        " print('  File x'); print('ValueError: x')\n"
        "    print('INFO fine')\n"
        "time.sleep(600)\n"
    )
    await run_alerts(
        f"[sources.app]\ncommand = {python(script)}\n"
        f'[notify.hook]\nwebhook = "{receiver.url}"\n'
        '[alerts.errors]\nsource = "app"\nlevel = "error"\ncount = 3\nwindow = "1m"\n'
        'notify = "hook"\n'
    )
    await eventually(lambda: len(receiver.got) == 1, 10)
    (document,) = receiver.documents()
    # Three errors (their tracebacks are part of them), not twelve error lines.
    assert document["summary"] == "app: 3 lines within 1m matched level error"
    assert [line["text"] for line in document["lines"]][:2] == ["ERROR failed 0", "ERROR failed 1"]


METRIC = "import sys; print(open(sys.argv[1]).read().strip())"


async def test_a_metric_alert_fires_after_its_duration_and_resolves(
    run_alerts: Callable[..., Awaitable[Running]], receiver: Receiver, tmp_path: Path
) -> None:
    value = tmp_path / "value"
    value.write_text("10")
    command = json.dumps([sys.executable, "-c", METRIC, str(value)])
    running = await run_alerts(
        f'[metrics.queue]\ncommand = {command}\nevery = "100ms"\n'
        f'[notify.hook]\nwebhook = "{receiver.url}"\n'
        '[alerts.busy]\nmetric = "queue"\nabove = 50\nfor = "500ms"\nnotify = "hook"\n'
    )
    rule = running.engine.rules["busy"]
    await eventually(lambda: running.metrics.hub.series.get("local/queue"), 10)
    value.write_text("90")
    breached = time.monotonic()
    await eventually(lambda: len(receiver.got) == 1, 10)
    assert time.monotonic() - breached >= 0.5
    assert rule.state() == "firing"
    (fired,) = receiver.documents()
    assert (fired["state"], fired["value"]) == ("firing", 90.0)
    assert fired["summary"] == "local/queue is 90, above 50 for 0.5s"
    value.write_text("20")
    await eventually(lambda: len(receiver.got) == 2, 10)
    resolved = receiver.documents()[1]
    assert (resolved["state"], resolved["value"]) == ("resolved", 20.0)
    assert rule.state() == "ok"


async def test_a_silence_alert_fires_when_a_source_stops_printing_and_resolves(
    run_alerts: Callable[..., Awaitable[Running]], receiver: Receiver, tmp_path: Path
) -> None:
    go_on = tmp_path / "go-on"
    script = (
        "import os, sys, time\n"
        "for i in range(5):\n    print('beat', i); time.sleep(0.1)\n"
        f"while not os.path.exists({str(go_on)!r}):\n    time.sleep(0.05)\n"
        "print('back'); time.sleep(600)\n"
    )
    running = await run_alerts(
        f"[sources.heart]\ncommand = {python(script)}\n"
        f'[notify.hook]\nwebhook = "{receiver.url}"\n'
        '[alerts.heartbeat]\nsource = "heart"\nfor = "700ms"\nnotify = "hook"\n'
    )
    await eventually(lambda: len(receiver.got) == 1, 10)
    (fired,) = receiver.documents()
    assert fired["state"] == "firing" and fired["summary"].startswith("heart printed nothing for")
    assert running.engine.rules["heartbeat"].state() == "firing"
    go_on.touch()
    await eventually(lambda: len(receiver.got) == 2, 10)
    assert receiver.documents()[1]["summary"] == "heart printed again"


async def test_an_alert_already_firing_is_not_sent_again_after_a_restart(
    run_alerts: Callable[..., Awaitable[Running]], receiver: Receiver, tmp_path: Path
) -> None:
    value = tmp_path / "value"
    value.write_text("90")
    command = json.dumps([sys.executable, "-c", METRIC, str(value)])
    config = (
        f'[metrics.queue]\ncommand = {command}\nevery = "100ms"\n'
        f'[notify.hook]\nwebhook = "{receiver.url}"\n'
        '[alerts.busy]\nmetric = "queue"\nabove = 50\nnotify = "hook"\ncooldown = "200ms"\n'
    )
    first = await run_alerts(config)
    await eventually(lambda: len(receiver.got) == 1, 10)
    await stop(first)
    assert (tmp_path / "alerts.json").stat().st_mode & 0o777 == 0o600
    second = await run_alerts(config)
    rule = second.engine.rules["busy"]
    assert rule.state() == "firing"
    await eventually(lambda: rule.value == 90.0, 10)
    await asyncio.sleep(0.5)  # samples keep coming, past the cooldown: still nothing is sent
    assert len(receiver.got) == 1
    assert [f.state for f in rule.recent] == ["firing"]  # the firing before the restart
    value.write_text("10")  # and it still resolves, and says so
    await eventually(lambda: len(receiver.got) == 2, 10)
    assert receiver.documents()[1]["state"] == "resolved"


async def test_a_firing_names_the_part_its_lines_come_from_as_the_rest_of_perview_does(
    run_alerts: Callable[..., Awaitable[Running]], receiver: Receiver, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "b.log").write_text("ERROR in b\n")
    template = '{"who": "{part}", "old": "{host}"}'
    running = await run_alerts(
        f'[sources.logs]\nfile = "{logs}/*.log"\n'
        f'[notify.hook]\nwebhook = "{receiver.url}"\n'
        f"[notify.chat]\nwebhook = \"{receiver.url}\"\ntemplate = '{template}'\n"
        '[alerts.errors]\nsource = "logs"\nmatch = "ERROR"\nnotify = ["hook", "chat"]\n'
    )
    await eventually(lambda: len(receiver.got) == 2, 10)
    by_kind = {"lines" in json.loads(body): json.loads(body) for _, _, body in receiver.got}
    document, chat = by_kind[True], by_kind[False]
    # `part`, as events and search say it; `host` stays, by the name the README promised.
    assert (document["part"], document["host"]) == ("b.log", "b.log")
    assert document["lines"] == [{"id": 1, "part": "b.log", "host": "b.log", "text": "ERROR in b"}]
    assert chat == {"who": "b.log", "old": "b.log"}
    (rule,) = running.engine.describe()
    assert rule["recent"][0]["part"] == "b.log"
    # `firing` is a firing record wherever it appears; whether the rule fires is `active`.
    assert rule["active"] is True and "firing" not in rule
    _, event = running.engine.events[-1]
    assert event["active"] is True and event["firing"]["part"] == "b.log"


def test_firings_kept_by_a_version_before_part_load_with_their_part() -> None:
    kept = {"alert": "errors", "state": "firing", "summary": "s", "at": 1.0, "host": "web1"}
    kept["lines"] = [{"id": 3, "host": "web1", "text": "ERROR x"}]
    loaded = Firing.load(kept).document()
    assert (loaded["part"], loaded["host"]) == ("web1", "web1")
    assert loaded["lines"] == [{"id": 3, "part": "web1", "host": "web1", "text": "ERROR x"}]


# -- the API, the event stream and /metrics ----------------------------------------------------

CHEAP = {"n": 2**10, "r": 8, "p": 1}
OPERATOR, VIEWER = "alice", "bob"


async def log_in(client: Client, user: str) -> dict[str, str]:
    response = await client.post(
        "/login", data={"user": user, "password": f"{user}-pw", "next": "/"}, allow_redirects=False
    )
    fragment = response.headers["Location"].partition("#")[2]
    session = fragment.removeprefix("session=").partition("&")[0]
    from urllib.parse import unquote

    return {"Authorization": f"Bearer {unquote(session)}"}


@pytest.fixture
async def api(
    run_alerts: Callable[..., Awaitable[Running]],
    receiver: Receiver,
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
) -> tuple[Client, Running]:
    script = "import time\nprint('ERROR one', flush=True)\ntime.sleep(600)\n"
    running = await run_alerts(
        f"[sources.app]\ncommand = {python(script)}\n"
        f'[notify.hook]\nwebhook = "{receiver.url}"\n'
        '[alerts.errors]\nsource = "app"\nmatch = "ERROR"\ncooldown = "50ms"\nnotify = "hook"\n'
    )
    users = {
        OPERATOR: UserConfig(OPERATOR, hash_password("alice-pw", **CHEAP), "operator"),
        VIEWER: UserConfig(VIEWER, hash_password("bob-pw", **CHEAP), "viewer"),
    }
    access = Access(
        token="s3cret",
        allowed_hosts=frozenset(),
        users=users,
        sessions=SessionKeys(tmp_path / "sessions", lifetime=3600),
    )
    app = create_app(
        running.catalog.hubs, WebSettings(access), running.metrics, alerts=running.engine
    )
    return await aiohttp_client(app), running


async def test_the_api_lists_each_rule_with_its_firings_and_channels(
    api: tuple[Client, Running], receiver: Receiver
) -> None:
    client, _ = api
    await eventually(lambda: len(receiver.got) == 1, 10)
    headers = await log_in(client, VIEWER)
    (rule,) = await (await client.get("/api/alerts", headers=headers)).json()
    assert rule["name"] == "errors" and rule["kind"] == "lines"
    assert rule["state"] in ("firing", "ok") and rule["sources"] == ["app"]
    (recent,) = rule["recent"]
    assert recent["lines"] == [{"id": 1, "part": None, "host": None, "text": "ERROR one"}]
    (channel,) = rule["channels"]
    assert (channel["name"], channel["kind"], channel["sent"], channel["failed"]) == (
        "hook",
        "webhook",
        1,
        0,
    )


async def test_an_operator_silences_an_alert_and_a_viewer_may_not(
    api: tuple[Client, Running], receiver: Receiver
) -> None:
    client, running = api
    await eventually(lambda: len(receiver.got) == 1, 10)
    viewer = await log_in(client, VIEWER)
    refused = await client.post("/api/alerts/errors/silence?for=1h", headers=viewer)
    assert refused.status == 403 and "operator" in await refused.text()
    operator = await log_in(client, OPERATOR)
    bad = await client.post("/api/alerts/errors/silence?for=forever", headers=operator)
    assert bad.status == 400
    missing = await client.post("/api/alerts/nope/silence", headers=operator)
    assert missing.status == 404
    answer = await client.post("/api/alerts/errors/silence?for=1h", headers=operator)
    assert answer.status == 200
    silenced = await answer.json()
    assert (silenced["state"], silenced["silenced_by"]) == ("silenced", OPERATOR)
    assert silenced["silenced_until"] > time.time() + 3500
    # A firing while silenced is recorded, not sent.
    rule = running.engine.rules["errors"]
    await eventually(lambda: rule.state() != "firing" and not rule.firing, 5)
    hub = running.catalog.hubs["app"]
    await hub.restart()  # prints its ERROR line again
    await eventually(lambda: len(rule.recent) == 2, 10)
    assert rule.recent[-1].sent is False and len(receiver.got) == 1


async def test_alerts_are_exported_for_prometheus_and_told_on_the_event_stream(
    api: tuple[Client, Running], receiver: Receiver
) -> None:
    client, _ = api
    headers = {"Authorization": "Bearer s3cret"}
    events = await client.get("/api/events?backlog=0", headers=headers)
    text = ""
    async with asyncio.timeout(10):
        while "event: alert" not in text:
            text += (await events.content.readany()).decode()
    events.close()
    payload = text.partition("event: alert\ndata: ")[2].partition("\n")[0]
    told = json.loads(payload)
    assert told["name"] == "errors" and told["firing"]["lines"][0]["text"] == "ERROR one"
    await eventually(lambda: len(receiver.got) == 1, 10)
    exported = await (await client.get("/metrics", headers=headers)).text()
    assert 'perview_alert_firing{alert="errors"}' in exported
    sent = 'perview_alert_notifications_total{alert="errors",channel="hook",outcome="sent"} 1.0'
    assert sent in exported


# -- the engine follows the ring: it is no viewer -------------------------------------------------

FLOOD = ["yes", "ERROR flood of lines, one after another"]
# Twenty rules, as a helper once had on a source under load: each scans every block.
SLOW_RULES = "".join(
    f'[alerts.r{n}]\nsource = "flood"\nmatch = "(?i)fl[o0]+d.{{0,40}}x{{{n + 1}}}"\n'
    for n in range(20)
)


async def test_an_alerted_source_with_one_viewer_shows_one_viewer(
    run_alerts: Callable[..., Awaitable[Running]],
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    script = "import time\nprint('ERROR one', flush=True)\ntime.sleep(600)\n"
    running = await run_alerts(
        f"[sources.app]\ncommand = {python(script)}\n"
        '[alerts.errors]\nsource = "app"\nmatch = "ERROR"\n'
    )
    await eventually(lambda: running.engine.rules["errors"].recent, 10)
    access = Access(token="s3cret", allowed_hosts=frozenset())
    client = await aiohttp_client(
        create_app(running.catalog.hubs, WebSettings(access), running.metrics)
    )
    headers = {"Authorization": "Bearer s3cret"}
    stream = await client.get("/api/sources/app/text?backlog=1", headers=headers)
    async with asyncio.timeout(10):
        assert await stream.content.readline() == b"ERROR one\n"
    (source,) = await (await client.get("/api/sources", headers=headers)).json()
    assert (source["name"], source["viewers"]) == ("app", 1)
    stream.close()


async def test_a_slow_rule_set_neither_slows_a_live_viewer_nor_misses_lines_silently(
    run_alerts: Callable[..., Awaitable[Running]], caplog: pytest.LogCaptureFixture
) -> None:
    running = await run_alerts(f"[sources.flood]\ncommand = {json.dumps(FLOOD)}\n" + SLOW_RULES)
    hub = running.catalog.hubs["flood"]
    await eventually(lambda: hub.ring.next_id > 100_000, 10)
    got = 0
    with hub.watch(backlog=0) as viewer:
        async with asyncio.timeout(3):  # the hub's hold is 10 s: a viewer held back fails here
            while got < 200_000:
                await viewer.wait(1)
                got += sum(c.count for c in viewer.read() if isinstance(c, Chunk))
    rules = running.engine.rules.values()
    await eventually(lambda: all(rule.gaps > 0 for rule in rules), 10)
    assert "alerts fell behind flood" in caplog.text and "lines not looked at" in caplog.text
    about = running.engine.describe()
    assert all(rule["gaps"] > 0 for rule in about)  # what the page shows on each rule
