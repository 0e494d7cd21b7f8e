"""The record keys: per source, defaults from [server], and the errors they can have."""

from __future__ import annotations

import pytest

from perview.config import ConfigError, parse


def test_a_source_records_by_age_and_size_and_runs_always() -> None:
    config = parse('[sources.app]\ncommand = "date"\nrecord = "7d"\nrecord_size = "2GB"\n')
    (app,) = config.sources
    assert (app.record, app.record_size, app.recorded) == (7 * 86400.0, 2 * 1000**3, True)


def test_the_server_default_applies_unless_a_source_says_false() -> None:
    config = parse(
        '[server]\nrecord = "1d"\nrecord_limit = "10GiB"\n'
        '[sources.a]\ncommand = "date"\n'
        '[sources.b]\ncommand = "date"\nrecord = false\n'
        '[sources.c]\ncommand = "date"\nrecord_size = "1MB"\n'
    )
    a, b, c = config.sources
    assert (a.record, b.recorded, c.record, c.record_size) == (86400.0, False, None, 1000**2)
    assert config.server.record_limit == 10 * 1024**3


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('record_size = "lots"', "sources.app.record_size: must be a size"),
        ('record = "forever"', "sources.app.record: must be a duration"),
        ('record = false\nrecord_size = "1GB"', "cannot be set with record = false"),
    ],
)
def test_bad_record_keys_are_named(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse(f'[sources.app]\ncommand = "date"\n{text}\n')
