"""Watch parties in a real browser: a host starts one, a guest follows the invite link, the ready
barrier holds both until the last member is ready, then both play together; the host kicks.
Chat beside the player: messages both ways, markup shown as text, replies, deletes, reactions
over the video, and the history a late joiner pages through."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from websockets.sync.client import ClientConnection, connect

from tests.browser import Viewer, api_signup, await_transcoded, chromium, upload_clip
from tests.media import make_clip
from tests.servers import ROOT, Server, cowatch_serve

OUTPUT = ROOT / "test-output"
VIDEO = "document.getElementById('video')"
TOLERANCE = 0.3  # s: as the watch page's own browser tests


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("party-web")
    env = {
        "COWATCH_DATA_DIR": str(root / "data"),
        # The barrier waits for a member the test holds back: it must not give up on its own.
        "COWATCH_PARTY_READY_TIMEOUT_S": "60",
        # The history test posts more than a page of messages at once.
        "COWATCH_RATE_LIMIT_CHAT": "100/5 seconds",
    }
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
    return make_clip(tmp_path_factory.mktemp("clip") / "pattern.mp4", 640, 480, seconds=7, fps=25)


def context_for(browser: Browser, server: Server, token: str | None = None) -> BrowserContext:
    # bypass_csp: wait_for_function evaluates its predicate, which our CSP forbids in pages.
    context = browser.new_context(viewport={"width": 1100, "height": 800}, bypass_csp=True)
    if token:
        context.add_cookies([{"name": "Authentication", "value": token, "url": server.url}])
    return context


@pytest.fixture(scope="module")
def host(browser: Browser, server: Server) -> Iterator[Viewer]:
    email, token, user_id = api_signup(server.url, "hannah")
    viewer = Viewer("hannah", email, token, user_id, context_for(browser, server, token))
    yield viewer
    viewer.context.close()


@pytest.fixture(scope="module")
def video_id(server: Server, host: Viewer, clip: Path) -> str:
    video = upload_clip(server.url, host.token, clip, "Party pattern")
    await_transcoded(server.ws_url, host.token, video)
    return video


def start_party(viewer: Viewer, server: Server, video_id: str, control: str = "Host") -> Page:
    """The host's page inside a new party (created with the watch page's own form)."""
    page = viewer.page()
    page.goto(f"{server.url}/watch/{video_id}")
    page.get_by_role("button", name="Watch party").click()
    page.get_by_label("Who controls playback").select_option(label=f"{control} and cohosts")
    page.get_by_role("button", name="Start the party").click()
    page.wait_for_url(re.compile(r"\?party="))
    expect(page.get_by_label("Invite link")).to_have_value(re.compile(r"/p/[\w-]+$"))
    return page


def join_as_guest(browser: Browser, invite: str, name: str) -> tuple[Viewer, Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 800}, bypass_csp=True)
    guest = Viewer(username=name, email="", token="", user_id="", context=context)
    page = guest.page()
    page.goto(invite)
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Join").click()
    page.wait_for_url(re.compile(r"/watch/.+\?party="))
    return guest, page


def member_row(page: Page, name: str) -> Any:
    return page.locator("#members li").filter(has=page.locator(".name", has_text=name))


def frames_until(socket: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame = json.loads(socket.recv(timeout=20))
        assert frame["type"] != "error", frame
        if frame["type"] == kind:
            return frame


def no_page_errors(*viewers: Viewer) -> None:
    errors = [error for viewer in viewers for error in viewer.errors]
    assert not errors, (errors, [viewer.console for viewer in viewers])


def test_a_guest_joins_by_link_waits_at_the_barrier_plays_together_and_is_kicked(
    browser: Browser, server: Server, host: Viewer, video_id: str
) -> None:
    page = start_party(host, server, video_id)
    invite = page.get_by_label("Invite link").input_value()
    party_id = page.evaluate("new URLSearchParams(location.search).get('party')")
    expect(member_row(page, "hannah")).to_contain_text("host")

    # A guest opens the link: a name prompt, then the watch page inside the party. The name
    # is shown as text, markup and all.
    guest, guest_page = join_as_guest(browser, invite, "Gwen <i>")
    gwen = member_row(page, "Gwen <i>")
    expect(gwen).to_contain_text("guest")
    expect(gwen).to_have_attribute("data-online", "true")
    expect(gwen).to_have_attribute("data-player", "READY")
    expect(member_row(guest_page, "hannah")).to_contain_text("host")
    expect(guest_page.locator("#host-controls")).to_be_hidden()
    assert guest_page.locator("#members i").count() == 0

    # A third member, over /ws from here, holds the barrier until the test lets it go.
    joined = httpx.post(
        f"{server.url}/api/parties/join",
        json={"code": invite.rsplit("/", 1)[1], "display_name": "Slow"},
    )
    assert joined.status_code == 200, joined.text
    token = joined.json()["member_token"]
    # max_queue=None: this socket is read only now and then, and websockets' sync client stops
    # reading the socket once 16 frames wait unread, so it would stop answering the server's
    # heartbeat pings too: the server then closes it as a vanished tab, "Slow" goes offline and
    # the barrier stops waiting for it (CI failed so, with "Waiting for 1…" never shown).
    with connect(f"{server.ws_url}/ws?token={token}", open_timeout=10, max_queue=None) as slow:
        slow.send(json.dumps({"type": "party:subscribe", "party_id": party_id}))
        frames_until(slow, "party:snapshot")
        ready = {"type": "party:ready", "party_id": party_id, "position": 0}
        slow.send(json.dumps({**ready, "state": "BUFFERING"}))
        expect(member_row(page, "Slow")).to_have_attribute("data-player", "BUFFERING")

        page.get_by_role("button", name="Play").click()
        for p in (page, guest_page):
            expect(p.locator("#party-waiting")).to_have_text("Waiting for 1…")
            expect(p.locator("#party-waiting")).to_have_attribute("title", "Slow")
            # The host's page may show the party's WAITING frame before the answer to its own
            # play: its player holds once that answer (and the next tick) comes.
            p.wait_for_function(f"{VIDEO}.paused")

        slow.send(json.dumps({**ready, "state": "READY"}))
        started = frames_until(slow, "party:playback")
        while started["state"] != "PLAYING":
            started = frames_until(slow, "party:playback")
        for p in (page, guest_page):
            expect(p.locator("#party-waiting")).to_be_hidden()
            # Both pages start the same position at the same effectiveAt and stay on it.
            p.wait_for_function(
                f"""(at) => window.cowatch.room.playback.effective_at === at
                    && !{VIDEO}.paused && {VIDEO}.currentTime > 0.5""",
                arg=started["effective_at"],
            )
            p.wait_for_function(
                "(t) => window.cowatch.player.drift !== null"
                " && Math.abs(window.cowatch.player.drift) < t",
                arg=TOLERANCE,
            )
        # Each page measures how far it is from the shared position and tells the members:
        # the host's list shows the guest's "±N ms" (the socket member, which never said, none).
        expect(gwen.locator(".state")).to_contain_text(re.compile(r"· ±\d+ ms"))
        for row in (gwen, member_row(guest_page, "hannah")):  # whole ms, in sync: under 1 s
            expect(row).to_have_attribute("data-offset-ms", re.compile(r"^\d{1,3}$"))
        assert member_row(page, "Slow").get_attribute("data-offset-ms") is None

    # The guest may not steer a HOST party: its own seek is undone and said so.
    guest_page.evaluate(f"{VIDEO}.currentTime = 5.5")
    expect(guest_page.locator("#last-change")).to_have_text(
        "Only the host and cohosts control playback in this party."
    )

    # The host makes the guest a cohost: every member's list says so.
    page.get_by_role("button", name="Make cohost: Gwen <i>").click()
    expect(gwen).to_contain_text("cohost")
    expect(member_row(guest_page, "Gwen <i>")).to_contain_text("cohost")
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "party-host.png")

    # The host kicks the guest: gone from the list, and the guest's page says so.
    page.get_by_role("button", name="Kick Gwen <i>").click()
    expect(gwen).to_have_count(0)
    expect(guest_page.locator("#party-notice")).to_have_text(
        "The host removed you from this party."
    )
    assert guest_page.evaluate("Object.keys(sessionStorage)") == []
    no_page_errors(host, guest)
    guest.context.close()
    page.close()


def test_a_premiere_counts_down_for_every_member(
    browser: Browser, server: Server, host: Viewer, video_id: str
) -> None:
    page = start_party(host, server, video_id)
    invite = page.get_by_label("Invite link").input_value()
    guest, guest_page = join_as_guest(browser, invite, "Pat")
    page.get_by_label("Premiere: start everyone in").fill("2")
    page.get_by_role("button", name="Schedule").click()
    for p in (page, guest_page):
        expect(p.locator("#party-countdown")).to_have_text(re.compile(r"^Starts in [12]:\d\d$"))
    # The host ends the party: everyone's page says so, and offers its replay.
    page.get_by_role("button", name="End the party").click()
    for p in (page, guest_page):
        expect(p.locator("#party-notice")).to_have_text("This party has ended.")
        expect(p.locator("#party-countdown")).to_be_hidden()
        expect(p.get_by_role("link", name="Replay this party")).to_be_visible()
    # The guest's tab kept its member token: the log is still the guest's to read.
    guest_page.get_by_role("link", name="Replay this party").click()
    expect(guest_page.locator("#replay")).to_have_attribute("data-state", "ready")
    guest_page.get_by_label("Replay position").press("End")
    expect(guest_page.locator("#replay-log li[data-kind=system]")).to_contain_text(
        ["Pat joined", "The party ended"]
    )
    no_page_errors(host, guest)
    guest.context.close()
    page.close()


def test_a_password_party_asks_guests_for_it(
    browser: Browser, server: Server, host: Viewer, video_id: str
) -> None:
    created = httpx.post(
        f"{server.url}/api/parties",
        headers={"Authorization": f"Bearer {host.token}"},
        json={"video_id": video_id, "visibility": "PRIVATE", "password": "open sesame"},
    )
    assert created.status_code == 201, created.text
    context = browser.new_context(bypass_csp=True)
    guest = Viewer(username="Quinn", email="", token="", user_id="", context=context)
    page = guest.page()
    page.goto(created.json()["invite_url"])
    page.get_by_label("Your name").fill("Quinn")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("alert")).to_have_text("This party needs its password.")
    page.get_by_label("Party password").fill("wrong")
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_role("alert")).to_have_text("the password is wrong")
    page.get_by_label("Party password").fill("open sesame")
    page.get_by_role("button", name="Join").click()
    page.wait_for_url(re.compile(r"\?party="))
    expect(member_row(page, "Quinn")).to_contain_text("guest")
    no_page_errors(guest)
    context.close()


SCRIPT = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def message(page: Page, text: str) -> Any:
    return page.locator("#chat-log li").filter(has=page.locator(".body", has_text=text))


def say(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def test_members_chat_reply_delete_and_react_with_markup_shown_as_text(
    browser: Browser, server: Server, host: Viewer, video_id: str
) -> None:
    page = start_party(host, server, video_id)
    invite = page.get_by_label("Invite link").input_value()
    guest, guest_page = join_as_guest(browser, invite, "Gwen")

    say(guest_page, "hello from Gwen")
    expect(message(page, "hello from Gwen")).to_contain_text("Gwen")
    expect(message(guest_page, "hello from Gwen")).to_have_count(1)

    # Markup in a message is text: shown as typed, nothing runs, no element is made of it.
    say(page, SCRIPT)
    for p in (page, guest_page):
        expect(message(p, "window.pwned")).to_have_count(1)
        expect(message(p, "window.pwned").locator(".body")).to_have_text(SCRIPT)
        assert p.locator("#chat-log script, #chat-log img").count() == 0
        assert p.evaluate("window.pwned") is None

    # A reply quotes its message; times are buttons for the host only.
    message(guest_page, "window.pwned").get_by_role("button", name="Reply to hannah").click()
    say(guest_page, "nice try")
    reply = message(page, "nice try")
    expect(reply.locator(".quote")).to_have_text(f"↪ hannah: {SCRIPT}")
    expect(reply.get_by_role("button", name=re.compile(r"^Go to \d:\d\d$"))).to_have_count(1)
    expect(message(guest_page, "nice try").locator(".time")).to_have_count(1)
    assert (
        message(guest_page, "nice try").get_by_role("button", name=re.compile("Go to")).count() == 0
    )

    # The host deletes the guest's first message: its place stays, its text goes, for both.
    message(page, "hello from Gwen").get_by_role("button", name="Delete message from Gwen").click()
    for p in (page, guest_page):
        expect(message(p, "hello from Gwen")).to_have_count(0)
        expect(p.locator("#chat-log li.deleted")).to_have_text(re.compile("Message deleted"))

    # A reaction floats over the other member's video.
    page.evaluate(
        """() => {
            window.floated = [];
            new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach(
                (n) => window.floated.push([n.textContent, n.dataset.author])
            ))).observe(document.getElementById("reaction-layer"), { childList: true });
        }"""
    )
    guest_page.get_by_role("button", name="React heart").click()
    page.wait_for_function("window.floated.length === 1")
    assert page.evaluate("window.floated") == [["❤️", "Gwen"]]

    guest_page.screenshot(path=OUTPUT / "party-chat.png")

    # The host turns chat off: the guest's box says so.
    page.get_by_label("Chat on").uncheck()
    expect(guest_page.get_by_label("Message", exact=True)).to_be_disabled()
    expect(guest_page.get_by_label("Message", exact=True)).to_have_attribute(
        "placeholder", "The host turned chat off"
    )
    no_page_errors(host, guest)
    guest.context.close()
    page.close()


def test_a_late_joiner_pages_through_the_history(
    browser: Browser, server: Server, host: Viewer, video_id: str
) -> None:
    page = start_party(host, server, video_id)
    invite = page.get_by_label("Invite link").input_value()
    party_id = page.evaluate("new URLSearchParams(location.search).get('party')")
    joined = httpx.post(
        f"{server.url}/api/parties/join",
        json={"code": invite.rsplit("/", 1)[1], "display_name": "Bot"},
    )
    token = joined.json()["member_token"]
    with connect(f"{server.ws_url}/ws?token={token}", open_timeout=10) as bot:
        bot.send(json.dumps({"type": "party:subscribe", "party_id": party_id}))
        frames_until(bot, "party:snapshot")
        for n in range(1, 26):
            bot.send(json.dumps({"type": "chat:send", "party_id": party_id, "body": f"line {n}"}))
        for _ in range(25):
            frames_until(bot, "party:chat_message")
    guest, guest_page = join_as_guest(browser, invite, "Late")
    guest_page.set_viewport_size({"width": 390, "height": 844})  # a phone: chat below the player
    log = guest_page.locator("#chat-log li")
    expect(log).to_have_count(20)
    expect(log.first.locator(".body")).to_have_text("line 6")
    expect(log.last.locator(".body")).to_have_text("line 25")
    guest_page.get_by_role("button", name="Earlier messages").click()
    expect(log).to_have_count(25)
    expect(log.first.locator(".body")).to_have_text("line 1")
    expect(guest_page.get_by_role("button", name="Earlier messages")).to_be_hidden()
    guest_page.screenshot(path=OUTPUT / "party-phone.png", full_page=True)
    box, player = (
        guest_page.locator("#chat-log").bounding_box(),
        guest_page.locator("#video").bounding_box(),
    )
    assert box and player and box["y"] > player["y"] + player["height"]
    # The bot's socket closed before the guest came: listed, offline. When it leaves the party
    # it is gone from every list (MemberLeft with gone), not shown offline.
    bot_row = member_row(guest_page, "Bot")
    expect(bot_row).to_have_attribute("data-online", "false")
    left = httpx.post(
        f"{server.url}/api/parties/{party_id}/leave", headers={"Authorization": f"Bearer {token}"}
    )
    assert left.status_code in (200, 204), left.text
    for p in (page, guest_page):
        expect(member_row(p, "Bot")).to_have_count(0)
    no_page_errors(guest)
    guest.context.close()
    page.close()


LOG = """query Log($id: ID!, $after: String) { party(id: $id) { events(first: 100, after: $after) {
  pageInfo { hasNextPage endCursor }
  edges { seq serverTime mediaTime node { __typename
    ... on PlaybackChanged { playback { version state timestamp playing } }
    ... on ChatMessageAdded { message { body deleted } }
  } } } } }"""


def party_log(server: Server, token: str, party_id: str) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = []
    after = None
    while True:
        answer = graphql(server, token, LOG, {"id": party_id, "after": after})
        page = answer["party"]["events"]
        edges += page["edges"]
        if not page["pageInfo"]["hasNextPage"]:
            return edges
        after = page["pageInfo"]["endCursor"]


def graphql(server: Server, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/graphql",
        headers={"Authorization": f"Bearer {token}"},
        json={"query": query, "variables": variables},
    )
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body
    data: dict[str, Any] = body["data"]
    return data


def rest(server: Server, token: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(
        method,
        f"{server.url}/api/parties{path}",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
    )
    assert response.is_success, response.text
    return response.json() if response.content else None


def replay_line(page: Page, kind: str) -> Any:
    return page.locator(f"#replay-log li[data-kind={kind}]")


def test_a_member_replays_an_ended_party_as_it_happened(
    browser: Browser, server: Server, host: Viewer, video_id: str
) -> None:
    # A session scripted through the API: play, a message, a seek, a reaction, a pause; a
    # message deleted, a role change, a member who comes and goes; then the host ends it.
    party = rest(server, host.token, "POST", "", {"video_id": video_id, "name": "Replayed"})
    party_id, code = party["id"], party["code"]
    guest = httpx.post(
        f"{server.url}/api/parties/join", json={"code": code, "display_name": "Gwen"}
    ).json()
    gwen, gwen_id = guest["member_token"], guest["member"]["id"]
    rest(server, host.token, "PUT", f"/{party_id}/time", {"timestamp": 1.0, "playing": True})
    rest(server, gwen, "POST", f"/{party_id}/messages", {"body": "first <b>look</b>"})
    rest(server, host.token, "PUT", f"/{party_id}/time", {"timestamp": 4.0, "playing": True})
    graphql(
        server,
        gwen,
        'mutation($id: ID!) { react(partyId: $id, emoji: "❤️") { emoji } }',
        {"id": party_id},
    )
    rest(server, host.token, "POST", f"/{party_id}/messages", {"body": "after the seek"})
    rest(server, host.token, "PUT", f"/{party_id}/time", {"timestamp": 5.0, "playing": False})
    oops = rest(server, gwen, "POST", f"/{party_id}/messages", {"body": "oops"})
    graphql(
        server, host.token, "mutation($id: ID!) { deleteChatMessage(id: $id) }", {"id": oops["id"]}
    )
    rest(server, gwen, "POST", f"/{party_id}/messages", {"body": "paused here"})
    # Chatter enough for the log to take more than one page (Party.events gives 100 at most).
    chatter = [f"n {n}" for n in range(1, 101)]
    for n, body in enumerate(chatter):
        rest(server, gwen if n % 2 else host.token, "POST", f"/{party_id}/messages", {"body": body})
    rest(server, host.token, "PUT", f"/{party_id}/members/{gwen_id}/role", {"role": "COHOST"})
    lee = httpx.post(
        f"{server.url}/api/parties/join", json={"code": code, "display_name": "Lee"}
    ).json()["member_token"]
    rest(server, lee, "POST", f"/{party_id}/leave")
    rest(server, host.token, "POST", f"/{party_id}/end")

    log = party_log(server, host.token, party_id)
    # The log is its members' only: Lee, who left, may not read it.
    refused = httpx.post(
        f"{server.url}/graphql",
        headers={"Authorization": f"Bearer {lee}"},
        json={"query": LOG, "variables": {"id": party_id}},
    ).json()
    assert refused["errors"] and not (refused["data"] or {}).get("party"), refused
    start = min(edge["serverTime"] for edge in log)
    playbacks = [e for e in log if e["node"]["__typename"] == "PlaybackChanged"]
    play, seek, pause = (
        [e for e in playbacks if e["node"]["playback"]["timestamp"] == t] for t in (1.0, 4.0, 5.0)
    )
    messages = [e for e in log if e["node"]["__typename"] == "ChatMessageAdded"]
    assert [m["node"]["message"]["body"] for m in messages] == [
        "first <b>look</b>",
        "after the seek",
        None,
        "paused here",
        *chatter,
    ]
    assert len(log) > 100

    # The party page says it ended and offers the replay.
    page = host.page()
    page.goto(f"{server.url}/watch/{video_id}?party={party_id}")
    expect(page.locator("#party-notice")).to_have_text("This party has ended.")
    link = page.get_by_role("link", name="Replay this party")
    href = link.get_attribute("href")
    assert href == f"/watch/{video_id}?party={party_id}&replay=1"
    page.close()
    # The replay is this page's alone: no socket of any kind.
    page = host.page()
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(f"{server.url}{href}")
    replay = page.locator("#replay")
    expect(replay).to_have_attribute("data-state", "ready")
    expect(page.locator("#party-name")).to_have_text("Replay: Replayed")
    expect(page.locator("#party-live")).to_be_hidden()

    # Played at 2x to the end: every line in the log's order, each message at its media time.
    page.evaluate(
        """() => {
            window.floated = [];
            window.appended = [];
            new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach(
                (n) => window.floated.push([n.textContent, n.dataset.author])
            ))).observe(document.getElementById("reaction-layer"), { childList: true });
            new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach(
                (n) => window.appended.push(Number(n.dataset.seq))
            ))).observe(document.getElementById("replay-log"), { childList: true });
        }"""
    )
    page.get_by_label("Replay speed").select_option("2")
    page.get_by_role("button", name="Play replay").click()
    expect(replay).to_have_attribute("data-state", "ended")
    rows = replay_line(page, "message")
    expect(rows).to_have_count(4 + len(chatter))
    expect(rows.locator(".body")).to_have_text(
        ["first <b>look</b>", "after the seek", "Message deleted", "paused here", *chatter]
    )
    assert page.locator("#replay-log b").count() == 0
    shown = [float(t) for t in rows.evaluate_all("(rows) => rows.map((r) => r.dataset.mediaTime)")]
    assert shown == [m["mediaTime"] for m in messages]
    expect(rows.locator(".time")).to_have_text([f"0:{int(m['mediaTime']):02d}" for m in messages])
    assert [int(m["mediaTime"]) for m in messages[:4]] == [1, 4, 5, 5]
    expect(replay_line(page, "reaction")).to_have_text(re.compile("❤️ Gwen"))
    assert page.evaluate("window.floated") == [["❤️", "Gwen"]]
    expect(replay_line(page, "system")).to_contain_text(
        ["Gwen joined", "Gwen is now cohost", "Lee joined", "Lee left", "The party ended"]
    )
    # Lines came in the order they were due, each once.
    due = {e["seq"]: (e["serverTime"], e["seq"]) for e in log}
    appended = page.evaluate("window.appended")
    assert appended and appended == sorted(appended, key=due.__getitem__)
    assert len(set(appended)) == len(appended)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=OUTPUT / "party-replay.png")
    # The video ends where the party paused.
    expect(replay).to_have_attribute("data-version", str(pause[-1]["node"]["playback"]["version"]))
    assert page.evaluate(f"{VIDEO}.paused")
    assert page.evaluate(f"{VIDEO}.currentTime") == 5.0

    # Moved back to just before the seek: the log up to there, the video where the party was.
    def move_to(ms: float) -> None:
        page.evaluate(
            """(ms) => {
                const input = document.getElementById("replay-seek");
                input.value = String(ms);
                input.dispatchEvent(new Event("input"));
            }""",
            ms,
        )
        expect(replay).to_have_attribute("data-position", str(round(ms)))

    before = seek[0]["serverTime"] - 1
    move_to(before - start)
    expect(replay).to_have_attribute("data-version", str(play[0]["node"]["playback"]["version"]))
    started = play[-1]["serverTime"]  # PLAYING from 1.0 from then on
    expected = 1.0 + max(0.0, before - started) / 1000
    assert abs(page.evaluate(f"{VIDEO}.currentTime") - expected) < 0.001
    early = [m for m in messages if m["serverTime"] <= before]
    expect(rows).to_have_count(len(early))
    # At the seek: the video jumps to where the host sent it.
    move_to(seek[0]["serverTime"] - start)
    expect(replay).to_have_attribute("data-version", str(seek[0]["node"]["playback"]["version"]))
    assert seek[0]["node"]["playback"]["state"] == "WAITING"
    page.wait_for_function(f"{VIDEO}.currentTime === 4")
    assert sockets == []
    no_page_errors(host)
    page.close()

    # Anyone else is told the replay is the members'.
    context = context_for(browser, server)
    outsider = Viewer("outsider", "", "", "", context)
    other = outsider.page()
    other.goto(f"{server.url}{href}")
    expect(other.locator("#replay")).to_have_attribute("data-state", "error")
    expect(other.locator("#replay-status")).to_have_text(
        "Replay unavailable: only the party's members may replay it."
    )
    expect(other.locator("#replay-log li")).to_have_count(0)
    no_page_errors(outsider)
    context.close()


def test_a_signed_in_invitee_joins_by_link_steers_in_an_everyone_party_and_leaves(
    browser: Browser, server: Server, host: Viewer, video_id: str
) -> None:
    page = start_party(host, server, video_id)
    invite = page.get_by_label("Invite link").input_value()
    party_id = page.evaluate("new URLSearchParams(location.search).get('party')")
    email, token, user_id = api_signup(server.url, "ivan")
    ivan = Viewer("ivan", email, token, user_id, context_for(browser, server, token))

    # Signed in, the link joins at once with the account: no name asked, a plain member.
    ivan_page = ivan.page()
    ivan_page.goto(invite)
    ivan_page.wait_for_url(re.compile(r"/watch/.+\?party="))
    expect(member_row(page, "ivan")).to_contain_text("member")
    expect(member_row(ivan_page, "ivan")).to_contain_text("(you)")
    expect(member_row(ivan_page, "hannah")).to_contain_text("host")

    # A member may not steer a HOST party...
    ivan_page.evaluate(f"{VIDEO}.currentTime = 2")
    expect(ivan_page.locator("#last-change")).to_have_text(
        "Only the host and cohosts control playback in this party."
    )
    # ...until the host lets everyone: then the member's seek moves the party.
    page.get_by_label("Control mode").select_option("EVERYONE")
    ivan_page.wait_for_function("window.cowatch.room.party.control === 'EVERYONE'")
    ivan_page.evaluate(f"{VIDEO}.currentTime = 3")
    expect(page.locator("#last-change")).to_have_text("ivan paused at 0:03")
    page.wait_for_function(f"{VIDEO}.currentTime === 3")
    # The host's own select shows the mode the party has.
    expect(page.get_by_label("Control mode")).to_have_value("EVERYONE")

    # The Leave link: out of the party, back on the plain video page; the host sees it go.
    ivan_page.get_by_role("link", name="Leave the party").click()
    ivan_page.wait_for_url(f"{server.url}/watch/{video_id}")
    expect(member_row(page, "ivan")).to_have_count(0)  # gone from the list, not shown offline
    members = rest(server, host.token, "GET", f"/{party_id}")["members"]
    assert [m["display_name"] for m in members] == ["hannah"]
    assert ivan_page.evaluate("Object.keys(sessionStorage)") == []
    no_page_errors(host, ivan)
    ivan.context.close()
    page.close()
