"""Exit codes, and the one exception type that carries a message for the user."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # something failed at run time (port in use, ...)
    USAGE = 2  # bad flags or arguments; argparse uses 2 as well
    CONFIG = 3  # the config file is invalid


class PerviewError(Exception):
    """An error the user caused or can fix; shown as one line, without a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = code
