"""A batch of changes to one party, applied together in one write (`PartyRuntime.apply`).

A change is usually a batch of its own, sent behind the writes of its party in flight. Changes
that arrive while a change whose events wait for a kept row (a chat message's) is written wait
for the next write and go in it together, in arrival order: `run` applies each transition to the
state in turn, so each sees the ones before it; a transition that raises changes nothing and
fails its own caller only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from realtime.events import Event, topic
from resolvers.party_state import Change, Live, decode, encode, media_time
from resolvers.videos import now_ms

if TYPE_CHECKING:
    from resolvers.party_runtime import Applied

Transition = Callable[[Live], list[Change]]
Keep = Callable[[list[Event]], Awaitable[None]]


@dataclass(eq=False)
class Pending:
    """A change waiting for its party's next write, and the future its caller awaits."""

    transition: Transition
    keep: Keep | None
    done: asyncio.Future[Applied]


@dataclass(eq=False)
class Outcome:
    """One transition of a batch: its changes, their events, and the state right after it."""

    changes: list[Change]
    events: list[Event]
    #: the state after this transition, encoded; None for the batch's last (the final state)
    after: bytes | None

    def live(self, final: Live) -> Live:
        return final if self.after is None else decode(self.after)


def run(party_id: str, batch: list[Pending], raw: bytes) -> tuple[Live, list[Outcome | Exception]]:
    """Every transition of a batch in order on the state `raw`; a failing one changes nothing."""
    live = decode(raw)
    good = raw
    outcomes: list[Outcome | Exception] = []
    for index, pending in enumerate(batch):
        try:
            changes = pending.transition(live)
        except Exception as exc:  # a DomainError: the state as it was before this one
            outcomes.append(exc)
            live = decode(good)
            continue
        now = now_ms()
        events = [
            Event(
                topic=topic("party", party_id),
                version=live.seq + number,
                kind=change.kind,
                # An event's own fields win: a playhead's `server_time` is when its
                # `timestamp` holds (a start's is in the future), not when it was sent.
                data={"server_time": now, "media_time": media_time(live, now), **change.data},
            )
            for number, change in enumerate(changes, start=1)
        ]
        live.seq += len(changes)
        last = index == len(batch) - 1
        if not last:
            good = encode(live)
        outcomes.append(Outcome(changes, events, None if last else good))
    return live, outcomes


def fail(pending: Pending, exc: Exception) -> None:
    if not pending.done.done():
        pending.done.set_exception(exc)
