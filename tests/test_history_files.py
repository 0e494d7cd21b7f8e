"""File search here, driven directly: blocks, context across them, limits, time by mtime, and
which `re:` patterns a far grep may run."""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import pytest

from perview.history import far, files, rotation
from perview.history.far import RemoteRefused, far_grep
from perview.history.files import FileLine, FileQuery, Target, in_range
from perview.history.search import Matcher, Total


def scan(path: Path, q: str, **options: object) -> list[FileLine | Total]:
    query = FileQuery(Matcher(q), q, 0, 2e9, **options)  # type: ignore[arg-type]
    found = files.scan_local(Target("app", None, str(path)), query)
    return [item for item in found if isinstance(item, FileLine | Total)]


def shown(items: list[FileLine | Total]) -> list[tuple[int, str, bool]]:
    return [(i.number, i.text, i.match) for i in items if isinstance(i, FileLine)]


def test_context_runs_across_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "BLOCK", 16)  # a block or two per few lines
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"line %02d\n" % i for i in range(1, 41)) + b"hit\nlast")
    items = scan(log, "hit", newest_first=False, context=3)
    assert shown(items) == [
        (38, "line 38", False),
        (39, "line 39", False),
        (40, "line 40", False),
        (41, "hit", True),
        (42, "last", False),
    ]
    items = scan(log, "line 20", newest_first=False, context=2)
    assert [n for n, _, _ in shown(items)] == [18, 19, 20, 21, 22]


def test_lines_are_numbered_in_each_file_and_gzip_is_read(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a\nneedle\n")
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(b"b\nc\nneedle\n"))
    items = scan(log, "needle", newest_first=False)
    found = [(Path(i.file).name, i.number) for i in items if isinstance(i, FileLine)]
    assert found == [("app.log.1.gz", 3), ("app.log", 2)]


def test_newest_first_keeps_the_newest_matches_up_to_the_limit(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"needle %d\n" % i for i in range(1, 101)))
    items = scan(log, "needle", newest_first=True, limit=3)
    assert [n for n, _, _ in shown(items)] == [100, 99, 98]
    total = items[-1]
    assert isinstance(total, Total) and (total.matches, total.complete) == (3, False)


def test_a_fifo_beside_a_log_is_not_opened(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"needle\n")
    subprocess.run(["mkfifo", str(tmp_path / "app.log.1")], check=True)
    assert rotation.rotated(str(log)) == [str(log)]


def test_a_generation_is_skipped_only_when_none_of_it_can_be_in_range() -> None:
    mtimes = [300.0, 200.0, 100.0]  # newest first
    assert in_range(mtimes, since=150, until=1000) == [True, True, False]
    assert in_range(mtimes, since=0, until=150) == [False, True, True]


@pytest.mark.parametrize(
    "pattern",
    ["needle", "a.b", "^GET /api/(users|items)$", r"a\.b\(c\)", "[^ ]+ failed", "x*?y", "[]a]"],
)
def test_patterns_in_the_shared_subset_go_to_grep_E(pattern: str) -> None:
    assert far_grep("re:" + pattern) == ("-E", pattern)


@pytest.mark.parametrize(
    "pattern",
    [r"\d", r"\bword", "a{2}", "(?i)x", r"[\]]", "[[:alpha:]]", "é", r"\Qa\E", r"\x41"],
)
def test_patterns_grep_E_reads_otherwise_are_refused(pattern: str) -> None:
    with pytest.raises(RemoteRefused):
        far_grep("re:" + pattern)


def test_a_substring_goes_to_grep_F_whatever_it_holds() -> None:
    assert far_grep("a.b*[c](?") == ("-F", "a.b*[c](?")
    with pytest.raises(RemoteRefused):
        far_grep("one\ntwo")


def test_a_line_longer_than_a_block_is_cut_and_the_numbering_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "BLOCK", 16)
    log = tmp_path / "app.log"
    log.write_bytes(b"needle " + b"x" * 100 + b" needle-late\nneedle after\n")
    items = scan(log, "needle", newest_first=False)
    assert shown(items) == [(1, "needle " + "x" * 9, True), (2, "needle after", True)]
    assert shown(scan(log, "needle-late", newest_first=False)) == []


# A log and its siblings of every naming, in the order they are read (newest first).
DATED = [
    "app.log",
    "app.log.1",
    "app.log.2.gz",
    "app.log-2024010213",  # dateformat -%Y%m%d%H
    "app.log-20240102.gz",
    "app.log-20240101",
    "app.log.2023-12-31.gz",  # app.log.%Y-%m-%d
    "app.log-2023-12-30-23-59-59",
]


def test_date_named_siblings_come_after_numbered_ones_newest_date_first(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    for age, name in enumerate(DATED):
        (tmp_path / name).write_bytes(b"x\n")
        os.utime(tmp_path / name, (1e9 + age, 1e9 + age))  # the reverse of their order by mtime
    for other in (
        "app.log-old",
        "app.log.bak",
        "app.log-2024",
        "app.log.01",
        "app.logger-20240101",
    ):
        (tmp_path / other).write_bytes(b"x\n")
    (tmp_path / "app.log-20240103").mkdir()  # not a regular file
    assert [Path(n).name for n in rotation.rotated(str(log))] == DATED


@pytest.mark.parametrize("suffix", ["", ".1", ".12.gz", "-20240101", "-20240101.gz", ".2024-01-01"])
def test_a_generation_is_named_by_a_suffix_of_digits_and_separators(suffix: str) -> None:
    assert rotation.is_generation(suffix)


@pytest.mark.parametrize(
    "suffix", ["/../x", ".1/..", "-20240101/x", ".0", ".", ".gz", "-2024010", " 20240101", ".1 "]
)
def test_nothing_else_names_a_generation(suffix: str) -> None:
    assert not rotation.is_generation(suffix)


def test_the_far_scripts_need_only_busybox_and_list_generations_as_here(
    busybox_tools: Path, tmp_path: Path
) -> None:
    """A BusyBox host has its `sh`, `sed`, `sort`, `cut`, `grep` and `gzip`, and nothing else."""
    names = ["app.log", "app.log.1", "app.log.2.gz", "app.log-20240102.gz", "app.log.2024-01-01"]
    for name in [*names, "app.log-old"]:
        data = f"needle in {name}\n".encode()
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    log = str(tmp_path / "app.log")
    assert [Path(n).name for n in rotation.rotated(log)] == names
    env = {"PATH": str(busybox_tools)}
    args = [log, "-F", "needle", "0", "0", str(2**40), "newest", "999", "70000"]
    scan = [str(busybox_tools / "sh"), "-c", far.FAR_SCAN, "perview-far-scan", *args]
    out = subprocess.run(scan, env=env, capture_output=True, text=True, check=True).stdout
    expected = [f"={n[len('app.log') :]}\n1:needle in {n}\n" for n in names]
    assert out == "".join(expected) + "=end\n"
    args = [log, "-20240102.gz", "1", "5", "70000"]
    lines = [str(busybox_tools / "sh"), "-c", far.FAR_LINES, "perview-far-lines", *args]
    out = subprocess.run(lines, env=env, capture_output=True, text=True, check=True).stdout
    assert out == "=-20240102.gz\n:needle in app.log-20240102.gz\n=end\n"
