"""Search over `file` sources in place, here and over the loopback sshd: the file and its
rotated siblings, gzipped ones too, with context; only matches cross the link; a client that
leaves stops the far side; queries grep cannot run as RE2 would are refused."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from perview.framing import CUT_MARK, MAX_LINE
from tests.conftest import Server, is_idle, wait_until
from tests.sshd import Sshd
from tests.test_history_files import DATED
from tests.test_history_live import get, open_url, search_json

Serve = Callable[..., Server]


def config(tmp_path: Path, sources: str) -> Path:
    path = tmp_path / "perview.toml"
    path.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n\n{sources}')
    return path


def far_app(sshd: Sshd, log: Path) -> str:
    """The config of a source `app` following `log` on the host web1 (the loopback sshd)."""
    return sshd.hosts_toml("web1") + f'[sources.app]\nfile = "{log}"\nhost = "web1"\n'


def rotated_logs(directory: Path) -> Path:
    """app.log with app.log.1 and app.log.2.gz beside it, each holding a `needle` line; each
    older generation last written an hour before the next."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "app.log"
    old = b"".join(b"old %d\n" % i for i in range(1, 11)) + b"needle two\nafter two\n"
    (directory / "app.log.2.gz").write_bytes(gzip.compress(old))
    (directory / "app.log.1").write_bytes(b"a\nb\nneedle one\nc\n")
    log.write_bytes(b"x\nneedle now\ny\nz\nneedle again\n")
    now = time.time()
    for age, name in enumerate(("app.log", "app.log.1", "app.log.2.gz")):
        os.utime(directory / name, (now - 3600 * age, now - 3600 * age))
    return log


def lines(records: list[dict[str, object]]) -> list[tuple[str, int, str, bool]]:
    return [
        (Path(str(r["file"])).name, int(str(r["line"])), str(r["text"]), bool(r["match"]))
        for r in records
        if r["type"] == "line"
    ]


NEWEST_FIRST = [
    ("app.log", 4, "z", False),
    ("app.log", 5, "needle again", True),
    ("app.log", 1, "x", False),
    ("app.log", 2, "needle now", True),
    ("app.log", 3, "y", False),
    ("app.log.1", 2, "b", False),
    ("app.log.1", 3, "needle one", True),
    ("app.log.1", 4, "c", False),
    ("app.log.2.gz", 10, "old 10", False),
    ("app.log.2.gz", 11, "needle two", True),
    ("app.log.2.gz", 12, "after two", False),
]
OLDEST_FIRST = [
    ("app.log.2.gz", 10, "old 10", False),
    ("app.log.2.gz", 11, "needle two", True),
    ("app.log.2.gz", 12, "after two", False),
    ("app.log.1", 2, "b", False),
    ("app.log.1", 3, "needle one", True),
    ("app.log.1", 4, "c", False),
    ("app.log", 1, "x", False),
    ("app.log", 2, "needle now", True),
    ("app.log", 3, "y", False),
    ("app.log", 4, "z", False),
    ("app.log", 5, "needle again", True),
]


def test_a_local_file_is_searched_with_its_rotated_and_gzipped_siblings(
    serve: Serve, tmp_path: Path
) -> None:
    log = rotated_logs(tmp_path / "logs")
    server = serve("serve", "-c", str(config(tmp_path, f'[sources.app]\nfile = "{log}"\n')))
    records = search_json(server, q="needle", source="app", context="1")
    assert lines(records) == NEWEST_FIRST
    assert all(r["from"] == "file" for r in records if r["type"] == "line")
    assert records[-1]["type"] == "total" and records[-1]["matches"] == 4
    oldest = search_json(server, q="re:needle (one|two|now|again)$", context="1", order="oldest")
    assert lines(oldest) == OLDEST_FIRST
    text = get(server, "/api/search", q="needle one").text
    assert f"app {log}.1:3: needle one\n" in text
    # Files have no arrival times: since skips only generations last written before it.
    recent = search_json(server, q="needle", since="-30m")
    assert {name for name, *_ in lines(recent)} == {"app.log"}


