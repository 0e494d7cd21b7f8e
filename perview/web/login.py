"""The login page, logging in and out, and who the page is talking for.

The page works without script (a plain form), so it needs no exception to the content security
policy; what it shows is filled in on the server, every value escaped."""

from __future__ import annotations

import asyncio
import html
import math
import re
import unicodedata
from urllib.parse import quote

from aiohttp import web

from perview.accounts import TOKEN_USER, LoginThrottle, PasswordChecker
from perview.web.auth import (
    OWNER,
    PRINCIPAL,
    SESSION,
    Access,
    arrived_directly,
    forget_old_cookie,
    identify,
    issue_session,
    with_session,
)

PLACEHOLDER = re.compile(r"\{\{(message|next|user|arrival)\}\}")
MAX_FIELD = 1024  # characters of a user name or password read from the form
FORM_TIMEOUT = 10.0  # seconds to send a login form (a trickled body must not hold a slot)
BUSY_RETRY_AFTER = 1  # seconds: the queue of password checks drains in about that
# What may stay as it is in a path and query sent back as `Location` (RFC 3986's reserved and
# unreserved characters, and `%` for what is already encoded); anything else is encoded.
PATH_CHARACTERS = "/?#[]@!$&'()*+,;=:%~"

ACCESS = web.AppKey("access", Access)
THROTTLE = web.AppKey("throttle", LoginThrottle)
CHECKER = web.AppKey("checker", PasswordChecker)
LOGIN_PAGE = web.AppKey("login_page", str)  # login.html with its asset URLs filled in


def add_login_routes(app: web.Application, access: Access, page: str) -> None:
    app[ACCESS] = access
    app[THROTTLE] = LoginThrottle()
    app[CHECKER] = PasswordChecker()
    app[LOGIN_PAGE] = page
    root = access.root_path
    app.router.add_get(root + "/login", login_page)
    app.router.add_post(root + "/login", login)
    app.router.add_post(root + "/logout", logout)
    app.router.add_get(root + "/api/session", session_info)
    app.router.add_post(root + "/api/session", token_session)


async def login_page(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    if not access.users:
        raise web.HTTPNotFound(text="perview: no users are configured; use the token URL\n")
    # A page opened from another site sends its visitor here with `arrival=linked`.
    direct = arrived_directly(request) and request.query.get("arrival") != "linked"
    return _page(request, "", request.query.get("next", ""), "", "direct" if direct else "linked")


async def login(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    if not access.users:
        raise web.HTTPNotFound(text="perview: no users are configured; use the token URL\n")
    try:
        async with asyncio.timeout(FORM_TIMEOUT):
            form = await request.post()
    except TimeoutError:
        raise web.HTTPRequestTimeout(text="perview: the login form came too slowly\n") from None
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="perview: the login form is not UTF-8\n") from None
    name = str(form.get("user", ""))[:MAX_FIELD]
    password = str(form.get("password", ""))[:MAX_FIELD]
    target = str(form.get("next", ""))
    arrival = "linked" if form.get("arrival") == "linked" else "direct"
    throttle, checker, address = request.app[THROTTLE], request.app[CHECKER], str(request.remote)
    wait = throttle.wait(name, address)
    if wait > 0:
        seconds = math.ceil(wait)
        message = f"Too many failed logins. Try again in {seconds} s."
        return _refusal(request, message, target, name, arrival, 429, seconds)
    if checker.full(address):
        message = "Too many logins at once. Try again in a moment."
        return _refusal(request, message, target, name, arrival, 503, BUSY_RETRY_AFTER)
    # From here to the check's start nothing awaits: the try is counted before anything else
    # can be let through, and stays counted as a failure unless it turns out right.
    throttle.attempt(name, address)
    user = access.users.get(name)
    valid = await checker.check(password, user.password if user else None, address)
    if user is None or not valid:
        return _page(request, "Wrong user name or password.", target, name, arrival, status=401)
    throttle.succeeded(name, address)
    # The page takes its session from the address's fragment and keeps it per origin, so
    # per port: a cookie would be sent to every port of this host.
    session = issue_session(access, user.name)
    location = with_session(_safe_next(target, access), session, arrival == "linked")
    response = web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
    forget_old_cookie(response, request, access)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session sent as `Authorization: Bearer` (the page forgets it itself)."""
    access = request.app[ACCESS]
    if access.token is not None and (session := identify(request, access)[1]) is not None:
        access.sessions.revoke(session)
    response = web.Response(status=204)
    forget_old_cookie(response, request, access)
    return response


async def session_info(request: web.Request) -> web.StreamResponse:
    """Who the page is talking for, what they may do, and whether logging out means anything."""
    principal = request[PRINCIPAL]
    return web.json_response(
        {"user": principal.user, "role": principal.role, "logout": SESSION in request}
    )


async def token_session(request: web.Request) -> web.StreamResponse:
    """The token, sent as `Authorization: Bearer`, traded for a session the page keeps: the
    session ends at logout, the token does not. Without authentication there is nothing to
    keep (`null`)."""
    access = request.app[ACCESS]
    if access.token is None:
        session = None
    elif SESSION in request or request[PRINCIPAL] is not OWNER:
        raise web.HTTPBadRequest(text="perview: send the token to have a session made\n")
    else:
        session = issue_session(access, TOKEN_USER)
    return web.json_response({"session": session}, headers={"Cache-Control": "no-store"})


def _safe_next(target: str, access: Access) -> str:
    """Where to go after logging in: `target` if it is a path of ours, else our home page.

    Never another site: not `//evil` nor `/\\evil`, and no control character or white space
    anywhere, since a browser drops tabs and newlines from a URL (`/<TAB>/evil` is `//evil`) and
    they have no place in a header. Other characters beyond ASCII are percent-encoded, so that
    look-alikes of `/` stay part of a path."""
    home = access.root_path + "/"
    if (
        not target.startswith(home)
        or target.startswith("//")
        or "\\" in target
        or any(c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in target)
    ):
        return home
    return quote(target, safe=PATH_CHARACTERS)


def _refusal(
    request: web.Request,
    message: str,
    target: str,
    name: str,
    arrival: str,
    status: int,
    seconds: int,
) -> web.Response:
    response = _page(request, message, target, name, arrival, status=status)
    response.headers["Retry-After"] = str(seconds)
    return response


def _page(
    request: web.Request,
    message: str,
    target: str,
    name: str,
    arrival: str,
    status: int = 200,
) -> web.Response:
    next_path = _safe_next(target, request.app[ACCESS])
    values = {"message": message, "next": next_path, "user": name, "arrival": arrival}
    page = PLACEHOLDER.sub(
        lambda m: html.escape(values[m[1]], quote=True), request.app[LOGIN_PAGE]
    ).replace("{{hidden}}", "" if message else "hidden")
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )
