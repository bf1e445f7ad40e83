"""Keep other web sites out: a page elsewhere can make its visitor's browser send requests here.

A server without tokens (loopback, by default) trusts every request, and a browser will send a
cross-site form post (multipart, so no CORS preflight) to 127.0.0.1 on a page's say-so; with DNS
rebinding the page may even read the answers, under its own host name. So a server without
tokens answers only to names that cannot be rebound (localhost, IP addresses, its own --host and
`allowed_hosts`), and every server refuses a state-changing request that a browser marks as sent
from another origin. Clients that are not browsers send no Origin and are not affected.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.problems import problem
from app.settings import LOOPBACK, Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(host: str) -> tuple[str, int | None] | None:
    """A Host header's (name, port): lowercased, IPv6 brackets and a trailing dot dropped;
    None when it is malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = host.partition(":")
    if port_text and not (port_text.isdigit() and int(port_text) < 65536):
        return None
    name = name.rstrip(".")
    return (name, int(port_text) if port_text else None) if name else None


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str, names: frozenset[str]) -> bool:
    """An IP address cannot be rebound to this server by a page elsewhere; a name can, unless it
    is one of `names`."""
    parts = split_host(host)
    return parts is not None and (parts[0] in names or _is_address(parts[0]))


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """Does the Origin header name this server, as the client reached it (scheme and Host)?

    An https page may post to a plain-http request (TLS ended at a proxy in front of this server);
    an http page may not post to an https server."""
    parts = urlsplit(origin)
    target = split_host(host)
    if target is None or parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return False
    if parts.scheme != scheme and not (parts.scheme == "https" and scheme == "http"):
        return False
    try:
        origin_port = parts.port
    except ValueError:
        return False
    default = DEFAULT_PORTS[parts.scheme]
    name, port = target
    return parts.hostname.rstrip(".") == name and (origin_port or default) == (port or default)


class CrossSiteGuard:
    """Pure ASGI: it answers before anything reads the request body."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        # Only a server without tokens trusts whoever reaches it; with tokens, the Host is free.
        self.check_host = not settings.auth_required
        listed = (name.strip().lower().rstrip(".") for name in settings.allowed_hosts.split(","))
        self.names = frozenset({*LOOPBACK, settings.host.lower(), *(n for n in listed if n)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], scope.get("scheme", "http"), headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, detail = refusal
        await problem(status, detail)(scope, receive, send)

    def refusal(self, method: str, scheme: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, detail) of the refusal, or None to let the request through."""
        host = headers.get("host")
        if self.check_host and host is not None and not host_allowed(host, self.names):
            return 421, (
                f"this server, which asks for no token, does not answer to the host name {host!r}"
                " (a web page could otherwise reach it by DNS rebinding); add the name to "
                "BIRTHDAY_ALLOWED_HOSTS if it is yours"
            )
        if method in SAFE_METHODS:
            return None
        if headers.get("sec-fetch-site") == "cross-site":
            return 403, "the browser says this request comes from another site: refused"
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, scheme, host or ""):
            return 403, f"a request from the page origin {origin!r} may not change anything here"
        return None
