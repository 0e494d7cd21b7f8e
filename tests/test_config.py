"""Config parsing: good files become typed records; every mistake names file, line and key."""

from __future__ import annotations

import contextlib
import re
from dataclasses import fields
from ipaddress import ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perview.accounts import hash_password
from perview.config import (
    _HOST_KEYS,
    _METRIC_KEYS,
    _SERVER_KEYS,
    _SOURCE_KEYS,
    _USER_KEYS,
    ConfigError,
    HostConfig,
    MetricConfig,
    ServerConfig,
    SourceConfig,
    UserConfig,
    load,
    parse,
)
from perview.errors import ExitCode, PerviewError

GOOD = """
[server]
host = "127.0.0.1"
port = 8080
allowed_hosts = ["perview.example"]
root_path = "/perview/"

[hosts.web1]
ssh = "deploy@web1.example.org"
ssh_args = ["-p", "2222"]

[hosts.web2]
ssh = "web2"

[sources.syslog]
file = "/var/log/syslog"
title = "System log"

[sources.app]
file = "/var/log/app.log"
hosts = ["web1", "web2"]
backlog = 500
group = "web"

[sources.deploy]
command = "journalctl -u deploy -f"
host = "web1"
linger = 5

[sources.build]
command = ["make", "-C", "/srv/app", "watch"]
env = { LANG = "C" }
cwd = "/srv/app"
keep = true

[sources.pipeline]
command = "dmesg -w | grep -i usb"
shell = true
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, "p.toml")
    assert caught.value.code == ExitCode.CONFIG
    return str(caught.value).splitlines()


def test_a_good_config_becomes_typed_records() -> None:
    config = parse(GOOD)
    assert config.server.port == 8080
    assert config.server.root_path == "/perview"
    assert config.hosts["web1"].ssh_args == ("-p", "2222")
    sources = {s.name: s for s in config.sources}
    assert sources["syslog"].kind == "file" and sources["syslog"].hosts == ()
    assert sources["app"].hosts == ("web1", "web2") and sources["app"].backlog == 500
    assert sources["deploy"].command == ("journalctl", "-u", "deploy", "-f")
    assert sources["deploy"].linger == 5.0
    assert sources["build"].command == ("make", "-C", "/srv/app", "watch")
    assert sources["build"].env == {"LANG": "C"} and sources["build"].keep
    assert sources["pipeline"].command == ("/bin/sh", "-c", "dmesg -w | grep -i usb")


def test_a_key_left_out_reads_as_its_record_s_default() -> None:
    # The records own the defaults: the checker keeps no copies that could drift from them.
    hashed = hash_password("pw", n=2**10)
    config = parse(
        f"""
