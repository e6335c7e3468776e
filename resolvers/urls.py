"""Addresses handed to clients: the public origin, media and invite URLs, the cookie's `Secure`.

With `COWATCH_PUBLIC_URL` set, every address is built from it. Without it, from the request
itself (its scheme, after uvicorn's trusted-proxy `X-Forwarded-Proto`, and its `Host`), so a
server started with `--host 0.0.0.0` hands a friend at `http://192.168.1.5:8000` addresses on
`192.168.1.5`, not on the machine's loopback. Faces pass what their request carries; nothing
here knows a framework.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

#: a Host header we are willing to echo back into URLs: a name or IPv4 address, or a bracketed
#: IPv6 address, and an optional port; anything else falls back to the listening address
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$"
)
SECURE_SCHEMES = frozenset({"https", "wss"})


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_header(scope: Mapping[str, Any]) -> str:
    """The `Host` a request (HTTP or websocket ASGI scope) names; empty without one."""
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return bytes(value).decode("latin-1")
    return ""


def is_secure(scope: Mapping[str, Any]) -> bool:
    """HTTPS or WSS, directly or as a trusted proxy's `X-Forwarded-Proto` says (uvicorn puts it
    in the scope for the addresses in `FORWARDED_ALLOW_IPS`)."""
    return scope.get("scheme") in SECURE_SCHEMES


def public_base(*, configured: str | None, scope: Mapping[str, Any]) -> str:
    """The origin clients reach us at, without a trailing slash: `COWATCH_PUBLIC_URL` when set,
    else the request's scheme (`ws`/`wss` read as `http`/`https`) and `Host` (the listening
    address when the header is missing or malformed)."""
    if configured:
        return configured.rstrip("/")
    host = host_header(scope)
    if not _HOST.match(host):
        server = scope.get("server")
        if server is None:
            host = "localhost"
        else:
            name, port = server
            host = _authority(name, port) if port else name
    return f"{'https' if is_secure(scope) else 'http'}://{host.lower()}"


def absolute(base: str, url: str) -> str:
    """A URL as clients should get it: a path on this server (local media) put after `base`
    (a path in `COWATCH_PUBLIC_URL` kept); an absolute URL (presigned S3) unchanged."""
    return f"{base}{url}" if url.startswith("/") else url


def invite_url(*, base: str, code: str) -> str:
    """A party's invite link, `<public url>/p/<code>` (the page in web/ opens it); `base` is
    `public_base(...)` of the request being answered."""
    return f"{base}/p/{quote(code, safe='')}"


def hostname(host: str) -> str:
    """The name part of a `Host` header: no port, no IPv6 brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_local(host: str) -> bool:
    """`localhost`, `*.localhost` or a loopback address: browsers treat these origins as
    secure even over plain HTTP, and keep a `Secure` cookie from them."""
    name = hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def secure_cookie(*, configured: str | None, scope: Mapping[str, Any]) -> bool:
    """Whether the session cookie may carry `Secure` and still be kept by the browser: over
    HTTPS (directly, or as a trusted proxy says), when the public URL is HTTPS, or on a local
    host. Plain HTTP at a LAN address gets a cookie without it, or the browser drops it."""
    if is_secure(scope) or (configured or "").startswith("https://"):
        return True
    return is_local(host_header(scope))
