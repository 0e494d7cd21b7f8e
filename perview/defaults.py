"""The embedded default: what `perview` serves with no config, chosen for the machine it runs on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from perview.config import SourceConfig

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")  # journald is running

# The first of each group that exists and is readable is served.
SYSTEM_LOGS = ("/var/log/syslog", "/var/log/messages")
AUTH_LOGS = ("/var/log/auth.log", "/var/log/secure")
KERNEL_LOGS = ("/var/log/kern.log",)
PACKAGE_LOGS = ("/var/log/dpkg.log", "/var/log/dnf.log", "/var/log/pacman.log")


def default_sources() -> tuple[tuple[SourceConfig, ...], list[str]]:
    """The sources worth watching here, and one note per choice (what and why) for the user."""
    sources: list[SourceConfig] = []
    notes: list[str] = []
    journal = JOURNAL_SOCKET.exists() and shutil.which("journalctl") is not None
    if journal:
        journalctl = ("journalctl", "--no-pager", "-n", "10", "-f")
        sources.append(SourceConfig("journal", command=journalctl, title="System journal"))
        sources.append(SourceConfig("kernel", command=(*journalctl, "-k"), title="Kernel log"))
        notes.append("system and kernel log: the journal (journalctl -f)")
    else:
        _first_file(sources, notes, "syslog", "System log", SYSTEM_LOGS)
        if _dmesg_readable():
            sources.append(SourceConfig("kernel", command=("dmesg", "-w"), title="Kernel log"))
            notes.append("kernel log: dmesg -w")
        else:
            _first_file(sources, notes, "kernel", "Kernel log", KERNEL_LOGS)
    _first_file(sources, notes, "auth", "Logins and sudo", AUTH_LOGS)
    _first_file(sources, notes, "packages", "Package changes", PACKAGE_LOGS)
    return tuple(sources), notes


def _first_file(
    sources: list[SourceConfig], notes: list[str], name: str, title: str, paths: tuple[str, ...]
) -> None:
    for path in paths:
        if os.access(path, os.R_OK):
            sources.append(SourceConfig(name, file=path, title=title))
            notes.append(f"{title.lower()}: {path}")
            return
    notes.append(f"{title.lower()}: none readable of {', '.join(paths)}")


def _dmesg_readable() -> bool:
    if shutil.which("dmesg") is None:
        return False
    try:
        probe = subprocess.run(["dmesg"], capture_output=True, timeout=2, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0
