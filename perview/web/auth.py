"""Who may talk to Perview: the Host check, the Origin check, the token and logged-in users,
their roles, and the safe headers every response carries."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from perview.accounts import TOKEN_USER, Role, SessionKeys
from perview.config import UserConfig
from perview.hub import OPERATOR
from perview.web.proxy import client_scheme

# The page uses only its own files; nothing inline, nothing framed, no referrer to leak a token.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

HSTS = "max-age=31536000"  # a year: browsers insist on https for this host from then on

# Liveness probes carry no credential and learn nothing; the login page is how one gets one.
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/logout"})
DEFAULT_SESSION_LIFETIME = 12 * 3600.0


@dataclass(frozen=True, slots=True)
class Access:
    """The access rules of one server."""

    token: str | None  # None: no authentication (only allowed on loopback)
    allowed_hosts: frozenset[str]  # host names accepted besides IP literals and localhost
    root_path: str = ""  # the prefix a reverse proxy serves us under
    cookie_prefix: str = "perview"
    users: Mapping[str, UserConfig] = field(default_factory=dict)
    sessions: SessionKeys = field(
        default_factory=lambda: SessionKeys(None, DEFAULT_SESSION_LIFETIME)
    )

    def secret_of(self, user: str) -> str | None:
        """What a session of `user` is bound to: the token, or the user's password hash."""
        if user == TOKEN_USER:
            return self.token
        found = self.users.get(user)
        return found.password if found else None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user, or whoever holds the token (user None), and what they may do."""

    user: str | None
    role: Role


PRINCIPAL = web.RequestKey("principal", Principal)
OWNER = Principal(None, "operator")  # the token, or no authentication at all


def require_operator(request: web.Request) -> str:
    """Stopping and restarting are for operators; viewers only watch. Returns who is acting,
    as a state says it ("stopped by alice")."""
    principal = request[PRINCIPAL]
    if principal.role != "operator":
        raise web.HTTPForbidden(text="perview: only an operator may do this\n")
    return principal.user or OPERATOR


def host_allowed(host_header: str, allowed: frozenset[str]) -> bool:
    """Is this `Host` safe from DNS rebinding?

    IP literals are (a rebinding attack needs a name the attacker controls), and so are
    `localhost` and `*.localhost`, which browsers resolve to loopback themselves.
    """
    host = _strip_port(host_header).lower().rstrip(".")
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost") or host in allowed:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _strip_port(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:9999
        return host_header[1:].partition("]")[0]
    if host_header.count(":") == 1:
        return host_header.partition(":")[0]
    return host_header


def cookie_name(request: web.Request, access: Access) -> str:
    """Cookies are not kept apart by port, so the name carries the port the browser sees: two
    Perviews on one machine, or one restarted on a port chosen anew, never mix their cookies."""
    host = request.headers.get("Host", "")
    port = host.rpartition(":")[2] if host.rpartition(":")[2].isdigit() else "default"
    return f"{access.cookie_prefix}_{port}"


def _identify(request: web.Request, access: Access) -> tuple[Principal | None, bool]:
    """Who the client is (None: nobody we know), and whether it said so with `?token=`."""
    assert access.token is not None
    if "token" in request.query:
        return (OWNER if _is_token(request.query["token"], access.token) else None), True
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return (OWNER if _is_token(value.strip(), access.token) else None), False
    return session_principal(request, access), False


def session_principal(request: web.Request, access: Access) -> Principal | None:
    """Who the session cookie says the client is, if it is valid."""
    cookie = request.cookies.get(cookie_name(request, access))
    session = access.sessions.check(cookie, access.secret_of) if cookie else None
    if session is None:
        return None
    if session.user == TOKEN_USER:
        return OWNER
    return Principal(session.user, access.users[session.user].role)


def _is_token(presented: str, token: str) -> bool:
    # aiohttp decodes header bytes that are not UTF-8 as surrogates; encode them back the same way.
    return hmac.compare_digest(presented.encode(errors="surrogateescape"), token.encode())


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        # Set by the browser, never by a page; and it is there when Origin is "null", as for a
        # form posted under `Referrer-Policy: no-referrer` (the login and logout forms).
        # "none" is the user's own doing: an address typed, a bookmark.
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser request made by another page (curl, a same-origin GET)
    return origin == f"{request.scheme}://{request.host}"


def _refuse(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"perview: {message}\n")


def add_security_headers(app: web.Application, hsts: bool) -> None:
    """Every response gets the safe headers, streams included: they are added just before the
    headers are sent (a middleware adding them after the handler would be too late for a
    stream, whose headers went out when it started)."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # Also when a trusted TLS proxy is in front: the browser sees https either way.
        if hsts or client_scheme(request) == "https":
            response.headers.setdefault("Strict-Transport-Security", HSTS)

    app.on_response_prepare.append(on_prepare)


def security_middleware(access: Access) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host", ""), access.allowed_hosts):
            return _refuse(403, "this Host is not allowed (add it with --allowed-host)")
        path = request.path.removeprefix(access.root_path) or "/"
        # Streams start commands, so another site must not open them (not even with an <img>);
        # a cross-site link to the page itself is fine.
        streams = path.endswith(("/text", "/events")) or (path == "/" and not _wants_html(request))
        if (request.method not in ("GET", "HEAD") or streams) and not _same_origin(request):
            return _refuse(403, "cross-origin request refused")
        if access.token is None:
            request[PRINCIPAL] = OWNER
            return await handler(request)
        if path in PUBLIC_PATHS or path.startswith("/static/"):  # the page's code is no secret
            return await handler(request)
        principal, in_query = _identify(request, access)
        if principal is None:
            return _unauthorized(request, access)
        request[PRINCIPAL] = principal
        if in_query and _wants_html(request) and request.method == "GET":
            # Log the browser in with a session cookie, then drop the token from its address
            # bar and history.
            rest = [(k, v) for k, v in request.query.items() if k != "token"]
            location = request.path + ("?" + urlencode(rest) if rest else "")
            redirect = web.Response(status=303, headers={"Location": location})
            set_session_cookie(redirect, request, access, TOKEN_USER)
            return redirect
        answer = await handler(request)
        if in_query and not answer.prepared:
            set_session_cookie(answer, request, access, TOKEN_USER)
        return answer

    return middleware


def _unauthorized(request: web.Request, access: Access) -> web.StreamResponse:
    if access.users and _wants_html(request) and request.method == "GET":
        # A person at a browser: the login page, which brings them back here.
        target = request.path_qs
        return web.Response(
            status=303,
            headers={"Location": f"{access.root_path}/login?next={quote(target, safe='')}"},
        )
    how = "log in at /login, " if access.users else ""
    response = _refuse(
        401,
        f"a token is required: {how}open the URL Perview printed at start, "
        "or send 'Authorization: Bearer TOKEN'",
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="perview"'
    return response


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, access: Access, user: str
) -> None:
    secret = access.secret_of(user)
    assert secret is not None
    response.set_cookie(
        cookie_name(request, access),
        access.sessions.issue(user, secret),
        max_age=int(access.sessions.lifetime),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path=access.root_path + "/",
    )


def clear_session_cookie(
    response: web.StreamResponse, request: web.Request, access: Access
) -> None:
    response.del_cookie(cookie_name(request, access), path=access.root_path + "/")


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")
