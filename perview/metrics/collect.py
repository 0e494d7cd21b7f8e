"""Collectors: each runs forever (until cancelled) and publishes into the MetricsHub.

- `local_system`: this machine, from /proc and statvfs.
- `remote_system`: an SSH host, over one long-lived session that prints /proc and `df` every
  interval: nothing is installed there, and there is no connection per sample.
- `command_metric`: a command run every interval; its output is a number, or `key value` lines.
- `scrape_metric`: a Prometheus exporter's URL, with a selector (on an SSH host: a command,
  `remote_scrape`, run by `command_metric`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

from perview.config import LOCAL
from perview.hub import Ended, Sink
from perview.metrics import procfs
from perview.metrics.hub import MetricsHub
from perview.metrics.selector import Selector
from perview.sources.process import Guards, ProcessSource
from perview.sources.ssh import SshSource

log = logging.getLogger(__name__)

PROC_FILES = {
    "stat": "stat",
    "loadavg": "loadavg",
    "meminfo": "meminfo",
    "net": "net/dev",
    "diskstats": "diskstats",
}
MAX_OUTPUT = 64 * 1024  # what a metric command may print; more is garbage, not a metric
KEY_VALUE = re.compile(r"^\s*([A-Za-z_][\w.:-]*)\s*[=\s]\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


# -- this machine ------------------------------------------------------------------------------


def read_local(proc: Path = Path("/proc")) -> procfs.Snapshot:
    sections: dict[str, str] = {}
    for name, path in PROC_FILES.items():
        try:
            sections[name] = (proc / path).read_text()
        except OSError:
            continue
    snap = procfs.parse(sections, time.monotonic())
    for mount in real_mounts(proc):
        try:
            st = os.statvfs(mount)
        except OSError:
            continue
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        available = st.f_bavail * st.f_frsize
        if used + available > 0:
            snap.disk_use[mount] = 100.0 * used / (used + available)  # as df computes it
    return snap


def real_mounts(proc: Path = Path("/proc")) -> list[str]:
    """This machine's mount points whose disk use is charted (see procfs.real_mounts)."""
    try:
        lines = (proc / "mounts").read_text().splitlines()
    except OSError:
        return []
    listed = [
        (_unescape(fields[0]), fields[2], _unescape(fields[1]))
        for fields in (line.split() for line in lines)
        if len(fields) >= 3
    ]
    return procfs.real_mounts(listed)


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (`\\040`)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def publish_snapshot(
    hub: MetricsHub, host: str, old: procfs.Snapshot | None, new: procfs.Snapshot
) -> None:
    values = procfs.levels(new)
    if old is not None:
        values |= procfs.rates(old, new)
    hub.publish(host, values, {name: procfs.unit_of(name) for name in values})


async def local_system(hub: MetricsHub, every: float) -> None:
    previous: procfs.Snapshot | None = None
    while True:
        snap = read_local()
        publish_snapshot(hub, LOCAL, previous, snap)
        previous = snap
        await asyncio.sleep(every)


# -- an SSH host -------------------------------------------------------------------------------

END_LINE = b"\n@@end\n"  # after every snapshot
# How often the far side runs `df` (the one process it starts): disk use changes slowly, and a
# fork per sample was most of what the loop cost there.
DF_EVERY = 60.0  # seconds

# The far side's loop: one snapshot per newline that Perview sends (its clock: waiting by itself
# would take a `sleep` process each time), read with the shell's builtin `read` (no `cat`), only
# the lines procfs uses of /proc/stat (the cpu lines, before the long `intr` line) and meminfo,
# and written with one printf, so it reaches us in one read. It ends when its stdin does.
REMOTE_LOOP = r"""n='
'
t=0
while read -r _; do
  s=
  for f in stat loadavg meminfo net/dev diskstats; do
    s="$s@@${f%/dev}$n"
    while IFS= read -r l; do
      case $f:$l in
        stat:cpu*|meminfo:MemTotal:*|meminfo:MemFree:*|meminfo:MemAvailable:*) ;;
        meminfo:SwapTotal:*) ;;
        meminfo:SwapFree:*) s="$s$l$n"; break ;;
        stat:*) break ;;
        meminfo:*) continue ;;
      esac
      s="$s$l$n"
    done < /proc/$f
  done
  [ $((t % DF_SAMPLES)) = 0 ] && d=$(df -P -T -k 2>/dev/null)
  t=$((t + 1))
  printf '%s@@df\n%s\n@@end\n' "$s" "$d"
done"""
SECTION = re.compile(r"^@@([a-z]+)\n", re.MULTILINE)


def remote_script(every: float) -> str:
    """The far side's command line: REMOTE_LOOP in `sh` (whatever the login shell is), which
    prints every section under an `@@name` line, then `@@end`, once per newline it reads."""
    df_every = max(1, round(DF_EVERY / every))
    return "exec sh -c " + shlex.quote(REMOTE_LOOP.replace("DF_SAMPLES", str(df_every)))


