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

from perview.accounts import LoginThrottle, PasswordChecker
from perview.web.auth import (
    PRINCIPAL,
    Access,
    clear_session_cookie,
    cookie_name,
    session_principal,
    set_session_cookie,
)

PLACEHOLDER = re.compile(r"\{\{(message|next|user)\}\}")
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


async def login_page(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    if not access.users:
        raise web.HTTPNotFound(text="perview: no users are configured; use the token URL\n")
    return _page(request, "", request.query.get("next", ""), "")


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
    throttle, checker, address = request.app[THROTTLE], request.app[CHECKER], str(request.remote)
    wait = throttle.wait(name, address)
    if wait > 0:
        seconds = math.ceil(wait)
        message = f"Too many failed logins. Try again in {seconds} s."
        return _refusal(request, message, target, name, 429, seconds)
    if checker.full(address):
        message = "Too many logins at once. Try again in a moment."
        return _refusal(request, message, target, name, 503, BUSY_RETRY_AFTER)
    # From here to the check's start nothing awaits: the try is counted before anything else
    # can be let through, and stays counted as a failure unless it turns out right.
    throttle.attempt(name, address)
    user = access.users.get(name)
    valid = await checker.check(password, user.password if user else None, address)
    if user is None or not valid:
        return _page(request, "Wrong user name or password.", target, name, status=401)
    throttle.succeeded(name, address)
    response = web.Response(status=303, headers={"Location": _safe_next(target, access)})
    set_session_cookie(response, request, access, user.name)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS]
    cookie = request.cookies.get(cookie_name(request, access))
    session = access.sessions.check(cookie, access.secret_of) if cookie else None
    if session is not None:
        access.sessions.revoke(session)
    where = "/login" if access.users else "/"
    response = web.Response(status=303, headers={"Location": access.root_path + where})
    clear_session_cookie(response, request, access)
    return response


async def session_info(request: web.Request) -> web.StreamResponse:
    """Who the page is talking for, what they may do, and whether logging out means anything."""
    access = request.app[ACCESS]
    principal = request[PRINCIPAL]
    cookie_login = access.token is not None and session_principal(request, access) is not None
    return web.json_response(
        {"user": principal.user, "role": principal.role, "logout": cookie_login}
    )


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
    request: web.Request, message: str, target: str, name: str, status: int, seconds: int
) -> web.Response:
    response = _page(request, message, target, name, status=status)
    response.headers["Retry-After"] = str(seconds)
    return response


def _page(
    request: web.Request, message: str, target: str, name: str, status: int = 200
) -> web.Response:
    values = {"message": message, "next": _safe_next(target, request.app[ACCESS]), "user": name}
    page = PLACEHOLDER.sub(
        lambda m: html.escape(values[m[1]], quote=True), request.app[LOGIN_PAGE]
    ).replace("{{hidden}}", "" if message else "hidden")
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )
