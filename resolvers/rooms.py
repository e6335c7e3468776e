"""One video's room in a process: its listeners and the ordered stream of its states.

States can arrive out of order: two seeks of one video commit as versions 5 and 6, and the
second may be published first (concurrent requests in this process, or another process's
publish overtaking through Redis). Every viewer must see every version, in order, so a room
takes only the next version; one that arrives ahead of a missing version is held until the gap
fills. A gap that never fills (its publisher died between commit and publish, or Redis dropped
the message) is given up by the bus after a bounded wait: the held states go out and the loss
is logged. A state read from the database (on join, after a broker outage) is the truth and
jumps any gap.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from resolvers.delivery import Listener
from resolvers.playback import PlaybackState


@dataclass(eq=False)
class Room:
    listeners: set[Listener] = field(default_factory=set)
    latest: PlaybackState | None = None
    #: states taken since the flusher's last pass, in version order
    fresh: list[PlaybackState] = field(default_factory=list)
    #: states that arrived ahead of a missing version, by version
    held: dict[int, PlaybackState] = field(default_factory=dict)
    gap_timer: asyncio.TimerHandle | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    joining: int = 0

    def accept(self, state: PlaybackState, *, authoritative: bool = False) -> bool:
        """Take `state` in version order; True if something new is ready for the listeners."""
        latest = self.latest
        if latest is not None and state.version <= latest.version:
            return False  # an echo of our own publish, or a duplicate
        if latest is not None and not authoritative and state.version > latest.version + 1:
            self.held[state.version] = state
            return False
        self._take(state)
        return True

    def give_up_gap(self) -> list[int]:
        """Take every held state in order, skipping the missing ones; the versions skipped."""
        skipped: list[int] = []
        for version in sorted(self.held):
            state = self.held.pop(version, None)
            if state is None or self.latest is None:
                continue
            skipped.extend(range(self.latest.version + 1, version))
            self._take(state)
        return skipped

    def take_fresh(self) -> list[PlaybackState]:
        fresh, self.fresh = self.fresh, []
        return fresh

    def _take(self, state: PlaybackState) -> None:
        self.latest = state
        self.fresh.append(state)
        held = self.held
        if not held:
            return
        for version in [version for version in held if version <= state.version]:
            del held[version]
        while (following := held.pop(state.version + 1, None)) is not None:
            state = self.latest = following
            self.fresh.append(following)
