"""One source made of several parts (the same log on several hosts), merged line by line."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from perview.hub import Ended, Forward, Output, Source
from perview.labels import display_name


class _Labelled(Forward):
    """An Output that tags everything a part writes with the part's label."""

    def __init__(self, out: Output, label: str) -> None:
        super().__init__(out)
        self.label = display_name(label)  # config names are plain already; a label never forges

    async def write(self, data: bytes, label: str | None = None) -> None:
        await self.out.write(data, self.label)

    def waiting(self, reason: str) -> None:
        self.out.waiting(f"{self.label}: {reason}")

    def notice(self, text: str, label: str | None = None) -> None:
        self.out.notice(text, self.label)


class MergedSource:
    """Runs every part at once; each part's lines carry its label (the host). Ends when all
    parts have ended: status 0 if all succeeded, else the first failure's status and reasons."""

    kind = "merged"

    def __init__(self, parts: Mapping[str, Source]) -> None:
        self.parts = dict(parts)

    async def run(self, out: Output, stop: asyncio.Event) -> Ended:
        async with asyncio.TaskGroup() as group:
            tasks = {
                label: group.create_task(part.run(_Labelled(out, label), stop))
                for label, part in self.parts.items()
            }
        results = {label: task.result() for label, task in tasks.items()}
        failed = {label: e for label, e in results.items() if e.status != 0}
        if not failed:
            return Ended(0)
        first = next(iter(failed.values()))
        reasons = [f"{label}: {e.reason or f'status {e.status}'}" for label, e in failed.items()]
        return Ended(first.status, "; ".join(reasons))
