"""The `[alerts.NAME]` rules (on lines, a metric, or a source's silence) and the
`[notify.NAME]` channels they send to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perview.alerts.scan import compile_match
from perview.alerts.template import FIELDS, unknown_fields
from perview.classify import LEVEL_NAMES
from perview.config.checker import Checker, described
from perview.config.records import LOCAL, NAME, AlertConfig, HostConfig, NotifyConfig
from perview.config.values import is_http_url

ALERT_KINDS = {
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
ALERT_KEYS = frozenset({*ALERT_KINDS, "cooldown", "notify"})
NOTIFY_KEYS = frozenset(
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
# What a key that is not written reads as.
_ALERT, _NOTIFY = AlertConfig("", ""), NotifyConfig("")


def alert(
    check: Checker,
    name: str,
    raw: Any,
    sources: set[str],
    hosts: Mapping[str, HostConfig],
    notify: Mapping[str, NotifyConfig],
) -> AlertConfig:
    path = ("alerts", name)
    if not NAME.fullmatch(name):
        check.problem(path, f"{name!r} is not a usable alert name (letters, digits, _ . -)")
    table = check.table(raw, path, ALERT_KEYS)
    if "metric" in table:
        kind = "metric"
    elif "match" in table or "level" in table:
        kind = "lines"
    elif "for" in table:
        kind = "silence"
    else:
        check.problem(
            path,
            "needs match or level (on lines), metric (on a metric), or source and for (on silence)",
        )
        kind = "lines"
    watched = _alert_sources(check, table, path, sources, kind)
    match = check.get(table, path, "match", str, None)
    if match is not None:
        try:
            compile_match(match)
        except ValueError as exc:
            check.problem((*path, "match"), str(exc))
    level = check.get(table, path, "level", str, None)
    if level is not None and level not in LEVEL_NAMES[1:]:
        check.problem((*path, "level"), f"must be one of {', '.join(LEVEL_NAMES[1:])}")
        level = None
    count = check.limit(table, path, "count", _ALERT.count)
    window = check.duration(table, path, "window", 0.0) if "window" in table else 0.0
    if kind == "lines" and count > 1 and not window:
        check.problem((*path, "count"), 'needs a window, e.g. window = "1m"')
    host = check.get(table, path, "host", str, _ALERT.host)
    if host != LOCAL and host not in hosts:
        check.problem((*path, "host"), f"host {host!r} is not defined in [hosts]")
    alert_hosts = check.strings(table, path, "hosts")
    for item in alert_hosts:
        if item != LOCAL and item not in hosts:
            check.problem((*path, "hosts"), f"host {item!r} is not defined in [hosts]")
    above = check.get(table, path, "above", float, None)
    below = check.get(table, path, "below", float, None)
    if kind == "metric" and above is None and below is None:
        check.problem(path, "needs above or below (a value) for a metric")
    duration = check.duration(table, path, "for", 0.0) if "for" in table else 0.0
    channels = table.get("notify", [])
    channels = [channels] if isinstance(channels, str) else channels
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        check.problem((*path, "notify"), "must be a channel name or a list of them")
        channels = []
    for channel in channels:
        if channel not in notify:
            defined = ", ".join(sorted(notify)) or "none"
            check.problem(
                (*path, "notify"), f"{channel!r} is not a [notify] table (defined: {defined})"
            )
    _alert_kind_keys(check, table, path, kind)
    return AlertConfig(
        name=name,
        kind=kind,
        sources=watched,
        hosts=alert_hosts,
        match=match,
        level=level,
        count=count,
        window=window,
        metric=check.get(table, path, "metric", str, None),
        host=host,
        above=above,
        below=below,
        duration=duration,
        cooldown=check.duration(table, path, "cooldown", _ALERT.cooldown),
        notify=tuple(channels),
    )


def _alert_sources(
    check: Checker, table: dict[str, Any], path: tuple[str, ...], sources: set[str], kind: str
) -> tuple[str, ...]:
    if "source" in table and "sources" in table:
        check.problem(path, "has both source and sources; use one")
    if "source" in table:
        names: tuple[str, ...] = (check.get(table, path, "source", str, ""),)
        key = "source"
    else:
        names, key = check.strings(table, path, "sources"), "sources"
    if kind != "metric" and not names:
        check.problem(path, "needs source = a [sources] name (or sources = [...])")
    for name in names:
        if name and name not in sources:
            check.problem((*path, key), f"{name!r} is not a [sources] table")
    return tuple(n for n in names if n in sources)


def _alert_kind_keys(
    check: Checker, table: dict[str, Any], path: tuple[str, ...], kind: str
) -> None:
    """Keys that belong to another kind of alert are a mistake, not silently ignored."""
    for key in sorted(ALERT_KINDS.keys() & table.keys()):
        if kind not in ALERT_KINDS[key]:
            check.problem((*path, key), f"does not apply to an alert on {kind}")


def notify(check: Checker, name: str, raw: Any) -> NotifyConfig:
    path = ("notify", name)
    if not NAME.fullmatch(name):
        check.problem(path, f"{name!r} is not a usable channel name (letters, digits, _ . -)")
    table = check.table(raw, path, NOTIFY_KEYS)
    if ("command" in table) == ("webhook" in table):
        check.problem(path, "needs exactly one of command or webhook")
    command: tuple[str, ...] = ()
    if "command" in table:
        command = check.command(table["command"], (*path, "command"), False)
    webhook = check.get(table, path, "webhook", str, None)
    if webhook is not None and not is_http_url(webhook):
        check.problem((*path, "webhook"), f"must be an http:// or https:// URL, not {webhook!r}")
    template = check.get(table, path, "template", str, None)
    if template is not None:
        unknown = unknown_fields(template)
        if unknown:
            check.problem(
                (*path, "template"),
                f"{{{unknown[0]}}} is not a field (fields: {', '.join(FIELDS)})",
            )
    headers = check.get(table, path, "headers", dict, {})
    for key, value in headers.items():
        if not isinstance(value, str):
            check.problem((*path, "headers", key), f"must be a string, not {described(value)}")
    if webhook is None:
        for key in ("template", "content_type", "headers", "retries", "backoff"):
            if key in table:
                check.problem((*path, key), "only applies to a webhook")
    retries = check.get(table, path, "retries", int, _NOTIFY.retries)
    if not 0 <= retries <= MAX_RETRIES:
        check.problem((*path, "retries"), f"must be between 0 and {MAX_RETRIES}")
    return NotifyConfig(
        name=name,
        command=command,
        webhook=webhook,
        template=template,
        content_type=check.get(table, path, "content_type", str, _NOTIFY.content_type),
        headers={k: v for k, v in headers.items() if isinstance(v, str)},
        timeout=check.duration(table, path, "timeout", _NOTIFY.timeout),
        retries=min(max(retries, 0), MAX_RETRIES),
        backoff=check.duration(table, path, "backoff", _NOTIFY.backoff),
    )
