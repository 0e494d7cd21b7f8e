"""The `[hosts.NAME]` a source or metric may run on, and the `[metrics.NAME]` sampled or
limited."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perview.config.checker import Checker
from perview.config.records import LOCAL, LOG_LEVELS, NAME, HostConfig, MetricConfig, keys
from perview.config.values import is_http_url
from perview.metrics.selector import parse as parse_selector

HOST_KEYS = keys(HostConfig)
# Besides its record's fields, a metric says `shell` (how its command is read).
METRIC_KEYS = keys(MetricConfig) | {"shell"}
LOG_METRIC_KEYS = frozenset({"host", "warn", "crit"})  # a log.* table sets limits only
# What a key that is not written reads as.
_HOST, _METRIC = HostConfig("", ""), MetricConfig("")


def host(check: Checker, name: str, raw: Any) -> HostConfig:
    path = ("hosts", name)
    if not NAME.fullmatch(name) or name == LOCAL:
        check.problem(
            path,
            f"{name!r} is not a usable host name (letters, digits, _ . -; "
            f"{LOCAL!r} is reserved for this machine)",
        )
    table = check.table(raw, path, HOST_KEYS)
    ssh = check.get(table, path, "ssh", str, "")
    if not ssh and "ssh" not in table:
        check.problem(path, 'needs ssh = "user@host" (or an alias from ~/.ssh/config)')
    if ssh.startswith("-"):
        check.problem((*path, "ssh"), "must not start with '-' (ssh would read it as an option)")
    metrics = check.get(table, path, "metrics", bool, _HOST.metrics)
    return HostConfig(name, ssh, check.strings(table, path, "ssh_args"), metrics)


def metric(
    check: Checker, name: str, raw: Any, hosts: Mapping[str, HostConfig], classified: set[str]
) -> MetricConfig:
    path = ("metrics", name)
    if not NAME.fullmatch(name):
        check.problem(path, f"{name!r} is not a usable metric name (letters, digits, _ . -)")
    table = check.table(raw, path, METRIC_KEYS)
    if name == "log" or name.startswith("log."):
        # Perview's own lines per level (log.SOURCE.LEVEL): a table only sets their limits.
        for key in sorted(set(table) - LOG_METRIC_KEYS):
            check.problem((*path, key), "log.* series are Perview's: only warn, crit, host")
        named = name[4:]
        source, _, level = named.rpartition(".")
        whole = name == "log" or named in classified
        if not whole and not (level in LOG_LEVELS and source in classified):
            check.problem(
                path,
                f"names no source with levels: log.SOURCE or log.SOURCE.LEVEL "
                f"({', '.join(LOG_LEVELS)}), of a source whose format is not raw",
            )
    elif ("command" in table) == ("scrape" in table):
        check.problem(path, "needs exactly one of command or scrape")
    if "scrape" in table and "selector" not in table:
        check.problem(path, 'scrape needs a selector, e.g. selector = "node_load1"')
    shell = check.get(table, path, "shell", bool, False)
    command: tuple[str, ...] = ()
    if "command" in table:
        command = check.command(table["command"], (*path, "command"), shell)
    host = check.get(table, path, "host", str, _METRIC.host)
    if host is not None and host != LOCAL and host not in hosts:
        check.problem((*path, "host"), f"host {host!r} is not defined in [hosts]")
    scrape = check.get(table, path, "scrape", str, _METRIC.scrape)
    if scrape is not None and not is_http_url(scrape):
        check.problem((*path, "scrape"), f"must be an http:// or https:// URL, not {scrape!r}")
    selector = check.get(table, path, "selector", str, _METRIC.selector)
    if selector is not None:
        try:
            parse_selector(selector)  # what the collector will do with it
        except ValueError as exc:
            check.problem((*path, "selector"), str(exc))
    return MetricConfig(
        name=name,
        command=command,
        scrape=scrape,
        selector=selector,
        host=None if host == LOCAL else host,
        every=check.duration(table, path, "every", _METRIC.every),
        unit=check.get(table, path, "unit", str, _METRIC.unit),
        warn=check.get(table, path, "warn", float, _METRIC.warn),
        crit=check.get(table, path, "crit", float, _METRIC.crit),
    )
