"""Times a client writes: RFC 3339, epoch seconds, or relative (`-15m`, `-2h`, `now`, `today`,
`yesterday`); anything else, or outside any plausible history, is a ValueError that says so."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from perview.config import parse_duration

RELATIVE = re.compile(r"^-\s*(\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))$")
EARLIEST = 0.0  # 1970: nothing recorded is older
LATEST_AHEAD = 366 * 86400.0  # a year from now: later is a typo, not a query


def parse_time(text: str, now: float) -> float:
    """Epoch seconds for `text`; ValueError (its message for the client) if it is no time."""
    value = text.strip()
    lowered = value.lower()
    seconds: float | None = None
    if lowered == "now":
        seconds = now
    elif lowered in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
        if lowered == "yesterday":
            midnight -= timedelta(days=1)
        seconds = midnight.timestamp()
    elif found := RELATIVE.match(lowered):
        amount = found[1].replace(" ", "")
        if amount.endswith("w"):
            amount = f"{float(amount[:-1]) * 7}d"
        ago = parse_duration(amount)
        seconds = None if ago is None else now - ago
    else:
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.replace("z", "Z"))
            except ValueError:
                raise ValueError(
                    f"{text[:40]!r} is not a time: use RFC 3339 (2026-05-01T03:00:00Z), "
                    "epoch seconds, or relative (-15m, -2h, yesterday)"
                ) from None
            try:
                seconds = moment.timestamp()  # naive: this machine's local time
            except (OverflowError, OSError, ValueError):
                seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"{text[:40]!r} is not a usable time")
    if not EARLIEST <= seconds <= now + LATEST_AHEAD:
        raise ValueError(f"{text[:40]!r} is outside any history (1970 to a year from now)")
    return seconds
