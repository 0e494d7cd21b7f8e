"""Who may talk to Perview: the Host check, the access token, the Origin check, safe headers."""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

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

PUBLIC_PATHS = frozenset({"/healthz"})  # liveness probes carry no token and learn nothing


@dataclass(frozen=True, slots=True)
class Access:
    """The access rules of one server."""

    token: str | None  # None: no authentication (only allowed on loopback)
    allowed_hosts: frozenset[str]  # host names accepted besides IP literals and localhost
    root_path: str = ""  # the prefix a reverse proxy serves us under
    cookie_prefix: str = "perview"


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


def _presented_token(request: web.Request, access: Access) -> tuple[str | None, bool]:
    """The token the client sent, and whether it came in the query string."""
    if "token" in request.query:
        return request.query["token"], True
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip(), False
    return request.cookies.get(cookie_name(request, access)), False


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    if origin is None:
        return True  # not a browser request made by another page (curl, a same-origin GET)
    return origin == f"{request.scheme}://{request.host}"


def _refuse(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"perview: {message}\n")


def add_security_headers(app: web.Application, hsts: bool) -> None:
    """Every response gets the safe headers, streams included: they are added just before the
    headers are sent (a middleware adding them after the handler would be too late for a
    stream, whose headers went out when it started)."""
    headers = dict(SECURITY_HEADERS)
    if hsts:
        headers["Strict-Transport-Security"] = "max-age=31536000"

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in headers.items():
            response.headers.setdefault(name, value)

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
        if access.token is None or path in PUBLIC_PATHS:
            return await handler(request)
        token, in_query = _presented_token(request, access)
        if token is None or not hmac.compare_digest(token.encode(), access.token.encode()):
            response = _refuse(
                401,
                "a token is required: open the URL Perview printed at start, "
                "or send 'Authorization: Bearer TOKEN'",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="perview"'
            return response
        if in_query and _wants_html(request) and request.method == "GET":
            # Log the browser in with a cookie, then drop the token from its address bar and
            # history.
            rest = [(k, v) for k, v in request.query.items() if k != "token"]
            location = request.path + ("?" + urlencode(rest) if rest else "")
            redirect = web.Response(status=303, headers={"Location": location})
            _set_cookie(redirect, access, request)
            return redirect
        answer = await handler(request)
        if in_query and not answer.prepared:
            _set_cookie(answer, access, request)
        return answer

    return middleware


def _set_cookie(response: web.StreamResponse, access: Access, request: web.Request) -> None:
    assert access.token is not None
    response.set_cookie(
        cookie_name(request, access),
        access.token,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path=access.root_path + "/",
    )


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")
