"""The application in-process as test_app.py and test_auth.py serve it: one source, `run`
(`echo hello`), behind a token, with `perview.example` an allowed host name besides loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from perview.hub import Hub
from perview.sources.process import ProcessSource
from perview.web.app import WebSettings, create_app
from perview.web.auth import Access

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


async def echo_app(aiohttp_client: MakeClient) -> Client:
    """A client of the application serving `run`."""
    hubs = {
        "run": Hub("run", ProcessSource(["echo", "hello"]), meta={"command": ["echo", "hello"]})
    }
    access = Access(token=TOKEN, allowed_hosts=frozenset({"perview.example"}))
    app = create_app(hubs, WebSettings(access, default_stream="run"))
    return await aiohttp_client(app)
