"""A source's lines get their levels: the classifier run once per block as it enters the ring,
one carry per part, the counts per level, and a budget on the time that may take.

Classifying runs on the event loop (`re` holds the GIL, so a thread would not help). A source
writing faster than its lines can be classified must not slow its own relay or anything else:
a source may spend at most SHARE of the loop's time on it (plus BURST saved up while it was
quiet). Blocks beyond that go unclassified (level none, no entries), and a notice says how many
lines, and when.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from perview.classify import Classifier, Options
from perview.tally import LevelTally

# The relay keeps at least 0.85 of its speed however fast a source writes (issue 13's target),
# and a log at a person's pace (thousands of lines a second, about a millisecond of classifying
# each second) never comes near it.
SHARE = 0.15
# Classifying saved up while a source was quiet, for a burst: 100 ms is about 90,000 lines of
# ordinary text (bench/classify.py), so a 100,000-line burst of a quiet log gets nearly all its
# levels, while a source that never stops pays SHARE from its first second on.
BURST = 0.1
SAY_EVERY = 10.0  # seconds: while lines go unclassified, a notice at least this often


class Leveller:
    """Marks blocks of one source with levels and entry heads (None: format "raw")."""

    def __init__(
        self, options: Options | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.classifier = None if options is None else Classifier(options)
        self.tally = LevelTally()  # lines per level, since Perview started
        self.unclassified = 0  # lines that went without, over the budget
        self._clock = clock
        self._carries: dict[str | None, bytes] = {}
        self._credit = BURST  # seconds of classifying allowed now
        self._refilled = clock()
        self._skipped = 0  # lines unclassified since the last notice
        self._skipped_since = 0.0  # wall clock of the first of them

    def reset(self) -> None:
        """A new run: no entry goes on from the last one."""
        self._carries = {}

    def mark(self, data: bytes, count: int, part: str | None) -> tuple[bytes | None, str | None]:
        """The marks of a block (None: not classified) and a notice to put after it, if any."""
        if self.classifier is None:
            return None, None
        now = self._clock()
        self._credit = min(BURST, self._credit + (now - self._refilled) * SHARE)
        self._refilled = now
        if self._credit <= 0:
            self._carries.pop(part, None)  # what follows is not the entry it was in
            return None, self._skip(count)
        started = time.perf_counter()
        carry = self._carries.get(part, b"")
        marks, self._carries[part] = self.classifier.classify(data, carry, count)
        self._credit -= time.perf_counter() - started
        self.tally.add(marks, part)
        return marks, self.pending()

    @property
    def unclassified_unsaid(self) -> int:
        """Lines left unclassified that no notice has said yet."""
        return self._skipped

    def pending(self) -> str | None:
        """The notice for lines left unclassified and not yet said, if any: for a run that ends,
        or a source that falls quiet, while over the budget (no classified block follows)."""
        return self._said() if self._skipped else None

    def _skip(self, count: int) -> str | None:
        if not self._skipped:
            self._skipped_since = time.time()
        self._skipped += count
        self.unclassified += count
        if time.time() - self._skipped_since >= SAY_EVERY:
            return self._said()
        return None

    def _said(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self._skipped_since))
        until = time.strftime("%H:%M:%S")
        text = (
            f"levels not found for {self._skipped:,} lines ({since} to {until}): the source "
            f"wrote faster than they could be found (at most {SHARE:.0%} of the server's time)"
        )
        self._skipped = 0
        return text
