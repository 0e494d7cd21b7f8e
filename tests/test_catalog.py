"""The served sources in-process: a changed config applied without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
