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
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence

from perview.hub import Ended, Forward, Output
from perview.sources.process import GuardPool, ProcessSource

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

# Background lists get /dev/null as stdin in a non-interactive sh, so the watcher reads the real
# stdin through fd 3. It ignores the SIGTERM it sends, gives everything a second, then SIGKILLs
# the group (itself last). Children that left the group (`setsid`) are found as descendants of
# the command (`d`, walked with POSIX `ps` and `awk`; BusyBox's `ps` lists all without `-A`)
# before the group's end orphans them, and are signalled by pid: a pid reused within that second
# would need some 30,000 forks a second on the far host. A child that left the group and was
# orphaned before the viewer left (its parent ended) is beyond reach there: sh cannot make the
# wrapper a subreaper as the local guard is.
WRAPPER = """exec 3<&0 </dev/null
( {command} ) &
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


def follow_file_command(path: str, lines: int) -> str:
    """`tail -F` for `path` on the far side; a leading `~/` is that host's home directory."""
    quoted = '"$HOME"/' + shlex.quote(path[2:]) if path.startswith("~/") else shlex.quote(path)
    return f"tail -n {int(lines)} -F -- {quoted}"


def ssh_argv(destination: str, ssh_args: Sequence[str], command: str) -> tuple[str, ...]:
    """ssh's argv; after `--` the destination is only ever a destination, even one that starts
    with `-`."""
    return ("ssh", *SSH_OPTIONS, *ssh_args, "--", destination, remote_command(command))


class _LastLine(Forward):
    """Passes output on, remembering the last line (ssh's reason when it fails)."""

    def __init__(self, out: Output) -> None:
        super().__init__(out)
        self.tail = b""

    async def write(self, data: bytes, label: str | None = None) -> None:
        self.tail = (self.tail + data)[-4096:]
        await self.out.write(data, label)

    @property
    def last_line(self) -> str:
        lines = self.tail.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "ssh failed without a message"


class SshSource:
    """A command line run on `destination` through ssh; retried with back-off while ssh itself
    fails (exit 255), each failure shown as a `waiting` state with ssh's own message."""

    kind = "ssh"

    def __init__(
        self,
        destination: str,
        command: str,
        *,
        ssh_args: Sequence[str] = (),
        guards: GuardPool | None = None,
    ) -> None:
        self.destination = destination
        self.command = command
        self.argv = ssh_argv(destination, ssh_args, command)
        # The local ssh's only child outside its group is a ControlPersist master, which the
        # user's config means to outlive the connection; the far side is the wrapper's to stop.
        self._process = ProcessSource(self.argv, guards=guards, stdin_pipe=True, group_only=True)

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        delay = RETRY_FIRST
        loop = asyncio.get_running_loop()
        while True:
            watched = _LastLine(out)
            began = loop.time()
            ended = await self._process.run(watched, stop)
            if stop.is_set() or ended.status != SSH_FAILED:
                return ended
            if loop.time() - began > STABLE:
                delay = RETRY_FIRST
            out.waiting(f"{watched.last_line} (retrying in {delay:.0f} s)")
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, RETRY_MAX)
                continue
            return Ended(SSH_FAILED, watched.last_line)
