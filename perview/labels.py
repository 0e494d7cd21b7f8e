"""Names from outside (a glob's file names, paths in notices) made safe to show anywhere.

A file name is any bytes but `/` and NUL: a newline in it could forge a line of the text stream
(`a\\n[perview] 12345 lines skipped\\n...`), invalid UTF-8 cannot be encoded at all, and a bidi
control reorders what follows it. `display_name` turns a name into printable text once, where
the label is made, so that no consumer (the text stream's prefixes, the SSE header, the page, the
log) has to care.
"""

from __future__ import annotations

import hashlib
import re

# A label prefixes every line of a file in the text stream and sits in every SSE header: long
# enough for any sensible relative path, short enough that a hostile name (a 255-byte component
# is 1,020 characters escaped) cannot make each of its lines four times longer.
MAX_LABEL = 256
# A path in a notice or the log (PATH_MAX bytes): shown whole unless escapes make it longer.
MAX_PATH = 4096

# Characters shown as escapes: the backslash itself (so an escape is never ambiguous, and two
# names never share a label), C0 controls and DEL, C1 controls, the surrogates that stand for
# bytes that were not UTF-8, the Unicode line and paragraph separators, and the bidi controls.
_UNSAFE_CLASS = "\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
UNSAFE = re.compile(f"[{_UNSAFE_CLASS}]")
PIECE = re.compile(f"([{_UNSAFE_CLASS}])|[^{_UNSAFE_CLASS}]+")  # one escape, or a run of none
SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
HASH_DIGITS = 8  # of the whole name's hash, after a label cut to MAX_LABEL


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    if char in SHORT:
        return SHORT[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte it could not decode
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def display_name(name: str | bytes, limit: int = MAX_LABEL) -> str:
    """`name` (a str from os functions, surrogate-escaped, or raw bytes) as printable text of
    at most `limit` characters: invalid UTF-8 as `\\xff`, control and bidi characters as `\\n`,
    `\\x1b`, `\\u202e`, a backslash as `\\\\`. The result is valid UTF-8 with no control
    character, and different names give different results (a cut one ends in `…#` and a hash
    of the whole name)."""
    text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else name
    shown = UNSAFE.sub(_escape, text)
    if len(shown) <= limit:
        return shown
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=HASH_DIGITS // 2)
    suffix = "…#" + digest.hexdigest()
    room = max(0, limit - len(suffix))
    head: list[str] = []
    for match in PIECE.finditer(text):
        piece = match[0] if match[1] is None else _escape(match)
        if len(piece) > room:
            if match[1] is None:  # plain text is cut anywhere, an escape never
                head.append(piece[:room])
            break
        head.append(piece)
        room -= len(piece)
    return "".join(head) + suffix
