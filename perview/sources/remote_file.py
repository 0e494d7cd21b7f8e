"""A file on another host, followed so that a reconnect or the next viewer resumes it exactly.

`tail -F` cannot say how far it got, so a new connection could only start again from the last
lines: what was written during an outage beyond them was lost, some lines came twice. Instead a
far-side `sh` script (FOLLOW, run under ssh.py's wrapper) follows the file with tools every
Debian or BusyBox host has (`stat -c`, `dd`, `tail`, `od`, and Linux's /proc/self/fd and fdinfo;
to find a rotated copy also `sed`, `sort`, `gzip` and `mktemp`; nothing installed), and frames
what it sends, so that Perview knows the file's identity (device and inode) and the exact byte
position of everything it received.

Asking (Perview to the far side, as shell variables before the script): `f` the path; `n` the
lines to start a file with (empty: from its start); `k` the lines to start with when more than
`lim` bytes would have to be caught up; `cl` and `zl`, how many rotated siblings may hold a copy
and how far into a `.gz` one is read (followed.py's COPIES_LOOKED_AT and INFLATE_LIMIT); and, to
resume, `rd ri rp rt`: the device, inode and position left, and the hex of the (up to
FINGERPRINT) bytes just before that position.

Answering (the far side's stdout, nothing else): the line `perview-file 1` (anything before it
came from the far login shell: it is logged and dropped), then records, each a line:
- `open DEV INO POS SIZE HOW [NAME]`: from now on the bytes are those of file DEV:INO from POS
  (its size was SIZE). HOW says why: `start` (its last `n` lines), `appeared` (it was missing; from
  its start), `next` (the name leads to a new file now: rotation), `cut` (it shrank: truncated,
  read again from its start), and when resuming: `resumed` (same file, same bytes before POS),
  `skipped` (same file, more than `lim` new bytes: its last `k` lines), `truncated` (same file,
  but shorter or rewritten), `rotated NAME` (the file left, found under NAME in the same
  directory with the same bytes before POS: its rest is read first, then the file at the path
  from its start), `replaced` (another file at the path, the old one not found). As a local
  file does (followed.py), the file left is looked for by its identity, then, failing that, as a
  copy among its newest rotated siblings (`copytruncate`, or `compress` without
  `delaycompress`); a `.gz` one is inflated, from just before POS, into a temporary file that is
  deleted once open, and DEV INO are that file's.
- `gone`: resuming, neither the file left nor any file is at the path (deleted).
- `wait WHY`: no file to read (`missing`, `notfile`, `unreadable`); the script waits for one.
- `data N`, then exactly N bytes, then `at POS`: the file's bytes up to POS (the offset after the
  read, from fdinfo). Only the first POS minus the previous position of those N bytes are the
  file's: a file that shrank under the read pads the frame (with NULs) to the length announced.

The script wakes when `tail -c 0 -F` prints (it follows the name with inotify on GNU systems) or
once a second, and copies at most FRAME bytes a frame; after a frame it pauses 50 ms (where
`sleep` takes fractions), so a busy log costs a few processes a tick, not a few per line.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from perview.history.rotation import FAR_GENERATIONS
from perview.hub import Ended, Forward, Output
from perview.labels import MAX_PATH, display_name
from perview.sources._state import StateFile
from perview.sources.followed import COPIES_LOOKED_AT, INFLATE_LIMIT
from perview.sources.process import Guards
from perview.sources.resume import FINGERPRINT, RESUME_LIMIT, Left, amount, moment
from perview.sources.ssh import SshSource, _Words, ssh_argv

log = logging.getLogger(__name__)

HELLO = b"perview-file 1"
_EMPTY = "''"  # an empty shell word
# One frame: bigger frames mean fewer `dd` processes on the far side while catching up; this many
# bytes are held here until the frame's end says how many of them are the file's.
FRAME = 1024 * 1024
RECORD_MAX = 4096 + MAX_PATH  # a record line longer than this is not one: the stream is garbled

FOLLOW = (
    "exec 2>/dev/null\n"
    + FAR_GENERATIONS
    + r"""
