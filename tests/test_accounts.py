"""Password users: hashes, sessions, the lock-out, the login page and roles, in-process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from perview.accounts import (
    CONCURRENT_CHECKS,
    QUEUED_CHECKS,
    SCRYPT_N,
    TOKEN_USER,
    LoginThrottle,
    PasswordChecker,
    SessionKeys,
    _scrypt,
    hash_password,
    parse_hash,
    verify_password,
)
from perview.config import ConfigError, UserConfig, parse
from perview.hub import Hub
from perview.sources.process import ProcessSource
from perview.web.app import WebSettings, create_app
from perview.web.auth import Access
from tests.conftest import eventually

TOKEN = "s3cret"
CHEAP = {"n": 2**10, "r": 8, "p": 1}  # tests check many passwords; the default cost is tested once
ALICE = hash_password("alice-pw", **CHEAP)
BOB = hash_password("bob-pw", **CHEAP)

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


# -- hashes ------------------------------------------------------------------------------------


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password("correct horse", **CHEAP)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("pw", **CHEAP) != hash_password("pw", **CHEAP)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hunter2", "perview hash-password"),
        ("scrypt$16384$8$1$c2FsdA$!!!", "well-formed"),
        ("scrypt$1000$8$1$c2FsdHNhbHQ$" + "A" * 43, "impossible"),
        ("scrypt$1048576$8$4$c2FsdHNhbHQ$" + "A" * 43, "MiB"),
    ],
)
def test_what_is_not_a_usable_hash_says_why(text: str, why: str) -> None:
    problem = parse_hash(text)
    assert isinstance(problem, str) and why in problem
    assert not verify_password("anything", text)


def hash_password_command(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perview", "hash-password"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_hash_password_command_uses_the_default_cost() -> None:
    result = hash_password_command("pass phrase with spaces\n")
    assert result.returncode == 0, result.stderr
    stored = result.stdout.strip()
    parsed = parse_hash(stored)
    assert not isinstance(parsed, str) and parsed.n == SCRYPT_N
    assert verify_password("pass phrase with spaces", stored)


def test_hash_password_refuses_an_empty_password() -> None:
    result = hash_password_command("\n")
    assert result.returncode == 2
    assert "empty" in result.stderr


def scrypts_running() -> int:
    """Threads of this process inside a scrypt computation right now."""
    running = 0
    for frame in sys._current_frames().values():
        inner: FrameType | None = frame
        while inner is not None and inner.f_code is not _scrypt.__code__:
            inner = inner.f_back
        running += inner is not None
    return running


async def test_a_check_whose_client_left_holds_its_slot_until_it_is_done() -> None:
    checker = PasswordChecker()
    stored = hash_password("pw", n=2**14)  # long enough for the checks to overlap
    first = [asyncio.create_task(checker.check("x", stored, f"10.0.0.{n}")) for n in range(4)]
    await eventually(lambda: scrypts_running() == CONCURRENT_CHECKS, within=10)
    for task in first:  # the clients leave: their handlers are cancelled
        task.cancel()
    then = [asyncio.create_task(checker.check("x", stored, f"10.0.1.{n}")) for n in range(4)]
    most = 0
    while not all(task.done() for task in then):
        most = max(most, scrypts_running())
        await asyncio.sleep(0.001)
    assert most <= CONCURRENT_CHECKS  # a scrypt still running keeps its slot
    assert not any(await asyncio.gather(*then))


# -- sessions ----------------------------------------------------------------------------------


def test_a_session_is_bound_to_its_user_and_secret(tmp_path: Path) -> None:
    keys = SessionKeys(tmp_path, lifetime=60)
    cookie = keys.issue("alice", ALICE)
    session = keys.check(cookie, {"alice": ALICE}.get)
    assert session is not None and session.user == "alice"
    # A changed password (another secret) ends the session; so does an unknown user.
    assert keys.check(cookie, {"alice": BOB}.get) is None
    assert keys.check(cookie, {}.get) is None
    # Editing any part breaks the signature.
    user, session_id, expires, mac = cookie.split("~")
    assert keys.check(f"bob~{session_id}~{expires}~{mac}", {"bob": ALICE}.get) is None
    later = str(int(expires) + 3600)
    assert keys.check(f"{user}~{session_id}~{later}~{mac}", {"alice": ALICE}.get) is None
    assert keys.check("garbage", {"alice": ALICE}.get) is None


@pytest.mark.parametrize("value", ["é~x~1~y", "alice~x~99999999999~\udcff", "~~~", "a~b", ""])
def test_a_cookie_of_any_text_is_refused_not_an_error(tmp_path: Path, value: str) -> None:
    keys = SessionKeys(tmp_path, lifetime=60)
    assert keys.check(value, {"alice": ALICE, "": ALICE}.get) is None


def test_a_session_expires(tmp_path: Path) -> None:
    keys = SessionKeys(tmp_path, lifetime=-1)
    assert keys.check(keys.issue("alice", ALICE), {"alice": ALICE}.get) is None


def test_sessions_and_logouts_survive_a_restart(tmp_path: Path) -> None:
    first = SessionKeys(tmp_path, lifetime=60)
    kept, dropped = first.issue("alice", ALICE), first.issue("alice", ALICE)
    session = first.check(dropped, {"alice": ALICE}.get)
    assert session is not None
    first.revoke(session)
    assert (tmp_path / "session.key").stat().st_mode & 0o777 == 0o600
    second = SessionKeys(tmp_path, lifetime=60)
    assert second.check(kept, {"alice": ALICE}.get) is not None
    assert second.check(dropped, {"alice": ALICE}.get) is None


def test_without_a_place_to_keep_it_the_key_lasts_one_run(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    keys = SessionKeys(tmp_path / "file" / "sub", lifetime=60)  # cannot be a directory
    cookie = keys.issue("alice", ALICE)
    assert keys.check(cookie, {"alice": ALICE}.get) is not None


# -- lock-out ----------------------------------------------------------------------------------


def test_failed_logins_lock_out_with_a_growing_delay() -> None:
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for n in range(LoginThrottle.FREE_FAILURES - 1):
        throttle.attempt("alice", f"10.0.0.{n}")
    assert throttle.wait("alice", "10.0.1.1") == 0
    throttle.attempt("alice", "10.0.1.1")
    assert throttle.wait("alice", "10.0.1.2") == 1.0
    throttle.attempt("alice", "10.0.1.2")
    assert throttle.wait("alice", "10.0.1.3") == 2.0
    now[0] += 2.0
    assert throttle.wait("alice", "10.0.1.3") == 0
    for _ in range(30):
        throttle.attempt("alice", "10.0.1.4")
    assert throttle.wait("alice", "10.0.1.5") == LoginThrottle.MAX_DELAY
    assert throttle.wait("bob", "10.0.1.4") == LoginThrottle.MAX_DELAY  # the address too


def test_a_try_counts_as_a_failure_before_its_password_is_checked() -> None:
    throttle = LoginThrottle(clock=lambda: 0.0)
    for _ in range(LoginThrottle.FREE_FAILURES):
        assert throttle.wait("alice", "10.0.0.1") == 0
        throttle.attempt("alice", "10.0.0.1")  # still being checked
    assert throttle.wait("alice", "10.0.0.1") > 0


def test_a_success_forgives_the_same_name_from_the_same_address_only() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    free = LoginThrottle.FREE_FAILURES
    # A person's own typos, and the try that succeeded, are forgotten.
    for _ in range(free - 1):
        throttle.attempt("alice", "10.0.0.1")
    throttle.attempt("alice", "10.0.0.1")
    throttle.succeeded("alice", "10.0.0.1")
    for _ in range(free - 1):
        throttle.attempt("alice", "10.0.0.1")
    assert throttle.wait("alice", "10.0.0.1") == 0
    # A guesser's failures for bob stay on bob's name after bob logs in from elsewhere...
    for _ in range(free):
        throttle.attempt("bob", "10.0.0.2")
    now[0] += 1.0
    throttle.attempt("bob", "10.0.0.3")
    throttle.succeeded("bob", "10.0.0.3")
    assert throttle.wait("bob", "10.0.0.4") > 0
    # ...and on the guesser's address after it logs into an account of its own there.
    now[0] += 1.0
    throttle.attempt("carol", "10.0.0.2")
    throttle.succeeded("carol", "10.0.0.2")
    assert throttle.wait("dave", "10.0.0.2") > 0


def test_the_lock_out_records_stay_bounded() -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for n in range(LoginThrottle.MAX_RECORDS + 50):
        throttle.attempt("alice", f"address {n}")
    assert len(throttle._failures) == LoginThrottle.MAX_RECORDS
    now[0] += LoginThrottle.FORGET_AFTER + 1
    throttle.attempt("bob", "new")
    assert len(throttle._failures) == 3  # the name, the address, and the two together


# -- config ------------------------------------------------------------------------------------


SOURCE = '[sources.a]\ncommand = "true"\n'


def test_users_are_read_from_the_config() -> None:
    config = parse(
        f'{SOURCE}[users.alice]\npassword = "{ALICE}"\nrole = "operator"\n'
        f'[users.bob]\npassword = "{BOB}"\n'
    )
    assert config.users["alice"] == UserConfig("alice", ALICE, "operator")
    assert config.users["bob"].role == "viewer"


def test_bad_users_are_named_with_their_lines() -> None:
    text = (
        f"{SOURCE}"
        "[users.carol]\n"  # line 3
        'password = "hunter2"\n'  # line 4
        'role = "admin"\n'  # line 5
        "[users.dave]\n"  # line 6
        'role = "viewer"\n'
        '[users."bad name"]\n'  # line 8
        f'password = "{ALICE}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, "p.toml")
    message = str(caught.value)
    assert "p.toml:4: users.carol.password: must be a hash made by `perview hash-password`" in (
        message
    )
    assert "p.toml:5: users.carol.role: must be one of viewer, operator, not 'admin'" in message
    assert "p.toml:6: users.dave: needs password" in message
    assert "p.toml:8: users.bad name: 'bad name' is not a usable user name" in message


def test_users_need_authentication_on() -> None:
    with pytest.raises(ConfigError, match="auth: cannot be false when"):
        parse(f'{SOURCE}[server]\nauth = false\n[users.alice]\npassword = "{ALICE}"\n')


# -- the login page and roles ------------------------------------------------------------------


@pytest.fixture
async def client(aiohttp_client: MakeClient, tmp_path: Path) -> Client:
    hubs = {"run": Hub("run", ProcessSource(["echo", "hello"]))}
    users = {
        "alice": UserConfig("alice", ALICE, "operator"),
        "bob": UserConfig("bob", BOB, "viewer"),
    }
    access = Access(
        token=TOKEN,
        allowed_hosts=frozenset(),
        users=users,
        sessions=SessionKeys(tmp_path, lifetime=3600),
    )
    return await aiohttp_client(create_app(hubs, WebSettings(access)))


async def log_in(client: Client, user: str, password: str, next_: str = "/") -> Any:
    return await client.post(
        "/login",
        data={"user": user, "password": password, "next": next_},
        allow_redirects=False,
    )


def bearer(response: Any) -> dict[str, str]:
    """The session a login answered with (in the fragment of where it sends the browser)."""
    fragment = response.headers["Location"].partition("#")[2]
    session = unquote(fragment.removeprefix("session=").partition("&")[0])
    return {"Authorization": f"Bearer {session}"}


async def test_a_browser_without_a_session_is_sent_to_the_login_page(client: Client) -> None:
    # The page holds no data: it is served to anyone, and marked for the page to go to the
    # login page (a browser sends no credential with a navigation).
    response = await client.get("/?source=run", headers={"Accept": "text/html"})
    assert response.status == 200
    assert 'data-auth="users"' in await response.text()
    elsewhere = await client.get(
        "/api/sources?x=1", headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert elsewhere.status == 303
    assert elsewhere.headers["Location"] == "/login?next=%2Fapi%2Fsources%3Fx%3D1"
    page = await client.get("/login?next=%2F%3Fsource%3Drun")
    body = await page.text()
    assert page.status == 200
    assert '<form method="post" action="login"' in body
    assert 'name="next" value="/?source=run"' in body
    assert "script" not in body  # a plain form: nothing for the CSP to allow


async def test_the_api_still_answers_401_without_a_session(client: Client) -> None:
    response = await client.get("/api/sources", allow_redirects=False)
    assert response.status == 401
    assert "/login" in await response.text()


async def test_the_login_page_needs_no_session_for_its_style(client: Client) -> None:
    page = await (await client.get("/login")).text()
    start = page.index("static/style.css")
    href = page[start : page.index('"', start)]
    assert (await client.get("/" + href)).status == 200


async def test_logging_in_makes_a_session_and_goes_back(client: Client) -> None:
    response = await log_in(client, "alice", "alice-pw", "/?source=run")
    assert response.status == 303
    where, _, fragment = response.headers["Location"].partition("#")
    assert where == "/?source=run"
    assert fragment.startswith("session=alice~")
    assert "Set-Cookie" not in response.headers  # never a cookie: it would reach every port
    assert response.headers["Cache-Control"] == "no-store"
    assert "alice-pw" not in fragment and ALICE not in fragment
    expires = int(unquote(fragment).split("~")[2])
    assert 3590 < expires - time.time() <= 3600
    session = await (await client.get("/api/session", headers=bearer(response))).json()
    assert session == {"user": "alice", "role": "operator", "logout": True}


async def test_logging_in_and_out_deletes_the_cookie_of_earlier_versions(client: Client) -> None:
    # Worthless now, but it still travels to every port of the host: tidied away.
    old = {f"perview_{client.port}": "olga~id~1~mac"}
    response = await client.post(
        "/login",
        data={"user": "alice", "password": "alice-pw", "next": "/"},
        cookies=old,
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.cookies[f"perview_{client.port}"]["max-age"] == "0"
    logout = await client.post("/logout", cookies=old, headers=bearer(response))
    assert logout.cookies[f"perview_{client.port}"]["max-age"] == "0"


async def test_a_wrong_password_is_refused_and_says_so(client: Client) -> None:
    response = await log_in(client, "alice", "nope")
    assert response.status == 401
    body = await response.text()
    assert "Wrong user name or password." in body
    assert 'value="alice"' in body  # the name is kept for the next try
    assert (await client.get("/api/sources")).status == 401
    unknown = await log_in(client, "mallory", "nope")
    assert unknown.status == 401
    assert "Wrong user name or password." in await unknown.text()


async def test_what_the_login_page_echoes_is_escaped(client: Client) -> None:
    response = await log_in(client, '"><script>alert(1)</script>', "x", '"><img src=x>')
    body = await response.text()
    assert "<script>alert" not in body and "<img src=x>" not in body
    assert "&quot;&gt;&lt;script&gt;" in body


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:x",
        "",
        # A browser drops tabs and newlines from a URL: "/\t/evil" would be "//evil".
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
        "/\x00",
        "/\x7f",
        "/\x85",
        "/ /evil.example",
        "/\u3000/evil.example",
    ],
)
async def test_after_login_it_only_goes_to_our_own_pages(client: Client, target: str) -> None:
    response = await log_in(client, "alice", "alice-pw", target)
    assert response.status == 303
    assert response.headers["Location"].partition("#")[0] == "/"


async def test_a_form_that_is_not_utf8_is_a_bad_request(client: Client) -> None:
    body = b"user=alice&password=alice-pw&next=/\xff"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post("/login", data=body, headers=headers, allow_redirects=False)
    assert response.status == 400


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/?source=run&grep=a%20b", "/?source=run&grep=a%20b"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),  # one path segment, still ours
        ("/?source=\u00e9t\u00e9", "/?source=%C3%A9t%C3%A9"),
        ("/\uff0f\uff0fevil.example", "/%EF%BC%8F%EF%BC%8Fevil.example"),  # not slashes
    ],
)
async def test_a_path_of_ours_is_kept_as_a_path(client: Client, target: str, location: str) -> None:
    response = await log_in(client, "alice", "alice-pw", target)
    assert response.status == 303
    assert response.headers["Location"].partition("#")[0] == location


async def test_the_login_page_carries_only_a_path_of_ours_in_its_form(client: Client) -> None:
    page = await (await client.get("/login?next=%2F%09%2Fevil.example")).text()
    assert 'name="next" value="/"' in page
    page = await (await client.get("/login?next=%2F%3Fsource%3Drun")).text()
    assert 'name="next" value="/?source=run"' in page


async def test_repeated_failures_lock_the_login_out(client: Client) -> None:
    for _ in range(LoginThrottle.FREE_FAILURES):
        assert (await log_in(client, "alice", "wrong")).status == 401
    locked = await log_in(client, "alice", "alice-pw")  # even the right password waits
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert "Too many failed logins" in await locked.text()


async def log_in_from(
    client: Client, address: str, user: str, password: str
) -> tuple[int, str | None]:
    """A login sent from another loopback address, which the server sees as another client:
    its status and Retry-After."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        form = {"user": user, "password": password, "next": "/"}
        url = client.make_url("/login")
        async with session.post(url, data=form, allow_redirects=False) as response:
            return response.status, response.headers.get("Retry-After")


