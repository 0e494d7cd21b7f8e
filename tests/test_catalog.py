"""The served sources in-process: a changed config applied without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from perview.catalog import Catalog
from perview.config import Config, parse
from perview.hub import Hub
from perview.ring import Chunk
from perview.sources.process import GuardPool
from tests.conftest import eventually

WITHIN = 5.0


def config(text: str) -> Config:
    return parse(text, "perview.toml")


@pytest.fixture
async def guards() -> AsyncIterator[GuardPool]:
    pool = GuardPool()
    yield pool
    await pool.close()


def lines_and_states(items: list[object]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, Chunk):
            out += [item.state.summary] if item.state else item.data.decode().splitlines()
    return out


async def test_a_reload_adds_removes_and_restarts_in_place(guards: GuardPool) -> None:
    catalog = Catalog(
        config(
            '[sources.gone]\ncommand = "sleep 60"\n'
            '[sources.same]\ncommand = "sleep 60"\n'
            "[sources.edited]\ncommand = \"sh -c 'echo old; exec sleep 60'\"\n"
        ),
        guards,
    )
    hubs = catalog.hubs  # the mapping the web application holds
    same: Hub = hubs["same"]
    try:
        with hubs["edited"].watch() as viewer, same.watch(), hubs["gone"].watch():
            await eventually(lambda: hubs["edited"].ring.next_id == 2, WITHIN)
            changes = await catalog.apply(
                config(
                    '[sources.same]\ncommand = "sleep 60"\n'
                    "[sources.edited]\ncommand = \"sh -c 'echo new; exec sleep 60'\"\n"
                    '[sources.added]\ncommand = "true"\n'
                )
            )
            assert (changes.added, changes.removed, changes.changed) == (
                ("added",),
                ("gone",),
                ("edited",),
            )
            assert list(hubs) == ["same", "edited", "added"]
            assert hubs["same"] is same and same.runs == 1  # untouched: not restarted
            # The viewer stays, is told why the run ended, and the new command's line comes
            # next with the next id.
            await eventually(lambda: hubs["edited"].ring.next_id == 3, WITHIN)
            seen = [s for s in lines_and_states(viewer.read()) if not s.startswith("started")]
            assert seen == ["old", "stopped (the config changed)", "new"]
    finally:
        await catalog.close()


async def test_changing_a_host_restarts_the_sources_on_it(guards: GuardPool) -> None:
    text = '[hosts.h]\nssh = "{}"\n[sources.s]\ncommand = "sleep 1"\nhost = "h"\n'
    catalog = Catalog(config(text.format("a.example")), guards)
    changes = await catalog.apply(config(text.format("b.example")))
    assert changes.changed == ("s",)
    await catalog.close()


async def test_an_unchanged_config_changes_nothing(guards: GuardPool) -> None:
    text = '[sources.s]\ncommand = "sleep 60"\n'
    catalog = Catalog(config(text), guards)
    changes = await catalog.apply(config(text))
    assert str(changes) == "no source changed"
    await catalog.close()
    await asyncio.sleep(0)


async def test_only_a_source_that_runs_always_keeps_where_it_was_across_restarts(
    guards: GuardPool, tmp_path: Path
) -> None:
    """Kept, recorded and watched by an alert: each resumes after a restart of Perview; another
    source starts afresh (resuming would replay everything since it last ran)."""
    log = tmp_path / "app.log"
    sources = "".join(
        f'[sources.{name}]\nfile = "{log}"\n{extra}\n'
        for name, extra in [
            ("kept", "keep = true"),
            ("recorded", 'record = "1d"'),
            ("alerted", ""),
            ("viewed", ""),
        ]
    )
    catalog = Catalog(
        config(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\n{sources}'
            '[notify.hook]\ncommand = ["true"]\n'
            '[alerts.errors]\nsource = "alerted"\nlevel = "error"\nnotify = "hook"\n'
        ),
        guards,
    )
    try:
        kept = {name: hub.source.state for name, hub in catalog.hubs.items()}
    finally:
        await catalog.close()
    files = tmp_path / "data" / "files"
    assert {name: state and state.path for name, state in kept.items()} == {
        "kept": files / "kept@local.json",
        "recorded": files / "recorded@local.json",
        "alerted": files / "alerted@local.json",
        "viewed": None,
    }


async def test_a_source_the_alerts_watch_runs_on_after_a_reload_drops_their_rule(
    guards: GuardPool,
) -> None:
    text = '[sources.app]\ncommand = "{}"\n[alerts.errors]\nsource = "app"\nmatch = "ERROR"\n'
    catalog = Catalog(config(text.format("sleep 60")), guards)
    hub = catalog.hubs["app"]
    try:
        catalog.start_kept()
        await eventually(lambda: hub.running, WITHIN)
        # Alerts are read at start, and their rules follow the ring without being viewers: until
        # the next start they still watch app, so it runs on, changed, with nobody watching it.
        await catalog.apply(config('[sources.app]\ncommand = "sleep 61"\n'))
        assert hub.keep and hub.running and hub.runs == 2
    finally:
        await catalog.close()
