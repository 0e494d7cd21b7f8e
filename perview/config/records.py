"""The config's records: frozen and typed, one per table, each the one owner of its table's keys
and their defaults."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from perview.accounts import Role
from perview.classify import Format, Options

DEFAULT_FILE_LINES = 10  # lines of an existing file shown first, like tail
DEFAULT_RECORD_LIMIT = 4 * 1000**3  # bytes of recorded history, in all (about 30 GB of text)

# Source and host names appear in URLs and in SSE ids (`name:id,name:id`), so they stay plain.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
LOCAL = "local"  # the host name that means this machine, without ssh

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Each record below is the one owner of its table's keys and their defaults: a field is a key
# (less `name`, the table's own name, and fields marked NOT_A_KEY), and its default is the default
# everywhere: in the checker, the stream limits, the sessions and the command line's help.
NOT_A_KEY = {"key": False}  # a field only the command line sets


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 9999
    token: str | None = None  # None: generate one at start
    auth: bool = True
    allowed_hosts: tuple[str, ...] = ()
    root_path: str = ""
    data_dir: str | None = None  # None: $XDG_STATE_HOME/perview (~/.local/state/perview)
    retention: float = 7 * 86400.0  # seconds of metric history kept
    system_metrics: bool = True  # sample this machine's CPU, memory, disks, network
    metrics_every: float = 2.0  # seconds between system samples
    certfile: str | None = None  # TLS: certificate chain (PEM); with keyfile, serve https
    max_streams_per_client: int = 200  # open streams from one address
    max_streams: int = 5000  # open streams in all
    max_viewers_per_source: int = 2000
    keyfile: str | None = None
    session_lifetime: float = 12 * 3600.0  # seconds a login lasts
    idle_timeout: float = 75.0  # an open connection with no request (or half a one) is closed
    write_timeout: float = 60.0  # a viewer that reads nothing for this long is cut off
    # Reverse proxies whose X-Forwarded-For/-Proto (or Forwarded) headers are believed; from
    # anyone else they are ignored, so a client cannot choose its own address.
    trusted_proxies: tuple[Network, ...] = ()
    # Seconds one viewer may hold its source back before it gets a gap. A lone viewer paces the
    # source, so nothing is lost; but one that reads slowly or not at all (a stalled tab, `curl
    # --limit-rate 5K`) would stop the command for as long as it pleased. After `hold` seconds of
    # waiting the ring rolls over instead and that viewer gets a gap. Ten seconds outlast a busy
    # browser or a slow link's hiccup, and stay well inside the 60 s after which a viewer that
    # reads nothing is cut off (write_timeout).
    hold: float = 10.0
    record: float | None = None  # history every source keeps by default (seconds); None: none
    record_size: int | None = None  # ... and by size (bytes)
    record_limit: int = DEFAULT_RECORD_LIMIT  # bytes of history in all sources together


@dataclass(frozen=True, slots=True)
class UserConfig:
    name: str
    password: str  # a hash made by `perview hash-password`, never the password itself
    role: Role = "viewer"


@dataclass(frozen=True, slots=True)
class HostConfig:
    name: str
    ssh: str  # a destination for the system ssh: user@host, or an alias from ~/.ssh/config
    ssh_args: tuple[str, ...] = ()
    metrics: bool = False  # sample its system figures too, over one SSH session


@dataclass(frozen=True, slots=True)
class MetricConfig:
    name: str
    command: tuple[str, ...] = ()  # prints a number, or `key value` lines
    scrape: str | None = None  # or: a Prometheus exporter's URL ...
    selector: str | None = None  # ... and which sample of it, e.g. node_load1
    host: str | None = None  # where the command runs or the URL is fetched; None: here
    every: float = 10.0
    unit: str = ""
    warn: float | None = None
    crit: float | None = None

    @property
    def settings_only(self) -> bool:
        """Limits for series Perview publishes itself (log.*), with nothing to run."""
        return not self.command and self.scrape is None


# The levels whose lines per minute are series `log.SOURCE.LEVEL` (perview/metrics/logrates.py).
LOG_LEVELS = ("error", "warning")


@dataclass(frozen=True, slots=True)
class JournalConfig:
    """What of the systemd journal a `journal` source reads (journalctl's own filters)."""

    units: tuple[str, ...] = ()  # empty: the whole journal
    priority: str | None = None  # a name or a range ("err", "err..warning"), as journalctl takes
    identifiers: tuple[str, ...] = ()
    boot: str | None = None  # "0": the current boot, "-1": the one before, or a boot ID
    kernel: bool = False
    directory: str | None = None  # a journal kept elsewhere (journalctl --directory)
    file: str | None = None  # one journal file (journalctl --file)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    command: tuple[str, ...] = ()  # argv; empty for a file source
    file: str | None = None  # a path or a glob
    stdin: bool = field(default=False, metadata=NOT_A_KEY)  # Perview's own standard input
    hosts: tuple[str, ...] = ()  # empty: this machine
    backlog: int = 10_000  # lines the ring keeps for new viewers ...
    max_bytes: int = field(default=16 * 1024 * 1024, metadata=NOT_A_KEY)  # ... in at most this
    keep: bool = False
    linger: float = 0.0
    rerun: bool = True  # False: a command that ended by itself waits for a restart
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    title: str | None = None
    group: str | None = None
    format: Format | Literal["raw"] = "auto"  # where levels are looked for; raw: nowhere
    level: str | None = None  # RE2 with a named group `level`: a source's own level rule
    entry_start: str | None = None  # RE2: the lines that start an entry
    journal: JournalConfig | None = None  # a journal source: records read with journalctl
    record: float | None = None  # seconds of history kept on disk; None: by size alone, or none
    record_size: int | None = None  # bytes of it

    @property
    def recorded(self) -> bool:
        return self.record is not None or self.record_size is not None

    @property
    def kind(self) -> str:
        if self.journal is not None:
            return "journal"
        return "stdin" if self.stdin else ("file" if self.file is not None else "command")

    @property
    def classify(self) -> Options | None:
        """How its lines are classified (None: not at all, format "raw")."""
        if self.format == "raw":
            return None
        return Options(self.format, self.level, self.entry_start)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """An `[alerts.NAME]` table: a rule on lines, on a metric, or on a source's silence."""

    name: str
    kind: str  # "lines", "metric" or "silence"
    sources: tuple[str, ...] = ()  # lines and silence: the sources it watches
    hosts: tuple[str, ...] = ()  # lines: only those of these hosts (empty: all)
    match: str | None = None  # lines: an RE2 pattern ...
    level: str | None = None  # ... and/or this level or worse
    count: int = 1  # lines: this many matching lines ...
    window: float = 0.0  # ... within this many seconds (0: any one line)
    metric: str | None = None  # metric: a series name, e.g. "disk.used:/", of ...
    host: str = LOCAL  # ... this host
    above: float | None = None
    below: float | None = None
    duration: float = 0.0  # `for`: how long a metric stays over its limit, or a silence lasts
    cooldown: float = 600.0  # at most one notification per cooldown; the next counts the rest
    notify: tuple[str, ...] = ()  # channels: [notify.NAME]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """A `[notify.NAME]` table: a command (argv) or a webhook, and how hard to try."""

    name: str
    command: tuple[str, ...] = ()
    webhook: str | None = None
    template: str | None = None  # a webhook's body, `{field}`s filled in JSON-escaped
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)  # `${VAR}` from the environment
    timeout: float = 10.0  # per try; a command is killed after it
    retries: int = 2  # a webhook's further tries after a failure (5xx, 429, no answer)
    backoff: float = 1.0  # seconds before the first retry, doubling after each

    @property
    def kind(self) -> str:
        return "webhook" if self.webhook is not None else "command"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    sources: tuple[SourceConfig, ...]
    hosts: Mapping[str, HostConfig] = field(default_factory=dict)
    metrics: tuple[MetricConfig, ...] = ()
    users: Mapping[str, UserConfig] = field(default_factory=dict)
    once: bool = False  # exit after the first viewer of the (only) source leaves
    default_stream: str | None = None  # the source `GET /` streams to curl
    origin: str = "command line"  # where this config came from, for messages
    path: str | None = None  # the config file, if it came from one (what a reload reads again)
    alerts: tuple[AlertConfig, ...] = ()
    notify: Mapping[str, NotifyConfig] = field(default_factory=dict)

    @property
    def alerted(self) -> frozenset[str]:
        """The sources alerts watch: they run whether anyone watches them or not, as with keep."""
        return frozenset(name for alert in self.alerts for name in alert.sources)


def keys(record: type[Any]) -> frozenset[str]:
    """The keys a table of `record` (ServerConfig, SourceConfig, ...) takes: its fields."""
    return frozenset(
        f.name for f in fields(record) if f.name != "name" and f.metadata.get("key", True)
    )


def data_dir(server: ServerConfig) -> Path:
    """Where what outlives a run is kept (the token, the session key, metric history): the
    configured `data_dir`, else $XDG_STATE_HOME/perview (~/.local/state/perview)."""
    if server.data_dir:
        return Path(server.data_dir).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "perview"