async def log_in_when_let(client: Client, address: str, user: str, password: str) -> int:
    """Log in from `address`, trying again while the lock-out says to wait (a refused try is
    not counted, so waiting this way costs nothing)."""
    for _ in range(200):
        status, _ = await log_in_from(client, address, user, password)
        if status != 429:
            return status
        await asyncio.sleep(0.025)
    raise AssertionError("still locked out after 5 s")


@pytest.mark.parametrize("many", [False, True], ids=["from one address", "from many addresses"])
async def test_tries_sent_at_once_cannot_outrun_the_lock_out(client: Client, many: bool) -> None:
    tries = 40
    addresses = [f"127.0.0.{2 + n if many else 2}" for n in range(tries)]
    answers = await asyncio.gather(
        *(
            log_in_from(client, address, "alice", f"guess {n}")
            for n, address in enumerate(addresses)
        )
    )
    checked = [status for status, _ in answers if status == 401]
    assert len(checked) <= LoginThrottle.FREE_FAILURES
    refused = [(status, retry) for status, retry in answers if status != 401]
    assert all(status in (429, 503) and retry for status, retry in refused), refused


async def test_a_flood_from_one_address_holds_another_login_back_by_a_few_checks(
    client: Client,
) -> None:
    # Unknown names cost a check at the default scrypt cost (the decoy's), as in real life.
    answered: list[int] = []

    async def bogus(n: int) -> tuple[int, str | None]:
        answer = await log_in_from(client, "127.0.0.2", f"nobody {n}", "guess")
        answered.append(answer[0])
        return answer

    flood = [asyncio.ensure_future(bogus(n)) for n in range(60)]
    await eventually(lambda: answered, within=20)
    status, _ = await log_in_from(client, "127.0.0.3", "alice", "alice-pw")
    checked_first = answered.count(401)
    answers = await asyncio.gather(*flood)
    assert status == 303
    # Before the fix it waited behind every check of the flood (checked_first was about 60).
    assert checked_first <= LoginThrottle.FREE_FAILURES
    assert any(status == 503 for status, _ in answers)  # past what one address may queue
    assert all(retry for status, retry in answers if status in (429, 503))


