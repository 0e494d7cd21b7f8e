"""A log's generations: the file and its rotated siblings, newest first, as logrotate names them.

Numbered (`app.log.1` or `app.log.1.gz`, `app.log.2.gz`, ... while the numbering goes on), then
date-named (`dateext`: `app.log-20240101`, `app.log-2024010113.gz` for a `dateformat` of
`-%Y%m%d%H`, and `app.log.2024-01-01` style), newest date first. logrotate requires a
`dateformat` to sort lexically ("first the year, then the month then the day", logrotate(8)),
and sorts by it itself, so the name's digits are in time order; an mtime is not (compressing
a file sets its mtime in some setups). A log with both kinds (its rotation was changed) is read
numbered ones first.

A generation is named by its suffix after the log's path: "" for the file itself. A suffix is
made of digits and `- . _ T :` only (and `.gz`), so it is safe to hand to a far shell and back,
and cannot name anything but a sibling. The same patterns serve here (`fnmatch`) and in the far
side's `case` (FAR_GENERATIONS), so both find the same files."""

from __future__ import annotations

import fnmatch
import glob
import os

MAX_ROTATED = 999  # numbered siblings looked for: logrotate's `rotate` is rarely above hundreds

_D = "[0-9]"
_TIME = (
    "",
    "[-_T.]" + _D * 2,
    "[-_T.]" + _D * 2 + ("[-_:.]" + _D * 2),
    "[-_T.]" + _D * 2 + ("[-_:.]" + _D * 2) * 2,
)
# What follows the log's name in a date-named sibling (before any `.gz`): a separator, then
# %Y%m%d with up to %H%M%S run on (8 to 14 digits; %s is 10), or %Y-%m-%d and a time.
DATED = (
    *("[-._]" + _D * n for n in (8, 10, 12, 14)),
    *("[-._]" + _D * 4 + "-" + _D * 2 + "-" + _D * 2 + t for t in _TIME),
)
GZ = ".gz"


def is_dated(suffix: str) -> bool:
    """Whether `suffix` (after the log's path) names a date-named sibling."""
    bare = suffix.removesuffix(GZ)
    return any(fnmatch.fnmatchcase(bare, pattern) for pattern in DATED)


def is_generation(suffix: str) -> bool:
    """Whether `suffix` names the log itself (""), a numbered or a date-named sibling."""
    bare = suffix.removesuffix(GZ)
    numbered = bare[1:].isdecimal() and bare.isascii() and bare.startswith(".") and bare[1] != "0"
    return suffix == "" or numbered or is_dated(suffix)


def rotated(path: str) -> list[str]:
    """`path` and its rotated siblings that are regular files, newest first (see the module).
    A FIFO or a device would hold the one search thread for as long as it pleased."""
    found = [path] if os.path.isfile(path) else []
    for n in range(1, MAX_ROTATED + 1):
        for name in (f"{path}.{n}", f"{path}.{n}.gz"):
            if os.path.isfile(name):
                found.append(name)
                break
        else:
            break
    dated = [
        name
        for name in glob.glob(glob.escape(path) + "[-._]*")
        if is_dated(name[len(path) :]) and os.path.isfile(name)
    ]
    dated.sort(key=lambda name: _date_key(name[len(path) :]), reverse=True)
    return found + dated


def _date_key(suffix: str) -> tuple[str, str]:
    """Its digits (so that `-20240102` and `.2024-01-01` compare as dates whatever their
    separators, and a longer format that starts alike is later), then the suffix itself."""
    return "".join(c for c in suffix if c.isdigit()), suffix


def local_files(pattern: str) -> list[str]:
    """The files a local path or glob covers, newest first within each followed file. A glob's
    match that is itself a sibling of another match is read as that one's generation."""
    if not glob.has_magic(pattern):
        return rotated(pattern)
    names: list[str] = []
    for match in sorted(glob.glob(pattern)):
        names += [n for n in rotated(match) if n not in names]
    return names


# A shell function for the far side: the generations of "$p" (up to "$m" numbered), one suffix
# a line, newest first. Dated ones are sorted as _date_key does (in byte order: LC_ALL=C): sed
# puts the suffix's digits before it; suffixes hold no blank.
FAR_GENERATIONS = (
    r"""gens() {
  [ -f "$p" ] && echo
  n=1
  while [ "$n" -le "$m" ]; do
    if [ -f "$p.$n" ]; then echo ".$n"
    elif [ -f "$p.$n.gz" ]; then echo ".$n.gz"
    else break; fi
    n=$((n + 1))
  done
  for f in "$p"[-._]*; do
    [ -f "$f" ] || continue
    s=${f#"$p"}
    case ${s%.gz} in
      """
    + "|".join(DATED)
    + r""") echo "$s" ;;
    esac
  done | sed 'h;s/[^0-9]//g;G;s/\n/ /' | sort -r | cut -d' ' -f2
}"""
)
