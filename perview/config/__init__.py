"""The configuration: TOML in, frozen typed records out; every error names file, line and key.

`records` holds the records (each the one owner of its table's keys and defaults), `values` how
durations, sizes and networks are written, `checker` where keys are and how values are taken,
and one module per kind of table (`server`, `sources`, `hosts`, `alerts`) checks it; `loading`
puts them together. What callers use is here.
"""

from __future__ import annotations

from perview.config.checker import KeyLines
from perview.config.hosts import HOST_KEYS as _HOST_KEYS
from perview.config.hosts import METRIC_KEYS as _METRIC_KEYS
from perview.config.loading import ConfigError, load, parse
from perview.config.records import (
    DEFAULT_FILE_LINES,
    LOCAL,
    LOG_LEVELS,
    NAME,
    AlertConfig,
    Config,
    HostConfig,
    JournalConfig,
    MetricConfig,
    Network,
    NotifyConfig,
    ServerConfig,
    SourceConfig,
    UserConfig,
    data_dir,
)
from perview.config.server import SERVER_KEYS as _SERVER_KEYS
from perview.config.server import USER_KEYS as _USER_KEYS
from perview.config.sources import SOURCE_KEYS as _SOURCE_KEYS
from perview.config.values import is_glob, network, parse_duration

__all__ = [
    "DEFAULT_FILE_LINES",
    "LOCAL",
    "LOG_LEVELS",
    "NAME",
    "_HOST_KEYS",
    "_METRIC_KEYS",
    "_SERVER_KEYS",
    "_SOURCE_KEYS",
    "_USER_KEYS",
    "AlertConfig",
    "Config",
    "ConfigError",
    "HostConfig",
    "JournalConfig",
    "KeyLines",
    "MetricConfig",
    "Network",
    "NotifyConfig",
    "ServerConfig",
    "SourceConfig",
    "UserConfig",
    "data_dir",
    "is_glob",
    "load",
    "network",
    "parse",
    "parse_duration",
]
