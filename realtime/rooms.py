"""One topic's room in a process: its listeners and the ordered stream of its events.

Versioned events can arrive out of order: two seeks of one video commit as versions 5 and 6 and
the second may be published first (concurrent requests in this process, or another process's
publish overtaking through Redis). Every listener must see every version, in order, so a room
takes only the next version; one that arrives ahead of a missing version is held until the gap
fills. A gap that never fills (its publisher died between commit and publish, or Redis dropped
the message) is handed to the bus after a bounded wait: it asks the topic's source for what was
missed, and goes on without it if the source cannot say. What a source says (the head on join,
catch-up after a gap or an outage) is the truth and may jump a gap. Unversioned events pass
straight through.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from realtime.delivery import Listener
from realtime.events import Event


@dataclass(eq=False)
class Room:
    topic: str
    listeners: set[Listener] = field(default_factory=set)
    #: the newest version taken (None until the head is known or a first event arrives)
    version: int | None = None
    #: the newest event taken, for topics whose newest event is their whole state (a playhead)
    state: Event | None = None
    #: events taken since the flusher's last pass, in version order
    fresh: list[Event] = field(default_factory=list)
    #: events that arrived ahead of a missing version, by version
    held: dict[int, Event] = field(default_factory=dict)
    gap_timer: asyncio.TimerHandle | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    joining: int = 0
    #: False until the head was loaded: listeners wait for it
    started: bool = False

    def accept(self, event: Event, *, authoritative: bool = False) -> bool:
        """Take `event` in version order; True if something new is ready for the listeners."""
        version = event.version
        if version is None:
            self.fresh.append(event)
            return True
        latest = self.version
        if latest is not None and version <= latest:
            return False  # an echo of our own publish, or a duplicate
        if latest is not None and not authoritative and version > latest + 1:
            self.held[version] = event
            return False
        self._take(event)
        return True

    def give_up_gap(self) -> list[int]:
        """Take every held event in order, skipping the missing ones; the versions skipped."""
        skipped: list[int] = []
        for version in sorted(self.held):
            event = self.held.pop(version, None)
            if event is None or self.version is None or version <= self.version:
                continue
            skipped.extend(range(self.version + 1, version))
            self._take(event)
        return skipped

    def take_fresh(self) -> list[Event]:
        fresh, self.fresh = self.fresh, []
        return fresh

    def _take(self, event: Event) -> None:
        self._set(event)
        held = self.held
        if not held:
            return
        assert event.version is not None
        for version in [version for version in held if version <= event.version]:
            del held[version]
        while (following := held.pop(self.version + 1, None)) is not None:  # type: ignore[operator]
            self._set(following)

    def _set(self, event: Event) -> None:
        self.version = event.version
        self.state = event
        self.fresh.append(event)
