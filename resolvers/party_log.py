"""What outlives the live store: a party's log of events and its last state, written behind.

`PartyLogWriter` batches them into the database (`party_events`, `parties.snapshot`) every
`FLUSH_S` or every 500 events; `PartyTopics` is the bus's `Source` for `party:<id>` topics: the
live state's version as the head, and the log for what a gap (or an outage) missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import insert, update
from sqlmodel import col, select

from models.parties import Party, PartyEvent
from realtime.events import Event, Head
from resolvers.party_state import Live, encode
from resolvers.videos import now_ms

if TYPE_CHECKING:
    from models.db import Database
    from resolvers.party_runtime import PartyRuntime

log = logging.getLogger("cowatch.parties")
#: How often the log writer flushes what it holds, at the latest.
FLUSH_S = 0.2


class PartyLogWriter:
    """Writes behind: the log's events and each party's last state, in batches."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._events: list[dict[str, object]] = []
        self._states: dict[str, Live] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def log(self, party_id: str, event: Event) -> None:
        data = dict(event.data)
        server_time = int(data.pop("server_time"))
        media = float(data.pop("media_time"))
        self._events.append(
            {
                "party_id": party_id,
                "seq": event.version,
                "kind": event.kind,
                "data": json.dumps(data, separators=(",", ":")),
                "server_time": server_time,
                "media_time": media,
            }
        )
        if len(self._events) >= 500:
            self._wake.set()

    def keep(self, live: Live) -> None:
        self._states[live.id] = live

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_S)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.warning("writing the party log failed (kept for the next flush): %r", exc)

    async def flush(self) -> None:
        async with self._lock:
            events, self._events = self._events, []
            states, self._states = self._states, {}
            if not events and not states:
                return
            try:
                async with self.db.engine.begin() as conn:
                    if events:
                        await conn.execute(insert(PartyEvent), events)
                    for live in states.values():
                        online = any(m.online for m in live.members.values())
                        values: dict[str, object] = {"snapshot": encode(live).decode()}
                        if online:
                            values["active_at"] = now_ms()
                        await conn.execute(
                            update(Party).where(col(Party.id) == live.id).values(**values)
                        )
            except Exception:
                self._events = events + self._events
                for party_id, live in states.items():
                    self._states.setdefault(party_id, live)
                raise

    def held_seqs(self, party_id: str) -> list[int]:
        """Versions of the party's events written here but not yet in the database."""
        return [int(str(e["seq"])) for e in self._events if e["party_id"] == party_id]


class PartyTopics:
    """The truth of `party:<id>` topics for the bus: the live state's version, and the log."""

    stateful: ClassVar[bool] = False

    def __init__(self, runtime: PartyRuntime) -> None:
        self.runtime = runtime

    async def head(self, name: str) -> Head:
        live = await self.runtime.get(name.partition(":")[2])
        return Head(version=live.seq)

    async def since(self, name: str, version: int | None) -> list[Event]:
        party_id = name.partition(":")[2]
        await self.runtime.writer.flush()
        async with self.runtime.db.session() as session:
            rows = (
                await session.exec(
                    select(PartyEvent)
                    .where(PartyEvent.party_id == party_id, col(PartyEvent.seq) > (version or 0))
                    .order_by(col(PartyEvent.seq))
                    .limit(1000)
                )
            ).all()
        return [
            Event(
                topic=name,
                version=row.seq,
                kind=row.kind,
                data={
                    **json.loads(row.data),
                    "server_time": row.server_time,
                    "media_time": row.media_time,
                },
            )
            for row in rows
        ]
