"""A command's process tree as a guard sees it: its process group, the descendants that left
the group (found by walking /proc from the guard, their subreaper), and how they are all
stopped (SIGTERM, a grace, then SIGKILL until none is left) and reaped."""

from __future__ import annotations

import os
import select
import time

from perview.guard.builtin import signal, suppress

TYPE_CHECKING = False  # see builtin.py
if TYPE_CHECKING:
    from collections.abc import Callable

PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
# How long SIGKILLs are repeated for descendants that are still there (a process in the middle
# of forking, or one stuck in the kernel, which no signal reaches). Perview kills the guard
# itself one second after its grace, so this must stay well below that.
KILL_PATIENCE = 0.5
# With a stdin pipe, how long the command gets to end by itself after its stdin closes (ssh
# passing the EOF on and the far side stopping) before it is sent SIGTERM.
EOF_GRACE = 0.5
# The signals that stop a guard as Perview letting go does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How often a stopping group is looked at: from the first pause, doubled up to the last.
FIRST_PAUSE, LAST_PAUSE = 0.0005, 0.05


def become_subreaper() -> None:
    """Have orphaned descendants reparented to the guard, so it can reap them.

    Otherwise a killed grandchild stays a zombie (still a group member) until PID 1 reaps it,
    which some container inits never do, and the group would look alive for the whole grace.
    """
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap(pid: int, status: int | None) -> int | None:
    """Reap every exited child; return the command's wait status once it is known."""
    while True:
        try:
            reaped, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if not reaped:
            return status
        if reaped == pid:
            status = wait_status


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user id; it is still there
        return True
    return True


def signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def terminate_group(pgid: int) -> None:
    signal_group(pgid, signal.SIGTERM)
    signal_group(pgid, signal.SIGCONT)  # a stopped process only sees SIGTERM once continued


def _stat(pid: int | str) -> tuple[int, int, bytes] | None:
    """(parent pid, start time, state) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            raw = file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[1]), int(fields[19]), fields[0]


def descendants() -> dict[int, int]:
    """Every living (not zombie) descendant of the guard, with its start time.

    One pass over /proc (about 0.5 ms for 80 processes here); /proc/PID/task/*/children
    would be cheaper but is missing from kernels built without CONFIG_PROC_CHILDREN, as here.
    The pass is not atomic, so a process forked during it may be missed: callers walk again.
    """
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is not None and stat[2] not in (b"Z", b"X"):
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, int] = {}
    parents = [os.getpid()]
    while parents:
        for pid, started in children.get(parents.pop(), ()):
            if pid not in found:
                found[pid] = started
                parents.append(pid)
    return found


def signal_each(found: dict[int, int], signum: int) -> None:
    """Signal each process in `found` that is still the one found (its pid not reused)."""
    for pid, started in found.items():
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # gone
            continue
        try:
            # The pidfd pins the process now behind `pid`; the start time says it is ours.
            stat = _stat(pid)
            if stat is not None and stat[1] == started:
                signal.pidfd_send_signal(pidfd, signum)
        except (ProcessLookupError, PermissionError):
            pass
        finally:
            os.close(pidfd)


def kill_everything(pid: int, status: int | None, walk: Callable[[], dict[int, int]]) -> int | None:
    """SIGKILL the group and every descendant, again until none is left (or KILL_PATIENCE has
    passed); reaps what it can. Returns the command's wait status if it is known."""
    deadline = time.monotonic() + KILL_PATIENCE
    pause = FIRST_PAUSE
    while True:
        signal_group(pid, signal.SIGKILL)
        found = walk()
        signal_each(found, signal.SIGKILL)
        # Reap only after signalling: until then no child of ours can be reaped and its pid
        # given to a stranger (deeper descendants are pinned by the pidfd and start time).
        status = reap(pid, status)
        if not found or time.monotonic() > deadline:
            return status
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def no_descendants() -> dict[int, int]:
    return {}


def stop_group(pid: int, pidfd: int, status: int | None, grace: float, everything: bool) -> int:
    """SIGTERM the group and (with `everything`) every descendant, wait up to `grace` for all of
    them to go, then SIGKILL them all.

    Returns the command's wait status."""
    walk = descendants if everything else no_descendants
    terminate_group(pid)
    strays = walk()
    signal_each(strays, signal.SIGTERM)
    signal_each(strays, signal.SIGCONT)
    deadline = time.monotonic() + grace
    pause = FIRST_PAUSE
    while True:
        status = reap(pid, status)
        # Reaped processes no longer count; the living and unreaped ones do. The walk comes
        # last: it is the dearest check, and needed only once the rest are gone.
        if status is not None and not group_alive(pid) and not walk():
            return status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = kill_everything(pid, status, walk)
            if status is None:
                status = os.waitpid(pid, 0)[1]
            reap(pid, status)
            return status
        if status is None:
            select.select([pidfd], [], [], min(remaining, 0.05))
        else:
            time.sleep(min(remaining, pause))
            pause = min(pause * 2, LAST_PAUSE)
