"""What `perview check` can tell of a valid config without starting anything: that each command's
program is there and runnable, that files are there to follow, that SSH hosts resolve. Each
finding names the config key it is about. What cannot be known without connecting (a remote
command, an exporter) is said, never passed over as fine.

Missing files and glob directories are warnings, not errors: a file source waits for them, as
`tail -F` does.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from perview.alerts.template import ENV
from perview.config import (
    LOCAL,
    Config,
    HostConfig,
    JournalConfig,
    MetricConfig,
    NotifyConfig,
    SourceConfig,
)

Level = Literal["error", "warning", "unchecked"]
Key = tuple[str, ...]

# `ssh -G` reads only configuration files; the bound is for a `Match exec` that hangs.
SSH_CONFIG_TIMEOUT = 5.0
SHELL = ("/bin/sh", "-c")  # what `shell = true` turns a command into (config/checker.py)


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    key: Key
    message: str


def check(config: Config) -> list[Finding]:
    """Every finding about `config` on this machine, in the config's order."""
    findings: list[Finding] = []
    for source in config.sources:
        findings += _source(source)
    for metric in config.metrics:
        findings += _metric(metric)
    findings += _hosts(config.hosts)
    for channel in config.notify.values():
        findings += _notify(channel)
    return findings


def _notify(channel: NotifyConfig) -> list[Finding]:
    """A command channel's program, and the environment variables a webhook's headers name."""
    key: Key = ("notify", channel.name)
    if channel.webhook is None:
        return _command(key, channel.command, os.environ, None)
    missing = {
        name
        for value in channel.headers.values()
        for name in ENV.findall(value)
        if name not in os.environ
    }
    message = "the environment variable {} is not set here (each send fails until it is)"
    return [Finding("warning", (*key, "headers"), message.format(n)) for n in sorted(missing)]


def _source(source: SourceConfig) -> list[Finding]:
    key: Key = ("sources", source.name)
    if source.stdin:
        return []
    findings: list[Finding] = []
    remote = [host for host in source.hosts if host != LOCAL]
    if remote:
        what = source.kind if source.kind in ("file", "journal") else "command"
        findings.append(
            Finding(
                "unchecked",
                key,
                f"the {what} on {', '.join(remote)} cannot be checked without connecting",
            )
        )
    if source.hosts and LOCAL not in source.hosts:
        return findings
    if source.file is not None:
        return _file((*key, "file"), source.file) + findings
    if source.journal is not None:
        return _journal(key, source.journal) + findings
    environ = {**os.environ, **source.env}
    return _command(key, source.command, environ, source.cwd) + findings


def _journal(key: Key, query: JournalConfig) -> list[Finding]:
    findings = _command(key, ("journalctl",), os.environ, None)
    for name, path in (("journal_directory", query.directory), ("journal_file", query.file)):
        if path is not None and not os.access(os.path.expanduser(path), os.R_OK):
            findings.append(Finding("error", (*key, name), f"{path} is not there or not readable"))
    return findings


def _metric(metric: MetricConfig) -> list[Finding]:
    key: Key = ("metrics", metric.name)
    if metric.scrape is not None:
        return [Finding("unchecked", (*key, "scrape"), "the exporter is not fetched by check")]
    if metric.host is not None:
        message = f"the command on {metric.host} cannot be checked without connecting"
        return [Finding("unchecked", key, message)]
    return _command(key, metric.command, os.environ, None)


def _command(
    key: Key, argv: tuple[str, ...], environ: Mapping[str, str], cwd: str | None
) -> list[Finding]:
    findings: list[Finding] = []
    directory = None
    if cwd is not None:
        directory = Path(cwd).expanduser()
        if not directory.is_dir():
            state = "is not a directory" if directory.exists() else "does not exist"
            findings.append(Finding("error", (*key, "cwd"), f"{cwd} {state}"))
            directory = None
    if not argv:
        return findings
    if argv[:2] == SHELL:
        findings.append(
            Finding("unchecked", (*key, "command"), "a shell command: only /bin/sh is checked")
        )
    program = argv[0]
    if "/" in program:
        path = Path(program).expanduser()
        if not path.is_absolute() and directory is not None:
            path = directory / path
        problem = _not_runnable(path)
        if problem is not None:
            shown = program if str(path) == program else f"{program} ({path})"
            findings.append(Finding("error", (*key, "command"), f"{shown} {problem}"))
    elif shutil.which(program, path=environ.get("PATH", os.defpath)) is None:
        # Worded as a run that fails to start says it.
        message = f"{program}: command not found (on PATH)"
        findings.append(Finding("error", (*key, "command"), message))
    return findings


