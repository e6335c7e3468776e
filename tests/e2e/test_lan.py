"""A server without COWATCH_PUBLIC_URL, reached at addresses other than its loopback.

Started as `cowatch serve` is on a LAN (no public URL), it must hand a friend at
`http://192.168.1.5:8000` media URLs on that address that really serve the media, a session
cookie the browser keeps over plain HTTP there (no `Secure`), the seed's exact cookie on HTTPS
(a trusted proxy's `X-Forwarded-Proto`) and on localhost, and https:// URLs behind such a proxy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import PASSWORD, api_signup, await_transcoded, chromium, upload_clip
from tests.e2e.nginx import config, nginx, self_signed
from tests.media import make_clip
from tests.servers import ROOT, Server, cowatch_serve

LAN = "192.168.1.5:8000"
LOGIN = {"email": "lan@example.com", "password": PASSWORD}
VIDEO_QUERY = "query($id: ID!) { video(id: $id) { thumbnailUrl renditions { quality url } } }"


def embedded(root: Path, **extra: str) -> dict[str, str]:
    env = {"COWATCH_DATA_DIR": str(root / "data"), "COWATCH_PUBLIC_URL": "", **extra}
    for name in ("COWATCH_DATABASE_URL", "COWATCH_REDIS_URL", "COWATCH_STORAGE_URL"):
        env[name] = ""
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("lan")
    with cowatch_serve(embedded(root), root) as running:
        yield running


@pytest.fixture(scope="module")
def video_id(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    _, token, _ = api_signup(server.url, "lan")
    clip = make_clip(tmp_path_factory.mktemp("clip") / "lan.mp4", 320, 240, seconds=1)
    video = upload_clip(server.url, token, clip, "On the LAN")
    await_transcoded(server.ws_url, token, video)
    return video


def fetch_as(server: Server, url: str, host: str) -> httpx.Response:
    """GET `url` (on `host`) from the server itself, as that host's clients would reach it."""
    parts = urlsplit(url)
    assert parts.netloc == host, url
    headers = {"Host": host, "Range": "bytes=0-63"}
    return httpx.get(f"{server.url}{parts.path}", headers=headers, timeout=10)


def media_urls(server: Server, video_id: str, headers: dict[str, str]) -> list[str]:
    """Every media URL the REST, GraphQL and page faces give a client sending `headers`."""
    rest = httpx.get(f"{server.url}/api/videos/{video_id}", headers=headers).json()
    body = {"query": VIDEO_QUERY, "variables": {"id": video_id}}
    graphql = httpx.post(f"{server.url}/graphql", json=body, headers=headers).json()
    video = graphql["data"]["video"]
    page = httpx.get(f"{server.url}/watch/{video_id}", headers=headers).text
    feed = httpx.get(f"{server.url}/api/videos/feed", headers=headers).json()
    return [
        *rest["video_urls"].values(),
        rest["thumbnail_url"],
        video["thumbnailUrl"],
        *(r["url"] for r in video["renditions"]),
        *re.findall(r'(?:src|poster|value)="([^"]*/media/[^"]*)"', page),
        *(v["thumbnail_url"] for v in feed["videos"]),
    ]


def test_media_urls_follow_a_lan_host_and_serve_the_media(server: Server, video_id: str) -> None:
    urls = media_urls(server, video_id, {"Host": LAN})
    assert len(urls) >= 6, urls
    for url in urls:
        assert url.startswith(f"http://{LAN}/media/videos/{video_id}/"), url
        response = fetch_as(server, url, LAN)
        assert response.status_code == 206, (url, response.status_code)
        if url.endswith(".mp4"):
            assert response.content[4:8] == b"ftyp", url
        else:
            assert response.content[:2] == b"\xff\xd8", url  # a JPEG


def test_behind_a_trusted_https_proxy_urls_are_https(server: Server, video_id: str) -> None:
    # The test client connects from 127.0.0.1, uvicorn's default FORWARDED_ALLOW_IPS.
    proxied = {"Host": "cowatch.example", "X-Forwarded-Proto": "https"}
    urls = media_urls(server, video_id, proxied)
    assert urls and all(u.startswith("https://cowatch.example/media/") for u in urls), urls
    page = httpx.get(f"{server.url}/watch/{video_id}", headers={"Host": LAN})
    assert f"ws://{LAN}" in page.headers["content-security-policy"]


