"""A party's rules as pure transitions: control, the ready barrier, hand-over, clamping."""

from __future__ import annotations

import pytest

from models.parties import PartyControl, PartyRole, PartyState, PlayerState
from resolvers import party_rules as rules
from resolvers.errors import BadInput, Forbidden
from resolvers.party_state import Live, Member, encode

T0 = 1_000_000


def party(control: str = PartyControl.HOST) -> Live:
    live = Live(
        id="p",
        code="c",
        name="n",
        video_id="v",
        duration=60.0,
        control=control,
        host_user_id="u-host",
        created_at=T0,
    )
    people = [
        Member(id="host", name="Host", role=PartyRole.HOST, user_id="u-host", joined_at=T0),
        Member(id="co", name="Co", role=PartyRole.COHOST, user_id="u-co", joined_at=T0 + 1),
        Member(id="mem", name="Mem", role=PartyRole.MEMBER, user_id="u-mem", joined_at=T0 + 2),
        Member(id="guest", name="Guest", role=PartyRole.GUEST, joined_at=T0 + 3),
    ]
    for member in people:
        rules.join(live, member)
        member.online = True
        member.player = PlayerState.READY
        member.latency_ms = 40.0
    return live


def kinds(changes: list[rules.Change]) -> list[str]:
    return [change.kind for change in changes]


def test_in_a_host_party_a_guest_may_not_seek_and_nothing_changes() -> None:
    live = party()
    before = encode(live)
    with pytest.raises(Forbidden):
        rules.set_playback(
            live, "guest", timestamp=5, playing=True, rate=None, now=T0, ready_timeout_ms=5000
        )
    assert encode(live) == before


def test_the_barrier_holds_until_everyone_online_and_not_idle_is_ready_there() -> None:
    live = party(PartyControl.EVERYONE)
    live.members["guest"].player = PlayerState.IDLE  # never reported: not waited for
    changes = rules.set_playback(
        live, "mem", timestamp=30, playing=True, rate=None, now=T0, ready_timeout_ms=5000
    )
    assert kinds(changes) == ["playback"]
    assert live.playback.state == PartyState.WAITING
    assert live.playback.waiting_for == ["host", "co", "mem"]
    # A report at the wrong position does not count; buffering does not either.
    rules.report(live, "host", state=PlayerState.READY, position=12.0, latency_ms=None, now=T0 + 5)
    rules.report(live, "co", state=PlayerState.BUFFERING, position=30, latency_ms=None, now=T0 + 6)
    assert live.playback.waiting_for == ["host", "co", "mem"]
    for who in ("host", "co"):
        rules.report(live, who, state=PlayerState.READY, position=30.1, latency_ms=90, now=T0 + 7)
    assert live.playback.state == PartyState.WAITING
    done = rules.report(
        live, "mem", state=PlayerState.READY, position=30, latency_ms=None, now=T0 + 8
    )
    assert kinds(done) == ["member_updated", "playback"]
    playback = live.playback
    assert playback.state == PartyState.PLAYING and playback.playing
    # Everyone starts at one future instant, far enough ahead for the slowest round trip.
    assert playback.effective_at == T0 + 8 + rules.START_MARGIN_MS + 90
    assert playback.server_time == playback.effective_at and playback.timestamp == 30


def test_a_reported_sync_offset_reaches_the_members_when_it_changes() -> None:
    live = party()
    live.playback.state = PartyState.PLAYING

    def report(offset_ms: object = None) -> list[rules.Change]:
        return rules.report(
            live,
            "guest",
            state=PlayerState.READY,
            position=3.0,
            latency_ms=None,
            now=T0,
            offset_ms=offset_ms,
        )

    changes = report(7.4)
    assert kinds(changes) == ["member_updated"]  # same state: the offset alone is news
    assert changes[0].data["member"]["offset_ms"] == 7.0 and not changes[0].logged
    assert report(6.6) == []  # still 7 ms
    assert report() == []  # none reported: the last one stays
    assert live.members["guest"].offset_ms == 7.0
    before = encode(live)
    for bad in (-1, 60_001, float("nan"), "5", True):
        with pytest.raises(BadInput) as refused:
            report(bad)
        assert refused.value.details == {"field": "offset_ms"}, bad
    assert encode(live) == before


