"""Who may ask what, in-process (perview/web/auth.py): the token, sessions made from it, the
host and origin checks. Password users and the login page are in test_accounts.py; a live
server's token, kept across restarts, and --no-auth in test_auth_live.py."""

from __future__ import annotations

import pytest

from perview.web.auth import host_allowed
from tests.webapp import AUTH, TOKEN, Client, MakeClient, echo_app


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    return await echo_app(aiohttp_client)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:9999", True),
        ("[::1]:9999", True),
        ("localhost:9999", True),
        ("app.localhost", True),
        ("10.1.2.3", True),
        ("perview.example:9999", True),
        ("PERVIEW.EXAMPLE.", True),
        ("evil.example:9999", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_host_check_allows_only_names_safe_from_rebinding(host: str, allowed: bool) -> None:
    assert host_allowed(host, frozenset({"perview.example"})) is allowed


async def test_without_token_api_is_refused(client: Client) -> None:
    response = await client.get("/api/sources")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" in await response.text()


async def test_wrong_token_is_refused(client: Client) -> None:
    response = await client.get("/api/sources", headers={"Authorization": "Bearer nope"})
    assert response.status == 401


async def test_forged_cookie_is_refused(client: Client) -> None:
    name = f"perview_{client.port}"
    response = await client.get("/api/sources", cookies={name: "forged"})
    assert response.status == 401


async def test_bearer_token_is_accepted(client: Client) -> None:
    response = await client.get("/api/sources", headers=AUTH)
    assert response.status == 200
    [source] = await response.json()
    assert source["name"] == "run"
    assert source["state"] == "idle"
    assert source["command"] == ["echo", "hello"]


async def session_of(client: Client) -> str:
    """A session made from the token, as the page makes one from the URL Perview prints."""
    response = await client.post("/api/session", headers=AUTH)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    session: str = (await response.json())["session"]
    return session


async def test_the_token_is_traded_for_a_session_sent_as_a_bearer(client: Client) -> None:
    session = await session_of(client)
    assert TOKEN not in session
    bearer = {"Authorization": f"Bearer {session}"}
    assert (await client.get("/api/sources", headers=bearer)).status == 200
    info = await (await client.get("/api/session", headers=bearer)).json()
    assert info == {"user": None, "role": "operator", "logout": True}
    # A session cannot be traded for another (a stolen one would never end).
    assert (await client.post("/api/session", headers=bearer)).status == 400


async def test_a_session_in_a_cookie_is_no_credential(client: Client) -> None:
    # A browser sends a cookie to every port of the host, so any other service there has it.
    session = await session_of(client)
    for name in (f"perview_{client.port}", "perview_default"):
        response = await client.get("/api/sources", cookies={name: session})
        assert response.status == 401
        stop = await client.post("/api/sources/run/stop", cookies={name: session})
        assert stop.status == 401


async def test_a_query_token_is_no_credential_for_the_api(client: Client) -> None:
    response = await client.get(f"/api/sources?token={TOKEN}")
    assert response.status == 401
    assert "Set-Cookie" not in response.headers


async def test_a_query_token_moves_to_the_fragment_of_the_same_address(client: Client) -> None:
    response = await client.get(
        f"/?token={TOKEN}&source=run", headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/?source=run#token={TOKEN}"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    ("site", "arrival"),
    [
        ("none", "direct"),
        ("same-origin", "direct"),
        ("same-site", "linked"),
        ("cross-site", "linked"),
        (None, "linked"),
    ],
)
async def test_the_page_needs_no_credential_and_says_how_it_was_reached(
    client: Client, site: str | None, arrival: str
) -> None:
    headers = {"Accept": "text/html"} | ({"Sec-Fetch-Site": site} if site else {})
    response = await client.get("/?source=run", headers=headers)
    assert response.status == 200
    page = await response.text()
    assert f'data-arrival="{arrival}"' in page and 'data-auth="token"' in page
    assert response.headers["Vary"] == "Sec-Fetch-Site"


async def test_in_run_mode_the_stream_at_the_root_needs_a_credential(client: Client) -> None:
    response = await client.get("/", headers={"Accept": "*/*"})
    assert response.status == 401


async def test_foreign_host_is_refused_even_with_token(client: Client) -> None:
    response = await client.get("/api/sources", headers={**AUTH, "Host": "evil.example"})
    assert response.status == 403


async def test_cross_origin_post_is_refused(client: Client) -> None:
    response = await client.post(
        "/api/sources/run/stop", headers={**AUTH, "Origin": "http://evil.example"}
    )
    assert response.status == 403


async def test_cross_site_stream_is_refused(client: Client) -> None:
    response = await client.get(
        "/api/sources/run/text", headers={**AUTH, "Sec-Fetch-Site": "cross-site"}
    )
    assert response.status == 403


async def test_a_post_from_another_port_of_the_same_site_is_refused(client: Client) -> None:
    # Another server on localhost (another port) is "same-site", not same-origin.
    headers = {**AUTH, "Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}
    response = await client.post("/api/sources/run/stop", headers=headers)
    assert response.status == 403


async def test_a_form_posted_under_no_referrer_is_same_origin(client: Client) -> None:
    # Chromium sends `Origin: null` for a form posted from a no-referrer page, such as the
    # logout button; the browser's own Sec-Fetch-Site says where it came from.
    headers = {**AUTH, "Origin": "null", "Sec-Fetch-Site": "same-origin"}
    response = await client.post("/api/sources/run/stop", headers=headers)
    assert response.status == 200


async def test_same_origin_post_is_accepted(client: Client) -> None:
    origin = f"http://{client.host}:{client.port}"
    response = await client.post("/api/sources/run/stop", headers={**AUTH, "Origin": origin})
    assert response.status == 200
    assert (await response.json())["name"] == "run"


async def test_healthz_needs_no_token(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["ok"] is True
