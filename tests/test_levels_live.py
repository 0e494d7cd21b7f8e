"""Levels through a live server: `?level=` on the text and event streams, the counts per level in
/api/sources and /metrics, on the corpus's Python log (a traceback under an ERROR head)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import TOKEN, Server
from tests.viewer import AUTH, api_sources, read_text, sse_events

Serve = Callable[..., Server]
CORPUS = Path(__file__).parent / "data" / "levels"
LOG = CORPUS / "python.log"
LETTER = {"none": "n", "trace": "t", "debug": "d", "info": "i", "warning": "w", "error": "e"}
LETTER["fatal"] = "f"


def numbered(least: set[str]) -> tuple[list[tuple[int, str]], str]:
    """The log's lines (with their ids) whose expected level is in `least`, and their expected
    `levels` letters."""
    lines, letters = [], ""
    expected = (CORPUS / "python.expected").read_text().splitlines()
    for number, (line, want) in enumerate(
        zip(LOG.read_text().splitlines(), expected, strict=True), start=1
    ):
        level, start = want.split()
        if level in least:
            lines.append((number, line))
            letter = LETTER[level]
            letters += letter.upper() if start == "+" else letter
    return lines, letters


def corpus(least: set[str]) -> tuple[list[str], str]:
    lines, letters = numbered(least)
    return [line for _, line in lines], letters


def curl(server: Server, path: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "-H", f"Authorization: Bearer {TOKEN}", server.base + path],
        capture_output=True,
        timeout=10,
        check=True,
    )


def test_curl_with_level_error_prints_only_error_entries_each_whole(serve: Serve) -> None:
    server = serve("run", "--", "cat", str(LOG))
    errors, _ = corpus({"error", "fatal"})
    body = curl(server, "/?level=error").stdout.decode()
    assert body.splitlines() == errors
    assert "Traceback (most recent call last):" in body and "INFO" not in body
    assert '  File "/srv/app/db.py", line 42, in run' in body  # the traceback came whole


async def test_grep_applies_to_the_lines_the_level_keeps(serve: Serve) -> None:
    server = serve("run", "--", "cat", str(LOG))
    body = await read_text(server, "/api/sources/run/text?level=err&grep=%5EI|Error")
    errors, _ = corpus({"error", "fatal"})
    assert body.decode().splitlines() == [line for line in errors if "Error" in line]


async def test_events_with_a_level_carry_only_those_entries_with_their_ids_and_levels(
    serve: Serve,
) -> None:
    server = serve("run", "--", "sh", "-c", f"cat {LOG}; sleep 300")
    warnings, letters = numbered({"warning", "error", "fatal"})
    got: list[tuple[int, str]] = []
    got_letters = ""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base + "/api/events?source=run&level=warning", headers=AUTH) as response,
    ):
        assert response.status == 200
        async for event in sse_events(response):
            if event.get("event") != "lines":
                continue
            header_text, _, text = event["data"].partition("\n")
            header = json.loads(header_text)
            lines = text.split("\n")
            assert len(header["levels"]) == len(lines)
            got += list(enumerate(lines, start=header["id"]))
            got_letters += header["levels"]
            assert event["id"].endswith(f"/run:{header['id'] + len(lines)}")
            if len(got) >= len(warnings):
                break
    assert got == warnings
    assert got_letters == letters


async def test_an_unknown_level_is_refused_naming_the_levels(serve: Serve) -> None:
    server = serve("run", "--", "cat", str(LOG))
    async with aiohttp.ClientSession() as session:
        for path in ("/api/sources/run/text", "/api/events", "/"):
            async with session.get(server.base + path + "?level=loud", headers=AUTH) as response:
                assert response.status == 400
                assert await response.text() == (
                    "perview: level must be one of trace, debug, info, warning, error, fatal "
                    "(or warn, err, crit, critical, notice), not 'loud'\n"
                )
    assert server.commands() == []  # nothing was started for it


async def test_the_api_and_metrics_count_lines_per_level(serve: Serve) -> None:
    server = serve("run", "--", "cat", str(LOG))
    await read_text(server)  # runs it to its end
    [source] = api_sources(server)
    levels = source["levels"]
    assert isinstance(levels, dict)
    for level in ("fatal", "error", "warning", "info", "debug", "trace"):
        n = len(corpus({level})[0])
        assert levels[level] == {"minute": n, "hour": n, "total": n}, level
    errors = len(corpus({"error"})[0])
    assert errors > 10
    metrics = curl(server, "/metrics").stdout.decode().splitlines()
    assert f'perview_log_lines_total{{host="local",level="error",source="run"}} {errors}.0' in (
        metrics
    )