[hosts.h]
ssh = "h"
[sources.s]
command = "true"
[metrics.m]
command = "true"
[users.u]
password = "{hashed}"
"""
    )
    assert config.server == ServerConfig()
    assert config.hosts == {"h": HostConfig("h", "h")}
    assert config.sources == (SourceConfig("s", command=("true",)),)
    assert config.metrics == (MetricConfig("m", command=("true",)),)
    assert config.users == {"u": UserConfig("u", hashed)}


def test_server_takes_exactly_its_record_s_fields_and_lists_them_for_a_misspelling() -> None:
    expected = ", ".join(sorted(f.name for f in fields(ServerConfig)))
    assert errors('[server]\nprot = 1\n[sources.a]\ncommand = "x"\n') == [
        f"p.toml:2: server.prot: unknown key (expected one of: {expected})"
    ]


@pytest.mark.parametrize(
    ("table", "keys"),
    [
        ("[server]", _SERVER_KEYS),
        ("[users.NAME]", _USER_KEYS),
        ("[hosts.NAME]", _HOST_KEYS),
        ("[sources.NAME]", _SOURCE_KEYS),
        ("[metrics.NAME]", _METRIC_KEYS),
    ],
)
def test_docs_config_md_lists_every_key_a_table_takes(table: str, keys: frozenset[str]) -> None:
    docs = (Path(__file__).parent.parent / "docs" / "config.md").read_text()
    section = docs.split(f"## `{table}`\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \|", section, re.MULTILINE)
    listed = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row)}
    assert sorted(keys - listed) == []


def test_the_shipped_example_is_valid() -> None:
    load(Path(__file__).parent.parent / "perview.example.toml")


def test_syntax_error_names_its_line() -> None:
    assert errors('[sources.a]\ncommand = "x"\nfile = \n') == [
        "p.toml:3: (syntax): invalid TOML: Invalid value (at line 3, column 8)"
    ]


def test_unknown_key_names_file_line_and_key() -> None:
    [error] = errors('[sources.a]\ncommand = "x"\ncomand = "y"\n')
    assert error.startswith("p.toml:3: sources.a.comand: unknown key (expected one of: ")


def test_wrong_type_names_file_line_and_key() -> None:
    assert errors('[server]\nport = "80"\n[sources.a]\ncommand = "x"\n') == [
        "p.toml:2: server.port: must be an integer, not a string"
    ]


def test_a_boolean_is_not_a_number() -> None:
    assert errors("[sources.a]\ncommand = 'x'\nlinger = true\n") == [
        "p.toml:3: sources.a.linger: must be a number, not a boolean"
    ]


def test_source_needs_exactly_one_of_command_or_file() -> None:
    both = errors('[sources.a]\ncommand = "x"\nfile = "/y"\n')
    neither = errors('[sources.b]\ntitle = "B"\n')
    assert both == ["p.toml:1: sources.a: needs exactly one of command, file or journal"]
    assert neither == ["p.toml:1: sources.b: needs exactly one of command, file or journal"]


def test_undefined_host_is_named() -> None:
    text = '[hosts.web1]\nssh = "w"\n\n[sources.a]\nfile = "/x"\nhosts = ["web1", "web3"]\n'
    assert errors(text) == [
        "p.toml:6: sources.a.hosts: host 'web3' is not defined in [hosts] "
        "(defined: web1; 'local' is this machine)"
    ]


def test_every_error_is_reported_at_once_in_line_order() -> None:
    text = (
        '[server]\nport = 70000\n[sources.a]\ncommand = 42\n[sources.b]\nfile = "/x"\nbacklog = 0\n'
    )
    assert errors(text) == [
        "p.toml:2: server.port: must be between 0 and 65535, not 70000",
        "p.toml:4: sources.a.command: must be a string or a list of strings, not an integer",
        "p.toml:7: sources.b.backlog: must be at least 1",
    ]


def test_a_config_that_serves_nothing_is_an_error() -> None:
    assert errors("[server]\nport = 1\n") == [
        "p.toml:1: sources: nothing to serve: add a [sources.NAME] or [metrics.NAME] table, "
        "or metrics = true to a host"
    ]


def test_shell_needs_a_string_command() -> None:
    [error] = errors('[sources.a]\ncommand = ["a", "b"]\nshell = true\n')
    assert error == "p.toml:2: sources.a.command: shell = true needs the command as one string"


def test_unbalanced_quotes_in_a_command_string() -> None:
    [error] = errors('[sources.a]\ncommand = "tail -F \'oops"\n')
    assert error.startswith("p.toml:2: sources.a.command: cannot be split into arguments")


def test_remote_glob_is_refused() -> None:
    [error] = errors('[hosts.h]\nssh = "h"\n[sources.a]\nfile = "/var/log/*.log"\nhost = "h"\n')
    assert error == "p.toml:4: sources.a.file: a glob can only be followed on this machine"


def test_bad_names_are_refused() -> None:
    lines = errors('[sources."my source"]\ncommand = "x"\n')
    assert lines == [
        "p.toml:1: sources.my source: 'my source' is not a usable source name "
        "(letters, digits, _ . -)"
    ]


def test_trusted_proxies_are_addresses_and_networks() -> None:
    text = (
        '[server]\ntrusted_proxies = ["127.0.0.1", "::1", "10.0.0.0/8"]\n[sources.a]\nfile = "/x"\n'
    )
    assert parse(text).server.trusted_proxies == (
        ip_network("127.0.0.1/32"),
        ip_network("::1/128"),
        ip_network("10.0.0.0/8"),
    )
    assert parse('[sources.a]\nfile = "/x"\n').server.trusted_proxies == ()  # none by default


def test_a_trusted_proxy_that_is_not_an_address_names_file_line_and_key() -> None:
    text = (
        '[sources.a]\nfile = "/x"\n[server]\nport = 1\n'
        'trusted_proxies = ["127.0.0.1", "proxy.example", "10.0.0.1/8"]\n'
    )
    assert errors(text) == [
        "p.toml:5: server.trusted_proxies: 'proxy.example' is not an IP address or network "
        "like 10.0.0.0/8",
        "p.toml:5: server.trusted_proxies: '10.0.0.1/8' has host bits set: "
        "the network is '10.0.0.0/8'",
    ]
    assert errors('[server]\ntrusted_proxies = "127.0.0.1"\n[sources.a]\nfile = "/x"\n') == [
        "p.toml:2: server.trusted_proxies: must be a list of strings, not a string"
    ]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PerviewError, match=r"cannot read config .*nope\.toml: No such file"):
        load(tmp_path / "nope.toml")


def test_a_misspelled_table_is_named_at_its_header_line() -> None:
    text = '[server]\nport = 8080\n\n[sources.a]\ncommand = "x"\n\n# a comment\n\n[sourcse.b]\n'
    [error] = errors(text + 'command = "y"\n')
    assert error.startswith("p.toml:9: sourcse: unknown table (expected one of: ")


def test_a_table_named_only_by_dotted_keys_is_named_where_it_first_appears() -> None:
    [error] = errors('[sources.a]\ncommand = "x"\n\n[server]\nport = 1\ntls.cert = "c"\n')
    assert error.startswith("p.toml:6: server.tls: unknown table")


def test_rerun_is_on_unless_a_source_turns_it_off() -> None:
    config = parse('[sources.a]\ncommand = "df -h"\n[sources.b]\ncommand = "x"\nrerun = false\n')
    assert [s.rerun for s in config.sources] == [True, False]
    assert errors('[sources.a]\ncommand = "x"\nrerun = "no"\n') == [
        "p.toml:3: sources.a.rerun: must be true or false, not a string"
    ]


# -- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '[hosts.web1]\nssh = "web1"\nmetrics = true\n',
        '[metrics.q]\ncommand = "echo 1"\n',
        "[server]\nsystem_metrics = true\n",
    ],
)
def test_a_config_of_metrics_alone_is_served(text: str) -> None:
    config = parse(text)
    assert config.sources == ()


def test_a_scrape_takes_every_setting_it_accepts() -> None:
    [metric] = parse(
        '[hosts.web1]\nssh = "web1"\n\n[metrics.free]\nscrape = "http://localhost:9100/metrics"\n'
        'selector = \'fs_avail{mountpoint="/"}\'\nhost = "web1"\nunit = "B"\n'
        'warn = 5\ncrit = 9\nevery = "30s"\n'
    ).metrics
    assert (metric.host, metric.unit, metric.warn, metric.crit, metric.every) == (
        "web1",
        "B",
        5.0,
        9.0,
        30.0,
    )


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ("node load", "not a selector: expected a metric name"),
        ('fs{mountpoint="/"', "not a selector: expected a metric name"),
        ("fs{mountpoint=/}", "not a selector (Invalid labels: mountpoint=/)"),
        ('fs{mountpoint!="/"}', "(only = matchers)"),
        ("node_load1 5", "not a selector"),
        ('{mountpoint="/"}', "not a selector"),
    ],
)
def test_a_malformed_selector_is_refused_at_its_line(selector: str, reason: str) -> None:
    [error] = errors(
        f'[metrics.m]\nscrape = "http://localhost:9100/metrics"\nselector = {selector!r}\n'
    )
    assert error.startswith("p.toml:3: metrics.m.selector: ")
    assert reason in error


def test_a_scrape_url_must_be_http() -> None:
    [error] = errors('[metrics.m]\nscrape = "localhost:9100/metrics"\nselector = "up"\n')
    assert error == (
        "p.toml:2: metrics.m.scrape: must be an http:// or https:// URL, "
        "not 'localhost:9100/metrics'"
    )


def test_a_source_takes_its_format_and_level_rules() -> None:
    config = parse(
        "[sources.a]\ncommand = 'x'\nformat = 'text'\n"
        "level = '^\\S+ (?P<level>[a-z]+)'\nentry_start = '^\\d{4}-'\n"
        "[sources.b]\ncommand = 'y'\nformat = 'raw'\n"
        "[sources.c]\ncommand = 'z'\n"
    )
    a, b, c = config.sources
    assert a.classify is not None and a.classify.format == "text"
    assert a.classify.level == r"^\S+ (?P<level>[a-z]+)" and a.classify.entry_start == r"^\d{4}-"
    assert b.classify is None  # raw: not classified at all
    assert c.classify is not None and c.classify.format == "auto"


def test_a_bad_level_rule_or_format_names_file_line_and_key() -> None:
    assert errors(
        "[sources.a]\ncommand = 'x'\nlevel = '(?P<level>[a-z]+'\n"
        "[sources.b]\ncommand = 'y'\nlevel = '\\w+'\nentry_start = '(\\w)\\1'\n"
        "[sources.c]\ncommand = 'z'\nformat = 'yaml'\n"
        "[sources.d]\ncommand = 'z'\nformat = 'raw'\nlevel = '(?P<level>x)'\n"
    ) == [
        "p.toml:3: sources.a.level: not a valid RE2 regular expression (missing ): "
        "(?P<level>[a-z]+)",
        "p.toml:6: sources.b.level: needs a named group (?P<level>...) around the level word",
        "p.toml:7: sources.b.entry_start: not a valid RE2 regular expression "
        "(invalid escape sequence: \\1)",
        "p.toml:10: sources.c.format: must be one of auto, json, logfmt, text, raw, not 'yaml'",
        'p.toml:14: sources.d.level: does nothing with format = "raw" (no levels)',
    ]


toml_values = st.recursive(
    st.none().map(lambda _: '""')
    | st.integers(-(2**40), 2**40).map(str)
    | st.booleans().map(lambda b: str(b).lower())
    | st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    lambda inner: st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    max_leaves=8,
)

# Every key some table knows (the loader's own lists, so new keys are fuzzed too), and a bogus one.
keys = st.sampled_from(
    sorted(_SERVER_KEYS | _SOURCE_KEYS | _METRIC_KEYS | _HOST_KEYS | _USER_KEYS | {"bogus"})
)

tables = st.sampled_from(
    ["server", "sources.a", "sources.b", "hosts.h", "metrics.m", "users.u", "x"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(tables, st.lists(st.tuples(keys, toml_values), max_size=5)), max_size=5))
def test_config_loader_answers_every_toml_with_a_config_or_located_errors(
    sections: list[tuple[str, list[tuple[str, str]]]],
) -> None:
    seen: set[str] = set()
    lines = []
    for table, pairs in sections:
        if table in seen:
            continue
        seen.add(table)
        lines.append(f"[{table}]")
        used: set[str] = set()
        for key, value in pairs:
            if key not in used:
                used.add(key)
                lines.append(f"{key} = {value}")
    try:
        parse("\n".join(lines) + "\n", "f.toml")
    except ConfigError as error:
        for problem in str(error).splitlines():
            assert problem.startswith("f.toml:"), problem
            assert problem.split(":")[1].isdigit(), problem


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_config_loader_survives_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ConfigError):  # refusing is fine; crashing is not
        parse(text, "f.toml")


# -- the record keys: per source, defaults from [server], and their errors -------------------


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