class _Sections(Sink):
    """An Output that cuts the far side's printout into snapshots (one read each, normally)."""

    def __init__(self, hub: MetricsHub, host: str) -> None:
        self.hub, self.host = hub, host
        self.buffer = b""
        self.previous: procfs.Snapshot | None = None

    async def write(self, data: bytes, part: str | None = None) -> None:
        self.buffer += data
        while (end := self.buffer.find(END_LINE)) >= 0:
            text = self.buffer[:end].decode(errors="replace")
            self.buffer = self.buffer[end + len(END_LINE) :]
            self.publish(text)
        if len(self.buffer) > MAX_OUTPUT:
            self.buffer = b""

    def publish(self, text: str) -> None:
        # Whatever came before the first section (a login shell's greeting) is no section.
        pieces = SECTION.split(text)[1:]
        sections = dict(zip(pieces[::2], pieces[1::2], strict=True))
        snap = procfs.parse(sections, time.monotonic())
        publish_snapshot(self.hub, self.host, self.previous, snap)
        self.previous = snap

    def waiting(self, reason: str) -> None:
        names = [s.name for s in self.hub.series.values() if s.host == self.host] or ["cpu"]
        self.hub.fail(self.host, names, reason)


async def remote_system(
    hub: MetricsHub,
    host: str,
    destination: str,
    ssh_args: Sequence[str],
    every: float,
    guards: Guards,
) -> None:
    """Sample `host` every `every` seconds over one ssh session; `guards` must give a stdin (a
    SharedGuard: one for every host's session)."""
    source = SshSource(
        destination, remote_script(every), ssh_args=ssh_args, guards=guards, tick=every
    )
    stop = asyncio.Event()
    while True:
        out = _Sections(hub, host)
        ended = await source.run(out, stop)  # retries ssh failures itself, reporting them
        out.waiting(f"the metrics session ended ({_ended(ended)}); starting it again")
        await asyncio.sleep(every)


def _ended(ended: Ended) -> str:
    return ended.reason or f"status {ended.status}"


# -- custom metrics ----------------------------------------------------------------------------


def parse_output(name: str, text: str) -> dict[str, float]:
    """A single number (series `name`), or `key value` / `key=value` lines (`name.key`).
    Raises ValueError with a reason for anything else."""
    text = text.strip()
    if not text:
        raise ValueError("printed nothing")
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"printed {text!r}, not a finite number")
        return {name: value}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        found = KEY_VALUE.match(line)
        if not found:
            raise ValueError(
                f"cannot read {line.strip()[:80]!r} (expected a number, or 'key value' lines)"
            )
        values[f"{name}.{found[1]}"] = float(found[2])
    return values


class _Collect(Sink):
    """Keeps a command's output (up to `limit` bytes) to parse once it has ended."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit

    async def write(self, data: bytes, part: str | None = None) -> None:
        if len(self.data) < self.limit:
            self.data += data


async def command_metric(
    hub: MetricsHub,
    host: str,
    name: str,
    every: float,
    source: ProcessSource | SshSource,
    read: Callable[[str], dict[str, float]] | None = None,
    max_output: int = MAX_OUTPUT,
) -> None:
    """Run the command every `every` seconds (never two at once) and publish what `read` makes
    of its output (by default `parse_output`); a run that takes longer than the interval is
    stopped, and a failure marks the metric's series failing with the reason."""
    read = read or (lambda text: parse_output(name, text))
    while True:
        began = time.monotonic()
        out, stop = _Collect(max_output), asyncio.Event()
        run = asyncio.ensure_future(source.run(out, stop))
        try:
            ended = await asyncio.wait_for(asyncio.shield(run), max(every, 1.0))
        except TimeoutError:
            stop.set()
            await run
            ended = Ended(None, f"took longer than {max(every, 1.0):g} s")
        text = bytes(out.data).decode(errors="replace")
        if ended.status != 0:
            reason = ended.reason or f"exited with status {ended.status}: {text.strip()[:200]}"
            hub.fail_metric(host, name, reason)
        else:
            try:
                values = read(text)
            except ValueError as exc:
                hub.fail_metric(host, name, str(exc))
            else:
                hub.publish(host, values)
        await asyncio.sleep(max(0.0, every - (time.monotonic() - began)))


# -- scraping an exporter ----------------------------------------------------------------------

# What a scrape may return: node_exporter's page is about 150 KB, kube-state-metrics' a few MB;
# more than this is not an exporter worth parsing every few seconds.
MAX_SCRAPE = 16 * 1024 * 1024


async def scrape_metric(
    hub: MetricsHub, name: str, every: float, url: str, selector: Selector
) -> None:
    """Fetch `url` from this machine every `every` seconds and publish the selected sample as
    series `local/NAME`; a failure of any kind marks it failing with the reason."""
    timeout = aiohttp.ClientTimeout(total=max(every, 1.0))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            began = time.monotonic()
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
                    body = bytearray()
                    async for chunk in response.content.iter_chunked(65536):
                        body += chunk
                        if len(body) > MAX_SCRAPE:
                            raise ValueError(f"answered more than {MAX_SCRAPE >> 20} MiB")
                    value = selector.select(body.decode(errors="replace"))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                hub.fail_metric(LOCAL, name, f"scraping {url}: {exc or type(exc).__name__}")
            else:
                hub.publish(LOCAL, {name: value})
            await asyncio.sleep(max(0.0, every - (time.monotonic() - began)))


def remote_scrape(url: str, every: float) -> str:
    """The far side's command that fetches `url` there (so `localhost` is that host's): curl,
    or wget where curl is missing; either fails with its own message on an HTTP error."""
    seconds = f"{max(every, 1.0):g}"
    quoted = shlex.quote(url)
    return (
        "if command -v curl >/dev/null 2>&1; "
        f"then exec curl -fsS --max-time {seconds} -- {quoted}; "
        f"else exec wget -q -O - -T {seconds} -- {quoted}; fi"
    )
