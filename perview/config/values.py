"""How the config's values may be written: durations, sizes, networks, URLs and globs."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from perview.config.records import Network

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)


def parse_size(value: Any) -> int | None:
    """Bytes from `"500MB"`, `"2GB"`, `"1.5GiB"` or a plain integer (KB, MB, GB, TB are powers
    of 1000, KiB ... TiB of 1024, as disks and `df -H` count); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not (found := SIZE.match(value)):
        return None
    unit = (found[2] or "B").upper()
    base = 1024 if "I" in unit else 1000
    power = "BKMGT".index(unit[0])
    return int(float(found[1]) * base**power)


def parse_duration(value: Any) -> float | None:
    """Seconds from `"10s"`, `"5m"`, `"2h"`, `"7d"`, `"500ms"` or a plain number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (found := DURATION.match(value)):
        return float(found[1]) * DURATION_UNITS[found[2]]
    return None


def network(text: str) -> Network:
    """An address (`"127.0.0.1"`, `"::1"`) or a network (`"10.0.0.0/8"`); ValueError says
    what is wrong with anything else (a host name, host bits set in a network)."""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_network(text.strip())
    try:
        loose = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network like 10.0.0.0/8") from None
    raise ValueError(f"{text!r} has host bits set: the network is {str(loose)!r}")


def is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_glob(path: str) -> bool:
    """Whether a `file` names every file it matches rather than one (the wildcards of glob)."""
    return any(c in path for c in "*?[")
