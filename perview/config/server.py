"""The `[server]` table and the `[users.NAME]` who may come in."""

from __future__ import annotations

from typing import Any

from perview.accounts import ROLES, parse_hash
from perview.config.checker import Checker
from perview.config.records import NAME, Network, ServerConfig, UserConfig, keys
from perview.config.values import network

SERVER_KEYS = keys(ServerConfig)
USER_KEYS = keys(UserConfig)
# What a key that is not written reads as.
_SERVER, _USER = ServerConfig(), UserConfig("", "")


def server(check: Checker, raw: Any) -> ServerConfig:
    """The `[server]` table; every key not written is ServerConfig's default."""
    path = ("server",)
    table = check.table(raw, path, SERVER_KEYS)
    port = check.get(table, path, "port", int, _SERVER.port)
    if not 0 <= port <= 65535:
        check.problem((*path, "port"), f"must be between 0 and 65535, not {port}")
    root = check.get(table, path, "root_path", str, _SERVER.root_path).strip("/")
    retention = check.duration(table, path, "retention", _SERVER.retention)
    every = check.duration(table, path, "metrics_every", _SERVER.metrics_every)
    return ServerConfig(
        host=check.get(table, path, "host", str, _SERVER.host),
        port=port,
        token=check.get(table, path, "token", str, _SERVER.token) or None,
        auth=check.get(table, path, "auth", bool, _SERVER.auth),
        allowed_hosts=check.strings(table, path, "allowed_hosts"),
        root_path="/" + root if root else "",
        data_dir=check.get(table, path, "data_dir", str, _SERVER.data_dir),
        retention=retention,
        system_metrics=check.get(table, path, "system_metrics", bool, _SERVER.system_metrics),
        metrics_every=every,
        certfile=check.get(table, path, "certfile", str, _SERVER.certfile),
        max_streams_per_client=check.limit(
            table, path, "max_streams_per_client", _SERVER.max_streams_per_client
        ),
        max_streams=check.limit(table, path, "max_streams", _SERVER.max_streams),
        max_viewers_per_source=check.limit(
            table, path, "max_viewers_per_source", _SERVER.max_viewers_per_source
        ),
        keyfile=check.get(table, path, "keyfile", str, _SERVER.keyfile),
        session_lifetime=check.duration(table, path, "session_lifetime", _SERVER.session_lifetime),
        idle_timeout=check.duration(table, path, "idle_timeout", _SERVER.idle_timeout),
        write_timeout=check.duration(table, path, "write_timeout", _SERVER.write_timeout),
        trusted_proxies=networks(check, table, path, "trusted_proxies"),
        hold=check.duration(table, path, "hold", _SERVER.hold),
        record=check.record(table, path, _SERVER.record),
        record_size=check.size(table, path, "record_size", _SERVER.record_size),
        record_limit=check.size(table, path, "record_limit", _SERVER.record_limit) or 1,
    )


def networks(
    check: Checker, table: dict[str, Any], path: tuple[str, ...], key: str
) -> tuple[Network, ...]:
    found = []
    for text in check.strings(table, path, key):
        try:
            found.append(network(text))
        except ValueError as exc:
            check.problem((*path, key), str(exc))
    return tuple(found)


def user(check: Checker, name: str, raw: Any) -> UserConfig:
    path = ("users", name)
    if not NAME.fullmatch(name):
        check.problem(path, f"{name!r} is not a usable user name (letters, digits, _ . -)")
    table = check.table(raw, path, USER_KEYS)
    password = check.get(table, path, "password", str, "")
    if "password" not in table:
        check.problem(path, "needs password = the hash printed by `perview hash-password`")
    elif isinstance(problem := parse_hash(password), str):
        check.problem((*path, "password"), problem)
    role = check.get(table, path, "role", str, _USER.role)
    if role not in ROLES:
        check.problem((*path, "role"), f"must be one of {', '.join(ROLES)}, not {role!r}")
        role = _USER.role
    return UserConfig(name, password, role)
