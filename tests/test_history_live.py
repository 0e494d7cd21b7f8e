"""Recorded history against a live server: restarts, hostile queries, damage, a client leaving
mid-search, a full disk, and a store killed mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psutil
import pytest

from perview.history.block import Block
from perview.history.store import Retention, Store
from tests.conftest import Server, is_idle, small_tmpfs, wait_until


def config(tmp_path: Path, sources: str, data: Path | None = None) -> Path:
    path = tmp_path / "perview.toml"
    path.write_text(f'[server]\ndata_dir = "{data or tmp_path / "data"}"\n\n{sources}')
    return path


@dataclass
class Answer:
    status_code: int
    text: str


def open_url(server: Server, path: str, **params: str | list[str]) -> urllib.request.Request:
    url = server.base + path + ("?" + urlencode(params, doseq=True) if params else "")
    return urllib.request.Request(url, headers=server.headers)


def get(server: Server, path: str, **params: str | list[str]) -> Answer:
    try:
        with urllib.request.urlopen(open_url(server, path, **params), timeout=20) as response:
            return Answer(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, error.read().decode())


def search_json(server: Server, **params: str | list[str]) -> list[dict[str, object]]:
    response = get(server, "/api/search", format="json", **params)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def matches(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in records if r["type"] == "line" and r["match"]]


RUN = """[sources.app]
command = "echo boot $(date +%s%N); seq 1 3000; echo ERROR rare-needle; exec sleep 1000"
shell = true
record = "7d"
"""


def test_a_recorded_source_is_searchable_after_a_restart(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    path = config(tmp_path, RUN)
    first = serve("serve", "-c", str(path))
    wait_until(lambda: matches(search_json(first, q="rare-needle")), 10)
    (found,) = matches(search_json(first, q="rare-needle"))
    assert found["source"] == "app" and found["line"] == 3002
    first.proc.send_signal(signal.SIGTERM)
    first.proc.wait(10)
    second = serve("serve", "-c", str(path))
    # What the first run recorded is there at once; the second run's lines follow it.
    assert matches(search_json(second, q="rare-needle"))[-1]["line"] == 3002
    wait_until(lambda: len(matches(search_json(second, q="rare-needle"))) == 2, 10)
    newest, oldest = matches(search_json(second, q="rare-needle"))
    assert newest["line"] == 3002 + 3002 and oldest["line"] == 3002
    # The range download holds both runs in order, with their state changes between.
    text = get(second, "/api/sources/app/history", since="-1h").text
    assert text.count("ERROR rare-needle") == 2
    assert "[perview]" in text and "started" in text
    boots = [line for line in text.splitlines() if line.startswith("boot ")]
    assert len(boots) == 2 and boots[0] != boots[1]
    # Levels were recorded with the lines (the classifier's marks): level= uses them.
    (error,) = matches(search_json(second, q="rare-needle", level="error"))[:1]
    assert error["line"] == 3002 + 3002
    assert matches(search_json(second, q="boot", level="error")) == []
    # As text for curl: time, source, and the line.
    line = get(second, "/api/search", q="rare-needle", order="oldest").text.splitlines()[0]
    assert line.endswith(" app: ERROR rare-needle")


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"q": "re:(a"}, "not a valid RE2"),
        ({"q": "re:\\p{Greek}{999}x"}, "too large"),
        ({"q": "x" * 5000}, "longer than"),
        ({}, "q is required"),
        ({"q": "a", "since": "the day before"}, "is not a time"),
        ({"q": "a", "since": "1e400"}, "not a usable time"),
        ({"q": "a", "until": "99999999999"}, "outside any history"),
        ({"q": "a", "since": "-1h", "until": "-2h"}, "since is after until"),
        ({"q": "a", "context": "1000000"}, "context must be"),
        ({"q": "a", "context": "²"}, "context must be"),
        ({"q": "a", "limit": "0"}, "limit must be"),
        ({"q": "a", "level": "loud"}, "level must be"),
        ({"q": "a", "order": "random"}, "order must be"),
        ({"q": "a", "source": "nope"}, "no recorded history"),
    ],
)
def test_hostile_queries_get_a_clear_400(
    serve: Callable[..., Server], tmp_path: Path, params: dict[str, str], says: str
) -> None:
    server = serve("serve", "-c", str(config(tmp_path, RUN)))
    response = get(server, "/api/search", **params)
    assert response.status_code == 400, response.text
    assert says in response.text


def test_a_range_of_an_unrecorded_source_is_404_and_bad_times_400(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("serve", "-c", str(config(tmp_path, RUN)))
    assert get(server, "/api/sources/nope/history").status_code == 404
    assert get(server, "/api/sources/app/history", since="soon").status_code == 400


def damage_middle_segment(data: Path) -> None:
    """Flip a byte in the middle of the second of three segments (blocks an hour apart, as
    `write_store` writes them, fill a segment each)."""
    segment = sorted((data / "history").glob("*.seg"), key=lambda p: int(p.stem))[1]
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    segment.write_bytes(bytes(raw))


def write_store(data: Path, source: str, blocks: int, text: Callable[[int], bytes]) -> None:
    """A store written before the server starts, `blocks` blocks of `text(i)` an hour apart."""
    store = Store(data / "history", Retention())
    first = 1
    base = time.time() - blocks * 3600
    for i in range(blocks):
        data_i = text(i)
        count = data_i.count(b"\n")
        at = base + i * 3600
        store.write([Block(source, None, "lines", first, count, at, at, data_i, ((count, at),))])
        first += count
    store.close()


def test_a_damaged_block_is_named_in_results_and_the_rest_found(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_store(data, "old", 3, lambda i: b"block %d needle\n" % i * 100)
    damage_middle_segment(data)
    server = serve("serve", "-c", str(config(tmp_path, RUN)))
    records = search_json(server, q="needle", source="old", limit="100000")
    found = {r["text"] for r in matches(records)}
    assert found == {"block 0 needle", "block 2 needle"}
    (damaged,) = [r for r in records if r["type"] == "damaged"]
    assert damaged["count"] == 100 and "checksum mismatch" in str(damaged["reason"])
    assert "segment" in str(damaged["reason"])
    text = get(server, "/api/search", q="needle", source="old").text
    assert "[perview] old: 100 lines unreadable" in text


def test_a_search_stops_when_its_client_leaves(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    # A pattern RE2 scans at a few MB/s over 40 MB of varied text: a search of many seconds.
    write_store(
        tmp_path / "data", "old", 40, lambda i: os.urandom(512 * 1024).hex().encode()[::1] + b"\n"
    )
    server = serve("serve", "-c", str(config(tmp_path, RUN)))
    proc = psutil.Process(server.proc.pid)
    request = open_url(server, "/api/search", q="re:[a-q][^u-z]{25}x", source="old", format="json")
    with urllib.request.urlopen(request, timeout=20) as response:
        assert json.loads(response.readline())["type"] in ("progress", "line")
    left = time.monotonic()

    wait_until(lambda: is_idle(proc), 5, step=0)
    assert time.monotonic() - left < 1.5


def test_context_lines_come_around_each_match(serve: Callable[..., Server], tmp_path: Path) -> None:
    write_store(tmp_path / "data", "old", 1, lambda i: b"".join(b"n%d\n" % j for j in range(100)))
    server = serve("serve", "-c", str(config(tmp_path, RUN)))
    records = search_json(server, q="n50", source="old", context="2")
    assert [(r["text"], r["match"]) for r in records if r["type"] == "line"] == [
        ("n48", False),
        ("n49", False),
        ("n50", True),
        ("n51", False),
        ("n52", False),
    ]
    assert records[-1]["type"] == "total" and records[-1]["matches"] == 1


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from perview.history.block import Block
    from perview.history.store import Retention, Store
    store = Store(Path(sys.argv[1]), Retention())
    first = store.next_line("app")
    noise = os.urandom(1 << 20).hex().encode()  # incompressible enough to make writes long
    while True:
        count = 20000
        data = b"".join(b"%d %s\\n" % (n, noise[n * 97 % 999_000 : n * 97 % 999_000 + 100])
                        for n in range(first, first + count))
        print("writing", flush=True)  # the test kills it here: during the write
        store.write([Block("app", None, "lines", first, count, 1.0, 1.0, data, ((count, 1.0),))])
        print(first + count - 1, flush=True)  # this block is complete
        first += count
    """
)


