"""Behind a real nginx (Debian's), under a path prefix: the page, the API and unbuffered streams.

The nginx configuration is the one the README gives, with ports filled in. It does not turn
proxy buffering off: Perview's `X-Accel-Buffering: no` header must be enough.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import TOKEN, Server

Serve = Callable[..., Server]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

SITE = """
location /perview/ {{
    proxy_pass http://127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_set_header Connection "";
    proxy_read_timeout 1h;
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[[int], int]]:
    """Start nginx in front of a Perview port; returns nginx's port."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run scripts/install-test-deps (package nginx)")
    started: list[subprocess.Popen[bytes]] = []

    def start(perview_port: int) -> int:
        port = free_port()
        temp = tmp_path / "nginx"
        temp.mkdir()
        conf = temp / "nginx.conf"
        paths = "".join(
            f"{kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf.write_text(
            f"daemon off;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\n"
            "events {}\n"
            f"http {{\naccess_log off;\n{paths}"
            f"server {{\nlisten 127.0.0.1:{port};\n{SITE.format(port=perview_port)}}}\n}}\n"
        )
        proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(temp), "-e", str(temp / "error.log")]
        )
        started.append(proc)
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return port
            time.sleep(0.01)
        pytest.fail("nginx did not start: " + (temp / "error.log").read_text())

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(5)


def get(url: str, accept: str = "*/*") -> urllib.request.Request:
    return urllib.request.Request(
        url, headers={"Authorization": f"Bearer {TOKEN}", "Accept": accept}
    )


def test_streams_pass_through_nginx_unbuffered(serve: Serve, nginx: Callable[[int], int]) -> None:
    server = serve("run", "--root-path", "/perview", "--", "sh", "-c", "echo first; sleep 30")
    base = f"http://127.0.0.1:{nginx(server.port)}/perview"
    started = time.monotonic()
    with urllib.request.urlopen(get(base + "/api/sources/run/text"), timeout=10) as stream:
        assert stream.readline() == b"first\n"  # while the command still runs: not buffered
    assert time.monotonic() - started < 5
    with urllib.request.urlopen(get(base + "/api/events?source=run"), timeout=10) as events:
        lines = [events.readline() for _ in range(3)]
        assert lines[0] == b"retry: 1000\n"


def test_page_and_api_work_under_the_prefix(serve: Serve, nginx: Callable[[int], int]) -> None:
    server = serve("run", "--root-path", "/perview", "--", "echo", "hi")
    base = f"http://127.0.0.1:{nginx(server.port)}/perview"
    with urllib.request.urlopen(get(base + "/", "text/html"), timeout=10) as page:
        html = page.read().decode()
    asset = html.split('src="', 1)[1].split('"', 1)[0]
    assert asset.startswith("static/app.js?v=")  # relative: resolves under /perview/
    with urllib.request.urlopen(get(f"{base}/{asset}"), timeout=10) as script:
        assert script.headers["Content-Type"].startswith("text/javascript")
    with urllib.request.urlopen(get(base + "/api/sources"), timeout=10) as sources:
        assert b'"name": "run"' in sources.read()
