"""Sources: what produces lines. `build_source` turns one `[sources.NAME]` entry into one."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from perview.config import DEFAULT_FILE_LINES, HostConfig, SourceConfig, is_glob
from perview.hub import Source
from perview.sources.files import FileSource
from perview.sources.journal import JournalSource
from perview.sources.merge import MergedSource
from perview.sources.process import GuardPool, Guards, ProcessSource
from perview.sources.remote_file import RemoteFileSource
from perview.sources.shared_guard import SharedGuard
from perview.sources.ssh import SshSource
from perview.sources.stdin import StdinSource

LOCAL = "local"


def build_source(
    spec: SourceConfig,
    hosts: Mapping[str, HostConfig],
    guards: GuardPool,
    state_dir: Path | None = None,
) -> Source:
    """The source for `spec`: one part per host, merged (lines tagged by host) if several.

    `state_dir` (the data directory), given only for a source that runs always, is where a
    journal keeps its cursor and a file where it was left (`journal/` and `files/`, a file
    `NAME@HOST.json` per part), so that it resumes there after a restart of Perview. Another
    source does not: it would replay everything since it last ran (perhaps days ago) to its
    first viewer."""
    if spec.stdin:
        return StdinSource()
    if spec.journal is not None:
        return _journal(spec, hosts, guards, state_dir)
    state = state_dir / "files" if state_dir is not None and spec.file is not None else None
    remote = _remote_guards(spec, guards)
    parts: dict[str, Source] = {
        name: _part(
            spec,
            None if name == LOCAL else hosts[name],
            guards if name == LOCAL else remote,
            state / f"{spec.name}@{name}.json" if state is not None else None,
        )
        for name in spec.hosts or (LOCAL,)
    }
    if len(parts) == 1:
        return next(iter(parts.values()))
    return MergedSource(parts)


def _remote_guards(spec: SourceConfig, guards: GuardPool) -> Guards:
    """The guards of a source's ssh parts: one shared guard process for them all when there are
    several (an interpreter per host was most of the time to the first line from 100 hosts),
    else the pool's spare."""
    remote = [name for name in spec.hosts if name != LOCAL]
    return SharedGuard(guards) if len(remote) > 1 else guards


def _part(
    spec: SourceConfig, host: HostConfig | None, guards: Guards, state: Path | None
) -> Source:
    if host is None:
        if spec.file is not None:
            path = os.path.expanduser(spec.file)
            return FileSource(path, backlog=DEFAULT_FILE_LINES, state=state)
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
            state=state,
        )
    line = shlex.join(spec.command)
    if spec.env:
        line = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in spec.env.items()) + " " + line
    if spec.cwd:
        line = f"cd {shlex.quote(spec.cwd)} && {line}"
    return SshSource(host.ssh, line, ssh_args=host.ssh_args, guards=guards)


def _journal(
    spec: SourceConfig, hosts: Mapping[str, HostConfig], guards: GuardPool, state_dir: Path | None
) -> Source:
    assert spec.journal is not None
    kept = state_dir / "journal" if state_dir is not None else None
    remote = _remote_guards(spec, guards)
    parts: dict[str, Source] = {}
    for name in spec.hosts or (LOCAL,):
        host = None if name == LOCAL else hosts[name]
        parts[name] = JournalSource(
            spec.journal,
            destination=host.ssh if host else None,
            ssh_args=host.ssh_args if host else (),
            guards=remote if host else guards,
            state=kept / f"{spec.name}@{name}.json" if kept else None,
        )
    return next(iter(parts.values())) if len(parts) == 1 else MergedSource(parts)


def describe(spec: SourceConfig) -> dict[str, object]:
    """What the API shows of a source's configuration (its kind is the running source's own:
    `ssh` and `merged` too, not only what the config says)."""
    info: dict[str, object] = {"hosts": list(spec.hosts)}
    # What the part that each line carries is (see build_source), for the page to say so.
    if len(spec.hosts) > 1:
        info["parts"] = "hosts"
    elif spec.file is not None and is_glob(spec.file):
        info["parts"] = "files"
    if spec.command:
        info["command"] = list(spec.command)
    if spec.file is not None:
        info["file"] = spec.file
    if spec.journal is not None:
        info["journal"] = list(spec.journal.units) or True
    for key in ("title", "group"):
        if getattr(spec, key) is not None:
            info[key] = getattr(spec, key)
    return info
