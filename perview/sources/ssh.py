"""Commands and files on another host, through the system `ssh`, with nothing left behind there.

The user's `ssh` does the connecting, so `~/.ssh/config`, agents, jump hosts and ControlMaster
work as they already set them up, and nothing is installed on the far host: it only needs a
POSIX `sh` (and `tail` for files).

Killing the local `ssh` is not enough: a far-side `tail -F` on a quiet log would live on until
it next writes. So the far command runs under a small `sh` wrapper whose stdin stays connected
to a pipe the local guard holds. When the viewer leaves (or Perview dies), that pipe closes, the
EOF travels over the connection, and the wrapper signals its own process group, which sshd made
for the session, and the command's descendants that left it: the command, its children and the
wrapper all go.

ssh's own words (a changed host key, `Connection refused`, `kex_exchange_identification`) are not
the source's: the far command's stderr joins its stdout on the far side (`2>&1` in the wrapper),
so what reaches the local ssh's stderr is ssh's (and the far login shell's) alone. The guard gives
it a pipe of its own; it goes to Perview's log, and when ssh fails, its last line is the reason
the source shows while it waits to retry.

A remote file is followed by a far-side script that reports what it reads and from where, so
that a reconnect resumes exactly: see remote_file.py for it and its protocol.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Sequence

from perview.hub import Ended, Output
from perview.labels import display_name
from perview.sources.process import Guards, ProcessSource

log = logging.getLogger(__name__)

# Options that make an unattended ssh behave: never prompt (there is no one to answer), notice a
# dead link in about 30 s, give up connecting after 10 s. Command-line options win over the
# user's config, so only these few are set.
SSH_OPTIONS = (
    "-T",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=10",
    "-o",
    "ServerAliveCountMax=3",
)

# ssh's own exit status for its own failures (unreachable, refused, host key changed, ...).
SSH_FAILED = 255
RETRY_FIRST = 1.0  # seconds before the first retry; doubled up to RETRY_MAX
RETRY_MAX = 30.0
STABLE = 30.0  # a connection that lasted this long resets the back-off
SAID_LINE = 500  # characters of one line of ssh's stderr kept for the log and the reason

# Background lists get /dev/null as stdin in a non-interactive sh, so the watcher reads the real
# stdin through fd 3. It ignores the SIGTERM it sends, gives everything a second, then SIGKILLs
# the group (itself last). Children that left the group (`setsid`) are found as descendants of
# the command (`d`, walked with POSIX `ps` and `awk`; BusyBox's `ps` lists all without `-A`)
# before the group's end orphans them, and are signalled by pid: a pid reused within that second
# would need some 30,000 forks a second on the far host. A child that left the group and was
# orphaned before the viewer left (its parent ended) is beyond reach there: sh cannot make the
# wrapper a subreaper as the local guard is.
WRAPPER = """exec 3<&0 </dev/null
( {command} ) 2>&1 &
p=$!
d() {{ {{ ps -A -o pid= -o ppid= || ps -o pid= -o ppid=; }} | awk -v r=$p '{{ up[$1] = $2 }}
END {{ for (i in up) {{ q = i; n = 0; while (q != r && (q in up) && n++ < 64) q = up[q]
if (q == r) print i }} }}'; }}
{{ trap '' TERM; cat <&3; s=$(d); kill -s TERM 0 $s; sleep 1
kill -s KILL $s $(d) 0; }} >/dev/null 2>&1 &
exec 3<&-
wait $p"""


def remote_command(command: str) -> str:
    """What to give ssh to run `command` (a shell command line) under the far-side watcher.

    `exec sh -c` so the user's login shell (bash, zsh, fish, ...) only has to start `sh`.
    """
    return "exec sh -c " + shlex.quote(WRAPPER.format(command=command))


def ssh_argv(
    destination: str, ssh_args: Sequence[str], command: str, *, wrap: bool = True
) -> tuple[str, ...]:
    """ssh's argv; after `--` the destination is only ever a destination, even one that starts
    with `-`. Without `wrap`, the command runs as it is: it must end by itself when its stdin
    ends."""
    far = remote_command(command) if wrap else command
    return ("ssh", *SSH_OPTIONS, *ssh_args, "--", destination, far)


class _Words:
    """ssh's stderr for one connection: each line logged (unless the last connection said it
    too, so a host that stays down is not logged every retry), the last one kept as the reason."""

    def __init__(self, destination: str, said_before: frozenset[str]) -> None:
        self.destination = destination
        self.said_before = said_before
        self.said: list[str] = []
        self._partial = b""

    def feed(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > SAID_LINE * 4:  # a line without end: cut it, never hoard
            lines.append(self._partial)
            self._partial = b""
        for raw in lines:
            line = display_name(raw.rstrip(b"\r"), SAID_LINE).strip()
            if not line:
                continue
            if line not in self.said_before:
                log.warning("ssh %s: %s", self.destination, line)
            self.said.append(line)

    @property
    def last_line(self) -> str:
        if self._partial.strip():
            self.feed(b"\n")
        return self.said[-1] if self.said else "ssh failed without a message"


class SshSource:
    """A command line run on `destination` through ssh; retried with back-off while ssh itself
    fails (exit 255), each failure shown as a `waiting` state with ssh's own message. ssh's
    stderr goes to the log, never into the output.

    With `tick`, a newline reaches the command's stdin every `tick` seconds (its clock, see
    ProcessSource) and it runs without the far-side watcher, which would take its stdin: it
    must end by itself at the end of its stdin, and leave nothing running (forks no child that
    outlives a tick). That needs `guards` that can give a stdin (a SharedGuard)."""

    kind = "ssh"

    def __init__(
        self,
        destination: str,
        command: str,
        *,
        ssh_args: Sequence[str] = (),
        guards: Guards | None = None,
        tick: float | None = None,
    ) -> None:
        self.destination = destination
        self.command = command
        self.ssh_args = tuple(ssh_args)
        self.guards = guards
        self.tick = tick
        self.argv = ssh_argv(destination, ssh_args, command, wrap=tick is None)
        self._said: frozenset[str] = frozenset()  # what ssh said at the last connection

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        delay = RETRY_FIRST
        loop = asyncio.get_running_loop()
        while True:
            words = _Words(self.destination, self._said)
            began = loop.time()
            try:
                ended = await self.connect(out, stop, words)
            finally:
                self._said = frozenset(words.said)
            if stop.is_set() or ended.status != SSH_FAILED:
                return ended
            if loop.time() - began > STABLE:
                delay = RETRY_FIRST
            out.waiting(f"{words.last_line} (retrying in {delay:.0f} s)")
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, RETRY_MAX)
                continue
            return Ended(SSH_FAILED, words.last_line)

    async def connect(self, out: Output, stop: asyncio.Event, words: _Words) -> Ended:
        """One connection, until it ends; a subclass may change the command or read the output
        its own way (a remote file resumes where the last connection left it)."""
        # The local ssh's only child outside its group is a ControlPersist master, which the
        # user's config means to outlive the connection; the far side is the wrapper's to stop.
        process = ProcessSource(
            self.argv,
            guards=self.guards,
            stdin_pipe=True,
            group_only=True,
            stderr=words.feed,
            tick=self.tick,
        )
        return await process.run(out, stop)
