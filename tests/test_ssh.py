"""The ssh source in-process: a destination is never an option, ssh's own words are kept apart
from the command's (host key, refused connection, stderr), and a ControlMaster the user made
persistent outlives it. Against a live server: test_ssh_live.py; remote files:
test_remote_file.py."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from perview.sources.ssh import SshSource
from tests.sshd import Sshd


async def test_a_destination_starting_with_a_dash_is_never_an_ssh_option() -> None:
    """Read as an option, `-V` would make ssh print its version and succeed without connecting."""
    from perview.sources.process import ProcessSource
    from perview.sources.ssh import ssh_argv
    from tests.test_process import Collect

    out = Collect()
    source = ProcessSource(ssh_argv("-V", (), "echo hi"), stdin_pipe=True)
    ended = await asyncio.wait_for(source.run(out, asyncio.Event()), 15)
    assert ended.status == 255  # ssh's own failure: no such host
    assert b"OpenSSH" not in out.data


def test_the_checker_refuses_a_destination_starting_with_a_dash() -> None:
    from perview.config import ConfigError, parse

    text = (
        '[hosts.web1]\nssh = "-oProxyCommand=sh"\n\n[sources.a]\ncommand = "true"\nhost = "web1"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, "p.toml")
    assert "p.toml:2: hosts.web1.ssh: must not start with '-'" in str(caught.value)


async def test_a_control_master_the_user_made_persistent_outlives_the_source(
    sshd: Sshd,
) -> None:
    """ssh detaches a `ControlPersist` master into a session of its own, on purpose (docs)."""
    from perview.sources.ssh import SshSource
    from tests.test_process import Collect

    control = Path(tempfile.mkdtemp(prefix="pv-cm-")) / "cm"  # a socket path must be short
    options = ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}"]
    ssh_args = ["-F", str(sshd.config), *options, "-o", "ControlPersist=60"]

    def master(command: str) -> subprocess.CompletedProcess[bytes]:
        argv = ["ssh", "-F", str(sshd.config), *options, "-O", command, sshd.alias()]
        return subprocess.run(argv, capture_output=True, timeout=10)

    try:
        out = Collect()
        source = SshSource(sshd.alias(), "echo hi", ssh_args=ssh_args)
        ended = await asyncio.wait_for(source.run(out, asyncio.Event()), 15)
        assert (ended.status, bytes(out.data)) == (0, b"hi\n")
        assert master("check").returncode == 0
    finally:
        master("exit")
        shutil.rmtree(control.parent, ignore_errors=True)


async def test_a_changed_host_key_is_the_hosts_state_never_a_line(
    sshd: Sshd, tmp_path: Path, other_key: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = other_key
    known = tmp_path / "known_hosts"
    other = key.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    config = tmp_path / "ssh_config"
    text = sshd.config.read_text()
    config.write_text(text.replace(str(sshd.config.parent / "known_hosts"), str(known)))
    source = SshSource(sshd.alias(), "echo hi", ssh_args=["-F", str(config)])
    out, reason = await ssh_failure(source)
    assert out.data == b""
    assert "Host key verification failed" in reason and "retrying in" in reason
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in caplog.text


async def test_a_refused_connection_is_the_hosts_state_never_a_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = SshSource("127.0.0.1", "echo hi", ssh_args=["-p", "1", "-F", "none"])
    out, reason = await ssh_failure(source)
    assert out.data == b""
    assert "Connection refused" in reason
    assert "Connection refused" in caplog.text


async def test_the_far_commands_own_stderr_stays_in_the_stream(sshd: Sshd) -> None:
    source = SshSource(
        sshd.alias(), "echo out; echo err >&2; exit 3", ssh_args=["-F", str(sshd.config)]
    )
    out = Record()
    ended = await asyncio.wait_for(source.run(out, asyncio.Event()), WITHIN)
    assert ended.status == 3
    assert sorted(out.data.splitlines()) == [b"err", b"out"]


async def test_a_command_can_have_its_stderr_apart() -> None:
    from perview.sources.process import ProcessSource

    said = bytearray()
    out = Record()
    source = ProcessSource(["sh", "-c", "echo out; echo err >&2"], stderr=said.extend)
    ended = await asyncio.wait_for(source.run(out, asyncio.Event()), WITHIN)
    assert (ended.status, bytes(out.data), bytes(said)) == (0, b"out\n", b"err\n")


WITHIN = 20.0  # seconds for anything to arrive over the loopback link


class Record:
    """An Output keeping the bytes, notices and states in the order they came; `on_waiting`
    runs when a connection has just ended (the link is down: the outage happens there)."""

    def __init__(self, on_waiting: Callable[[], None] | None = None) -> None:
        self.data = bytearray()
        self.notices: list[str] = []
        self.events: list[tuple[str, str]] = []  # ("data" | "notice" | "waiting" | "started", text)
        self.on_waiting = on_waiting
        self.changed = asyncio.Event()

    async def write(self, data: bytes, part: str | None = None) -> None:
        self.data += data
        self.events.append(("data", data.decode()))
        self.changed.set()

    def started(self, pid: int | None) -> None:
        self.events.append(("started", ""))

    def waiting(self, reason: str) -> None:
        self.events.append(("waiting", reason))
        if self.on_waiting is not None:
            on_waiting, self.on_waiting = self.on_waiting, None
            on_waiting()
        self.changed.set()

    def notice(self, text: str, part: str | None = None) -> None:
        self.notices.append(text)
        self.events.append(("notice", text))
        self.changed.set()

    def end_line(self, part: str | None = None) -> None:
        # What the hub's framer does: an unfinished line ends here.
        if self.data and not self.data.endswith(b"\n"):
            self.data += b"\n"
            self.events.append(("data", "\n"))
            self.changed.set()

    def waited(self) -> list[str]:
        return [text for kind, text in self.events if kind == "waiting"]

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WITHIN):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def ssh_failure(source: SshSource) -> tuple[Record, str]:
    """Run `source` until ssh has failed once: what it wrote, and the reason it waits."""
    stop = asyncio.Event()
    out = Record(on_waiting=stop.set)
    ended = await asyncio.wait_for(source.run(out, stop), WITHIN)
    assert ended.status == 255
    return out, out.waited()[0]


@pytest.fixture
def other_key(tmp_path: Path) -> Path:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key
