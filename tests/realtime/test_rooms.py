"""A room takes a video's states in version order, whatever order they arrive in."""

from __future__ import annotations

from realtime.events import Event
from realtime.rooms import Room
from tests.realtime.test_bus import state


def versions(events: list[Event]) -> list[int | None]:
    return [item.version for item in events]


def test_states_that_overtake_a_missing_version_wait_for_it() -> None:
    room = Room("video:v1")
    assert room.accept(state(0), authoritative=True)
    for version in (3, 2, 5):
        assert not room.accept(state(version))
    assert versions(room.take_fresh()) == [0]
    assert sorted(room.held) == [2, 3, 5]
    assert room.accept(state(1))
    assert versions(room.take_fresh()) == [1, 2, 3]
    assert sorted(room.held) == [5]
    assert room.accept(state(4))
    assert versions(room.take_fresh()) == [4, 5]
    assert not room.held


def test_echoes_and_duplicates_are_dropped() -> None:
    room = Room("video:v1")
    room.accept(state(4), authoritative=True)
    assert not room.accept(state(4))
    assert not room.accept(state(2))
    assert versions(room.take_fresh()) == [4]
    assert not room.held


def test_a_gap_given_up_releases_the_held_states_in_order() -> None:
    room = Room("video:v1")
    room.accept(state(1), authoritative=True)
    room.accept(state(6))
    room.accept(state(3))
    room.accept(state(4))
    assert room.give_up_gap() == [2, 5]
    assert versions(room.take_fresh()) == [1, 3, 4, 6]
    assert room.version == 6 and room.state is not None and room.state.version == 6


def test_a_state_from_the_database_jumps_the_gap_and_drops_what_it_covers() -> None:
    room = Room("video:v1")
    room.accept(state(1), authoritative=True)
    room.accept(state(3))
    room.accept(state(7))
    assert room.accept(state(5), authoritative=True)
    assert versions(room.take_fresh()) == [1, 5]
    assert sorted(room.held) == [7]
    room.accept(state(6))
    assert versions(room.take_fresh()) == [6, 7]
