"""The configuration: frozen, typed records that the CLI builds and the server runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9999
DEFAULT_BACKLOG = 10_000  # lines a source keeps for new viewers
DEFAULT_RING_BYTES = 16 * 1024 * 1024  # ... and at most this many bytes of them

# Source names appear in URLs and in SSE ids (`name:id,name:id`), so they stay plain.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None  # None: generate one at start
    auth: bool = True
    allowed_hosts: tuple[str, ...] = ()
    root_path: str = ""


@dataclass(frozen=True, slots=True)
class SourceConfig:
    name: str
    command: tuple[str, ...]
    backlog: int = DEFAULT_BACKLOG
    max_bytes: int = DEFAULT_RING_BYTES
    keep: bool = False
    linger: float = 0.0
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    sources: tuple[SourceConfig, ...]
    once: bool = False  # exit after the first viewer of the (only) source leaves
    default_stream: str | None = None  # the source `GET /` streams to curl
