"""The far side's system metrics loop (run here, as ssh would run it there): it starts no process
per sample, needs only a POSIX sh, and ends with its stdin; and the snapshots it prints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from perview.metrics.collect import DF_EVERY, END_LINE, _Sections, remote_script
from perview.metrics.hub import MetricsHub

WITHIN = 10.0  # seconds for the loop to answer a tick
TICKS = 7
EVERY = DF_EVERY / 3  # so that `df` runs every third sample: at ticks 0, 3 and 6


def far_tools(tmp_path: Path, shell: str) -> Path:
    """A PATH with `sh` (dash, or BusyBox's) and a `df` that counts its runs, and nothing else:
    a loop that ran `cat` or `sleep` would find neither."""
    tools = tmp_path / "bin"
    tools.mkdir()
    if shell == "busybox":
        busybox = shutil.which("busybox")
        if busybox is None:
            pytest.fail("busybox is missing: run scripts/install-test-deps")
        (tools / "sh").symlink_to(busybox)
        real_df = f"{busybox} df"
    else:
        (tools / "sh").symlink_to("/bin/sh")
        real_df = shutil.which("df") or "/bin/df"
    df = tools / "df"
    df.write_text(f'#!/bin/sh\necho run >> {tmp_path}/df-runs\nexec {real_df} "$@"\n')
    df.chmod(0o755)
    return tools


def snapshots(proc: subprocess.Popen[bytes], ticks: int) -> list[bytes]:
    """Send `ticks` newlines, one at a time, and read each answer up to its end line."""
    assert proc.stdin is not None and proc.stdout is not None
    answers = []
    for _ in range(ticks):
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        data = b""
        while END_LINE not in data:
            chunk = proc.stdout.read1(65536)
            assert chunk, f"the loop ended early after {data!r}"
            data += chunk
        answers.append(data)
    return answers


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_the_far_side_loop_answers_each_tick_and_starts_only_df_now_and_then(
    tmp_path: Path, shell: str
) -> None:
    tools = far_tools(tmp_path, shell)
    with subprocess.Popen(
        [str(tools / "sh"), "-c", remote_script(EVERY)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"PATH": str(tools)},
    ) as proc:
        try:
            answers = snapshots(proc, TICKS)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            assert proc.wait(WITHIN) == 0  # it ends with its stdin, by itself
    assert (tmp_path / "df-runs").read_text().count("run") == 3
    for answer in answers:
        text = answer.decode()
        hub = MetricsHub()
        sink = _Sections(hub, "far")
        sink.publish(text[: text.index(END_LINE.decode())])
        snap = sink.previous
        assert snap is not None
        assert "cpu" in snap.cpu and snap.load is not None
        assert {"MemTotal", "MemAvailable"} <= snap.memory.keys()
        assert snap.net and snap.disk_io is not None
        assert snap.disk_use  # df's figures, repeated between its runs


def test_the_far_side_loop_ends_when_its_stdin_ends_even_between_ticks() -> None:
    with subprocess.Popen(
        ["sh", "-c", remote_script(1.0)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    ) as proc:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(WITHIN) == 0


async def test_each_snapshot_is_published_once_and_a_login_greeting_is_no_section() -> None:
    hub = MetricsHub()
    sink = _Sections(hub, "far")
    snapshot = (
        b"@@stat\ncpu  10 0 10 80 0 0 0 0 0 0\n@@loadavg\n0.5 0.4 0.3 1/100 42\n"
        b"@@meminfo\nMemTotal: 1000 kB\nMemAvailable: 250 kB\n@@df\n"
        b"Filesystem Type 1024-blocks Used Available Capacity Mounted on\n"
        b"/dev/sda1 ext4 100 40 60 40% /\n@@end\n"
    )
    await sink.write(b"Welcome to the far host\n" + snapshot)
    assert hub.samples and hub.series["far/mem.used"].value == 75.0
    assert hub.series["far/disk.used:/"].value == 40.0
    assert hub.series["far/load.1m"].value == 0.5
    half = len(snapshot) // 2
    await sink.write(snapshot.replace(b" 10 80", b" 30 140")[:half])
    before = hub.samples
    await sink.write(snapshot.replace(b" 10 80", b" 30 140")[half:])
    assert hub.samples > before
    assert hub.series["far/cpu"].value == 25.0  # 20 more busy of 80 more
