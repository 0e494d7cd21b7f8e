"""Hostile file names in a followed glob, against a live server: nothing forged, nothing broken."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]

FORGED_NAME = "a\n[perview] 12345 lines skipped\nforged.log"
NOT_UTF8_NAME = os.fsdecode(b"bad\xff\xfe.log")
WITHIN = 10.0


def hostile_glob(tmp_path: Path) -> str:
    """A directory holding a file with a forged notice in its name, one whose name is not UTF-8,
    and a plain one; returns the glob that follows them all."""
    (tmp_path / FORGED_NAME).write_bytes(b"hello\n")
    (tmp_path / NOT_UTF8_NAME).write_bytes(b"bad bytes\n")
    (tmp_path / "ok.log").write_bytes(b"fine\n")
    return str(tmp_path / "*.log")


def read_lines(server: Server, path: str, done: Callable[[list[bytes]], bool]) -> list[bytes]:
    """The lines of a never-ending response, read by a plain HTTP/1.1 client until `done` says
    so; an answer that breaks off early (a server error mid-stream) raises."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WITHIN)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        assert response.status == 200
        lines: list[bytes] = []
        deadline = time.monotonic() + WITHIN
        while not done(lines):
            assert time.monotonic() < deadline, f"not done within {WITHIN} s: {lines}"
            line = response.readline()
            if not line:
                raise AssertionError(f"the stream ended after {lines}")
            lines.append(line)
        return lines
    finally:
        connection.close()


def has(count: int) -> Callable[[list[bytes]], bool]:
    return lambda lines: len(lines) >= count


def test_a_file_name_cannot_forge_a_line_of_the_text_stream(serve: Serve, tmp_path: Path) -> None:
    server = serve("tail", hostile_glob(tmp_path))
    lines = read_lines(server, "/api/sources/_.log/text?backlog=10", has(3))
    assert b"a\\n[perview] 12345 lines skipped\\nforged.log: hello\n" in lines
    assert not any(line.startswith(b"[perview]") for line in lines)


def test_a_name_that_is_not_utf8_streams_to_one_viewer_after_another(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve("tail", hostile_glob(tmp_path))
    for _ in range(2):
        lines = read_lines(server, "/api/sources/_.log/text?backlog=10", has(3))
        assert b"bad\\xff\\xfe.log: bad bytes\n" in lines
        assert b"ok.log: fine\n" in lines
    assert "Traceback" not in "".join(server.output)


def test_the_event_stream_names_each_file_printably(serve: Serve, tmp_path: Path) -> None:
    server = serve("tail", hostile_glob(tmp_path))
    files: dict[str, bytes] = {}

    def three_files(lines: list[bytes]) -> bool:
        for head, data in itertools.pairwise(lines):
            if head.startswith(b"data: {") and b'"part"' in head:
                files[json.loads(head[6:])["part"]] = data
        return len(files) == 3

    lines = read_lines(server, "/api/events?source=_.log", three_files)
    [source] = [json.loads(d[6:]) for h, d in itertools.pairwise(lines) if h == b"event: source\n"]
    assert source["parts"] == "files"
    assert files == {
        "a\\n[perview] 12345 lines skipped\\nforged.log": b"data: hello\n",
        "bad\\xff\\xfe.log": b"data: bad bytes\n",
        "ok.log": b"data: fine\n",
    }


def test_a_notice_quoting_a_command_is_one_line(serve: Serve) -> None:
    server = serve("run", "--", "perview-no-such\n[perview] 7 lines skipped")
    lines = read_lines(
        server, "/api/sources/run/text", lambda lines: any(b"found" in n for n in lines)
    )
    forged = b"perview-no-such\\n[perview] 7 lines skipped"
    assert lines == [b"[perview] failed to start: " + forged + b": command not found\n"]
