"""Browser test tools: Debian's Chromium driven by Playwright, a generated clip, API helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from websockets.sync.client import connect
from websockets.typing import Subprotocol

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Followers start playback without a click of their own, as a page would after the first one.
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
]
PASSWORD = "correct horse battery"
# Assertions wait for an event; a loaded 2-core CI machine needs longer than the 5 s default.
expect.set_options(timeout=20_000)


@contextmanager
def chromium(extra_args: list[str] | None = None) -> Iterator[Browser]:
    """Headless Chromium from the distribution; a missing browser fails the run, never skips."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run .ci/install-browser (apt-get install chromium)")
    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, *(extra_args or [])]
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Viewer:
    """A signed-up user and a browser context signed in as them."""

    username: str
    email: str
    token: str
    user_id: str
    context: BrowserContext
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def page(self) -> Page:
        """A new tab; uncaught errors land in `errors`, console output in `console`."""
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{self.username}: {error}"))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        return page


def api_signup(base_url: str, username: str) -> tuple[str, str, str]:
    """Sign up and log in over REST; (email, token, user id)."""
    email = f"{username}@example.com"
    body = {"email": email, "password": PASSWORD, "username": username}
    response = httpx.post(f"{base_url}/api/auth/signup", json=body)
    assert response.status_code == 201, response.text
    login = httpx.post(f"{base_url}/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return email, login.json()["access_token"], login.json()["user"]["id"]


def upload_clip(base_url: str, token: str, clip: Path, title: str) -> str:
    with clip.open("rb") as file:
        response = httpx.post(
            f"{base_url}/api/videos/upload",
            headers={"Authorization": f"Bearer {token}"},
            data={"title": title, "description": "A generated test pattern.", "category": "Tests"},
            files={"file": (clip.name, file, "video/mp4")},
            timeout=60,
        )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def await_transcoded(ws_url: str, token: str, video_id: str, timeout: float = 90) -> None:
    """Follow the `videoProcessing` subscription until the video is TRANSCODED."""
    query = "subscription($id: ID!) { videoProcessing(videoId: $id) { status failureReason } }"
    with connect(
        f"{ws_url}/graphql",
        subprotocols=[Subprotocol("graphql-transport-ws")],
        open_timeout=10,
    ) as socket:
        socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        assert json.loads(socket.recv(timeout=10))["type"] == "connection_ack"
        message: dict[str, Any] = {"id": "1", "type": "subscribe"}
        message["payload"] = {"query": query, "variables": {"id": video_id}}
        socket.send(json.dumps(message))
        while True:
            event = json.loads(socket.recv(timeout=timeout))
            assert event["type"] == "next", event
            video = event["payload"]["data"]["videoProcessing"]
            if video["status"] == "TRANSCODED":
                return
            assert video["status"] == "PROCESSING", video
