"""The embedded default: what `perview` serves with no config, on the machine it runs on."""

from __future__ import annotations

from pathlib import Path

import pytest

from perview import defaults
from perview.config import NAME, JournalConfig, SourceConfig


def test_with_a_journal_the_default_serves_journal_sources_not_journalctl_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = tmp_path / "socket"
    socket.touch()
    monkeypatch.setattr(defaults, "JOURNAL_SOCKET", socket)
    sources, notes = defaults.default_sources()
    by_name = {source.name: source for source in sources}
    assert by_name["journal"].journal == JournalConfig()
    assert by_name["kernel"].journal == JournalConfig(kernel=True)
    assert not any("journalctl" in source.command for source in sources)
    assert "system and kernel log: the journal, with priorities" in notes
    # This machine's systemctl answers (a list, perhaps empty) or says why it cannot.
    assert any(note.startswith("failed units") for note in notes)


def test_without_a_journal_the_default_reads_log_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "JOURNAL_SOCKET", tmp_path / "no-socket")
    sources, _ = defaults.default_sources()
    assert all(source.journal is None for source in sources)


def test_each_failed_unit_is_a_journal_source_in_one_group() -> None:
    listing = (
        "nginx.service          loaded failed failed A high performance web server\n"
        "getty@tty1.service     loaded failed failed Getty on tty1\n"
        "dev-disk-by\\x2duuid-1.swap loaded failed failed /dev/disk/by-uuid/1\n"
    )
    units = defaults.failed_units(listing)
    assert units == ["nginx.service", "getty@tty1.service", "dev-disk-by\\x2duuid-1.swap"]
    sources: list[SourceConfig] = [SourceConfig("journal", journal=JournalConfig())]
    notes: list[str] = []
    defaults._failed(sources, notes, units)
    failed = sources[1:]
    assert [s.journal.units for s in failed if s.journal] == [(unit,) for unit in units]
    assert {s.group for s in failed} == {defaults.FAILED_GROUP}
    assert [s.title for s in failed] == units
    assert all(NAME.fullmatch(s.name) for s in failed)
    assert len({s.name for s in sources}) == len(sources)
    assert notes == [f"failed units, each with its journal: {', '.join(units)}"]


def test_many_failed_units_are_capped_and_counted() -> None:
    units = [f"u{n}.service" for n in range(defaults.MAX_FAILED + 3)]
    sources: list[SourceConfig] = []
    notes: list[str] = []
    defaults._failed(sources, notes, units)
    assert len(sources) == defaults.MAX_FAILED
    assert notes[0].endswith("(and 3 more)")
