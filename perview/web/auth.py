"""Who may talk to Perview: the Host check, the Origin check, the token and logged-in users,
their roles, and the safe headers every response carries."""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from perview.accounts import SEP, TOKEN_USER, Role, Session, SessionKeys
from perview.config import ServerConfig, UserConfig
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

# Liveness probes carry no credential and learn nothing; the login page is how one gets one, and
# logging out ends only the session it is sent.
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/logout"})


@dataclass(frozen=True, slots=True)
class Access:
    """The access rules of one server."""

    token: str | None  # None: no authentication (only allowed on loopback)
    allowed_hosts: frozenset[str]  # host names accepted besides IP literals and localhost
    root_path: str = ""  # the prefix a reverse proxy serves us under
    cookie_prefix: str = "perview"
    users: Mapping[str, UserConfig] = field(default_factory=dict)
    sessions: SessionKeys = field(
        default_factory=lambda: SessionKeys(None, ServerConfig().session_lifetime)
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
SESSION = web.RequestKey("session", Session)  # set when the request came with a session
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
    """The session cookie of earlier versions, named after the port the browser sees. It is
    accepted for nothing now; login and logout delete it, as it still travels to every port."""
    host = request.headers.get("Host", "")
    port = host.rpartition(":")[2] if host.rpartition(":")[2].isdigit() else "default"
    return f"{access.cookie_prefix}_{port}"


def identify(request: web.Request, access: Access) -> tuple[Principal | None, Session | None]:
    """Who the client is by its `Authorization: Bearer` (None: nobody we know), and the session
    it sent, if it sent one rather than the token.

    Nothing else is a credential: not a cookie (a browser sends one to every port of the host,
    so any other service there would have it), not the query (it ends up in logs)."""
    assert access.token is not None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None, None
    if _is_token(value, access.token):
        return OWNER, None
    session = access.sessions.check(value, access.secret_of) if SEP in value else None
    if session is None:
        return None, None
    if session.user == TOKEN_USER:
        return OWNER, session
    return Principal(session.user, access.users[session.user].role), session


def still_let_in(request: web.Request, access: Access) -> bool:
    """Would the credential `request` came with let it in now: false for a session whose user
    a reload removed or whose password it changed (or that ended since). The token, and no
    authentication, change only with a restart."""
    session = request.get(SESSION)
    if session is None or session.user == TOKEN_USER:
        return True
    value = request.headers.get("Authorization", "").partition(" ")[2].strip()
    return access.sessions.check(value, access.secret_of) is not None


def issue_session(access: Access, user: str) -> str:
    """A new session for `user` (TOKEN_USER: whoever holds the token)."""
    secret = access.secret_of(user)
    assert secret is not None
    return access.sessions.issue(user, secret)


def with_session(path: str, session: str, linked: bool = False) -> str:
    """`path` with `session` in its fragment, for the page to take: a fragment reaches no
    server, no proxy log and no `Referer`. `linked`: the way here began on another site."""
    fragment = "session=" + quote(session, safe="~") + ("&arrival=linked" if linked else "")
    return path.partition("#")[0] + "#" + fragment


def arrived_directly(request: web.Request) -> bool:
    """Was this navigation the person's own doing (`Sec-Fetch-Site: none`: an address typed, a
    bookmark, the URL Perview printed) or the page's own (`same-origin`: its links, a reload)?
    Not when another site, another port of this host included, led here, nor when the browser
    does not say (every current one does)."""
    return request.headers.get("Sec-Fetch-Site") in ("none", "same-origin")


def _is_token(presented: str, token: str) -> bool:
    # aiohttp decodes header bytes that are not UTF-8 as surrogates; encode them back the same way.
    return hmac.compare_digest(presented.encode(errors="surrogateescape"), token.encode())


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        # Set by the browser, never by a page; and it is there when Origin is "null", as for a
        # form posted under `Referrer-Policy: no-referrer` (the login form).
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
    stream, whose headers went out when it started). See also `secure_parse_errors`."""

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # Also when a trusted TLS proxy is in front: the browser sees https either way.
        if hsts or client_scheme(request) == "https":
            response.headers.setdefault("Strict-Transport-Security", HSTS)

    app.on_response_prepare.append(on_prepare)


def secure_parse_errors(server: web.Server, hsts: bool) -> None:
    """The same headers on aiohttp's own answers to requests it cannot parse (a malformed
    request line, a bad method, an oversized header: 400, 413, 431).

    aiohttp answers those before routing, and a request that matched no route skips
    `on_response_prepare` (aiohttp#6463, open; no public hook as of 3.14). So requests are
    made of a class whose prepare hook adds the headers itself when there is no route. This uses
    two private names of aiohttp (`Request._prepare_hook`, `_make_request`'s `_cls`), which
    tests/test_limits_live.py checks against the installed version. Call before the site starts:
    each connection takes the factory when it opens. (Such a request has no headers to tell
    a trusted proxy's scheme by, so HSTS goes with Perview's own TLS only.)"""
    headers = dict(SECURITY_HEADERS)
    if hsts:
        headers["Strict-Transport-Security"] = HSTS

    class UnroutedRequest(web.Request):
        async def _prepare_hook(self, response: web.StreamResponse) -> None:
            if self._match_info is None:
                for name, value in headers.items():
                    response.headers.setdefault(name, value)
            await super()._prepare_hook(response)

    # The factory is the Application's `_make_request`, which takes `_cls`; the Server's type
    # for it does not say so.
    make_request = functools.partial(server.request_factory, _cls=UnroutedRequest)  # type: ignore[call-arg]
    server.request_factory = make_request


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
        if "token" in request.query and request.method == "GET" and _wants_html(request):
            return _token_to_fragment(request)
        if _public(request, path):
            return await handler(request)
        principal, session = identify(request, access)
        if principal is None:
            return _unauthorized(request, access)
        request[PRINCIPAL] = principal
        if session is not None:
            request[SESSION] = session
        return await handler(request)

    return middleware


def _public(request: web.Request, path: str) -> bool:
    """Paths that need no credential: the page's code is no secret, and nor is the page, which
    holds no data and is what a browser loads before it can send one (it sends none with a
    navigation). In `run` mode `GET /` to any other client is the stream, and is not public."""
    if path in PUBLIC_PATHS or path.startswith("/static/"):
        return True
    return path == "/" and request.method in ("GET", "HEAD") and _wants_html(request)


def _token_to_fragment(request: web.Request) -> web.StreamResponse:
    """A link with `?token=` (as earlier versions printed): the same address with the token
    in its fragment instead, where the page takes it and no log keeps it."""
    rest = [(k, v) for k, v in request.query.items() if k != "token"]
    location = request.path + ("?" + urlencode(rest) if rest else "")
    location += "#token=" + quote(request.query["token"], safe="")
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


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


def forget_old_cookie(response: web.StreamResponse, request: web.Request, access: Access) -> None:
    if cookie_name(request, access) in request.cookies:
        response.del_cookie(cookie_name(request, access), path=access.root_path + "/")


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")