def test_a_file_on_a_host_is_searched_on_the_far_side_with_its_siblings(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    log = rotated_logs(tmp_path / "far")
    source = far_app(sshd, log)
    server = serve("serve", "-c", str(config(tmp_path, source)))
    records = search_json(server, q="needle", source="app", context="1")
    assert lines(records) == NEWEST_FIRST, records
    oldest = search_json(server, q="re:needle (one|two|now|again)$", context="1", order="oldest")
    assert lines(oldest) == OLDEST_FIRST
    recent = search_json(server, q="needle", since="-30m")
    assert {name for name, *_ in lines(recent)} == {"app.log"}
    newest = search_json(server, q="needle", limit="3")
    assert [text for _, _, text, _ in lines(newest)] == ["needle again", "needle now", "needle one"]
    assert newest[-1]["complete"] is False


def test_only_matching_lines_cross_the_link(serve: Serve, sshd: Sshd, tmp_path: Path) -> None:
    log = tmp_path / "big" / "app.log"
    log.parent.mkdir()
    filler = b"".join(
        b"%08d an ordinary line of a busy service, nothing to see\n" % i for i in range(1000)
    )
    with log.open("wb") as f:
        for i in range(20 * 1024 * 1024 // len(filler)):
            f.write(filler)
            if i in (3, 150, 300):
                f.write(b"the rare needle %d\n" % i)
    source = far_app(sshd, log)
    server = serve("serve", "-c", str(config(tmp_path, source)))
    records = search_json(server, q="rare needle", order="oldest")
    assert [text for _, _, text, _ in lines(records)] == [
        "the rare needle 3",
        "the rare needle 150",
        "the rare needle 300",
    ]
    total = records[-1]
    assert total["type"] == "total" and total["complete"]
    # What came back over ssh, against the 20 MB the far side read.
    assert log.stat().st_size > 20_000_000
    assert int(str(total["received"])) < 500, total
    text = get(server, "/api/search", q="rare needle").text
    assert "bytes back from hosts" in text


def test_a_client_that_leaves_stops_a_local_file_scan(serve: Serve, tmp_path: Path) -> None:
    # A pattern RE2 scans at a few MB/s over 40 MB of varied text: a search of many seconds.
    log = tmp_path / "app.log"
    with log.open("wb") as f:
        for _ in range(40):
            f.write(os.urandom(512 * 1024).hex().encode() + b"\n")
    server = serve("serve", "-c", str(config(tmp_path, f'[sources.app]\nfile = "{log}"\n')))
    proc = psutil.Process(server.proc.pid)
    request = open_url(server, "/api/search", q="re:[a-q][^u-z]{25}x", format="json")
    asked = time.monotonic()
    with urllib.request.urlopen(request, timeout=20) as response:
        assert json.loads(response.readline())["type"] in ("progress", "line")
        assert time.monotonic() - asked < 3  # progress flows while the scan goes on
    left = time.monotonic()

    wait_until(lambda: is_idle(proc), 5, step=0)
    assert time.monotonic() - left < 1.5


def far_scan(marker: str) -> list[str]:
    """The far side's scan: its script's shell (and the subshells of its pipelines), gzip, grep
    and cut (it is this machine, so `pgrep -f` sees what sshd started). ssh.py's wrapper around
    them is left out: it gives them a second after SIGTERM before its SIGKILL, then goes too."""
    found = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True)
    scans = [line.split(None, 1) for line in found.stdout.splitlines()]
    doing = ("gzip ", "grep ", "cut ", "sh -c p=$1 how=$2 ")
    return [command for _, command in scans if command.startswith(doing)]


def test_a_client_that_leaves_stops_the_far_scan_within_a_second(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    marker = f"far-{uuid.uuid4().hex}"
    directory = tmp_path / marker
    directory.mkdir()
    log = directory / "app.log"
    log.write_bytes(b"needle first\n")
    # 2 GB of text in a few MB of gzip members: gzip -dc | grep takes seconds over it.
    member = gzip.compress(b"nothing here at all\n" * (64 * 1024 * 1024 // 20), compresslevel=1)
    with (directory / "app.log.1.gz").open("wb") as f:
        for _ in range(32):
            f.write(member)
    os.utime(log, (time.time() + 60, time.time() + 60))
    source = far_app(sshd, log)
    server = serve("serve", "-c", str(config(tmp_path, source)))
    request = open_url(server, "/api/search", q=f"re:needle|{marker}", format="json")
    with urllib.request.urlopen(request, timeout=20) as response:
        first = json.loads(response.readline())
        assert first["text"] == "needle first"
        scanning = ("sh ", "gzip ", "grep ")  # the script: gzip -dc | grep -e needle | cut

        def under_way() -> bool:
            running = far_scan(marker)
            return all(any(c.startswith(s) for c in running) for s in scanning)

        wait_until(under_way, 10)
    left = time.monotonic()
    wait_until(lambda: not far_scan(marker), 5, step=0.01)
    assert time.monotonic() - left < 1


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"q": r"re:\d+ failed"}, "grep -E on a host does not share"),
        ({"q": "re:a{2,5}"}, "grep -E on a host does not share"),
        ({"q": "re:(?i)error"}, "grep -E on a host does not share"),
        ({"q": "re:[\\w]"}, "grep -E on a host does not share"),
        ({"q": "one\ntwo"}, "newline"),
        ({"q": "error", "level": "error"}, "level= does not apply"),
        ({"q": "re:(a"}, "not a valid RE2"),
        ({"q": "re:" + "a{1000}" * 20}, "too large"),
        ({"q": "x", "since": "soon"}, ""),
    ],
)
def test_queries_a_far_grep_cannot_run_as_re2_would_are_a_400(
    serve: Serve, sshd: Sshd, tmp_path: Path, query: dict[str, str], says: str
) -> None:
    log = rotated_logs(tmp_path / "far")
    source = far_app(sshd, log)
    server = serve("serve", "-c", str(config(tmp_path, source)))
    response = get(server, "/api/search", source="app", **query)
    assert response.status_code == 400, response.text
    assert says in response.text


