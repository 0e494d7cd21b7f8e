"""The guard: a small process between Perview and a command, which takes down with it everything
the command started.

Its stdin is a socket whose other end only Perview holds: when Perview closes it, or dies in any
way (even SIGKILL), the guard reads EOF and stops the command's process group and every other
descendant of its own: SIGTERM, up to `grace` seconds for them to go, then SIGKILL until none is
left. A parent-death signal would only reach the direct child; a process group reaches
grandchildren, but not those that left it (`setsid`, `setpgid`). Those stay descendants: the
guard is a child subreaper, so an orphan is reparented to it rather than to PID 1, and walking
/proc from the guard finds everything the command ever started that is still alive.

A cgroup v2 `cgroup.kill` would do the same in one write, but only in a cgroup delegated to the
user (systemd's `Delegate=`, or root); a plain login session, and the hybrid v1/v2 layout of
this project's test machine, give none, so the walk is what works everywhere.

Perview starts a guard before it knows the command (a warm spare, so that starting a command
costs a spawn, not an interpreter start-up), as `python -I -S perview/sources/_guard.py`:
standard library only, and nothing of Perview but this package. The spare's first message says
what it becomes: one command's guard (single.py), or a shared guard for many commands, the
parts of a source on many hosts (shared.py). What the two say to Perview is wire.py; how a
command is started is spawn.py, and how its processes are found, stopped and reaped is tree.py.
"""

from __future__ import annotations

import os
import sys

from perview.guard import wire
from perview.guard.builtin import signal
from perview.guard.shared import serve_parts
from perview.guard.single import Stop, guard_one, raise_stop
from perview.guard.tree import STOP_SIGNALS, become_subreaper


def main() -> int:
    """The guard process's whole life; returns its exit code (the command's, for one command)."""
    # Before the spec, not after: a spare does it while it waits, off the command's critical
    # path. With the imports of builtin.py, a warm spare's answer to a spec came in 1.8-2.1 ms
    # where it took 4.1-7.7 (medians of 20, load 4).
    become_subreaper()
    if sys.argv[1:] == [wire.SHARED]:
        return serve_parts()
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_stop)
    try:
        spec = wire.read_first()
    except Stop:
        return 0
    if spec is None:
        return 0  # a spare nobody needed
    errors = int(sys.argv[1]) if len(sys.argv) > 1 else None
    if isinstance(spec, list):
        if errors is not None:
            os.close(errors)
        return serve_parts(spec)
    return guard_one(spec, errors)
