"""Loading a config: a file's text, through TOML, into a Config; ConfigError lists every problem
found, each with its file, line and key."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from perview.config import alerts, hosts, server, sources
from perview.config.checker import Checker, KeyLines, Problem
from perview.config.records import Config
from perview.errors import ExitCode, PerviewError

TABLES = frozenset({"server", "hosts", "sources", "metrics", "users", "alerts", "notify"})


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
    """Check `text` as the config file `path`; raises ConfigError listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        problem = Problem(int(found[1]) if found else 1, "(syntax)", f"invalid TOML: {exc}")
        raise ConfigError(path, [problem]) from exc
    check = Checker(KeyLines(text))
    config = _config(check, data, path)
    if check.problems:
        raise ConfigError(path, check.problems)
    return config


def _config(check: Checker, data: dict[str, Any], origin: str) -> Config:
    top = check.table(data, (), TABLES)
    served = server.server(check, top.get("server", {}))
    named_hosts = {
        name: hosts.host(check, name, value)
        for name, value in check.table(top.get("hosts", {}), ("hosts",), None).items()
    }
    raw_sources = check.table(top.get("sources", {}), ("sources",), None)
    found = tuple(
        sources.source(check, name, value, named_hosts, served)
        for name, value in raw_sources.items()
    )
    classified = {s.name for s in found if s.format != "raw"}
    metrics = tuple(
        hosts.metric(check, name, value, named_hosts, classified)
        for name, value in check.table(top.get("metrics", {}), ("metrics",), None).items()
    )
    # A metrics-only view is something to serve; a file that asks for nothing is a mistake
    # (system_metrics counts when written out: it is on by default in every config).
    raw_server = top.get("server", {})
    asked_system = isinstance(raw_server, dict) and raw_server.get("system_metrics") is True
    if not (found or metrics or asked_system or any(h.metrics for h in named_hosts.values())):
        check.problem(
            ("sources",),
            "nothing to serve: add a [sources.NAME] or [metrics.NAME] table, "
            "or metrics = true to a host",
        )
    users = {
        name: server.user(check, name, value)
        for name, value in check.table(top.get("users", {}), ("users",), None).items()
    }
    if users and not served.auth:
        check.problem(("server", "auth"), "cannot be false when [users] are defined")
    channels = {
        name: alerts.notify(check, name, value)
        for name, value in check.table(top.get("notify", {}), ("notify",), None).items()
    }
    names = {source.name for source in found}
    rules = tuple(
        alerts.alert(check, name, value, names, named_hosts, channels)
        for name, value in check.table(top.get("alerts", {}), ("alerts",), None).items()
    )
    return Config(
        served, found, named_hosts, metrics, users, origin=origin, alerts=rules, notify=channels
    )