say() { printf '%s\n' "$*"; }
where() { read -r _ p _ </proc/self/fdinfo/4; }
size() { stat -L -c %s /proc/self/fd/4; }
last() {
  [ "$1" -gt 0 ] || { size; return; }
  s=$(size)
  for _ in 1 2 3; do
    b=$(tail -n "$1" /proc/self/fd/4 | wc -c); t=$(size)
    [ "$t" = "$s" ] && break; s=$t
  done
  echo $(( s > b ? s - b : 0 ))
}
bounded() { if [ "$(size)" -le "$lim" ]; then echo 0; else last "$k"; fi; }
attach() {
  if [ ! -e "$f" ]; then why=missing; return 1; fi
  if [ ! -f "$f" ]; then why=notfile; return 1; fi
  command exec 4<"$f" || { why=unreadable; return 1; }
}
go() {
  dd bs=1 skip="$1" count=0 <&4; where
  set -- "$2" "$3" $(stat -L -c '%d %i %s' /proc/self/fd/4)
  o="$3 $4" idle=0 said=; say "open $3 $4 $p $5 $1${2:+ $2}"
}
same() {
  [ -n "$rt" ] || return 0
  l=$(( ${#rt} / 2 ))
  h=$(dd if=/proc/self/fd/${2:-4} bs=1 skip=$(( $1 - l )) count=$l | od -An -v -tx1 | tr -d ' \n')
  [ "$h" = "$rt" ]
}
old() {
  case $f in */*) d=${f%/*};; *) d=.;; esac
  m=$(stat -c '%d %i %n' -- "$d"/* | sed -n "s|^$rd $ri ||p" | head -n 1)
  [ -n "$m" ] && [ -f "$m" ] || return 1
  command exec 5<"$m" || return 1
  set -- $(stat -L -c '%d %i %s' /proc/self/fd/5)
  [ "$1 $2" = "$rd $ri" ] && [ "$3" -ge "$rp" ] && same "$rp" 5 || { exec 5<&-; return 1; }
  exec 4<&5 5<&-
  go "$rp" rotated "${m##*/}"
}
copied() {
  for g in $( (p=$f m=$cl; export LC_ALL=C; gens) | sed -n '/./p' | head -n "$cl"); do
    m=$f$g
    case $g in
      *.gz) inflated "$m" || continue ;;
      *) command exec 5<"$m" || continue ;;
    esac
    [ "$(stat -L -c %s /proc/self/fd/5)" -ge "$rp" ] && same "$rp" 5 || { exec 5<&-; continue; }
    exec 4<&5 5<&-
    go "$rp" rotated "${m##*/}"
    return 0
  done
  return 1
}
inflated() {
  b=$(( rp - ${#rt} / 2 )) cap=$(( rp + lim < zl ? rp + lim : zl ))
  t=$(mktemp) || return 1
  dd if=/dev/null of="$t" bs=1 seek="$b" && r=$( { { gzip -dc -- "$1"; echo $? >&3; } |
    tail -c +$(( b + 1 )) | head -c $(( cap - b + 1 )) >>"$t"; } 3>&1 ) && [ "$r" = 0 ] &&
    [ "$(stat -c %s "$t")" -le "$cap" ] && command exec 5<"$t"
  r=$?; rm -f -- "$t"; return $r
}
copy() {
  while [ "$1" -gt "$p" ]; do
    c=$(( $1 - p )); [ "$c" -gt "$frame" ] && c=$frame
    say "data $c"
    dd bs="$c" count=1 conv=sync <&4
    q=$p; where
    [ "$p" = "$q" ] && dd if=/dev/zero bs="$c" count=1
    say "at $p"; idle=0 sent=1
    [ $(( p - q )) = "$c" ] || return 0
    set -- "$(size)"
  done
}
wait_for() { [ "$why" = "$said" ] || { say "wait $why"; said=$why; }; }
step() {
  if [ -z "$o" ]; then attach || { wait_for; return; }; go 0 appeared; fi
  set -- $(stat -L -c '%d %i %s %h' /proc/self/fd/4 "$f")
  if [ "$3" -lt "$p" ]; then command exec 4</proc/self/fd/4; go 0 cut; fi
  copy "$3"
  [ "$1 $2" = "$5 $6" ] && return
  if [ -f "$f" ] && [ "${7:-0}" -gt 0 ]; then
    copy "$(size)"; exec 4<&-; o=
    if attach; then go 0 next; else wait_for; fi
  elif [ "$4" = 0 ] && [ $(( idle += 1 )) -gt 60 ]; then
    exec 4<&-; o=; attach || wait_for
  fi
}
say 'perview-file 1'
o= p=0 idle=0 said= sent=
if [ -n "$ri" ]; then
  if attach; then
    set -- $(stat -L -c '%d %i %s' /proc/self/fd/4)
    if [ "$1 $2" = "$rd $ri" ]; then
      if [ "$3" -ge "$rp" ] && same "$rp"; then
        if [ $(( $3 - rp )) -le "$lim" ]; then go "$rp" resumed; else go "$(last "$k")" skipped; fi
      elif ! copied; then go "$(bounded)" truncated; fi
    elif ! old && ! copied; then go "$(bounded)" replaced; fi
  elif ! old && ! copied; then say gone; n=; wait_for; fi
elif attach; then
  if [ -n "$n" ]; then go "$(last "$n")" start; else go 0 start; fi
else wait_for; fi
step
{ tail -c 0 -F -- "$f" & while sleep 1; do echo; done; } | while :; do
  case $(dd bs=65536 count=1 of=/dev/null 2>&1) in 0+0*) exit;; esac
  sent=; step
  [ -z "$sent" ] || sleep 0.05
done"""
)


def far_path(path: str) -> str:
    """`path` as a far-side shell word; a leading `~/` is that host's home directory."""
    return '"$HOME"/' + shlex.quote(path[2:]) if path.startswith("~/") else shlex.quote(path)


def follow_file_command(
    path: str, lines: int | None, *, backlog: int = 10, left: Left | None = None
) -> str:
    """The far-side command that follows `path`: resumed from `left`, or starting with its last
    `lines` (None: from its start; `backlog` lines when there would be too much to catch up)."""
    asks = {
        "f": far_path(path),
        "n": "" if lines is None else str(int(lines)),
        "k": str(int(backlog)),
        "lim": str(RESUME_LIMIT),
        "frame": str(FRAME),
        "cl": str(COPIES_LOOKED_AT),
        "zl": str(INFLATE_LIMIT),
    }
    if left is not None:
        asks |= {
            "rd": str(left.ident[0]),
            "ri": str(left.ident[1]),
            "rp": str(left.pos),
            "rt": left.tail.hex(),
        }
    else:
        asks |= {"rd": "", "ri": "", "rp": "", "rt": ""}
    words = (f"{key}={value or _EMPTY}" for key, value in asks.items())
    return " ".join(words) + "\n" + FOLLOW


class Garbled(Exception):
    """The far side's output does not follow the protocol."""


class _Reader(Forward):
    """Turns the far side's records into bytes, notices and states for `out`, and knows where
    in which file the bytes it passed on end."""

    def __init__(self, out: Output, source: RemoteFileSource) -> None:
        super().__init__(out)
        self.source = source
        self.left = source.left
        self.buffer = bytearray()
        self.hello = False
        self.frame: int | None = None  # the length of the frame being read
        self.ident: tuple[int, int] | None = None
        self.pos = 0
        self.tail = b""
        self.consumed = False  # the far side said what became of `left`
        self.pid: int | None = None
        self.waiting_for: str | None = None

    def started(self, pid: int | None) -> None:
        self.pid = pid
        self.out.started(pid)

    async def write(self, data: bytes, part: str | None = None) -> None:
        self.buffer += data
        while await self._next():
            pass

    async def _next(self) -> bool:
        """Handle one record (or frame) from the buffer; False when it needs more bytes."""
        buffer = self.buffer
        if self.frame is not None:
            end = buffer.find(b"\n", self.frame)
            if end < 0:
                if len(buffer) > self.frame + RECORD_MAX:
                    raise Garbled("a frame without its end")
                return False
            record = bytes(buffer[self.frame : end]).split()
            if len(record) != 2 or record[0] != b"at" or self.ident is None:
                raise Garbled(f"a frame ends with {record!r}")
            count = _number(record[1]) - self.pos
            if not 0 <= count <= self.frame:
                raise Garbled(f"a frame of {self.frame} bytes holds {count}")
            data = bytes(buffer[:count])
            del buffer[: end + 1]
            self.frame = None
            if data:
                self.pos += count
                self.tail = (self.tail + data)[-FINGERPRINT:]
                await self.out.write(data)
                self.source.save(self)
            return True
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > RECORD_MAX:
                if self.hello:
                    raise Garbled("a record without its end")
                self._noise(buffer[:-RECORD_MAX])
                del buffer[:-RECORD_MAX]
            return False
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        if not self.hello:
            at = line.find(HELLO)
            if at < 0 or line[at:] != HELLO:
                self._noise(line)
                return True
            self._noise(line[:at])
            self.hello = True
            return True
        await self._record(line)
        return True

    async def _record(self, line: bytes) -> None:
        kind, _, rest = line.partition(b" ")
        if kind == b"data":
            self.frame = _number(rest)
            if self.frame > FRAME:
                raise Garbled(f"a frame of {self.frame} bytes")
        elif kind == b"open":
            await self._open(rest)
        elif kind == b"wait":
            self.ident, self.consumed = None, True
            self.source.lines = None  # a file that appears later is read from its start
            why = WAITING.get(rest.decode(errors="replace"), WAITING["unreadable"])
            self.waiting_for = why.format(_shown(self.source.path))
            self.out.waiting(self.waiting_for)
        elif kind == b"gone" and self.left is not None:
            self.consumed = True
            self.notice(
                f"was deleted after {moment(self.left.at)}: what was written to it since is not "
                "shown"
            )
        else:
            raise Garbled(f"an unknown record {line[:80]!r}")

    async def _open(self, rest: bytes) -> None:
        fields = rest.split(b" ", 5)
        if len(fields) < 5:
            raise Garbled(f"open {rest[:80]!r}")
        dev, ino, pos, size = (_number(f) for f in fields[:4])
        how = fields[4].decode(errors="replace")
        left = self.left if not self.consumed else None
        if how != "resumed" or left is None:
            self.out.end_line()  # an unfinished last line must not run into the next file's first
            self.tail = b""
        elif left is not None:
            self.tail = left.tail
        self.ident, self.pos, self.consumed = (dev, ino), pos, True
        if self.waiting_for is not None:
            self.waiting_for = None
            self.out.started(self.pid)
        if left is None:
            return
        when = moment(left.at)
        if how == "resumed":
            if size > pos:
                self.notice(f"resumed where it was left at {when}")
        elif how == "skipped":
            self.notice(
                f"{amount(pos - left.pos)} written between {when} and now were not followed (more "
                f"than {amount(RESUME_LIMIT)} to catch up): its last lines follow"
            )
        elif how == "truncated":
            self.notice(
                f"was truncated or rewritten after {when}: what it held before that is not shown"
            )
        elif how == "rotated" and len(fields) == 6:
            name = display_name(fields[5].decode(errors="surrogateescape"), MAX_PATH)
            self.notice(f"rotated after {when}: reading the rest of it as {name} first")
        elif how == "replaced":
            self.notice(
                f"was replaced after {when}: what was written to the old file since is not shown"
            )

    def _noise(self, text: bytes | bytearray) -> None:
        if text.strip():
            shown = display_name(bytes(text), 200)
            log.warning("ssh %s: before the file: %s", self.source.destination, shown)

    def leave(self) -> Left | None:
        """Where the next connection should resume: where the bytes passed on end, or where the
        last connection left the file if the far side has not said yet what became of it."""
        if self.ident is not None:
            return Left(self.ident, self.pos, self.tail, time.time())
        return None if self.consumed else self.left


WAITING = {  # files.py's words for the same
    "missing": "waiting for {} to appear",
    "notfile": "{} is not a regular file",
    "unreadable": "cannot read {}",
}


class RemoteFileSource(SshSource):
    """The file at `path` on `destination`, followed over ssh. It starts with its last `backlog`
    lines; a new connection (after the link dropped, or for the next viewer) resumes exactly
    where the last one left it, in its rotated sibling first if it was rotated meanwhile, and
    says in a notice what it could not follow. With `state`, a file in the data directory, so
    does the first connection after a restart of Perview."""

    def __init__(
        self,
        destination: str,
        path: str,
        *,
        backlog: int = 10,
        ssh_args: Sequence[str] = (),
        guards: Guards | None = None,
        state: Path | None = None,
    ) -> None:
        self.path = path
        self.backlog = backlog
        self.left: Left | None = None  # where the last connection stopped reading
        # A position in another file, or on another host, means nothing to this one.
        self.state = StateFile(state, {"file": path, "ssh": destination}) if state else None
        self.loaded = False  # the state file was read (once, at the first run)
        self.lines: int | None = backlog  # how the next connection starts a file it never read
        super().__init__(
            destination, follow_file_command(path, backlog), ssh_args=ssh_args, guards=guards
        )

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        if not self.loaded:
            self.loaded = True
            if self.state is not None and (state := self.state.load()) is not None:
                self.left = Left.restored(state.get("left"))
        self.lines = self.backlog
        return await super().run(out, stop)

    async def connect(self, out: Output, stop: asyncio.Event, words: _Words) -> Ended:
        command = follow_file_command(self.path, self.lines, backlog=self.backlog, left=self.left)
        self.argv = ssh_argv(self.destination, self.ssh_args, command)
        reader = _Reader(out, self)
        try:
            return await super().connect(reader, stop, words)
        except Garbled as exc:
            log.warning("ssh %s: %s: %s", self.destination, _shown(self.path), exc)
            return Ended(reason=f"the far side of {_shown(self.path)} sent {exc}")
        finally:
            self.left = reader.leave()
            self.save(reader, force=True)

    def save(self, reader: _Reader, *, force: bool = False) -> None:
        """Keep where `reader` is in the state file, at most once a second unless `force`."""
        if self.state is not None and (force or self.state.due()):
            left = reader.leave()
            self.state.save({"left": left.saved() if left else None}, force=force)


def _number(field: bytes) -> int:
    if not field.isdigit():
        raise Garbled(f"{field[:40]!r} is not a number")
    return int(field)


def _shown(path: str) -> str:
    return display_name(path, MAX_PATH)