def _not_runnable(path: Path) -> str | None:
    if not path.exists():
        return "does not exist"
    if path.is_dir():
        return "is a directory"
    if not os.access(path, os.X_OK):
        return "is not executable"
    return None


def _file(key: Key, pattern: str) -> list[Finding]:
    pattern = os.path.expanduser(pattern)
    if not glob.has_magic(pattern):
        if os.path.isdir(pattern):
            return [Finding("error", key, f"{pattern} is a directory")]
        if not os.path.exists(pattern):
            message = f"{pattern} does not exist (yet): it is followed once it appears"
            return [Finding("warning", key, message)]
        if not os.access(pattern, os.R_OK):
            return [Finding("error", key, f"{pattern} is not readable by this user")]
        return []
    root = os.path.dirname(pattern)  # the deepest directory without wildcards, as files.py
    while glob.has_magic(root):
        root = os.path.dirname(root)
    root = root or "."
    if not os.path.isdir(root):
        message = f"the directory {root} does not exist (yet): it is followed once it appears"
        return [Finding("warning", key, message)]
    if not os.access(root, os.R_OK | os.X_OK):
        return [Finding("error", key, f"the directory {root} is not readable by this user")]
    matches = [p for p in glob.glob(pattern) if not os.path.isdir(p)]
    if not matches:
        message = f"no file matches {pattern} (yet): each is followed once it appears"
        return [Finding("warning", key, message)]
    unreadable = [p for p in matches if not os.access(p, os.R_OK)]
    if unreadable:
        message = (
            f"{len(unreadable)} of {len(matches)} matching files are not readable by this user"
        )
        return [Finding("warning", key, message + f", e.g. {unreadable[0]}")]
    return []


def _hosts(hosts: Mapping[str, HostConfig]) -> list[Finding]:
    if not hosts:
        return []
    if shutil.which("ssh") is None:
        return [
            Finding("error", ("hosts", name, "ssh"), "ssh is not installed (not on PATH)")
            for name in hosts
        ]
    # Name lookups may each wait for a DNS server: all at once, not one after another.
    with ThreadPoolExecutor(max_workers=min(len(hosts), 16)) as pool:
        found = pool.map(_host, hosts.values())
        return [finding for findings in found for finding in findings]


def _host(host: HostConfig) -> list[Finding]:
    """What `ssh -G` (the resolved config, without connecting) and a name lookup say of it."""
    key: Key = ("hosts", host.name, "ssh")
    try:
        resolved = subprocess.run(
            ["ssh", "-G", *host.ssh_args, host.ssh],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SSH_CONFIG_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return [Finding("error", key, f"`ssh -G {host.ssh}` took over {SSH_CONFIG_TIMEOUT:g} s")]
    if resolved.returncode != 0:
        said = resolved.stderr.strip().splitlines()
        reason = said[-1] if said else f"status {resolved.returncode}"
        return [Finding("error", key, f"ssh refuses {host.ssh}: {reason}")]
    options: dict[str, str] = {}
    for line in resolved.stdout.splitlines():
        name, _, value = line.partition(" ")
        options.setdefault(name.lower(), value)
    hostname = options.get("hostname", host.ssh)
    jump = next(
        (options[k] for k in ("proxyjump", "proxycommand") if options.get(k, "none") != "none"),
        None,
    )
    if jump is not None:
        message = f"{hostname} is reached through {jump}: its name is looked up there"
        return [Finding("unchecked", key, message)]
    try:
        socket.getaddrinfo(hostname, options.get("port", "22"), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        alias = "" if hostname == host.ssh else f" (the host name of {host.ssh})"
        return [Finding("error", key, f"{hostname}{alias} does not resolve: {reason}")]
    return [Finding("unchecked", key, f"{hostname} resolves; logging in is not tried")]
