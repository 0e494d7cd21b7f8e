"""The access log `-v` turns on: aiohttp's usual line, with the token taken out of it.

A browser opens Perview once with `?token=` (the address printed at start), and scripts may use
it on every request: written to a log, it would give whoever reads the log operator rights."""

from __future__ import annotations

import datetime
import logging
import re
from urllib.parse import unquote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

REDACTED = "token=…"
# Where a parameter may start. The server splits its query on `&` only; taking `;` and a
# fragment's `#` too costs nothing, and keeps out a token someone wrote there by mistake.
PARAMETER_START = re.compile(r"([?&;#])")


def redact(target: str) -> str:
    """`target` (a request target or a URL) with every `token` parameter's value replaced by
    `…`. Names are compared as the server decodes them: `%74oken` is `token` too."""
    pieces = PARAMETER_START.split(target)
    for i in range(2, len(pieces), 2):  # the text after each delimiter
        name = pieces[i].partition("=")[0]
        if unquote_plus(name).strip().lower() == "token":
            pieces[i] = REDACTED
    return "".join(pieces)


class AccessLog(AbstractAccessLogger):
    """Logs each request as aiohttp's default access log does (Apache's combined format),
    with the token taken out of the request line and the `Referer`."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        start = datetime.datetime.now().astimezone() - datetime.timedelta(seconds=time)
        version = request.version
        self.logger.info(
            '%s [%s] "%s %s HTTP/%d.%d" %d %d "%s" "%s"',
            request.remote or "-",
            start.strftime("%d/%b/%Y:%H:%M:%S %z"),
            request.method,
            redact(request.raw_path),
            version.major,
            version.minor,
            response.status,
            response.body_length,
            redact(request.headers.get("Referer", "-")),
            request.headers.get("User-Agent", "-"),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
