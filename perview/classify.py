"""Levels and entries of log lines, found once per block by whole-block scans.

`Classifier.classify(block, carry)` takes a block of complete lines (as the framer makes them)
and returns one byte per line, `level | HEAD` (HEAD when the line starts an entry), and the carry
for the next block of the same part. Per-line Python work is what made readline relays 400 times
slower, so no Python code runs per line: one RE2 pass finds the lines where a rule may read
something (none, in a block of plain text or numbers); while those are sparse, only they are
read, one by one; where they are not, one `re.findall` over the rest of the block yields each
line's token (the level word, or the shape that makes it a continuation; the regex leaves out the
rules the block shows it cannot need), and C-level `map`s turn tokens into one code letter per
line. Where the optional C scanner (perview/_levels.c) is built, it gives those code letters
instead, for every line of the block in one pass, 20 to 50 times faster; the regexes here stay
the reference it is tested against. A few regexes over that short code string (one byte per
line) resolve entries: tracebacks, `Caused by:` chains, Go panics, and levels carried from a
head to its lines.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Literal

import numpy as np
import re2

NONE, TRACE, DEBUG, INFO, WARNING, ERROR, FATAL = range(7)
HEAD = 0x80  # flag bit of a mark: this line starts an entry
LEVEL_MASK = 0x7F
LEVEL_NAMES = ("none", "trace", "debug", "info", "warning", "error", "fatal")

Format = Literal["auto", "json", "logfmt", "text"]
FORMATS: tuple[Format, ...] = ("auto", "json", "logfmt", "text")

# How many separator-delimited fields from the start of a text line may precede its level token.
# Enough for the longest prefix in the corpus (Apache's `[Mon Jan 15 10:23:45.123456 2024]
# [core:error]` is 10), few enough that a level word deep in a message is not taken for one.
MAX_PREFIX_FIELDS = 14
USER_REGEX_MEMORY = 8 * 1024 * 1024  # RE2's budget for one configured pattern
# Lines where a rule may read something are read one by one while at most one line in SPARSE
# (after the first DENSE_AFTER) is one: about 6 us each that way, where scanning a whole block
# costs 0.5-2 us every line, the most for lines with no level word (the text rule tries each of
# their first 15 fields). Past that, the rest of the block is scanned whole.
SPARSE = 8
DENSE_AFTER = 4


class ClassifyError(ValueError):
    """An option a classifier cannot use; the message names the option and says why."""


@dataclass(frozen=True, slots=True)
class Options:
    """A source's rules: `level` (RE2 with a named group `level`) decides the level of the lines
    it matches; `format` limits where levels are looked for; `entry_start` (RE2) marks heads."""

    format: Format = "auto"
    level: str | None = None
    entry_start: str | None = None


DEFAULTS = Options()

# The words a level is written as, by level. Each is recognised in upper case (as a token) and,
# in lower or capitalised case, only bracketed or before a colon (`[error]`, `error:`), so that
# "INFO could not connect: error 5" stays info: the first token of the line wins.
_WORDS = {
    "F": "FATAL CRITICAL CRIT EMERGENCY EMERG ALERT PANIC",
    "E": "ERROR ERR SEVERE",
    "W": "WARNING WARN",
    "I": "NOTICE INFO",
    "D": "DEBUG DEBUG1 DEBUG2 DEBUG3 DEBUG4 DEBUG5 VERBOSE",
    "T": "TRACE",
}
# PostgreSQL's severities: LOG is info; the rest add detail to the entry before them.
_PG_WORDS = {"I": "LOG", "C": "DETAIL HINT STATEMENT CONTEXT QUERY LOCATION"}

# Numeric levels: syslog severities 0-7 (JSON `level`, journald PRIORITY, RFC 5424 <PRI> % 8)
# and bunyan/pino's 10-60.
_SYSLOG = "FFFEWIID"
_BUNYAN = {"10": "T", "20": "D", "30": "I", "40": "W", "50": "E", "60": "F"}

# Line codes (one per line, before entries are resolved): F E W I D T = a line with that level,
# 0 = a line without one; C = a continuation; b = a blank line, which continues an entry with a
# level and is an entry of its own otherwise (so a block of plain lines is all heads); X = an
# exception line (`pkg.FooError: ...`), B = `Traceback (most recent call last):`, G =
# `goroutine N [...]:`, g = a Go stack frame: these continue an entry of warning or above (X, B,
# G) or a Go stack (g), else they start one.
_STRUCTURE = {
    "Traceback (most recent call last):": "B",
    "goroutine ": "G",
    "created by ": "g",
    "Caused by: ": "C",
    "Suppressed: ": "C",
    "During handling of the above exception": "C",
    "The above exception was the direct cause": "C",
    "[signal ": "C",
    "panic: ": "F",
    "fatal error: ": "F",
    "Exception in thread ": "E",
}
_EXCEPTION_SUFFIXES = ("Exception", "Error", "Throwable", "Exit", "Interrupt")
# The fields of a JSON line that hold its level.
_JSON_KEYS = ("level", "severity", "lvl", "log.level", "levelname", "loglevel", "PRIORITY")


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _trie(words: list[str]) -> str:
    """An alternation of `words` factored by common prefixes (`E(?:RR(?:OR)?|MERG...)`): `re`
    tries a flat one word by word at each position, this one a letter at a time."""
    if not words:
        return "(?!)"
    branches: dict[str, list[str]] = {}
    for word in words:
        if word:
            branches.setdefault(word[0], []).append(word[1:])
    alternatives = [re.escape(first) + _trie(rests) for first, rests in sorted(branches.items())]
    if "" in words:
        return "(?:" + "|".join(alternatives) + ")?"
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


def _codes() -> dict[bytes, int]:
    codes: dict[str, str] = {"\n": "b", " ": "C", "\t": "C"}
    for code, words in (*_WORDS.items(), *_PG_WORDS.items()):
        for word in words.split():
            for form in (word, word.lower(), word.capitalize()):
                codes[form] = code
    codes.update({"E": "E", "W": "W", "I": "I", "F": "F"})  # klog
    codes.update({"#": "W", "*": "I", "-": "D", ".": "D"})  # Redis
    codes["("] = "g"  # a Go stack frame: `main.main()`
    codes.update({str(n): _SYSLOG[n] for n in range(8)})
    codes.update(_BUNYAN)
    codes.update({f"<{pri}>": _SYSLOG[pri % 8] for pri in range(192)})
    codes.update(_STRUCTURE)
    for suffix in _EXCEPTION_SUFFIXES:
        codes[suffix + ":"] = "X"
    return {k.encode(): ord(v) for k, v in codes.items()}


def _internal_options() -> re2.Options:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1  # bytes as they are, UTF-8 or not
    return options


_CODES = _codes()
_TEXT_WORDS = [w for words in _WORDS.values() for w in words.split()]
_LOWER_WORDS = [f(w) for w in _TEXT_WORDS for f in (str.lower, str.capitalize)]
_PG_WORDS_ALL = [w for words in _PG_WORDS.values() for w in words.split()]
# What may follow a level word: upper case is a token wherever a field ends; lower case only
# bracketed or before a colon; PostgreSQL's only before a colon.
_AFTER_UPPER = r"[ :\]>)|,\t\x1b]"
_AFTER_LOWER = r"[:\]>)\x1b]"
_AFTER_PG = ":"
# Every level word is letters, then at most one digit (DEBUG1); a field that does not start so
# and end where a word may is passed over with one test instead of trying every word.
_STEMS = [w.rstrip("0123456789") for w in (*_TEXT_WORDS, *_PG_WORDS_ALL)]
_MAY_BE_WORD = (
    rf"(?=[A-Za-z]{{{min(map(len, _STEMS))},{max(map(len, _STEMS))}}}[0-9]?{_AFTER_UPPER})"
)

_SEP = r"(?:[ \t\[:]|\x1b\[[\d;]*m)"  # between fields: blanks, brackets, colons, ANSI colour
# A field never holds a separator's first byte, so it ends where one starts: possessive, `re`
# does not try it shorter when the next field does not match.
_FIELD = r"[^\s\[:\n\x1b]*+"
_PARTS: dict[str, str] = {
    # A blank line, an indented one, or a structure head, in one group: every group is a
    # field of the tuple `findall` makes for each line (15 groups cost 0.33 µs a line, 8 0.22).
    "structural": r"(?=(\n|[ \t]|" + _alternation(list(_STRUCTURE)) + "))",
    # A JSON line's own field; a JSON line without one has no level (its message is not read).
    "json": r"""(?=\{")(?:\{[^\n]*?"(?:"""
    + "|".join(map(re.escape, _JSON_KEYS))
    + r""")"[^\S\n]*:[^\S\n]*"?(\w+)|\{)""",
    "klog": r"([IWEF])(?=\d{4} \d\d:\d\d:\d\d\.\d+ )",
    "pri": r"(<\d{1,3}>)",
    "redis": r"(?:\d+:[XCSM] \d{1,2} [A-Z][a-z]{2} \d{4}|\[\d+\] \d{1,2} [A-Z][a-z]{2})"
    r" \d\d:\d\d:\d\d(?:\.\d+)? ([#*.-]) ",
    # The first `level=` or `lvl=` with a word after it. Runs without an `l` go by in one step
    # of `re` (a lazy `[^\n]*?` stepped byte by byte: 0.9 µs a line).
    "logfmt": r"""(?:[^\nl]++|\Bl|l(?!(?:evel|vl)="?\w))*+l(?:evel|vl)="?(\w+)""",
    # The line's end is tested first: without it, the look-ahead tries each `(` of a line that
    # does not end in `)` against the rest of the line (`x(x(...` of 8,000 bytes: 83 ms).
    "go_frame": r"(?=[^\n]*\)\n)(?=[\w.*/()\[\]-]+\([^\n]*\)\n)"
    r"[\w./\[\]-]*(?:\(\*[^)\n]*\)[\w./\[\]-]*)?(\()",
    "exception": r"(?:[A-Za-z_$][\w$]*\.)*[A-Z][\w$]*?((?:"
    + "|".join(_EXCEPTION_SUFFIXES)
    + r"):)(?= )",
    # The first field of the line's first 15 that is a level word. At most one word can match
    # at a place (none is another's prefix followed by a byte that may follow a word), so the
    # order of the alternatives decides nothing.
    "text": rf"(?:{_FIELD}{_SEP}){{0,{MAX_PREFIX_FIELDS}}}?{_MAY_BE_WORD}"
    rf"((?:{_trie(_TEXT_WORDS)})(?={_AFTER_UPPER})|(?:{_trie(_LOWER_WORDS)})(?={_AFTER_LOWER})"
    rf"|(?:{_trie(_PG_WORDS_ALL)})(?={_AFTER_PG}))",
}
# The level words where a field starts (`m` ends an ANSI colour), each with a byte that may
# follow it: a block without one has no line the text rule can read, nor need try it at.
_TEXT_WORD = re2.compile(
    (
        rf"(?m)(?:^|[ \t\[:m])(?:(?:{_alternation(_TEXT_WORDS)}){_AFTER_UPPER}"
        rf"|(?:{_alternation(_LOWER_WORDS)}){_AFTER_LOWER}"
        rf"|(?:{_alternation(_PG_WORDS_ALL)}){_AFTER_PG})"
    ).encode(),
    _internal_options(),
)
# Where each part can find a token, as RE2 finds it in one pass over a block (its DFA, no work
# per line, about 1 ns a byte here): a superset of what the part itself matches. A line with
# none gets no token from any part: it is a head without a level. Trying the rules at each line
# of a block of plain text (`Processing item 42 of 9000`) cost 0.5 us a line, where this pass
# costs 0.1. A blank line is not one here: it continues an entry with a level, and stands alone
# otherwise, like a plain line (`_FIND_LINE` finds those too, for when an entry may be open).
_CANDIDATES: dict[str, str] = {
    "structural": r"^(?:[ \t]|" + _alternation(list(_STRUCTURE)) + ")",
    "json": r'^\{"',
    "klog": r"^[IWEF]\d{4} ",
    "pri": r"^<\d",
    "redis": r"^(?:\d+:[XCSM] |\[\d+\] )",
    "logfmt": r"l(?:evel|vl)=",
    "exception": "(?:" + "|".join(_EXCEPTION_SUFFIXES) + "): ",
    "go_frame": r"\)\n",
    "text": _TEXT_WORD.pattern.decode().removeprefix("(?m)"),
}
_STRUCTURAL = ("structural",)
_BY_FORMAT: dict[Format, tuple[str, ...]] = {
    "auto": (
        *_STRUCTURAL,
        "json",
        "klog",
        "pri",
        "redis",
        "logfmt",
        "exception",
        "go_frame",
        "text",
    ),
    "json": (*_STRUCTURAL, "json"),
    "logfmt": (*_STRUCTURAL, "logfmt"),
    "text": (*_STRUCTURAL, "klog", "pri", "redis", "exception", "go_frame", "text"),
}


def _candidates(parts: tuple[str, ...], *more: str) -> re2._Regexp:
    body = "|".join(f"(?:{pattern})" for pattern in (*(_CANDIDATES[p] for p in parts), *more))
    return re2.compile(f"(?m){body}".encode(), _internal_options())


_FIND_CANDIDATE = {form: _candidates(parts) for form, parts in _BY_FORMAT.items()}
# The same, and blank lines, which continue an entry with a level.
_FIND_LINE = {form: _candidates(parts, "^\n") for form, parts in _BY_FORMAT.items()}
# Where a part other than the text rule (and JSON, logfmt: `_needed` tests those apart) may find
# a token: blank or indented lines, structure heads, klog, <PRI>, Redis, exceptions, Go frames.
# A block of ordinary text lines has none, and the text rule alone then reads it, where trying
# every part at every line costs 0.3 us a line more.
_OTHERS = ("structural", "klog", "pri", "redis", "exception", "go_frame")
_FIND_OTHER = _candidates(_OTHERS, "^\n")
# The same, cheaper, for a block without ": " (so without an exception's candidate, which takes
# RE2 0.16 us a line to rule out): the parts found at a line's start are looked for after each
# newline, which RE2 finds by memchr (0.02 us a line, where `(?m)^` costs 0.13), and at the start.
_AT_LINE_START = ("structural", "klog", "pri", "redis")
assert all(_CANDIDATES[part].startswith("^") for part in _AT_LINE_START)
_LINE_START = "|".join(f"(?:{_CANDIDATES[part][1:]})" for part in _AT_LINE_START) + "|\n"
_OTHER_AT_START = re2.compile(f"(?:{_LINE_START})".encode(), _internal_options())
_OTHER_AFTER_NEWLINE = re2.compile(f"\n(?:{_LINE_START})".encode(), _internal_options())
_GO_FRAME = re2.compile(_CANDIDATES["go_frame"].encode(), _internal_options())
_COLON_SPACE = re2.compile(
    b": ", _internal_options()
)  # RE2 finds it by memchr; `in`, 0.08 us a line


def _beyond_text(block: bytes) -> bool:
    """Whether a part other than the text rule may find a token in `block` (`_FIND_OTHER`)."""
    if _COLON_SPACE.search(block) is not None:
        return _FIND_OTHER.search(block) is not None
    return (
        _OTHER_AT_START.match(block) is not None
        or _OTHER_AFTER_NEWLINE.search(block) is not None
        or _GO_FRAME.search(block) is not None
    )


# A block without any of these bytes has no token any rule above can find: every line is a head
# without a level (a blank line too, since no entry with a level is open). `seq` output is such a
# block; testing for them is a `memchr` pass for each, 3 us per 256 KiB here (a search for a blank
# line, b"\n\n", took 88 us per 64 KiB: every newline is a candidate). A space comes first: most
# log lines have one, and it ends the test at once.
_TELLING = (b" ", b"\t", b'"', b"=", b"<", b":", b"]", b">", b")", b",", b"|", b"\x1b")
# Those above "9" are looked for only in a block with a byte above it (a letter, say): numpy's
# maximum of a 256 KiB block costs 5 us, where looking for them cost 19 (a block of `seq`: 25 us
# in all, against 38 for the 12 passes).
_TELLING_LOW = tuple(b for b in _TELLING if b <= b"9")
_TELLING_HIGH = tuple(b for b in _TELLING if b > b"9")

_HEADS = b"FEWIDT0"
# Code letters to marks: a head's letter is upper case (or 0), a continuation's lower case (or n).
_TO_MARK = bytearray(256)
for _level, (_head, _continued) in enumerate(zip(b"0TDIWEF", b"ntdiwef", strict=True)):
    _TO_MARK[_head], _TO_MARK[_continued] = _level | HEAD, _level
_XBG_TO_C = bytes.maketrans(b"XBG", b"CCC")
_TRACEBACK = re.compile(rb"(B[Cb]*)[^Cb]")  # the first unindented line after the frames ends it
_GO_STACK = re.compile(rb"G[CgGb]*")
_AFTER_SEVERE = re.compile(rb"[FEW][Cb]*[XBG][CXBGb]*")
_NEW_SEVERE = re.compile(rb"[XB][CXBGb]*")
# By the last pass only heads and C are left, so each run of C continues the head before it (a
# run at the very start continues an entry of the block before, whose head the carry held).
# Where runs are few, each is found by its C (a regex starting with a class of letters,
# `[FEWIDT0]C+`, tries every one); where continuations are many, a function call a run costs
# more than numpy's carrying each line's last head forward (per line, Java 58 ns against 15,
# PostgreSQL 84 against 14; a block with a few runs: 0.1 against 14).
_CONTINUATION = re.compile(rb"C+")
_HEAD_RUNS = {head: bytes([low]) for head, low in zip(b"FEWIDT0", b"fewidtn", strict=True)}
_FEW_CONTINUATIONS = 1 / 16  # of a block's lines: fewer go by the regex
_MARK = np.frombuffer(bytes(_TO_MARK), np.uint8)
_CONTINUED_MARK = np.zeros(256, np.uint8)  # a head's letter to the mark of its continuations
for _head, _continued in zip(b"FEWIDT0", b"fewidtn", strict=True):
    _CONTINUED_MARK[_head] = _TO_MARK[_continued]
# Blank lines after a line without a level, or at the start. Apart, since a regex starting
# `(?:^|0)` tries every letter where one starting `0` goes from one 0 to the next (mixed
# corpus: 12 ns a line, 1.5 this way; Java logs 46 and 0.9).
_BLANK_AT_START = re.compile(rb"[Cb]*b[Cb]*")
_BLANK_AFTER_NONE = re.compile(rb"0[Cb]*b[Cb]*")


class Classifier:
    """Classifies blocks of one part of a source under fixed options; holds no per-block state."""

    def __init__(self, options: Options = DEFAULTS) -> None:
        problems = check(options)
        if problems:
            raise ClassifyError("; ".join(problems))
        self.options = options
        self._parts = _BY_FORMAT[options.format]
        self._level = _user_regex(options.level) if options.level else None
        self._entry = _user_regex(options.entry_start) if options.entry_start else None
        self._fast = not (self._level or self._entry)
        self._find_candidate = _FIND_CANDIDATE[options.format]
        self._find_line = _FIND_LINE[options.format]

    def classify(
        self, block: bytes, carry: bytes = b"", count: int | None = None
    ) -> tuple[bytes, bytes]:
        """Return (marks: one byte per line of `block`, `level | HEAD`; the carry for the next
        block of this part). `carry` is what the previous block returned (b"" at the start);
        `count`, the block's number of lines if known (the framer's), spares counting them."""
        if not block:
            return b"", carry
        lines = block.count(b"\n") if count is None else count
        if not self._fast:
            return self._scan(block, carry, lines)
        if carry in (b"", b"0") and _plain(block):
            return bytes([HEAD]) * lines, b"0"
        if SCAN is not None:
            return _resolve(carry + SCAN(block, self._parts, lines), len(carry))
        if carry in (b"", b"0"):
            # No entry with a level is open: a blank line stands alone like a plain one, and
            # only what comes from the first candidate on needs reading.
            first = self._find_candidate.search(block)
            if first is None:
                return bytes([HEAD]) * lines, b"0"
        else:
            first = self._find_line.search(block)
        # Lines without a candidate get no level and stand alone, as a scan of the whole block
        # would find.
        return _resolve(carry + self._sparse(block, lines, first), len(carry))

    def _sparse(self, block: bytes, lines: int, candidate: re2._Match | None) -> bytes:
        """The code of each line of `block`, reading only the lines where a rule may find
        something (`candidate`: the first place), one by one while they are sparse; from where
        they are not, the rest of the block is scanned whole."""
        codes = bytearray(b"0") * lines
        one = _lines(self._parts)
        line = pos = seen = 0  # `line` is the number of the line that starts at byte `pos`
        dense = None  # where the whole-block scan takes over
        while candidate is not None:
            start = block.rfind(b"\n", 0, candidate.start()) + 1
            line += block.count(b"\n", pos, start)
            seen += 1
            if seen > line // SPARSE + DENSE_AFTER:
                dense = start
                break
            read = one.match(block, start)
            assert read is not None  # the regex takes any line
            codes[line] = _CODES.get(b"".join(read.groups(b"")), ord("0"))
            pos, line = read.end(), line + 1
            # From the next line: a line with a million candidates is read once.
            candidate = self._find_line.search(block, pos)
        if dense is not None:
            codes[line:] = self._tokens(block[dense:], lines - line)
        return bytes(codes)

    def _tokens(self, block: bytes, lines: int) -> bytes:
        if SCAN is not None:
            return SCAN(block, self._parts, lines)
        return _regex_codes(block, _needed(self._parts, block, lines))

    def _scan(self, block: bytes, carry: bytes, lines: int) -> tuple[bytes, bytes]:
        codes = self._tokens(block, lines)
        if self._level is not None:
            codes = _user_levels(self._level, block, codes)
        if self._entry is not None:
            codes = _user_entries(self._entry, block, codes)
        return _resolve(carry + codes, len(carry))


def _needed(parts: tuple[str, ...], block: bytes, lines: int) -> tuple[str, ...]:
    """`parts` less those no line of `block` can need, by tests far cheaper than trying a part at
    every line: a text log has no JSON line and no `level=`, a web server's access log may have
    no level word in its place, and a block of JSON lines never gets past the JSON part. Each
    test stops at its first hit; one that finds nothing costs a pass over the block at memchr
    speed, or RE2's DFA for the level words (85 µs a 64 KiB block here, where trying the text
    rule at each of its lines took 1.2 ms). Single bytes go first: `memchr` is 50 times faster
    than a search for several."""
    json = "json" in parts and b"{" in block and (block.startswith(b'{"') or b'\n{"' in block)
    last = block.rfind(b"\n", 0, -1) + 1
    if (
        json
        and block.startswith(b'{"')
        and block.startswith(b'{"', last)  # the first and last lines: counting the rest is a pass
        and 1 + block.count(b'\n{"') == lines
    ):
        return parts[: parts.index("json") + 1]
    logfmt = b"=" in block and (b"level=" in block or b"lvl=" in block)
    needed = tuple(
        part
        for part in parts
        if (part != "json" or json)
        and (part != "logfmt" or logfmt)
        and (part != "text" or _TEXT_WORD.search(block) is not None)
    )
    if "text" in needed and not _beyond_text(block):
        return tuple(part for part in needed if part not in _OTHERS)
    return needed


def _regex_codes(block: bytes, parts: tuple[str, ...]) -> bytes:
    """The code of each line of `block` that ends with a newline, by `_lines(parts)`: what the C
    scanner must give."""
    regex = _lines(parts)
    found = regex.findall(block)
    # With one group `findall` gives that group's text, with more a tuple of them.
    tokens = found if regex.groups == 1 else map(b"".join, found)
    return bytes(map(_CODES.get, tokens, repeat(ord("0"))))


@functools.cache
def _lines(parts: tuple[str, ...]) -> re.Pattern[bytes]:
    """The regex that finds, at each line's start, the token of the first of `parts` that has
    one (a tuple of groups, every part's; one of them not empty), and takes the whole line."""
    body = "|".join(_PARTS[p] for p in parts)
    return re.compile(f"(?m)^(?:{body})?[^\\n]*\\n".encode())


Scan = Callable[[bytes, tuple[str, ...], int], bytes]


def _c_scanner() -> Scan | None:
    """The C scanner (perview/_levels.c) given this module's words: `scan(block, parts, lines)`
    is the code of each of the block's `lines` lines that `_lines(parts)` and `_CODES` give.
    None where it was not built (no compiler where Perview was installed), or with
    PERVIEW_NO_C=1 (to compare the two)."""
    if os.environ.get("PERVIEW_NO_C") == "1":
        return None
    try:
        from perview import _levels
    except ImportError:
        return None
    kinds: dict[bytes, int] = {}
    for words, kind in (
        (_TEXT_WORDS, _levels.UPPER),
        (_LOWER_WORDS, _levels.LOWER),
        (_PG_WORDS_ALL, _levels.PG),
    ):
        for word in words:
            kinds[word.encode()] = kinds.get(word.encode(), 0) | kind
    _levels.configure(
        _CODES,
        kinds,
        [head.encode() for head in _STRUCTURE],
        [suffix.encode() for suffix in _EXCEPTION_SUFFIXES],
        [key.encode() for key in _JSON_KEYS],
        MAX_PREFIX_FIELDS,
    )

    @functools.cache
    def ids(parts: tuple[str, ...]) -> bytes:
        return bytes(_levels.PARTS.index(part) for part in parts)

    def scan(block: bytes, parts: tuple[str, ...], lines: int) -> bytes:
        return _levels.scan(block, ids(parts), lines)

    return scan


SCAN = _c_scanner()


def _plain(block: bytes) -> bool:
    """No byte of `block` is one of `_TELLING`, and it does not start with a blank line."""
    if block[0] == 10 or any(block.find(b) >= 0 for b in _TELLING_LOW):
        return False
    if np.frombuffer(block, np.uint8).max() <= ord("9"):
        return True
    return all(block.find(b) < 0 for b in _TELLING_HIGH)


def _resolve(codes: bytes, skip: int) -> tuple[bytes, bytes]:
    # A traceback or Go stack still open at the end of the block goes on in the next one.
    if codes.rstrip(b"Cb")[-1:] == b"B":
        mode = b"B"
    else:
        mode = b"G" if codes.rstrip(b"Cgb")[-1:] == b"G" else b""
    # Each pass runs only where the letter it needs is there: with the codes found in C, these
    # passes were most of the classifier's time (a regex steps through every letter, 10-20 ns
    # each), and a block without a traceback or a blank line needs few of them.
    if b"B" in codes:
        # A function, not the template rb"\1C", which Python 3.11 expands in Python for each
        # match (Python tracebacks: 145 ns a line, this 32).
        codes = _TRACEBACK.sub(lambda m: m[1] + b"C", codes)
    if b"G" in codes:
        codes = _GO_STACK.sub(lambda m: m[0].replace(b"g", b"C"), codes)
    codes = codes.replace(b"g", b"0")
    severe = b"X" in codes or b"B" in codes
    if severe or b"G" in codes:
        # The run's first letter is F, E or W, which the translation keeps.
        codes = _AFTER_SEVERE.sub(lambda m: m[0].translate(_XBG_TO_C), codes)
    if severe:
        codes = _NEW_SEVERE.sub(lambda m: b"E" + m[0][1:].translate(_XBG_TO_C), codes)
    codes = codes.replace(b"G", b"0")
    if b"b" in codes:
        start = _BLANK_AT_START.match(codes)
        end = start.end() if start else 0
        after = _BLANK_AFTER_NONE.sub(lambda m: m[0].replace(b"b", b"0"), codes[end:])
        codes = (start[0].replace(b"b", b"0") if start else b"") + after
        codes = codes.replace(b"b", b"C")
    last = max(codes.rfind(h) for h in _HEADS)
    head = codes[last : last + 1] if last >= 0 else b""
    return _marks(codes, skip), head + mode if head else b""


def _marks(codes: bytes, skip: int) -> bytes:
    """The marks of `codes[skip:]`, whose letters are heads and C (a continuation)."""
    continuations = codes.count(b"C")
    if continuations < len(codes) * _FEW_CONTINUATIONS:
        if continuations:
            codes = _CONTINUATION.sub(functools.partial(_continuation, codes=codes), codes)
        return codes[skip:].translate(_TO_MARK)
    letters = np.frombuffer(codes, np.uint8)
    continued = letters == ord("C")
    last_head = np.arange(len(letters))
    last_head[continued] = 0  # a run of C at the start keeps C: its "head" is itself
    np.maximum.accumulate(last_head, out=last_head)
    marks = np.where(continued, _CONTINUED_MARK[letters[last_head]], _MARK[letters])
    return bytes(marks[skip:].tobytes())


def _continuation(run: re.Match[bytes], codes: bytes) -> bytes:
    start = run.start()
    return _HEAD_RUNS[codes[start - 1]] * (run.end() - start) if start else run[0]


def _user_levels(pattern: re2._Regexp, block: bytes, codes: bytes) -> bytes:
    # The configured rule decides every head's level: lines it does not match have none.
    out = bytearray(codes.translate(bytes.maketrans(b"FEWIDT", b"000000")))
    line = pos = 0
    for match in pattern.finditer(block):
        line += block.count(b"\n", pos, match.start())
        pos = match.start()
        word = match.group(pattern.groupindex[b"level"]) or b""
        code = _CODES.get(word) or _CODES.get(word.upper())
        if code and code in _HEADS and out[line] == ord("0"):
            out[line] = code
    return bytes(out)


def _user_entries(pattern: re2._Regexp, block: bytes, codes: bytes) -> bytes:
    # The configured rule alone says where entries start: every other line continues one.
    out = bytearray(b"C" * len(codes))
    line = pos = 0
    for match in pattern.finditer(block):
        line += block.count(b"\n", pos, match.start())
        pos = match.start()
        code = codes[line]
        out[line] = code if code in _HEADS else ord("0")
    return bytes(out)


def _user_regex(pattern: str) -> re2._Regexp:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = USER_REGEX_MEMORY
    return re2.compile(b"(?m)^[^\\n]*?(?:" + pattern.encode() + b")", options)


def check(options: Options) -> list[str]:
    """Every problem with `options`, in words naming the option (none: an empty list)."""
    problems: list[str] = []
    if options.format not in FORMATS:
        problems.append(f"format: {options.format!r} is not one of {', '.join(FORMATS)}")
    for name in ("level", "entry_start"):
        pattern = getattr(options, name)
        if pattern is None:
            continue
        try:
            compiled = _user_regex(pattern)
        except re2.error:
            problems.append(f"{name}: not a valid RE2 regular expression ({_reason(pattern)})")
            continue
        if name == "level" and b"level" not in compiled.groupindex:
            problems.append("level: needs a named group (?P<level>...) around the level word")
    return problems


def _reason(pattern: str) -> str:
    """Why RE2 refuses `pattern`, in its words about the pattern as written (not as wrapped by
    `_user_regex`)."""
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(pattern.encode(), options)
    except re2.error as error:
        reason = error.args[0] if error.args else b""
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return "not usable within a line"


def level_of(mark: int) -> str:
    """The name of a mark's level ("none", "trace", ... "fatal")."""
    return LEVEL_NAMES[mark & LEVEL_MASK]