@pytest.mark.parametrize("after", [1, 4, 9])
def test_a_store_killed_mid_write_keeps_every_complete_block_once(
    tmp_path: Path, after: int
) -> None:
    directory = tmp_path / "history"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    # Killed as it starts its `after`th write: the write is cut off anywhere in it (or not at all).
    said = []
    while said.count("writing") < after:
        said.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    said += proc.stdout.read().split()
    done = [int(word) for word in said if word.isdigit()]
    proc.stdout.close()
    store = Store(directory, Retention())
    with store.reader() as reader:
        blocks = [reader.load(r) for r in reader.rows(["app"], 0, 2e9, newest_first=False)]
    numbers = [int(line.split()[0]) for b in blocks for line in b.data.splitlines()]
    assert numbers == list(range(1, len(numbers) + 1))  # nothing duplicated, nothing missing
    assert len(numbers) >= (done[-1] if done else 0)  # every block it said was complete
    assert store.next_line("app") == len(numbers) + 1
    store.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "512k") as mount:
        yield mount


def test_a_full_disk_costs_a_gap_in_history_never_the_live_view(
    serve: Callable[..., Server], tmp_path: Path, small_disk: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    sources = f'[sources.app]\nfile = "{log}"\nrecord = "7d"\n'
    server = serve("serve", "-c", str(config(tmp_path, sources, data=small_disk / "data")))

    def append(first: int, count: int) -> None:
        with log.open("a") as file:
            file.writelines(
                f"line {n} {os.urandom(40).hex()}\n" for n in range(first, first + count)
            )

    append(1, 10)
    wait_until(lambda: matches(search_json(server, q="line 10 ")), 10)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError):  # fill the disk to ENOSPC
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    with urllib.request.urlopen(open_url(server, "/api/sources/app/text"), timeout=20) as live:
        append(11, 3000)  # about 300 KB: more than any room left
        seen = b""
        while b"line 3010 " not in seen:
            seen += live.read1(65536)
    assert seen.count(b"\n") >= 3000  # the live view lost nothing
    wait_until(lambda: "cannot record" in "".join(server.output), 10)
    filler.unlink()
    append(3011, 5)
    wait_until(lambda: matches(search_json(server, q="line 3015 ")), 10)
    text = get(server, "/api/sources/app/history").text
    assert "lines not recorded (from " in text, text[-2000:]
    assert "line 1 " in text and "line 3015 " in text
