"""The guard's signal and socket modules: their built-in C halves, `_signal` and `_socket`.

Every module the guard imports is on a command's critical path when no spare is ready (the
panes of a page opened together: all but the first start a guard). The pure-Python wrappers
bring `enum`, `selectors` and more: measured here (`python -I -S -c 'import ...'`, medians of
31), `os, select, math, time` started in 7.4 ms, with `signal, socket` in 14.6, with `_signal,
_socket, marshal` in 7.8; the guard as a whole went from 3.5-4.3 times a bare interpreter's
start-up to 1.9-2.4 times (spawn to answer, medians of 20, load 4). The guard needs nothing the
wrappers add (it passes plain ints), so it uses the C halves; the type checker reads the
documented modules, whose functions these are.
"""

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (7 ms here)
if TYPE_CHECKING:
    import signal as signal
    import socket as socket
else:
    import _signal as signal
    import _socket as socket

__all__ = ["signal", "socket", "suppress"]


class suppress:  # named as the contextlib.suppress it stands for
    """contextlib.suppress, without contextlib's import (collections, functools: 3 ms here)."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        self.kinds = kinds

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, self.kinds)
