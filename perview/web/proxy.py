"""Behind a reverse proxy: who the client is and which scheme it used.

A proxy's connection tells us only the proxy's address and plain http. When (and only when) the
connection comes from an address named as a trusted proxy, its `X-Forwarded-For` and
`X-Forwarded-Proto` headers (or, if it sends neither, RFC 7239 `Forwarded: for=;proto=`) name
the client and its scheme, and every later part of the app sees a request with those: the
login lock-out and the stream limits count per client, the session cookie is `Secure` and HSTS
is sent when the client used https, and the Origin check compares with the client's scheme.
From anyone else these headers are ignored, so a client cannot choose its own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from perview.config import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class Client:
    """The far end of a proxied request, as the trusted proxy named it."""

    remote: str
    scheme: str


# Set on the request aiohttp made, before the clone the handlers get: aiohttp prepares a
# returned response with its own request, so what runs then (HSTS) must find the client there.
CLIENT = web.RequestKey("client", Client)


def client_scheme(request: web.BaseRequest) -> str:
    """The scheme the client used: what a trusted proxy said, else the connection's own."""
    found = request.get(CLIENT)
    return found.scheme if found is not None else request.scheme


def proxy_middleware(proxies: Sequence[Network]) -> Middleware:
    """Outermost middleware: hand the rest of the app a request whose `remote` and `scheme` are
    the client's, when a trusted proxy says who that is."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = forwarded_client(request, proxies) if proxies else None
        if client is None:
            return await handler(request)
        request[CLIENT] = client
        return await handler(request.clone(remote=client.remote, scheme=client.scheme))

    return middleware


def forwarded_client(request: web.BaseRequest, proxies: Sequence[Network]) -> Client | None:
    """Who a trusted proxy forwarded this request for; None when the peer is not a trusted
    proxy, or when what it sent cannot be read (then the connection's own values stand).

    The client is the right-most address in the chain that is not itself a trusted proxy:
    anything to the left of it was written by the client and proves nothing."""
    peer = _address(request.remote or "")
    if peer is None or not _trusted(peer, proxies):
        return None
    hops = _hops(request, str(peer))
    if not hops:
        return None
    chosen: tuple[Address, str | None] | None = None
    for named, proto in reversed(hops):
        address = _address(named)
        if address is None:
            return None  # "unknown", an obfuscated name, garbage: trust none of the header
        chosen = (address, proto)
        if not _trusted(address, proxies):
            break
    assert chosen is not None
    address, proto = chosen
    if proto is None:
        return Client(str(address), request.scheme)
    if proto.strip().lower() not in SCHEMES:
        return None
    return Client(str(address), proto.strip().lower())


def _hops(request: web.BaseRequest, peer: str) -> list[tuple[str, str | None]]:
    """(client address, scheme) as each proxy recorded them, the nearest proxy's last."""
    headers = request.headers
    if hdrs.X_FORWARDED_FOR in headers or hdrs.X_FORWARDED_PROTO in headers:
        named = _items(headers.getall(hdrs.X_FORWARDED_FOR, ())) or [peer]
        protos = _items(headers.getall(hdrs.X_FORWARDED_PROTO, ()))
        if len(protos) == len(named):
            return list(zip(named, protos, strict=True))
        if len(protos) > 1:
            return []  # a list of schemes that matches no list of addresses
        # One scheme: the edge proxy's, passed on unchanged by any behind it.
        return [(address, protos[0] if protos else None) for address in named]
    return [(element.get("for", ""), element.get("proto")) for element in request.forwarded]


def _items(values: Iterable[str]) -> list[str]:
    # Repeated header lines are one comma-separated list (RFC 9110, section 5.3).
    return [item.strip() for value in values for item in value.split(",")]


def _address(text: str) -> Address | None:
    """The IP address in `1.2.3.4`, `1.2.3.4:567`, `::1` or `[::1]:567`; None for anything
    else."""
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    # A proxy reaching a server bound to "::" over IPv4 appears as ::ffff:127.0.0.1.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in proxies)
