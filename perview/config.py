"""The configuration: TOML in, frozen typed records out; every error names file, line and key."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from perview.accounts import ROLES, Role, parse_hash
from perview.alerts.scan import compile_match
from perview.alerts.template import FIELDS, unknown_fields
from perview.classify import FORMATS, LEVEL_NAMES, Format, Options
from perview.classify import check as check_classify
from perview.errors import ExitCode, PerviewError
from perview.hub import HOLD, RING_BYTES, RING_LINES
from perview.metrics.selector import parse as parse_selector

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
    hold: float = HOLD  # seconds one viewer may hold a source back before it gets a gap
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

# journalctl's priority names, most severe first (their index is the number); a few common
# spellings journalctl does not take are accepted as the name it does.
PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
PRIORITY_ALIASES = {"emergency": "emerg", "critical": "crit", "error": "err", "warn": "warning"}
BOOT_ID = re.compile(r"[0-9a-f]{32}([+-]\d+)?")


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
    backlog: int = RING_LINES  # lines kept for new viewers
    max_bytes: int = field(default=RING_BYTES, metadata=NOT_A_KEY)
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


# -- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    key: str
    message: str


class ConfigError(PerviewError):
    """Every problem found in one config file, one per line: `file:line: key: message`."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: p.line)
        lines = [f"{path}:{p.line}: {p.key}: {p.message}" for p in self.problems]
        super().__init__("\n".join(lines), ExitCode.CONFIG)


def load(path: str | Path) -> Config:
    """Read and check a config file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PerviewError(f"cannot read config {path}: {exc.strerror}", ExitCode.CONFIG) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [Problem(1, "(file)", f"not UTF-8: {exc.reason}")]) from exc
    return replace(parse(text, str(path)), path=str(path))


def parse(text: str, path: str = "perview.toml") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        problem = Problem(int(found[1]) if found else 1, "(syntax)", f"invalid TOML: {exc}")
        raise ConfigError(path, [problem]) from exc
    checker = _Checker(KeyLines(text))
    config = checker.config(data, path)
    if checker.problems:
        raise ConfigError(path, checker.problems)
    return config


class KeyLines:
    """Where each table and key is written. tomllib keeps no positions, so this reads the
    text for `[table]` headers and `key =` lines; good enough to point a person at a line.
    `[a.b]` and `a.b = 1` also define table `a`, so every prefix is placed where it first
    appears (a misspelled `[sourcse.b]` is named at its header, not at line 1)."""

    HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.\-"' ]+?)\s*=""")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            if header := self.HEADER.match(line):
                table = _split_key(header[1])
                self._place(table, number)
            elif key := self.KEY.match(line):
                self._place(table + _split_key(key[1]), number)

    def _place(self, path: tuple[str, ...], number: int) -> None:
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], number)

    def of(self, *path: str) -> int:
        """The line of `path`, or of its closest enclosing table, or 1."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1


def _split_key(key: str) -> tuple[str, ...]:
    parts = re.findall(r"""\s*("[^"]*"|'[^']*'|[^.]+)\s*(?:\.|$)""", key)
    return tuple(part.strip().strip("\"'") for part in parts)


