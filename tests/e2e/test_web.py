"""The web pages in a real browser: sign up, upload, and two viewers watching the same second."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import (
    PASSWORD,
    Viewer,
    api_signup,
    await_transcoded,
    chromium,
    upload_clip,
)
from tests.media import make_clip
from tests.servers import ROOT, Server, cowatch_serve

OUTPUT = ROOT / "test-output"
SYNC_S = 2_000  # ms: how soon a follower must be on the leader's second
TOLERANCE = 0.3  # s
VIDEO = "document.getElementById('video')"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("web")
    env = {"COWATCH_DATA_DIR": str(root / "data")}
    for name in ("COWATCH_DATABASE_URL", "COWATCH_REDIS_URL", "COWATCH_STORAGE_URL"):
        env[name] = ""
    with cowatch_serve(env, root) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven seconds with sound, enough to seek to 3.0 and play on; 480 lines give two qualities."""
    return make_clip(tmp_path_factory.mktemp("clip") / "pattern.mp4", 640, 480, seconds=7, fps=25)


def sign_in(browser: Browser, server: Server, username: str, *, via_signup: bool) -> Viewer:
    """A browser context signed in through the real /signup or /login page."""
    # bypass_csp: wait_for_function evaluates its predicate, which our CSP forbids in pages.
    context = browser.new_context(viewport={"width": 1000, "height": 720}, bypass_csp=True)
    email = f"{username}@example.com"
    page = context.new_page()
    if via_signup:
        page.goto(f"{server.url}/signup")
        page.get_by_label("Username").fill(username)
    else:
        api_signup(server.url, username)
        page.goto(f"{server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up" if via_signup else "Sign in").click()
    page.wait_for_url(f"{server.url}/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # The session is the HttpOnly cookie alone: no script can read the token (issue 10, 12).
    assert page.evaluate("Object.keys(localStorage).filter((k) => k !== 'cowatch.quality')") == []
    assert "Authentication" not in page.evaluate("document.cookie")
    (token,) = [c["value"] for c in context.cookies() if c["name"] == "Authentication"]
    user_id = page.evaluate("document.body.dataset.viewerId")
    page.close()
    return Viewer(username=username, email=email, token=token, user_id=user_id, context=context)


@pytest.fixture(scope="module")
def alice(browser: Browser, server: Server) -> Iterator[Viewer]:
    viewer = sign_in(browser, server, "alice", via_signup=False)
    yield viewer
    viewer.context.close()


@pytest.fixture(scope="module")
def bob(browser: Browser, server: Server) -> Iterator[Viewer]:
    viewer = sign_in(browser, server, "bob", via_signup=True)
    yield viewer
    viewer.context.close()


@pytest.fixture(scope="module")
def video_id(server: Server, alice: Viewer, clip: Path) -> str:
    video = upload_clip(server.url, alice.token, clip, "Test pattern")
    await_transcoded(server.ws_url, alice.token, video)
    return video


def current_time(page: Page) -> float:
    return float(page.evaluate(f"{VIDEO}.currentTime"))


def wait_near(page: Page, seconds: float, timeout: int = SYNC_S) -> None:
    page.wait_for_function(
        f"([want, tolerance]) => Math.abs({VIDEO}.currentTime - want) < tolerance",
        arg=[seconds, TOLERANCE],
        timeout=timeout,
    )


def open_watch(viewer: Viewer, server: Server, video_id: str) -> Page:
    """The watch page once it is following the room (first state applied, in sync)."""
    page = viewer.page()
    page.goto(f"{server.url}/watch/{video_id}")
    expect(page.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
    return page


PLAYER_STATE = f"""() => {{
    const v = {VIDEO}, p = window.cowatch?.player;
    return JSON.stringify({{
        currentTime: v.currentTime, paused: v.paused, rate: v.playbackRate, seeking: v.seeking,
        readyState: v.readyState, state: p?.state, drift: p?.drift, inflight: p?.inflight,
        offset: window.cowatch?.clock.offset, connected: window.cowatch?.socket?.connected,
    }});
}}"""


@contextmanager
def explained(*pairs: tuple[Viewer, Page]) -> Iterator[None]:
    """On failure, say where each player was and what its console said."""
    try:
        yield
    except Exception as exc:
        notes = [
            f"{viewer.username}: {page.evaluate(PLAYER_STATE)}\n  console: {viewer.console[-20:]}"
            for viewer, page in pairs
        ]
        raise AssertionError("\n".join(notes)) from exc


def no_page_errors(*viewers: Viewer) -> None:
    errors = [error for viewer in viewers for error in viewer.errors]
    assert not errors, (errors, [viewer.console for viewer in viewers])


def test_a_token_an_earlier_version_left_in_local_storage_is_removed(
    browser: Browser, server: Server
) -> None:
    """Earlier versions kept the JWT in localStorage, readable by any injected script; every
    page now removes it (issue 10, item 12)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.evaluate(
        "localStorage.setItem('cowatch.token', 'left.over.jwt');"
        "localStorage.setItem('cowatch.user', '{}')"
    )
    page.reload(wait_until="load")  # module scripts run before the load event
    left = page.evaluate(
        "[localStorage.getItem('cowatch.token'), localStorage.getItem('cowatch.user')]"
    )
    assert left == [None, None]
    context.close()


def test_feed_is_server_rendered_with_thumbnails(
    browser: Browser, server: Server, video_id: str
) -> None:
    html = httpx.get(f"{server.url}/").text
    assert f'href="/watch/{video_id}"' in html
    assert "Test pattern" in html
    assert 'href="/?category=Tests"' in html
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1000, "height": 720}
    )
    page = context.new_page()
    page.goto(f"{server.url}/?category=Tests")
    card = page.get_by_role("link", name="Test pattern")
    expect(card).to_be_visible()
    expect(page.locator(".thumb img")).to_have_count(1)
    page.wait_for_function("[...document.images].every((img) => img.complete && img.naturalWidth)")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "feed.png")
    context.close()


def test_anonymous_viewers_follow_the_room_read_only(
    browser: Browser, server: Server, alice: Viewer, video_id: str
) -> None:
    context = browser.new_context(bypass_csp=True)
    anonymous = Viewer(username="anonymous", email="", token="", user_id="", context=context)
    page = anonymous.page()
    page.goto(f"{server.url}/watch/{video_id}")
    expect(page.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
    expect(page.get_by_role("link", name="Sign in").last).to_have_attribute(
        "href", f"/login?next=/watch/{video_id}"
    )
    # A signed-in viewer seeks: the signed-out one follows.
    a = open_watch(alice, server, video_id)
    a.evaluate(f"{VIDEO}.currentTime = 2.0")
    wait_near(page, 2.0)
    expect(page.locator("#last-change")).to_have_text("alice moved to 0:02")
    # The signed-out viewer's own seek is not shared, and the room puts it back.
    version = a.evaluate(VERSION)
    page.evaluate(f"{VIDEO}.currentTime = 5.0")
    expect(page.locator("#last-change")).to_have_text("Sign in to control playback for everyone.")
    wait_near(page, 2.0)
    assert a.evaluate(VERSION) == version
    no_page_errors(anonymous, alice)
    a.close()
    context.close()


def test_upload_page_shows_upload_and_transcoding_progress(
    server: Server, alice: Viewer, clip: Path
) -> None:
    page = alice.page()
    page.goto(f"{server.url}/upload")
    page.get_by_label("Video file").set_input_files(clip)
    page.get_by_label("Title").fill("Uploaded in the browser")
    page.get_by_label("Category").fill("Tests")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-text")).to_have_text("Uploaded.", timeout=30_000)
    assert page.evaluate("document.getElementById('upload-progress').value") == 100
    expect(page.locator("#transcode-text")).to_have_attribute(
        "data-status", "TRANSCODED", timeout=90_000
    )
    expect(page.locator("#transcode-progress")).to_have_js_property("value", 100)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "upload.png", full_page=True)
    page.get_by_role("link", name="Watch it").click()
    page.wait_for_url(f"{server.url}/watch/*")
    expect(page.locator("#video")).to_be_visible()
    no_page_errors(alice)
    page.close()


def test_a_watch_page_opened_during_transcoding_becomes_the_player(
    server: Server, bob: Viewer, clip: Path
) -> None:
    video = upload_clip(server.url, bob.token, clip, "Still transcoding")
    page = bob.page()
    page.goto(f"{server.url}/watch/{video}")
    # Either still transcoding (the page follows videoProcessing and reloads) or already done.
    expect(page.locator("#video")).to_be_visible(timeout=90_000)
    expect(page.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
    no_page_errors(bob)
    page.close()


def test_two_viewers_stay_on_the_same_second(
    server: Server, alice: Viewer, bob: Viewer, video_id: str
) -> None:
    a = open_watch(alice, server, video_id)
    b = open_watch(bob, server, video_id)
    with explained((alice, a), (bob, b)):
        follow_each_other(a, b)
    no_page_errors(alice, bob)
    a.close()
    b.close()


VERSION = "window.cowatch.player.state.version"
SETTLED = "(p => !p.inflight && !p.queued && !p.video.seeking)(window.cowatch.player)"


def follow_each_other(a: Page, b: Page) -> None:
    start = a.evaluate(VERSION)
    # Alice seeks: Bob's video follows.
    a.evaluate(f"{VIDEO}.currentTime = 3.0")
    wait_near(b, 3.0)
    expect(b.locator("#last-change")).to_have_text("alice moved to 0:03")
    expect(a.locator("#last-change")).to_have_text("You moved to 0:03")

    # Alice plays (keyboard: the button is focusable); Bob plays too.
    a.get_by_role("button", name="Play").focus()
    a.keyboard.press("Enter")
    b.wait_for_function(f"!{VIDEO}.paused", timeout=SYNC_S)

    # Bob pauses: Alice pauses, on Bob's second.
    b.get_by_role("button", name="Pause").click()
    a.wait_for_function(f"{VIDEO}.paused", timeout=SYNC_S)
    shared = current_time(b)
    wait_near(a, shared)
    expect(a.locator("#last-change")).to_contain_text("bob paused at 0:0")
    # Three changes made three versions: following never echoed a change back to the room.
    for page in (a, b):
        page.wait_for_function(SETTLED)
    assert a.evaluate(VERSION) == b.evaluate(VERSION) == start + 3
    OUTPUT.mkdir(exist_ok=True)
    a.screenshot(path=OUTPUT / "watch.png", full_page=True)

    # Bob reloads: he resumes at the shared position, still paused.
    b.reload()
    expect(b.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
    wait_near(b, shared)
    assert b.evaluate(f"{VIDEO}.paused")


def test_a_dropped_socket_reconnects_and_resyncs(
    server: Server, alice: Viewer, bob: Viewer, video_id: str
) -> None:
    a = open_watch(alice, server, video_id)
    b = open_watch(bob, server, video_id)
    b.evaluate("window.cowatch.socket.interrupt(1500)")
    expect(b.locator("#sync-indicator")).to_have_attribute("data-state", "offline")
    a.evaluate(f"{VIDEO}.currentTime = 1.5")
    expect(a.locator("#last-change")).to_contain_text("You moved to 0:01")
    # Whatever Bob missed while offline, the first state after reconnecting puts him right.
    wait_near(b, 1.5, timeout=10_000)
    expect(b.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
    assert b.evaluate("window.cowatch.socket.connects") == 2
    no_page_errors(alice, bob)
    a.close()
    b.close()


def test_quality_switch_keeps_the_second_and_tells_nobody(
    server: Server, alice: Viewer, video_id: str
) -> None:
    a = open_watch(alice, server, video_id)
    a.evaluate(f"{VIDEO}.currentTime = 2.0")
    # Committed: the state says 2.0 and no update is in flight any more.
    a.wait_for_function(
        "(p => !p.inflight && Math.abs(p.state.timestamp - 2) < 0.01)(window.cowatch.player)"
    )
    version = a.evaluate("window.cowatch.player.state.version")
    a.get_by_label("Quality").select_option(label="240p")
    a.wait_for_function(f"{VIDEO}.currentSrc.endsWith('/240p.mp4')", timeout=SYNC_S)
    wait_near(a, 2.0)
    expect(a.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
    assert a.evaluate("window.cowatch.player.state.version") == version
    a.reload()  # the choice is remembered
    a.wait_for_function(f"{VIDEO}.currentSrc.endsWith('/240p.mp4')", timeout=SYNC_S)
    a.get_by_label("Quality").select_option(label="480p")
    a.wait_for_function(f"{VIDEO}.currentSrc.endsWith('/480p.mp4')", timeout=SYNC_S)
    no_page_errors(alice)
    a.close()


def test_a_pause_a_tick_sees_before_its_event_stays_a_pause(
    server: Server, alice: Viewer, video_id: str
) -> None:
    # `paused` flips at once and the pause event comes a task later: a tick in between saw the
    # room playing and the element paused, restarted it and shared that play (the sync bench saw
    # the viewer who paused undo its own pause).
    a = open_watch(alice, server, video_id)
    with explained((alice, a)):
        a.evaluate(f"{VIDEO}.currentTime = 1.0")
        a.wait_for_function(SETTLED)
        a.get_by_role("button", name="Play").click()
        a.wait_for_function(f"window.cowatch.player.state.playing && !{VIDEO}.paused")
        a.wait_for_function(SETTLED)
        start = a.evaluate(VERSION)
        a.evaluate(f"{VIDEO}.pause(); window.cowatch.player.tick()")
        a.wait_for_function(f"{SETTLED} && {VERSION} > {start}")
        assert a.evaluate(f"{VIDEO}.paused")
        assert a.evaluate(VERSION) == start + 1
        assert not a.evaluate("window.cowatch.player.state.playing")
    no_page_errors(alice)
    a.close()


def test_a_play_a_tick_sees_before_its_event_stays_a_play(
    server: Server, alice: Viewer, video_id: str
) -> None:
    # The same race the other way: the tick paused the element it saw playing in a paused room,
    # and the pause event after the play event was shared as the viewer's (the bench saw it).
    a = open_watch(alice, server, video_id)
    with explained((alice, a)):
        a.evaluate(f"{VIDEO}.currentTime = 1.0")
        a.wait_for_function(f"{SETTLED} && !window.cowatch.player.state.playing")
        start = a.evaluate(VERSION)
        a.evaluate(f"{VIDEO}.play(); window.cowatch.player.tick()")
        a.wait_for_function(f"{SETTLED} && {VERSION} > {start}")
        assert not a.evaluate(f"{VIDEO}.paused")
        assert a.evaluate(VERSION) == start + 1
        assert a.evaluate("window.cowatch.player.state.playing")
    no_page_errors(alice)
    a.close()


def test_drift_is_nudged_by_rate_and_large_drift_is_seeked(
    server: Server, alice: Viewer, video_id: str
) -> None:
    a = open_watch(alice, server, video_id)
    with explained((alice, a)):
        correct_drift(a)
    no_page_errors(alice)
    a.close()


def correct_drift(a: Page) -> None:
    a.evaluate(f"{VIDEO}.currentTime = 0")
    a.get_by_role("button", name="Play").click()
    expect(a.locator("#sync-indicator")).to_have_attribute("data-state", "in-sync")
    # The room moves 0.15 s ahead of us (as a wrong clock would): catch up faster, no seek.
    a.wait_for_function("window.cowatch.clock.synced")
    a.evaluate("window.cowatch.clock.stop()")  # or the next clock sample would undo our nudge
    a.evaluate("window.cowatch.clock.offset += 150")
    a.wait_for_function(f"{VIDEO}.playbackRate > 1", timeout=SYNC_S)
    # 2.5 s more is beyond what a rate nudge should fix: seek.
    before = current_time(a)
    a.evaluate("window.cowatch.clock.offset += 2500")
    a.wait_for_function(
        f"([before]) => {VIDEO}.currentTime > before + 2.5", arg=[before], timeout=SYNC_S
    )
    a.evaluate("window.cowatch.clock.offset -= 2650")
    a.get_by_role("button", name="Pause").click()


def test_pages_fit_a_phone(server: Server, bob: Viewer, video_id: str) -> None:
    page = bob.page()
    page.set_viewport_size({"width": 360, "height": 740})
    for path in ("/", f"/watch/{video_id}", "/upload", "/login"):
        page.goto(f"{server.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page.goto(f"{server.url}/watch/{video_id}")
    for name in ("Play", "Back 10 seconds", "Forward 10 seconds"):
        expect(page.get_by_role("button", name=name)).to_be_in_viewport()
    expect(page.get_by_label("Quality")).to_be_visible()
    page.screenshot(path=OUTPUT / "watch-phone.png")
    no_page_errors(bob)
    page.close()