async def test_a_flood_from_many_addresses_is_refused_past_the_queue(client: Client) -> None:
    answers = await asyncio.gather(
        *(log_in_from(client, f"127.0.1.{n}", f"nobody {n}", "guess") for n in range(1, 41))
    )
    statuses = [status for status, _ in answers]
    assert set(statuses) == {401, 503}
    assert statuses.count(401) >= CONCURRENT_CHECKS + QUEUED_CHECKS
    assert all(retry for status, retry in answers if status == 503)
    # Once the queue has drained, logins are checked again.
    assert (await log_in_from(client, "127.0.2.1", "alice", "alice-pw"))[0] == 303


async def test_a_success_leaves_the_failures_made_from_elsewhere(client: Client) -> None:
    for n in range(LoginThrottle.FREE_FAILURES):
        assert (await log_in_from(client, "127.0.0.2", "alice", f"guess {n}"))[0] == 401
    assert await log_in_when_let(client, "127.0.0.3", "alice", "alice-pw") == 303
    # Alice getting in does not give the guesser a fresh count on her name.
    assert (await log_in_from(client, "127.0.0.4", "alice", "guess"))[0] == 429


async def test_a_guesser_cannot_reset_its_address_by_logging_into_its_own_account(
    client: Client,
) -> None:
    for n in range(LoginThrottle.FREE_FAILURES):
        assert (await log_in_from(client, "127.0.0.2", "alice", f"guess {n}"))[0] == 401
    assert await log_in_when_let(client, "127.0.0.2", "bob", "bob-pw") == 303
    assert (await log_in_from(client, "127.0.0.2", "carol", "guess"))[0] == 429


