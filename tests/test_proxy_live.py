"""Behind a real reverse proxy, nginx (Debian's), under a path prefix, over http and over TLS: the
page, the API, unbuffered streams, and the client's own address and scheme reaching the lock-out,
the stream limits, HSTS and the Origin check. Which headers are believed: test_proxy.py.

The nginx configuration is the one the README gives (read from it), with ports filled in. It
does not turn proxy buffering off: Perview's `X-Accel-Buffering: no` header must be enough.
Clients reach nginx from other loopback addresses (127.0.0.2, ...), so that nginx, and through
it Perview, see distinct clients.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from perview.accounts import hash_password
from tests.conftest import TOKEN, Server, wait_until

Serve = Callable[..., Server]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
README = Path(__file__).parent.parent / "README.md"
CHEAP = {"n": 2**10, "r": 8, "p": 1}  # many logins are tried; the default cost is tested elsewhere


def readme_site(perview_port: int) -> str:
    """The README's nginx `location` block, passing to Perview's port."""
    found = re.search(r"```nginx\n(.*?)```", README.read_text(), re.S)
    assert found, "the README has no nginx snippet"
    assert "127.0.0.1:9999;" in found[1]
    return found[1].replace("127.0.0.1:9999;", f"127.0.0.1:{perview_port};")


def readme_logging(log: Path) -> str:
    """The README's nginx access log settings, writing to `log`."""
    found = re.search(r"```nginx\n([^`]*log_format[^`]*)```", README.read_text())
    assert found, "the README gives no nginx log format"
    assert "/var/log/nginx/access.log " in found[1]
    return found[1].replace("/var/log/nginx/access.log ", f"{log} ")


