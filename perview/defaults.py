"""The embedded default: what `perview` serves with no config, chosen for the machine it runs on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from perview.config import NAME, JournalConfig, SourceConfig

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")  # journald is running

# Units failed at start each get a source of their own (their last records say why they
# failed); a machine in a bad way may have dozens, and a sidebar of dozens helps no one.
MAX_FAILED = 10
FAILED_GROUP = "Failed units"

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
        sources.append(SourceConfig("journal", journal=JournalConfig(), title="System journal"))
        kernel = JournalConfig(kernel=True)
        sources.append(SourceConfig("kernel", journal=kernel, title="Kernel log"))
        notes.append("system and kernel log: the journal, with priorities")
        _failed(sources, notes, _failed_units())
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


def _failed_units() -> list[str] | str:
    """The units failed now, or why they could not be listed."""
    try:
        probe = subprocess.run(
            ["systemctl", "--failed", "--plain", "--no-legend", "--no-pager"],
            capture_output=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if probe.returncode != 0:
        words = probe.stderr.strip().splitlines()
        return words[0] if words else f"systemctl exited with status {probe.returncode}"
    return failed_units(probe.stdout)


def failed_units(listing: str) -> list[str]:
    """The unit names of `systemctl --failed --plain --no-legend` (one unit a line, first)."""
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def _failed(sources: list[SourceConfig], notes: list[str], units: list[str] | str) -> None:
    if isinstance(units, str):
        notes.append(f"failed units: cannot list them ({units})")
        return
    if not units:
        notes.append("failed units: none")
        return
    taken = {source.name for source in sources}
    for unit in units[:MAX_FAILED]:
        name = _source_name(unit, taken)
        taken.add(name)
        query = JournalConfig(units=(unit,))
        sources.append(SourceConfig(name, journal=query, title=unit, group=FAILED_GROUP))
    shown = ", ".join(units[:MAX_FAILED])
    more = f" (and {len(units) - MAX_FAILED} more)" if len(units) > MAX_FAILED else ""
    notes.append(f"failed units, each with its journal: {shown}{more}")


def _source_name(unit: str, taken: set[str]) -> str:
    # Unit names may hold `@`, `:` and `\x2d` escapes; source names appear in URLs and ids.
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", unit)[:60].lstrip(".-") or "unit"
    name, n = base, 1
    while name in taken or not NAME.fullmatch(name):
        n += 1
        name = f"{base[:56]}-{n}"
    return name
