"""Addresses from the request when no public URL is configured; the cookie's `Secure` by origin."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers import auth
from resolvers.urls import absolute, invite_url, is_local, public_base, secure_cookie


def scope(host: str | None, scheme: str = "http", server: Any = ("10.0.0.2", 8000)) -> Any:
    headers = [(b"host", host.encode("latin-1"))] if host is not None else []
    return {"type": "http", "scheme": scheme, "headers": headers, "server": server}


@pytest.mark.parametrize(
    ("host", "scheme", "expected"),
    [
        ("192.168.1.5:8000", "http", "http://192.168.1.5:8000"),
        ("Party.LAN:8000", "http", "http://party.lan:8000"),
        ("cowatch.example", "https", "https://cowatch.example"),
        ("cowatch.example", "wss", "https://cowatch.example"),
        ("192.168.1.5:8000", "ws", "http://192.168.1.5:8000"),
        ("[fe80::1]:8000", "http", "http://[fe80::1]:8000"),
        # no Host, or one that is not a host: the listening address, never the header's text
        (None, "http", "http://10.0.0.2:8000"),
        ('evil.example/"><script>', "http", "http://10.0.0.2:8000"),
        ("a b", "http", "http://10.0.0.2:8000"),
        ("", "https", "https://10.0.0.2:8000"),
    ],
)
def test_the_base_is_the_requests_own_origin(host: str | None, scheme: str, expected: str) -> None:
    assert public_base(configured=None, scope=scope(host, scheme)) == expected


def test_a_configured_public_url_wins_over_the_request() -> None:
    configured = "https://cowatch.example/"
    assert public_base(configured=configured, scope=scope("192.168.1.5:8000")) == (
        "https://cowatch.example"
    )


def test_a_listening_address_in_ipv6_is_bracketed() -> None:
    assert public_base(configured=None, scope=scope(None, server=("::1", 9))) == "http://[::1]:9"
    assert public_base(configured=None, scope=scope(None, server=None)) == "http://localhost"


def test_paths_join_the_base_and_absolute_urls_stay() -> None:
    assert absolute("http://192.168.1.5:8000", "/media/videos/x/240p.mp4") == (
        "http://192.168.1.5:8000/media/videos/x/240p.mp4"
    )
    # a path in the public URL is kept (a server behind a proxy under /cowatch)
    assert absolute("https://example.org/cowatch", "/media/a") == (
        "https://example.org/cowatch/media/a"
    )
    presigned = "https://s3.example/bucket/videos/x/240p.mp4?X-Amz-Signature=1"
    assert absolute("http://192.168.1.5:8000", presigned) == presigned


def test_invite_urls() -> None:
    assert invite_url(base="http://192.168.1.5:8000", code="Ab-_9x") == (
        "http://192.168.1.5:8000/p/Ab-_9x"
    )
    assert invite_url(base="https://c.example", code="a/b?c") == "https://c.example/p/a%2Fb%3Fc"


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("localhost:8000", True),
        ("app.localhost:8000", True),
        ("127.0.0.1:8000", True),
        ("127.8.9.10", True),
        ("[::1]:8000", True),
        ("192.168.1.5:8000", False),
        ("10.0.0.2", False),
        ("[fe80::1]:8000", False),
        ("party.lan", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_local_hosts(host: str, local: bool) -> None:
    assert is_local(host) is local


@pytest.mark.parametrize(
    ("configured", "host", "scheme", "secure"),
    [
        (None, "localhost:8000", "http", True),
        (None, "127.0.0.1:8000", "http", True),
        (None, "192.168.1.5:8000", "https", True),  # TLS, or a trusted proxy's X-Forwarded-Proto
        (None, "192.168.1.5:8000", "http", False),
        (None, "party.lan", "http", False),
        ("https://cowatch.example", "192.168.1.5:8000", "http", True),
        ("http://party.lan:8000", "party.lan:8000", "http", False),
    ],
)
def test_secure_only_where_the_browser_keeps_it(
    configured: str | None, host: str, scheme: str, secure: bool
) -> None:
    assert secure_cookie(configured=configured, scope=scope(host, scheme)) is secure


def test_the_seed_cookie_exactly_or_without_secure() -> None:
    assert auth.session_cookie("t", ttl_s=60, secure=True).startswith(
        "Authentication=t; HttpOnly; Secure; SameSite=Strict"
    )
    assert auth.session_cookie("t", ttl_s=60, secure=False) == (
        "Authentication=t; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
    )