# -- a real nginx ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if not Path(OPENSSL).exists():
        pytest.fail("openssl is missing: run scripts/install-test-deps (package openssl)")
    where = tmp_path_factory.mktemp("tls")
    made = Certificate(where / "cert.pem", where / "key.pem")
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(made.key),
            "-out",
            str(made.cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return made


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start nginx in front of a Perview port (over TLS with a certificate); returns nginx's
    port."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run scripts/install-test-deps (package nginx)")
    started: list[subprocess.Popen[bytes]] = []

    def start(perview_port: int, tls: Certificate | None = None) -> int:
        port = free_port()
        temp = Path(tempfile.mkdtemp(prefix="nginx-", dir=tmp_path))
        conf = temp / "nginx.conf"
        paths = "".join(
            f"{kind}_temp_path {temp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        listen = f"listen 127.0.0.1:{port};\n"
        if tls is not None:
            listen = (
                f"listen 127.0.0.1:{port} ssl;\n"
                f"ssl_certificate {tls.cert};\nssl_certificate_key {tls.key};\n"
            )
        conf.write_text(
            f"daemon off;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\n"
            "events {}\n"
            f"http {{\n{readme_logging(temp / 'access.log')}{paths}"
            f"server {{\n{listen}{readme_site(perview_port)}}}\n}}\n"
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


def test_the_readme_log_format_keeps_the_token_out_of_nginx_s_log(
    serve: Serve, nginx: Callable[[int], int], tmp_path: Path
) -> None:
    server = serve("run", "--root-path", "/perview", "--", "echo", "hi")
    base = f"http://127.0.0.1:{nginx(server.port)}/perview"
    # ?token= is no credential for the API any more, but an old link or script may send it.
    request = urllib.request.Request(
        f"{base}/api/sources?token={TOKEN}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as sources:
        assert sources.status == 200
    [log] = tmp_path.glob("nginx-*/access.log")
    wait_until(lambda: "/perview/api/sources" in log.read_text(), timeout=5)
    assert TOKEN not in log.read_text()


# -- the client's address and scheme, through nginx --------------------------------------------

PROXIED = """
[server]
root_path = "/perview"
trusted_proxies = ["127.0.0.1"]
max_streams_per_client = 1

[users.alice]
password = "{alice}"

[users.bob]
password = "{bob}"

[sources.ticker]
command = ["sh", "-c", "echo first; exec sleep 30"]
"""


def serve_proxied(serve: Serve, tmp_path: Path) -> Server:
    """Perview behind nginx as the README says, trusting nginx (via the config), with users
    alice and bob, one stream per client, and a source that stays up."""
    config = tmp_path / "perview.toml"
    alice, bob = hash_password("alice-pw", **CHEAP), hash_password("bob-pw", **CHEAP)
    config.write_text(PROXIED.format(alice=alice, bob=bob))
    return serve("serve", "-c", str(config))


def connect(
    port: int, source: str = "127.0.0.1", tls: Certificate | None = None
) -> http.client.HTTPConnection:
    """A connection to 127.0.0.1:port from the loopback address `source`."""
    if tls is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    context = ssl.create_default_context(cafile=tls.cert)
    return http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0), context=context
    )


def ask(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> http.client.HTTPResponse:
    connection.request(method, path, body=body, headers=headers or {})
    return connection.getresponse()


def log_in(port: int, source: str, tls: Certificate, user: str, password: str) -> int:
    with closing(connect(port, source, tls)) as connection:
        form = f"user={user}&password={password}&next=/perview/"
        kind = {"Content-Type": "application/x-www-form-urlencoded"}
        answer = ask(connection, "POST", "/perview/login", kind, form)
        answer.read()
        return answer.status


def test_a_token_link_through_the_tls_proxy_sets_no_cookie_and_hsts_is_sent(
    serve: Serve, nginx: Callable[..., int], certificate: Certificate
) -> None:
    server = serve("run", "--root-path", "/perview", "--trusted-proxy", "127.0.0.1", "--", "true")
    for tls, secure in ((certificate, True), (None, False)):
        with closing(connect(nginx(server.port, tls), tls=tls)) as connection:
            answer = ask(connection, "GET", f"/perview/?token={TOKEN}", {"Accept": "text/html"})
            answer.read()
        assert answer.status == 303
        assert answer.headers["Location"] == f"/perview/#token={TOKEN}"
        assert "Set-Cookie" not in answer.headers  # nothing a plain-http port could be sent
        assert ("Strict-Transport-Security" in answer.headers) is secure


def test_a_same_origin_post_through_the_tls_proxy_is_accepted(
    serve: Serve, nginx: Callable[..., int], certificate: Certificate
) -> None:
    server = serve("run", "--root-path", "/perview", "--trusted-proxy", "127.0.0.1", "--", "true")
    port = nginx(server.port, certificate)
    with closing(connect(port, tls=certificate)) as connection:
        headers = {"Authorization": f"Bearer {TOKEN}", "Origin": f"https://127.0.0.1:{port}"}
        answer = ask(connection, "POST", "/perview/api/sources/run/stop", headers)
        answer.read()
    assert answer.status == 200


def test_login_lock_out_through_the_proxy_is_per_client_address(
    serve: Serve, nginx: Callable[..., int], certificate: Certificate, tmp_path: Path
) -> None:
    port = nginx(serve_proxied(serve, tmp_path).port, certificate)
    guesser, user = "127.0.0.2", "127.0.0.3"
    for _ in range(30):  # a handful of failures, then the guesser's address must wait
        status = log_in(port, guesser, certificate, "alice", "wrong")
        if status == 429:
            break
        assert status == 401
    assert status == 429
    assert log_in(port, user, certificate, "bob", "bob-pw") == 303
    assert log_in(port, guesser, certificate, "bob", "bob-pw") == 429


def test_streams_through_the_proxy_are_limited_per_client_address(
    serve: Serve, nginx: Callable[..., int], certificate: Certificate, tmp_path: Path
) -> None:
    port = nginx(serve_proxied(serve, tmp_path).port, certificate)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    events = "/perview/api/events?source=ticker"
    with ExitStack() as open_streams:
        statuses = []
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.2"):
            connection = open_streams.enter_context(closing(connect(port, source, certificate)))
            answer = ask(connection, "GET", events, auth)
            if answer.status == 200:
                assert answer.readline() == b"retry: 1000\n"  # open, and held open
            statuses.append(answer.status)
    assert statuses == [200, 200, 429]  # one stream per client, and these are two clients


def test_forwarded_headers_count_only_from_a_trusted_proxy(serve: Serve, tmp_path: Path) -> None:
    server = serve_proxied(serve, tmp_path)  # trusts 127.0.0.1 only; one stream per client
    events = "/perview/api/events?source=ticker"
    with ExitStack() as open_streams:
        statuses = []
        for source, claimed in [
            ("127.0.0.1", "198.51.100.1"),  # a trusted proxy: its header names the client
            ("127.0.0.1", "198.51.100.2"),
            ("127.0.0.4", "198.51.100.3"),  # anyone else: the header is ignored
            ("127.0.0.4", "198.51.100.4"),
        ]:
            connection = open_streams.enter_context(closing(connect(server.port, source)))
            headers = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": claimed}
            answer = ask(connection, "GET", events, headers)
            if answer.status == 200:
                answer.readline()
            statuses.append(answer.status)
    assert statuses == [200, 200, 200, 429]
    with closing(connect(server.port, "127.0.0.4")) as connection:
        headers = {"Accept": "text/html", "X-Forwarded-Proto": "https"}
        answer = ask(connection, "GET", f"/perview/?token={TOKEN}", headers)
        answer.read()
    assert answer.status == 303
    assert "Set-Cookie" not in answer.headers
    assert "Strict-Transport-Security" not in answer.headers