def login_cookie(server: Server, headers: dict[str, str]) -> str:
    response = httpx.post(f"{server.url}/api/auth/login", json=LOGIN, headers=headers)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"Authentication={token}; "), cookie
    return cookie.removeprefix(f"Authentication={token}; ")


def test_the_cookie_is_secure_only_where_the_browser_keeps_it(
    server: Server, video_id: str
) -> None:
    seed = "HttpOnly; Secure; SameSite=Strict"
    assert login_cookie(server, {"Host": f"localhost:{server.port}"}).startswith(seed)
    assert login_cookie(server, {}).startswith(seed)  # 127.0.0.1
    proxied = {"Host": "cowatch.example", "X-Forwarded-Proto": "https"}
    assert login_cookie(server, proxied).startswith(seed)
    assert login_cookie(server, {"Host": LAN}).startswith("HttpOnly; SameSite=Strict; Path=/")


def test_an_untrusted_proxy_header_is_ignored(tmp_path: Path) -> None:
    """`X-Forwarded-Proto` from an address not in FORWARDED_ALLOW_IPS changes nothing."""
    env = embedded(tmp_path, FORWARDED_ALLOW_IPS="10.9.9.9")
    with cowatch_serve(env, tmp_path) as other:
        api_signup(other.url, "lan")
        forged = {"Host": LAN, "X-Forwarded-Proto": "https"}
        assert login_cookie(other, forged).startswith("HttpOnly; SameSite=Strict; Path=/")


def sign_in_and_play(origin: str, video_id: str, *, secure: bool) -> None:
    """Chromium resolving `party.lan` to this machine signs in at `origin`, keeps the cookie
    (`secure` or not), loads the media from `origin` and follows the room over its socket."""
    with chromium(["--host-resolver-rules=MAP party.lan 127.0.0.1"]) as browser:
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(f"{origin}/login?next=/watch/{video_id}")
        page.get_by_label("Email").fill(LOGIN["email"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{origin}/watch/{video_id}")
        # The cookie was kept: the page was rendered for the signed-in user.
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        (cookie,) = [c for c in context.cookies() if c["name"] == "Authentication"]
        assert cookie["domain"] == "party.lan" and cookie["secure"] is secure, cookie
        video = page.locator("#video")
        expect(video).to_have_attribute("src", re.compile(rf"^{re.escape(origin)}/media/"))
        page.wait_for_function("document.getElementById('video').readyState >= 1")
        # The GraphQL socket (ws:// or wss://, with the cookie) delivers the room's state.
        expect(page.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
        context.close()


def test_a_browser_at_a_lan_name_signs_in_and_plays(server: Server, video_id: str) -> None:
    """Plain HTTP at a name that is not a local host: the cookie without `Secure`."""
    sign_in_and_play(f"http://party.lan:{server.port}", video_id, secure=False)


def test_a_browser_behind_an_https_proxy_signs_in_and_plays(
    server: Server, video_id: str, tmp_path: Path
) -> None:
    """nginx terminating TLS on this machine (a trusted proxy): https:// addresses, the seed's
    Secure cookie, wss:// sockets."""
    with nginx(server.port, tmp_path, tls=self_signed(tmp_path, "party.lan")) as url:
        port = urlsplit(url).port
        sign_in_and_play(f"https://party.lan:{port}", video_id, secure=True)


def test_the_readmes_proxy_settings_are_the_tested_ones() -> None:
    """Every proxy directive the README shows is one the HTTPS test above ran nginx with."""
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```nginx\n(.*?)```", readme, re.S)
    shown = [
        line.strip() for line in block.splitlines() if line.strip().startswith(("proxy_", "map "))
    ]
    tested = {" ".join(line.split()) for line in config("", "443", 8000).splitlines()}
    assert shown and not [line for line in shown if " ".join(line.split()) not in tested], shown