def test_a_file_source_not_asked_for_is_skipped_with_the_reason_when_grep_cannot_run_q(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    log = rotated_logs(tmp_path / "far")
    here = rotated_logs(tmp_path / "here")
    source = far_app(sshd, log)
    source += f'[sources.local]\nfile = "{here}"\n'
    server = serve("serve", "-c", str(config(tmp_path, source)))
    records = search_json(server, q=r"re:needle \w+$")
    (skipped,) = [r for r in records if r["type"] == "skipped"]
    assert skipped["source"] == "app" and "grep -E" in str(skipped["reason"])
    assert {r["source"] for r in records if r["type"] == "line"} == {"local"}


def test_a_host_that_cannot_be_reached_is_named_with_sshs_reason(
    serve: Serve, tmp_path: Path
) -> None:
    source = (
        '[hosts.gone]\nssh = "127.0.0.1"\nssh_args = ["-p", "1", "-F", "none"]\n\n'
        '[sources.far]\nfile = "/var/log/app.log"\nhost = "gone"\n'
    )
    server = serve("serve", "-c", str(config(tmp_path, source)))
    records = search_json(server, q="needle")
    (skipped,) = [r for r in records if r["type"] == "skipped"]
    assert skipped["source"] == "far" and "refused" in str(skipped["reason"]), skipped
    assert records[-1]["type"] == "total" and records[-1]["complete"] is False


def test_a_query_reaches_the_far_grep_as_text_never_as_shell(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    planted = tmp_path / "planted"
    hostile = f"$(touch {planted}) `touch {planted}` ';touch {planted};' \"x\" -e y"
    log = tmp_path / "far" / "app.log"
    log.parent.mkdir()
    log.write_text(f"before\n{hostile}\nafter\nneedle {'y' * 200_000}\n")
    source = far_app(sshd, log)
    server = serve("serve", "-c", str(config(tmp_path, source)))
    records = search_json(server, q=hostile)
    assert lines(records) == [("app.log", 2, hostile, True)]
    assert not planted.exists()
    # A long line comes back cut as the live view cuts it, and marked.
    (long,) = lines(search_json(server, q="needle"))
    assert long[2] == ("needle " + "y" * 200_000)[:MAX_LINE] + CUT_MARK.decode()


def test_the_sources_say_what_history_each_has_recorded_files_in_place_or_none(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    here = rotated_logs(tmp_path / "here")
    far = rotated_logs(tmp_path / "far")
    source = sshd.hosts_toml("web1") + f'[sources.here]\nfile = "{here}"\n'
    source += f'[sources.far]\nfile = "{far}"\nhost = "web1"\n'
    source += f'[sources.kept]\nfile = "{here}"\nrecord = "1d"\n'
    source += '[sources.cmd]\ncommand = ["sleep", "100"]\n'
    server = serve("serve", "-c", str(config(tmp_path, source)))
    response = get(server, "/api/sources")
    kinds = {info["name"]: info["history"] for info in json.loads(response.text)}
    assert kinds == {"here": "file", "far": "file", "kept": "recorded", "cmd": "none"}
    # The event stream's description of a source is the same.
    request = open_url(server, "/api/events", source=["here", "cmd"])
    described: dict[str, object] = {}
    with urllib.request.urlopen(request, timeout=20) as stream:
        while len(described) < 2:
            if stream.readline() == b"event: source\n":
                info = json.loads(stream.readline().removeprefix(b"data: "))
                described[info["name"]] = info["history"]
    assert described == {"here": "file", "cmd": "none"}
    # What it says is what search does: a recorded file source is searched in its record.
    records = search_json(server, q="needle one")
    found = {r["source"]: r.get("from") for r in records if r["type"] == "line"}
    assert found.get("here") == found.get("far") == "file" and "kept" not in found


@pytest.mark.parametrize("where", ["here", "host"])
def test_a_file_results_surroundings_are_its_lines_around_it_in_that_file(
    serve: Serve, sshd: Sshd, tmp_path: Path, where: str
) -> None:
    log = rotated_logs(tmp_path / "logs")
    on = '\nhost = "web1"' if where == "host" else ""
    source = sshd.hosts_toml("web1") + f'[sources.app]\nfile = "{log}"{on}\n'
    server = serve("serve", "-c", str(config(tmp_path, source)))
    (needle,) = [r for r in search_json(server, q="needle two") if r["type"] == "line"]
    assert needle["file"] == f"{log}.2.gz"
    around = get(
        server,
        "/api/sources/app/history",
        file=str(needle["file"]),
        line="11",
        context="2",
        format="json",
    )
    assert around.status_code == 200, around.text
    records = [json.loads(line) for line in around.text.splitlines()]
    assert lines(records) == [
        ("app.log.2.gz", 9, "old 9", False),
        ("app.log.2.gz", 10, "old 10", False),
        ("app.log.2.gz", 11, "needle two", True),
        ("app.log.2.gz", 12, "after two", False),
    ]
    # Only a file the source covers can be named; a time range is for recorded sources.
    for name in (str(tmp_path / "perview.toml"), f"{log}/../../perview.toml", f"{log}.1/x"):
        refused = get(server, "/api/sources/app/history", file=name, line="1")
        assert refused.status_code == 400 and "is not a file of source" in refused.text, name
    # A sibling's name that is not there: refused here; said on a host, where it is looked for.
    gone = get(server, "/api/sources/app/history", file=f"{log}.9", line="1")
    if where == "here":
        assert gone.status_code == 400 and "is not a file of source" in gone.text
    else:
        assert gone.status_code == 200 and "app.log.9: it is not there any more" in gone.text
    assert get(server, "/api/sources/app/history", since="-1h").status_code == 400
    named = str(needle["file"])
    for hostile in (
        {"line": "0"},
        {"line": "9" * 5000},
        {"line": "²"},
        {"line": "1", "context": "101"},
        {"line": "1", "part": "web9"},
        {"line": "1", "file": named + "\0"},
        {"line": "1", "file": named.replace(".2.gz", ".2.gz\n=end")},
    ):
        answer = get(server, "/api/sources/app/history", **({"file": named} | hostile))
        assert answer.status_code == 400, (hostile, answer.text)


LOGROTATE = "/usr/sbin/logrotate"


def logrotate_dateext(directory: Path) -> tuple[Path, list[str]]:
    """app.log rotated three times by a real logrotate with `dateext` (to the second, since the
    test rotates within a second or so; -%Y%m%d%H%M%S is a `dateformat` logrotate takes),
    compressed but the newest (`delaycompress`): each generation holds `needle N`, 1 oldest.
    Returns the log and its files' names, newest first."""
    directory.mkdir(parents=True)
    log = directory / "app.log"
    conf = directory / "logrotate.conf"
    conf.write_text(
        f"{log} {{\n  rotate 9\n  dateext\n  dateformat -%Y%m%d%H%M%S\n"
        "  compress\n  delaycompress\n}\n"
    )
    command = [LOGROTATE, "-f", "-s", str(directory / "logrotate.state"), str(conf)]
    for n in (1, 2, 3):
        log.write_text(f"gen {n} begins\nneedle {n}\n")
        rotated = subprocess.run(command, capture_output=True, text=True)
        assert rotated.returncode == 0, rotated.stderr
        # Named for a second no later than now: the next rotation must come in a later one, by
        # logrotate's clock (time(2), the kernel's coarse clock: up to a tick behind).
        second = int(time.time())
        wait_until(lambda second=second: time.time() > second + 1.05, 3, step=0.02)
    log.write_text("gen 4 begins\nneedle 4\n")
    names = sorted((p.name for p in directory.glob("app.log*")), reverse=True)
    return log, ["app.log", *names[:-1]]


@pytest.mark.parametrize("where", ["here", "host"])
def test_date_named_siblings_of_a_real_logrotate_are_searched_in_time_order(
    serve: Serve, sshd: Sshd, tmp_path: Path, where: str
) -> None:
    log, names = logrotate_dateext(tmp_path / "logs")
    assert [n.endswith(".gz") for n in names] == [False, False, True, True], names
    on = '\nhost = "web1"' if where == "host" else ""
    source = sshd.hosts_toml("web1") + f'[sources.app]\nfile = "{log}"{on}\n'
    server = serve("serve", "-c", str(config(tmp_path, source)))
    newest = lines(search_json(server, q="needle", source="app"))
    assert newest == [(name, 2, f"needle {4 - i}", True) for i, name in enumerate(names)]
    oldest = lines(search_json(server, q="needle", source="app", order="oldest", context="1"))
    assert [text for _, _, text, _ in oldest] == [
        text for n in (1, 2, 3, 4) for text in (f"gen {n} begins", f"needle {n}")
    ]
    assert [name for name, *_ in oldest[::2]] == names[::-1]


def test_a_host_orders_date_named_siblings_as_they_are_ordered_here(
    serve: Serve, sshd: Sshd, tmp_path: Path
) -> None:
    directory = tmp_path / "dated"
    directory.mkdir()
    for age, name in enumerate(DATED):
        data = f"in {name}\n".encode()
        (directory / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        os.utime(directory / name, (1e9 + age, 1e9 + age))  # the reverse of their order
    for other in ("app.log-old", "app.log.bak", "app.log-2024", "app.logger-20240101"):
        (directory / other).write_bytes(b"in other\n")
    log = directory / "app.log"
    source = sshd.hosts_toml("web1") + f'[sources.here]\nfile = "{log}"\n'
    source += f'[sources.far]\nfile = "{log}"\nhost = "web1"\n'
    server = serve("serve", "-c", str(config(tmp_path, source)))
    for name in ("here", "far"):
        found = lines(search_json(server, q="in ", source=name))
        assert found == [(n, 1, f"in {n}", True) for n in DATED], name
