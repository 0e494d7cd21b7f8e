"""Sources: what produces lines. `build_source` turns one `[sources.NAME]` entry into one."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

from perview.config import DEFAULT_FILE_LINES, HostConfig, SourceConfig
from perview.hub import Source
from perview.sources.files import FileSource
from perview.sources.merge import MergedSource
from perview.sources.process import GuardPool, ProcessSource
from perview.sources.remote_file import RemoteFileSource
from perview.sources.ssh import SshSource
from perview.sources.stdin import StdinSource

LOCAL = "local"


def build_source(spec: SourceConfig, hosts: Mapping[str, HostConfig], guards: GuardPool) -> Source:
    """The source for `spec`: one part per host, merged (lines tagged by host) if several."""
    if spec.stdin:
        return StdinSource()
    if not spec.hosts:
        return _part(spec, None, guards)
    parts: dict[str, Source] = {
        name: _part(spec, None if name == LOCAL else hosts[name], guards) for name in spec.hosts
    }
    if len(parts) == 1:
        return next(iter(parts.values()))
    return MergedSource(parts)


def _part(spec: SourceConfig, host: HostConfig | None, guards: GuardPool) -> Source:
    if host is None:
        if spec.file is not None:
            return FileSource(os.path.expanduser(spec.file), backlog=DEFAULT_FILE_LINES)
        env = {**os.environ, **spec.env} if spec.env else None
        cwd = os.path.expanduser(spec.cwd) if spec.cwd else None
        return ProcessSource(spec.command, env=env, cwd=cwd, guards=guards)
    if spec.file is not None:
        return RemoteFileSource(
            host.ssh,
            spec.file,
            backlog=DEFAULT_FILE_LINES,
            ssh_args=host.ssh_args,
            guards=guards,
        )
    line = shlex.join(spec.command)
    if spec.env:
        line = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in spec.env.items()) + " " + line
    if spec.cwd:
        line = f"cd {shlex.quote(spec.cwd)} && {line}"
    return SshSource(host.ssh, line, ssh_args=host.ssh_args, guards=guards)


def describe(spec: SourceConfig) -> dict[str, object]:
    """What the API shows of a source's configuration (its kind is the running source's own:
    `ssh` and `merged` too, not only what the config says)."""
    info: dict[str, object] = {"hosts": list(spec.hosts)}
    if spec.command:
        info["command"] = list(spec.command)
    if spec.file is not None:
        info["file"] = spec.file
    for key in ("title", "group"):
        if getattr(spec, key) is not None:
            info[key] = getattr(spec, key)
    return info