def test_a_silent_member_is_left_behind_after_the_timeout_marked_buffering() -> None:
    live = party()
    rules.set_playback(
        live, "co", timestamp=10, playing=True, rate=None, now=T0, ready_timeout_ms=5000
    )
    for who in ("host", "co", "guest"):
        rules.report(live, who, state=PlayerState.READY, position=10, latency_ms=None, now=T0 + 1)
    version = live.playback.version
    assert rules.barrier_timeout(live, version, T0 + 4999) == []  # not yet
    changes = rules.barrier_timeout(live, version, T0 + 5000)
    assert kinds(changes) == ["member_updated", "playback"]
    assert live.members["mem"].player == PlayerState.BUFFERING
    assert live.playback.state == PartyState.PLAYING
    assert rules.barrier_timeout(live, version, T0 + 9000) == []  # once only


def test_a_pause_needs_no_barrier_and_positions_just_past_the_end_are_the_end() -> None:
    live = party()
    changes = rules.set_playback(
        live, "host", timestamp=60.4, playing=False, rate=None, now=T0, ready_timeout_ms=5000
    )
    assert kinds(changes) == ["playback"]
    assert live.playback.state == PartyState.PAUSED and live.playback.timestamp == 60.0
    for wrong in (61.5, -1, float("nan"), "5", True):
        with pytest.raises(BadInput):
            rules.set_playback(
                live,
                "host",
                timestamp=wrong,
                playing=False,
                rate=None,
                now=T0,
                ready_timeout_ms=5000,
            )


def test_when_the_host_leaves_the_longest_present_online_cohost_takes_over() -> None:
    live = party()
    changes = rules.leave(live, "host", T0 + 10)
    assert kinds(changes) == ["member_left", "member_updated"]
    assert live.host_id == "co" and live.members["co"].role == PartyRole.HOST
    assert live.host_user_id == "u-co"


def test_a_host_offline_for_a_minute_hands_over_to_a_member_with_an_account() -> None:
    live = party()
    rules.leave(live, "co", T0)
    rules.presence(live, "host", online=False, latency_ms=None, now=T0 + 100)
    assert rules.host_away(live, T0 + 100 + rules.HOST_AWAY_MS - 1) == []
    changes = rules.host_away(live, T0 + 100 + rules.HOST_AWAY_MS)
    assert kinds(changes) == ["member_updated", "member_updated"]
    assert live.host_id == "mem"  # the guest has no account: never host
    assert live.members["host"].role == PartyRole.COHOST


def test_kicked_members_cannot_join_again_and_names_get_a_suffix() -> None:
    live = party()
    rules.kick(live, "host", "mem", T0)
    with pytest.raises(Forbidden):
        rules.join(live, Member(id="m2", name="x", role="MEMBER", user_id="u-mem", joined_at=T0))
    twin = Member(id="g2", name="guest", role=PartyRole.GUEST, joined_at=T0)
    rules.join(live, twin)
    assert twin.name == "guest (2)"
    with pytest.raises(Forbidden):
        rules.kick(live, "co", "guest", T0)  # only the host kicks


def test_a_premiere_holds_paused_then_starts_everyone_at_its_time() -> None:
    live = party()
    at = T0 + 60_000
    rules.schedule(live, "host", at=at, timestamp=0, now=T0)
    assert live.playback.state == PartyState.PAUSED and live.playback.effective_at == at
    version = live.playback.version
    assert rules.start_scheduled(live, version, T0 + 1000) == []
    changes = rules.start_scheduled(live, version, at - rules.START_MARGIN_MS - 40)
    assert kinds(changes) == ["playback"]
    assert live.playback.state == PartyState.PLAYING
    assert live.playback.effective_at == at == live.playback.server_time
