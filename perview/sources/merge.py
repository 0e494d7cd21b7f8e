"""One source made of several parts (the same log on several hosts), merged line by line."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from perview.hub import Ended, Forward, Output, Source
from perview.labels import display_name


class _Part(Forward):
    """An Output that tags everything a part writes with the part's name (its host)."""

    def __init__(self, out: Output, part: str) -> None:
        super().__init__(out)
        self.part = display_name(part)  # config names are plain already; a part never forges

    async def write(self, data: bytes, part: str | None = None) -> None:
        await self.out.write(data, self.part)

    def waiting(self, reason: str) -> None:
        self.out.waiting(f"{self.part}: {reason}")

    def notice(self, text: str, part: str | None = None) -> None:
        self.out.notice(text, self.part)

    def end_line(self, part: str | None = None) -> None:
        self.out.end_line(self.part)


class MergedSource:
    """Runs every part at once; each part's lines carry its name (the host). Ends when all
    parts have ended: status 0 if all succeeded, else the first failure's status and reasons."""

    kind = "merged"

    def __init__(self, parts: Mapping[str, Source]) -> None:
        self.parts = dict(parts)

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        async with asyncio.TaskGroup() as group:
            tasks = {
                name: group.create_task(part.run(_Part(out, name), stop))
                for name, part in self.parts.items()
            }
        results = {name: task.result() for name, task in tasks.items()}
        failed = {name: e for name, e in results.items() if e.status != 0}
        if not failed:
            return Ended(0)
        first = next(iter(failed.values()))
        reasons = [f"{name}: {e.reason or f'status {e.status}'}" for name, e in failed.items()]
        return Ended(first.status, "; ".join(reasons))
