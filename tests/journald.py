"""Real journal files for the tests, written offline by systemd-journal-remote from export-format
text (the format `journalctl -o export` writes), and read by journalctl as any journal is."""

from __future__ import annotations

import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest

JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")


class Journal:
    """A journal directory holding one file; `write` appends records to it (while a journalctl
    follows it, if one does). Records get increasing times one millisecond apart."""

    def __init__(self, directory: Path) -> None:
        if not JOURNAL_REMOTE.exists():
            pytest.fail("systemd-journal-remote is missing: run scripts/install-test-deps")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.file = directory / "system.journal"
        self.boot = uuid.uuid4().hex
        self.clock = int(time.time() * 1e6)  # the next record's time, microseconds
        self.written = 0

    def write(self, *records: dict[str, str]) -> None:
        export = bytearray()
        for fields in records:
            self.clock += 1000
            self.written += 1
            full = {
                "__REALTIME_TIMESTAMP": str(self.clock),
                "__MONOTONIC_TIMESTAMP": str(self.written * 1000),
                "_BOOT_ID": self.boot,
                **fields,
            }
            for key, value in full.items():
                data = value.encode()
                if b"\n" in data:  # the export format's binary form: name, length, bytes
                    export += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
                else:
                    export += key.encode() + b"=" + data + b"\n"
            export += b"\n"
        subprocess.run(
            [str(JOURNAL_REMOTE), "-o", str(self.file), "-"],
            input=bytes(export),
            check=True,
            capture_output=True,
            timeout=10,
        )

    def messages(self, unit: str, first: int, last: int, priority: int = 6) -> None:
        """Records `unit: message N` for N from `first` to `last`, of `unit`."""
        self.write(*(record(unit, f"message {n}", priority) for n in range(first, last + 1)))

    def replace(self) -> None:
        """A new journal in place of the old one (as after a vacuum): the old records, and the
        positions in them, are gone."""
        self.file.unlink()
        self.boot = uuid.uuid4().hex


def record(unit: str, message: str, priority: int = 6, pid: int = 4242) -> dict[str, str]:
    return {
        "PRIORITY": str(priority),
        "_SYSTEMD_UNIT": unit,
        "SYSLOG_IDENTIFIER": unit.removesuffix(".service"),
        "_PID": str(pid),
        "MESSAGE": message,
    }