async def test_a_viewer_watches_but_cannot_stop_or_restart(client: Client) -> None:
    headers = bearer(await log_in(client, "bob", "bob-pw"))
    assert (await client.get("/api/sources", headers=headers)).status == 200
    assert (await client.get("/api/sources/run/text", headers=headers)).status == 200
    for action in ("stop", "restart"):
        response = await client.post(f"/api/sources/run/{action}", headers=headers)
        assert response.status == 403
        assert "operator" in await response.text()
    session = await (await client.get("/api/session", headers=headers)).json()
    assert session["role"] == "viewer"


async def test_an_operator_can_stop_and_restart(client: Client) -> None:
    headers = bearer(await log_in(client, "alice", "alice-pw"))
    assert (await client.post("/api/sources/run/restart", headers=headers)).status == 200
    assert (await client.post("/api/sources/run/stop", headers=headers)).status == 200


async def test_logging_out_ends_the_session_for_good(client: Client) -> None:
    stolen = bearer(await log_in(client, "alice", "alice-pw"))
    response = await client.post("/logout", headers=stolen, allow_redirects=False)
    assert response.status == 204
    # A copy of the session taken before the logout is refused.
    replay = await client.get("/api/sources", headers=stolen)
    assert replay.status == 401


async def test_a_token_login_makes_a_session_not_a_copy_of_the_token(client: Client) -> None:
    response = await client.post("/api/session", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    value = (await response.json())["session"]
    assert TOKEN not in value
    headers = {"Authorization": f"Bearer {value}"}
    session = await (await client.get("/api/session", headers=headers)).json()
    assert session == {"user": None, "role": "operator", "logout": True}


async def test_with_a_bearer_token_there_is_nothing_to_log_out(client: Client) -> None:
    response = await client.get("/api/session", headers={"Authorization": f"Bearer {TOKEN}"})
    assert await response.json() == {"user": None, "role": "operator", "logout": False}


def test_token_sessions_end_when_the_token_changes(tmp_path: Path) -> None:
    keys = SessionKeys(tmp_path, lifetime=60)
    old = Access(token="old", allowed_hosts=frozenset(), sessions=keys)
    new = Access(token="new", allowed_hosts=frozenset(), sessions=keys)
    cookie = keys.issue(TOKEN_USER, "old")
    assert keys.check(cookie, old.secret_of) is not None
    assert keys.check(cookie, new.secret_of) is None


async def test_logging_in_works_under_a_root_path(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    hubs = {"run": Hub("run", ProcessSource(["echo", "hello"]))}
    access = Access(
        token=TOKEN,
        allowed_hosts=frozenset(),
        root_path="/pv",
        users={"alice": UserConfig("alice", ALICE, "operator")},
        sessions=SessionKeys(tmp_path, lifetime=3600),
    )
    client = await aiohttp_client(create_app(hubs, WebSettings(access, root_path="/pv")))
    page = await client.get(
        "/pv/api/sources", headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert page.headers["Location"] == "/pv/login?next=%2Fpv%2Fapi%2Fsources"
    form = {"user": "alice", "password": "alice-pw", "next": "/pv/"}
    response = await client.post("/pv/login", data=form, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/pv/#session=alice~")
    headers = bearer(response)
    assert (await client.get("/pv/api/sources", headers=headers)).status == 200
    outside = await client.post("/pv/login", data={**form, "next": "/other/"})
    assert outside.url.path == "/pv/"  # a path outside the prefix is not ours to go to
    logout = await client.post("/pv/logout", headers=headers, allow_redirects=False)
    assert logout.status == 204
    assert (await client.get("/pv/api/sources", headers=headers)).status == 401