class _Checker:
    def __init__(self, lines: KeyLines) -> None:
        self.lines = lines
        self.problems: list[Problem] = []

    def problem(self, path: tuple[str, ...], message: str) -> None:
        self.problems.append(Problem(self.lines.of(*path), ".".join(path), message))

    def table(
        self, value: Any, path: tuple[str, ...], allowed: frozenset[str] | None
    ) -> dict[str, Any]:
        """`value` as a table; with `allowed`, every other key is reported as unknown."""
        if not isinstance(value, dict):
            self.problem(path, f"must be a table, not {_kind(value)}")
            return {}
        for key, item in value.items():
            if allowed is not None and key not in allowed:
                what = "table" if isinstance(item, dict) else "key"
                expected = ", ".join(sorted(allowed))
                self.problem((*path, key), f"unknown {what} (expected one of: {expected})")
        return value

    def get(
        self, table: dict[str, Any], path: tuple[str, ...], key: str, kind: type, default: Any
    ) -> Any:
        if key not in table:
            return default
        value = table[key]
        # bool is an int in Python; a port of `true` is still a mistake.
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            self.problem((*path, key), f"must be {_article(kind)}, not {_kind(value)}")
            return default
        return value

    def strings(self, table: dict[str, Any], path: tuple[str, ...], key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem((*path, key), f"must be a list of strings, not {_kind(value)}")
            return ()
        return tuple(value)

    # -- sections ------------------------------------------------------------------------------

    def config(self, data: dict[str, Any], origin: str) -> Config:
        top = self.table(data, (), _TOP_KEYS)
        server = self.server(top.get("server", {}))
        hosts = {
            name: self.host(name, value)
            for name, value in self.table(top.get("hosts", {}), ("hosts",), None).items()
        }
        raw_sources = self.table(top.get("sources", {}), ("sources",), None)
        sources = tuple(
            self.source(name, value, hosts, server) for name, value in raw_sources.items()
        )
        classified = {s.name for s in sources if s.format != "raw"}
        metrics = tuple(
            self.metric(name, value, hosts, classified)
            for name, value in self.table(top.get("metrics", {}), ("metrics",), None).items()
        )
        # A metrics-only view is something to serve; a file that asks for nothing is a mistake
        # (system_metrics counts when written out: it is on by default in every config).
        raw_server = top.get("server", {})
        asked_system = isinstance(raw_server, dict) and raw_server.get("system_metrics") is True
        if not (sources or metrics or asked_system or any(h.metrics for h in hosts.values())):
            self.problem(
                ("sources",),
                "nothing to serve: add a [sources.NAME] or [metrics.NAME] table, "
                "or metrics = true to a host",
            )
        users = {
            name: self.user(name, value)
            for name, value in self.table(top.get("users", {}), ("users",), None).items()
        }
        if users and not server.auth:
            self.problem(("server", "auth"), "cannot be false when [users] are defined")
        notify = {
            name: self.notify(name, value)
            for name, value in self.table(top.get("notify", {}), ("notify",), None).items()
        }
        names = {source.name for source in sources}
        alerts = tuple(
            self.alert(name, value, names, hosts, notify)
            for name, value in self.table(top.get("alerts", {}), ("alerts",), None).items()
        )
        return Config(
            server, sources, hosts, metrics, users, origin=origin, alerts=alerts, notify=notify
        )

    def server(self, raw: Any) -> ServerConfig:
        path = ("server",)
        table = self.table(raw, path, _SERVER_KEYS)
        port = self.get(table, path, "port", int, _SERVER.port)
        if not 0 <= port <= 65535:
            self.problem((*path, "port"), f"must be between 0 and 65535, not {port}")
        root = self.get(table, path, "root_path", str, _SERVER.root_path).strip("/")
        retention = self.duration(table, path, "retention", _SERVER.retention)
        every = self.duration(table, path, "metrics_every", _SERVER.metrics_every)
        return ServerConfig(
            host=self.get(table, path, "host", str, _SERVER.host),
            port=port,
            token=self.get(table, path, "token", str, _SERVER.token) or None,
            auth=self.get(table, path, "auth", bool, _SERVER.auth),
            allowed_hosts=self.strings(table, path, "allowed_hosts"),
            root_path="/" + root if root else "",
            data_dir=self.get(table, path, "data_dir", str, _SERVER.data_dir),
            retention=retention,
            system_metrics=self.get(table, path, "system_metrics", bool, _SERVER.system_metrics),
            metrics_every=every,
            certfile=self.get(table, path, "certfile", str, _SERVER.certfile),
            max_streams_per_client=self.limit(
                table, path, "max_streams_per_client", _SERVER.max_streams_per_client
            ),
            max_streams=self.limit(table, path, "max_streams", _SERVER.max_streams),
            max_viewers_per_source=self.limit(
                table, path, "max_viewers_per_source", _SERVER.max_viewers_per_source
            ),
            keyfile=self.get(table, path, "keyfile", str, _SERVER.keyfile),
            session_lifetime=self.duration(
                table, path, "session_lifetime", _SERVER.session_lifetime
            ),
            idle_timeout=self.duration(table, path, "idle_timeout", _SERVER.idle_timeout),
            write_timeout=self.duration(table, path, "write_timeout", _SERVER.write_timeout),
            trusted_proxies=self.networks(table, path, "trusted_proxies"),
            hold=self.duration(table, path, "hold", _SERVER.hold),
            record=self.record(table, path, _SERVER.record),
            record_size=self.size(table, path, "record_size", _SERVER.record_size),
            record_limit=self.size(table, path, "record_limit", _SERVER.record_limit) or 1,
        )

    def networks(
        self, table: dict[str, Any], path: tuple[str, ...], key: str
    ) -> tuple[Network, ...]:
        found = []
        for text in self.strings(table, path, key):
            try:
                found.append(network(text))
            except ValueError as exc:
                self.problem((*path, key), str(exc))
        return tuple(found)

    def limit(self, table: dict[str, Any], path: tuple[str, ...], key: str, default: int) -> int:
        value: int = self.get(table, path, key, int, default)
        if value < 1:
            self.problem((*path, key), "must be at least 1")
            return default
        return value

    def record(
        self, table: dict[str, Any], path: tuple[str, ...], default: float | None
    ) -> float | None:
        """`record = "7d"` (how long history is kept), or `false` (none, whatever the default)."""
        if table.get("record") is False:
            return None
        if "record" not in table:
            return default
        return self.duration(table, path, "record", 7 * 86400.0)

    def size(
        self, table: dict[str, Any], path: tuple[str, ...], key: str, default: int | None
    ) -> int | None:
        if key not in table:
            return default
        value = table[key]
        found = parse_size(value)
        if found is None or found < 1:
            self.problem(
                (*path, key), f'must be a size like "500MB", "2GB" (or bytes), not {value!r}'
            )
            return default
        return found

    def duration(
        self, table: dict[str, Any], path: tuple[str, ...], key: str, default: float
    ) -> float:
        value = table.get(key, default)
        seconds = parse_duration(value)
        if seconds is None or seconds <= 0:
            self.problem(
                (*path, key),
                f'must be a duration like "10s", "5m", "7d" (or seconds), not {value!r}',
            )
            return default
        return seconds

    def metric(
        self, name: str, raw: Any, hosts: Mapping[str, HostConfig], classified: set[str]
    ) -> MetricConfig:
        path = ("metrics", name)
        if not NAME.fullmatch(name):
            self.problem(path, f"{name!r} is not a usable metric name (letters, digits, _ . -)")
        table = self.table(raw, path, _METRIC_KEYS)
        if name == "log" or name.startswith("log."):
            # Perview's own lines per level (log.SOURCE.LEVEL): a table only sets their limits.
            for key in sorted(set(table) - _LOG_METRIC_KEYS):
                self.problem((*path, key), "log.* series are Perview's: only warn, crit, host")
            named = name[4:]
            source, _, level = named.rpartition(".")
            whole = name == "log" or named in classified
            if not whole and not (level in LOG_LEVELS and source in classified):
                self.problem(
                    path,
                    f"names no source with levels: log.SOURCE or log.SOURCE.LEVEL "
                    f"({', '.join(LOG_LEVELS)}), of a source whose format is not raw",
                )
        elif ("command" in table) == ("scrape" in table):
            self.problem(path, "needs exactly one of command or scrape")
        if "scrape" in table and "selector" not in table:
            self.problem(path, 'scrape needs a selector, e.g. selector = "node_load1"')
        shell = self.get(table, path, "shell", bool, False)
        command: tuple[str, ...] = ()
        if "command" in table:
            command = self.command(table["command"], (*path, "command"), shell)
        host = self.get(table, path, "host", str, _METRIC.host)
        if host is not None and host != LOCAL and host not in hosts:
            self.problem((*path, "host"), f"host {host!r} is not defined in [hosts]")
        scrape = self.get(table, path, "scrape", str, _METRIC.scrape)
        if scrape is not None and not _is_http_url(scrape):
            self.problem((*path, "scrape"), f"must be an http:// or https:// URL, not {scrape!r}")
        selector = self.get(table, path, "selector", str, _METRIC.selector)
        if selector is not None:
            try:
                parse_selector(selector)  # what the collector will do with it
            except ValueError as exc:
                self.problem((*path, "selector"), str(exc))
        return MetricConfig(
            name=name,
            command=command,
            scrape=scrape,
            selector=selector,
            host=None if host == LOCAL else host,
            every=self.duration(table, path, "every", _METRIC.every),
            unit=self.get(table, path, "unit", str, _METRIC.unit),
            warn=self.get(table, path, "warn", float, _METRIC.warn),
            crit=self.get(table, path, "crit", float, _METRIC.crit),
        )

    def alert(
        self,
        name: str,
        raw: Any,
        sources: set[str],
        hosts: Mapping[str, HostConfig],
        notify: Mapping[str, NotifyConfig],
    ) -> AlertConfig:
        path = ("alerts", name)
        if not NAME.fullmatch(name):
            self.problem(path, f"{name!r} is not a usable alert name (letters, digits, _ . -)")
        table = self.table(raw, path, _ALERT_KEYS)
        if "metric" in table:
            kind = "metric"
        elif "match" in table or "level" in table:
            kind = "lines"
        elif "for" in table:
            kind = "silence"
        else:
            self.problem(
                path,
                "needs match or level (on lines), metric (on a metric), "
                "or source and for (on silence)",
            )
            kind = "lines"
        watched = self.alert_sources(table, path, sources, kind)
        match = self.get(table, path, "match", str, None)
        if match is not None:
            try:
                compile_match(match)
            except ValueError as exc:
                self.problem((*path, "match"), str(exc))
        level = self.get(table, path, "level", str, None)
        if level is not None and level not in LEVEL_NAMES[1:]:
            self.problem((*path, "level"), f"must be one of {', '.join(LEVEL_NAMES[1:])}")
            level = None
        count = self.limit(table, path, "count", 1)
        window = self.duration(table, path, "window", 0.0) if "window" in table else 0.0
        if kind == "lines" and count > 1 and not window:
            self.problem((*path, "count"), 'needs a window, e.g. window = "1m"')
        host = self.get(table, path, "host", str, LOCAL)
        if host != LOCAL and host not in hosts:
            self.problem((*path, "host"), f"host {host!r} is not defined in [hosts]")
        alert_hosts = self.strings(table, path, "hosts")
        for item in alert_hosts:
            if item != LOCAL and item not in hosts:
                self.problem((*path, "hosts"), f"host {item!r} is not defined in [hosts]")
        above = self.get(table, path, "above", float, None)
        below = self.get(table, path, "below", float, None)
        if kind == "metric" and above is None and below is None:
            self.problem(path, "needs above or below (a value) for a metric")
        duration = self.duration(table, path, "for", 0.0) if "for" in table else 0.0
        channels = table.get("notify", [])
        channels = [channels] if isinstance(channels, str) else channels
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            self.problem((*path, "notify"), "must be a channel name or a list of them")
            channels = []
        for channel in channels:
            if channel not in notify:
                defined = ", ".join(sorted(notify)) or "none"
                self.problem(
                    (*path, "notify"), f"{channel!r} is not a [notify] table (defined: {defined})"
                )
        self.alert_kind_keys(table, path, kind)
        return AlertConfig(
            name=name,
            kind=kind,
            sources=watched,
            hosts=alert_hosts,
            match=match,
            level=level,
            count=count,
            window=window,
            metric=self.get(table, path, "metric", str, None),
            host=host,
            above=above,
            below=below,
            duration=duration,
            cooldown=self.duration(table, path, "cooldown", 600.0),
            notify=tuple(channels),
        )

    def alert_sources(
        self, table: dict[str, Any], path: tuple[str, ...], sources: set[str], kind: str
    ) -> tuple[str, ...]:
        if "source" in table and "sources" in table:
            self.problem(path, "has both source and sources; use one")
        if "source" in table:
            names: tuple[str, ...] = (self.get(table, path, "source", str, ""),)
            key = "source"
        else:
            names, key = self.strings(table, path, "sources"), "sources"
        if kind != "metric" and not names:
            self.problem(path, "needs source = a [sources] name (or sources = [...])")
        for name in names:
            if name and name not in sources:
                self.problem((*path, key), f"{name!r} is not a [sources] table")
        return tuple(n for n in names if n in sources)

    def alert_kind_keys(self, table: dict[str, Any], path: tuple[str, ...], kind: str) -> None:
        """Keys that belong to another kind of alert are a mistake, not silently ignored."""
        for key in sorted(_ALERT_KINDS.keys() & table.keys()):
            if kind not in _ALERT_KINDS[key]:
                self.problem((*path, key), f"does not apply to an alert on {kind}")

    def notify(self, name: str, raw: Any) -> NotifyConfig:
        path = ("notify", name)
        if not NAME.fullmatch(name):
            self.problem(path, f"{name!r} is not a usable channel name (letters, digits, _ . -)")
        table = self.table(raw, path, _NOTIFY_KEYS)
        if ("command" in table) == ("webhook" in table):
            self.problem(path, "needs exactly one of command or webhook")
        command: tuple[str, ...] = ()
        if "command" in table:
            command = self.command(table["command"], (*path, "command"), False)
        webhook = self.get(table, path, "webhook", str, None)
        if webhook is not None and not _is_http_url(webhook):
            self.problem((*path, "webhook"), f"must be an http:// or https:// URL, not {webhook!r}")
        template = self.get(table, path, "template", str, None)
        if template is not None:
            unknown = unknown_fields(template)
            if unknown:
                self.problem(
                    (*path, "template"),
                    f"{{{unknown[0]}}} is not a field (fields: {', '.join(FIELDS)})",
                )
        headers = self.get(table, path, "headers", dict, {})
        for key, value in headers.items():
            if not isinstance(value, str):
                self.problem((*path, "headers", key), f"must be a string, not {_kind(value)}")
        if webhook is None:
            for key in ("template", "content_type", "headers", "retries", "backoff"):
                if key in table:
                    self.problem((*path, key), "only applies to a webhook")
        retries = self.get(table, path, "retries", int, 2)
        if not 0 <= retries <= MAX_RETRIES:
            self.problem((*path, "retries"), f"must be between 0 and {MAX_RETRIES}")
        return NotifyConfig(
            name=name,
            command=command,
            webhook=webhook,
            template=template,
            content_type=self.get(table, path, "content_type", str, "application/json"),
            headers={k: v for k, v in headers.items() if isinstance(v, str)},
            timeout=self.duration(table, path, "timeout", 10.0),
            retries=min(max(retries, 0), MAX_RETRIES),
            backoff=self.duration(table, path, "backoff", 1.0),
        )

    def user(self, name: str, raw: Any) -> UserConfig:
        path = ("users", name)
        if not NAME.fullmatch(name):
            self.problem(path, f"{name!r} is not a usable user name (letters, digits, _ . -)")
        table = self.table(raw, path, _USER_KEYS)
        password = self.get(table, path, "password", str, "")
        if "password" not in table:
            self.problem(path, "needs password = the hash printed by `perview hash-password`")
        elif isinstance(problem := parse_hash(password), str):
            self.problem((*path, "password"), problem)
        role = self.get(table, path, "role", str, _USER.role)
        if role not in ROLES:
            self.problem((*path, "role"), f"must be one of {', '.join(ROLES)}, not {role!r}")
            role = _USER.role
        return UserConfig(name, password, role)

    def host(self, name: str, raw: Any) -> HostConfig:
        path = ("hosts", name)
        if not NAME.fullmatch(name) or name == LOCAL:
            self.problem(
                path,
                f"{name!r} is not a usable host name (letters, digits, _ . -; "
                f"{LOCAL!r} is reserved for this machine)",
            )
        table = self.table(raw, path, _HOST_KEYS)
        ssh = self.get(table, path, "ssh", str, "")
        if not ssh and "ssh" not in table:
            self.problem(path, 'needs ssh = "user@host" (or an alias from ~/.ssh/config)')
        if ssh.startswith("-"):
            self.problem((*path, "ssh"), "must not start with '-' (ssh would read it as an option)")
        metrics = self.get(table, path, "metrics", bool, _HOST.metrics)
        return HostConfig(name, ssh, self.strings(table, path, "ssh_args"), metrics)

    def source(
        self, name: str, raw: Any, hosts: Mapping[str, HostConfig], server: ServerConfig
    ) -> SourceConfig:
        path = ("sources", name)
        if not NAME.fullmatch(name):
            self.problem(path, f"{name!r} is not a usable source name (letters, digits, _ . -)")
        table = self.table(raw, path, _SOURCE_KEYS)
        has_command, has_file = "command" in table, "file" in table
        if has_command + has_file + ("journal" in table) != 1:
            self.problem(path, "needs exactly one of command, file or journal")
        journal = self.journal(table, path)
        shell = self.get(table, path, "shell", bool, False)
        command: tuple[str, ...] = ()
        if has_command:
            command = self.command(table["command"], (*path, "command"), shell)
        elif shell:
            self.problem((*path, "shell"), "only applies to a command")
        file = self.get(table, path, "file", str, _SOURCE.file)
        names = self.source_hosts(table, path, hosts)
        if file is not None and any(h != LOCAL for h in names) and is_glob(file):
            self.problem((*path, "file"), "a glob can only be followed on this machine")
        backlog = self.get(table, path, "backlog", int, _SOURCE.backlog)
        if backlog < 1:
            self.problem((*path, "backlog"), "must be at least 1")
        linger = self.get(table, path, "linger", float, _SOURCE.linger)
        if linger < 0:
            self.problem((*path, "linger"), "must not be negative")
        env = self.get(table, path, "env", dict, _SOURCE.env)
        for key, value in env.items():
            if not isinstance(value, str):
                self.problem((*path, "env", key), f"must be a string, not {_kind(value)}")
        format, level, entry_start = self.classify(table, path)
        return SourceConfig(
            name=name,
            command=command,
            file=file,
            hosts=names,
            backlog=max(backlog, 1),
            keep=self.get(table, path, "keep", bool, _SOURCE.keep),
            linger=max(linger, 0.0),
            rerun=self.get(table, path, "rerun", bool, _SOURCE.rerun),
            env={k: v for k, v in env.items() if isinstance(v, str)},
            cwd=self.get(table, path, "cwd", str, _SOURCE.cwd),
            title=self.get(table, path, "title", str, _SOURCE.title),
            group=self.get(table, path, "group", str, _SOURCE.group),
            format=format,
            level=level,
            entry_start=entry_start,
            journal=journal,
            **self.recording(table, path, server),
        )

    def classify(
        self, table: dict[str, Any], path: tuple[str, ...]
    ) -> tuple[Format | Literal["raw"], str | None, str | None]:
        """A source's `format`, `level` and `entry_start`, checked as the classifier will use
        them (a `level` or `entry_start` that RE2 refuses is a problem here, not at start)."""
        format = self.get(table, path, "format", str, _SOURCE.format)
        level = self.get(table, path, "level", str, _SOURCE.level)
        entry_start = self.get(table, path, "entry_start", str, _SOURCE.entry_start)
        if format == "raw":
            for key in ("level", "entry_start"):
                if key in table:
                    self.problem((*path, key), 'does nothing with format = "raw" (no levels)')
            return "raw", None, None
        if format not in FORMATS:
            choices = ", ".join(FORMATS) + ", raw"
            self.problem((*path, "format"), f"must be one of {choices}, not {format!r}")
            format = "auto"
        problems = check_classify(Options(format, level, entry_start))
        for problem in problems:
            key, _, message = problem.partition(": ")
            self.problem((*path, key), message)
        if problems:
            return format, None, None
        return format, level, entry_start

    def journal(self, table: dict[str, Any], path: tuple[str, ...]) -> JournalConfig | None:
        """The `journal` key and the keys that refine it; None when the source is not one."""
        if "journal" not in table:
            for key in sorted(_JOURNAL_KEYS & table.keys()):
                self.problem((*path, key), "only applies to a journal source (journal = ...)")
            return None
        value = table["journal"]
        units: tuple[str, ...] = ()
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            units = tuple(value)
        elif value is not True:
            shown = "false" if value is False else "[]" if value == [] else _kind(value)
            self.problem(
                (*path, "journal"),
                'must be true (the whole journal) or a list of unit names like ["nginx.service"], '
                f"not {shown}",
            )
        identifiers: tuple[str, ...] = ()
        if isinstance(table.get("identifier"), str):
            identifiers = (table["identifier"],)
        elif "identifier" in table:
            identifiers = self.strings(table, path, "identifier")
        directory = self.get(table, path, "journal_directory", str, _JOURNAL.directory)
        file = self.get(table, path, "journal_file", str, _JOURNAL.file)
        if directory is not None and file is not None:
            self.problem((*path, "journal_file"), "has both journal_directory and journal_file")
        return JournalConfig(
            units=units,
            priority=self.priority(table, path),
            identifiers=identifiers,
            boot=self.boot(table, path),
            kernel=self.get(table, path, "kernel", bool, _JOURNAL.kernel),
            directory=directory,
            file=file,
        )

    def priority(self, table: dict[str, Any], path: tuple[str, ...]) -> str | None:
        if "priority" not in table:
            return None
        value = table["priority"]
        words = value.split("..") if isinstance(value, str) else [value]
        found = [_priority(word) for word in words]
        if len(found) > 2 or None in found:
            self.problem(
                (*path, "priority"),
                f"must be one of {', '.join(PRIORITIES)} (or 0-7), or a range like "
                f'"err..warning", not {value!r}',
            )
            return None
        return "..".join(f for f in found if f is not None)

    def boot(self, table: dict[str, Any], path: tuple[str, ...]) -> str | None:
        if "boot" not in table:
            return None
        value = table["boot"]
        if value is True:
            return "0"
        if value is False:
            return None
        if isinstance(value, int) and value <= 0:
            return str(value)
        if isinstance(value, str) and BOOT_ID.fullmatch(value):
            return value
        self.problem(
            (*path, "boot"),
            "must be true (this boot), 0 or a negative number (-1: the boot before), "
            f"or a boot ID (32 hex digits), not {value!r}",
        )
        return None

    def recording(
        self, table: dict[str, Any], path: tuple[str, ...], server: ServerConfig
    ) -> dict[str, Any]:
        """A source's record and record_size: its own, else the server's defaults; `record =
        false` turns both off."""
        if table.get("record") is False:
            if "record_size" in table:
                self.problem((*path, "record_size"), "cannot be set with record = false")
            return {"record": None, "record_size": None}
        own = "record" in table or "record_size" in table
        return {
            "record": self.record(table, path, None if own else server.record),
            "record_size": self.size(
                table, path, "record_size", None if own else server.record_size
            ),
        }

    def command(self, value: Any, path: tuple[str, ...], shell: bool) -> tuple[str, ...]:
        if isinstance(value, str):
            if shell:
                return ("/bin/sh", "-c", value)
            try:
                argv = tuple(shlex.split(value))
            except ValueError as exc:
                self.problem(path, f"cannot be split into arguments: {exc}")
                return ()
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            if shell:
                self.problem(path, "shell = true needs the command as one string")
            argv = tuple(value)
        else:
            self.problem(path, f"must be a string or a list of strings, not {_kind(value)}")
            return ()
        if not argv:
            self.problem(path, "is empty")
        return argv

    def source_hosts(
        self, table: dict[str, Any], path: tuple[str, ...], hosts: Mapping[str, HostConfig]
    ) -> tuple[str, ...]:
        if "host" in table and "hosts" in table:
            self.problem(path, "has both host and hosts; use one")
        if "host" in table:
            names: tuple[str, ...] = (self.get(table, path, "host", str, LOCAL),)
            key = "host"
        else:
            names = self.strings(table, path, "hosts")
            key = "hosts"
        for host in names:
            if host != LOCAL and host not in hosts:
                defined = ", ".join(sorted(hosts)) or "none"
                self.problem(
                    (*path, key),
                    f"host {host!r} is not defined in [hosts] "
                    f"(defined: {defined}; {LOCAL!r} is this machine)",
                )
        if len(set(names)) != len(names):
            self.problem((*path, key), "names a host twice")
        return () if names == (LOCAL,) else names


_TOP_KEYS = frozenset({"server", "hosts", "sources", "metrics", "users", "alerts", "notify"})
_ALERT_KINDS = {
    "source": {"lines", "silence"},
    "sources": {"lines", "silence"},
    "match": {"lines"},
    "level": {"lines"},
    "count": {"lines"},
    "window": {"lines"},
    "hosts": {"lines"},
    "metric": {"metric"},
    "host": {"metric"},
    "above": {"metric"},
    "below": {"metric"},
    "for": {"metric", "silence"},
}
_ALERT_KEYS = frozenset({*_ALERT_KINDS, "cooldown", "notify"})
_NOTIFY_KEYS = frozenset(
    {
        "command",
        "webhook",
        "template",
        "content_type",
        "headers",
        "timeout",
        "retries",
        "backoff",
    }
)
MAX_RETRIES = 10  # a webhook that fails ten times in a row will not answer the eleventh
_LOG_METRIC_KEYS = frozenset({"host", "warn", "crit"})  # a log.* table sets limits only
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


# The keys that refine a journal source, meaningless without `journal` (JournalConfig's fields
# under journalctl's names).
_JOURNAL_KEYS = frozenset(
    {"priority", "identifier", "boot", "kernel", "journal_directory", "journal_file"}
)
# What each table accepts; besides its record's fields, a source or metric says `shell` (how its
# command is read), and a source `host` (one of `hosts`) and the journal's keys.
_SERVER_KEYS = keys(ServerConfig)
_SOURCE_KEYS = keys(SourceConfig) | {"shell", "host"} | _JOURNAL_KEYS
_METRIC_KEYS = keys(MetricConfig) | {"shell"}
_HOST_KEYS = keys(HostConfig)
_USER_KEYS = keys(UserConfig)
# ... and what a key that is not written reads as.
_SERVER, _SOURCE, _METRIC = ServerConfig(), SourceConfig(""), MetricConfig("")
_HOST, _USER, _JOURNAL = HostConfig("", ""), UserConfig("", ""), JournalConfig()


def network(text: str) -> Network:
    """An address (`"127.0.0.1"`, `"::1"`) or a network (`"10.0.0.0/8"`); ValueError says
    what is wrong with anything else (a host name, host bits set in a network)."""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_network(text.strip())
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network like 10.0.0.0/8") from None
    raise ValueError(f"{text!r} has host bits set: the network is {str(loose)!r}")


SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int | None:
    """Bytes from `"500MB"`, `"2GB"`, `"1.5GiB"` or a plain integer (KB, MB, GB, TB are powers
    of 1000, KiB ... TiB of 1024, as disks and `df -H` count); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not (found := SIZE.match(value)):
        return None
    unit = (found[2] or "B").upper()
    base = 1024 if "I" in unit else 1000
    power = "BKMGT".index(unit[0])
    return int(float(found[1]) * base**power)


def parse_duration(value: Any) -> float | None:
    """Seconds from `"10s"`, `"5m"`, `"2h"`, `"7d"`, `"500ms"` or a plain number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (found := DURATION.match(value)):
        return float(found[1]) * DURATION_UNITS[found[2]]
    return None


def _priority(value: object) -> str | None:
    """journalctl's name for a priority given as a name, an alias or a number 0-7."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(PRIORITIES):
        return PRIORITIES[value]
    if isinstance(value, str):
        word = value.strip().lower()
        if word.isdigit():
            return _priority(int(word))
        word = PRIORITY_ALIASES.get(word, word)
        return word if word in PRIORITIES else None
    return None


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_glob(path: str) -> bool:
    """Whether a `file` names every file it matches rather than one (the wildcards of glob)."""
    return any(c in path for c in "*?[")


def _kind(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _article(kind: type) -> str:
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a table",
    }.get(kind, kind.__name__)
