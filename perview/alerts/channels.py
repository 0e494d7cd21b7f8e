"""Channels: how a notification leaves Perview, a command (argv, behind the process guard) or a
webhook (an HTTP POST with aiohttp's client).

Each channel has a queue and one worker of its own, so a channel that hangs holds up only its
own queue (until its timeout), never the live path, the rules or another channel. Whatever the
outcome it is counted per alert (`sent`, `failed`, `dropped` when the queue was full), and the
last error is kept for the API.

A notification is data: a webhook gets it as JSON (or as a template whose fields are
JSON-escaped), a command in its environment and as JSON on its stdin. Nothing is ever handed
to a shell.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping

import aiohttp

from perview.alerts.template import ENV, FIELDS, render
from perview.config import NotifyConfig
from perview.hub import Sink
from perview.sources.process import GuardPool, ProcessSource

log = logging.getLogger(__name__)

QUEUE = 100  # notifications waiting per channel; beyond that they are dropped (and counted)
KILL_GRACE = 1.0  # a command past its timeout: SIGTERM, then SIGKILL this much later
OUTPUT_KEPT = 400  # characters of a failed command's output quoted in its error

# A command's stdin is the alert as JSON. The guard gives a command /dev/null, so a tiny
# interpreter between them writes the document into a pipe and execs the command on its read
# end. The document is bounded (scan.SAMPLE_LINES, SAMPLE_CHARS) well below the 64 KiB a pipe
# holds, so the write never waits for a reader.
STDIN_FEEDER = """\
import os, sys
data = os.environ.pop("PERVIEW_ALERT_JSON", "").encode()
r, w = os.pipe()
os.write(w, data)
os.close(w)
os.dup2(r, 0)
os.close(r)
try:
    os.execvp(sys.argv[1], sys.argv[1:])
except OSError as exc:
    sys.stderr.write(f"{sys.argv[1]}: {exc.strerror}\\n")
    os._exit(127)
"""


class Failure(Exception):
    """A notification that did not go out; the message says why, for the API."""


class Channel:
    """One `[notify.NAME]`: its queue, its worker, and its counts per alert."""

    def __init__(
        self, config: NotifyConfig, guards: GuardPool, session: aiohttp.ClientSession | None
    ) -> None:
        self.config = config
        self.name = config.name
        self.guards = guards
        self.session = session
        self.queue: asyncio.Queue[tuple[str, dict[str, object], dict[str, object]]] = asyncio.Queue(
            QUEUE
        )
        self.counts: Counter[tuple[str, str]] = Counter()  # (alert, outcome): times
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_sent_at: float | None = None
        self.sending = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name=f"notify {self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def submit(self, alert: str, document: dict[str, object], fields: dict[str, object]) -> None:
        """Queue a notification; never waits (a full queue drops it, counted)."""
        try:
            self.queue.put_nowait((alert, document, fields))
        except asyncio.QueueFull:
            self.counts[alert, "dropped"] += 1
            self._failed(f"{QUEUE} notifications waiting: this one was dropped")

    def describe(self, alert: str | None = None) -> dict[str, object]:
        info: dict[str, object] = {
            "name": self.name,
            "kind": self.config.kind,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_sent_at": self.last_sent_at,
            "waiting": self.queue.qsize() + self.sending,
        }
        for outcome in ("sent", "failed", "dropped"):
            info[outcome] = sum(
                n
                for (name, out), n in self.counts.items()
                if out == outcome and alert in (None, name)
            )
        return info

    async def _work(self) -> None:
        while True:
            alert, document, fields = await self.queue.get()
            self.sending = True
            try:
                if self.config.webhook is not None:
                    await self._post(document, fields)
                else:
                    await self._run(document, fields)
            except Failure as exc:
                self.counts[alert, "failed"] += 1
                self._failed(str(exc))
                log.warning("alert %s: notify %s failed: %s", alert, self.name, exc)
            except Exception as exc:  # a bug here must not end the channel
                self.counts[alert, "failed"] += 1
                self._failed(f"internal error: {exc!r}")
                log.exception("alert %s: notify %s", alert, self.name)
            else:
                self.counts[alert, "sent"] += 1
                self.last_sent_at = time.time()
            finally:
                self.sending = False

    def _failed(self, message: str) -> None:
        self.last_error, self.last_error_at = message, time.time()

    # -- webhooks --------------------------------------------------------------------------------

    async def _post(self, document: dict[str, object], fields: dict[str, object]) -> None:
        config = self.config
        assert config.webhook is not None and self.session is not None
        if config.template is not None:
            body = render(config.template, fields).encode()
        else:
            body = json.dumps(document).encode()
        headers = {"Content-Type": config.content_type}
        headers |= {key: expand(value) for key, value in config.headers.items()}
        timeout = aiohttp.ClientTimeout(total=config.timeout)
        error = ""
        for attempt in range(config.retries + 1):
            if attempt:
                await asyncio.sleep(config.backoff * 2 ** (attempt - 1))
            try:
                # No redirects: a header carrying a token goes to the configured URL only.
                async with self.session.post(
                    config.webhook,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    if 200 <= response.status < 300:
                        return
                    error = f"answered {response.status} {response.reason or ''}".strip()
                    if response.status < 500 and response.status != 429:
                        raise Failure(error)  # the request is wrong: trying again will not help
            except TimeoutError:
                error = f"no answer within {config.timeout:g} s"
            except aiohttp.ClientError as exc:
                error = f"{type(exc).__name__}: {exc}"
        tries = config.retries + 1
        raise Failure(f"{error} ({tries} {'try' if tries == 1 else 'tries'})")

    # -- commands --------------------------------------------------------------------------------

    async def _run(self, document: dict[str, object], fields: dict[str, object]) -> None:
        config = self.config
        env = dict(os.environ)
        for name in FIELDS:
            value = fields.get(name)
            env[f"PERVIEW_{name.upper()}"] = "" if value is None else str(value)
        env["PERVIEW_ALERT_JSON"] = json.dumps(document, ensure_ascii=False)
        argv = [sys.executable, "-I", "-S", "-c", STDIN_FEEDER, *config.command]
        source = ProcessSource(argv, env=env, guards=self.guards, grace=KILL_GRACE)
        output = _Tail()
        stop = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(config.timeout, stop.set)
        try:
            ended = await source.run(output, stop)
        finally:
            timer.cancel()
        said = output.text()
        if stop.is_set():
            raise Failure(f"killed after its timeout of {config.timeout:g} s" + said)
        if ended.reason is not None:
            raise Failure(ended.reason)
        if ended.status:
            raise Failure(f"{config.command[0]} exited with status {ended.status}" + said)


def expand(value: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` with each `${VAR}` replaced from the environment; Failure names one not set."""
    environ = os.environ if environ is None else environ

    def variable(match: re.Match[str]) -> str:
        found = environ.get(match[1])
        if found is None:
            raise Failure(f"the environment variable {match[1]} is not set")
        return found

    return ENV.sub(variable, value)


class _Tail(Sink):
    """The last words of a command, for the error when it fails."""

    def __init__(self) -> None:
        self.kept = b""

    async def write(self, data: bytes, part: str | None = None) -> None:
        self.kept = (self.kept + data)[-OUTPUT_KEPT:]

    def text(self) -> str:
        words = self.kept.decode(errors="replace").strip()
        return f": {words}" if words else ""
