"""What outlives the live store: a party's log of events, its chat messages and its last state,
written behind.

`PartyLogWriter` batches them into the database (`party_events`, `chat_messages`,
`parties.snapshot`) every `FLUSH_S` or every 500 events, one transaction and one statement per
table a batch; a chat message is written at once (its sender waits for the commit before the
party hears of it), with whatever else is held then. It also rebuilds a party's live state from
them when the live store lost it.
`PartyTopics` is the bus's `Source` for `party:<id>` topics: the live state's version as the head,
and the log for what a gap (or an outage) missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import bindparam, func, insert, update
from sqlmodel import col, select

from models import User, Video
from models.chat import ChatMessage
from models.parties import Party, PartyEvent, PartyMember
from realtime.events import Event, Head
from resolvers.errors import NotFound
from resolvers.party_state import Live, Member, decode, encode
from resolvers.videos import now_ms

if TYPE_CHECKING:
    from models.db import Database
    from resolvers.party_runtime import PartyRuntime

log = logging.getLogger("cowatch.parties")
#: How often the log writer flushes what it holds, at the latest.
FLUSH_S = 0.2
#: Rows held that wake the writer before FLUSH_S.
BATCH = 500
#: One statement for every party's last state in a batch (an executemany), with and without the
#: moment it was last active (a party nobody is online in keeps its old `active_at`).
_KEEP_ACTIVE = (
    update(Party)
    .where(col(Party.id) == bindparam("party_id"))
    .values(snapshot=bindparam("state"), active_at=bindparam("active"))
)
_KEEP = (
    update(Party).where(col(Party.id) == bindparam("party_id")).values(snapshot=bindparam("state"))
)


class PartyLogWriter:
    """Writes behind: the log's events and each party's last state, in batches."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._events: list[dict[str, object]] = []
        self._messages: list[tuple[dict[str, object], asyncio.Future[None]]] = []
        self._states: dict[str, Live] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        #: flushes under way (a flush whose caller was cancelled runs on: see `flush`)
        self._flushing: set[asyncio.Task[None]] = set()

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
        if len(self._events) >= BATCH:
            self._wake.set()

    def message(self, row: dict[str, object]) -> asyncio.Future[None]:
        """Write a `chat_messages` row (by column) at once: done when it is committed.

        Group commit: the writer wakes now, and the rows that arrive while a batch is being
        written share the next one, so under load a transaction carries many messages.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._messages.append((row, done))
        self._wake.set()
        return done

    def keep(self, live: Live) -> None:
        self._states[live.id] = live

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        states_due = loop.time() + FLUSH_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, states_due - loop.time()))
            self._wake.clear()
            # A message wakes the writer at once; the parties' states (one row each, rewritten
            # whole) wait for their turn every FLUSH_S rather than ride along every message.
            with_states = loop.time() >= states_due
            if with_states:
                states_due = loop.time() + FLUSH_S
            try:
                await self.flush(with_states=with_states)
            except Exception as exc:
                log.warning("writing the party log failed (kept for the next flush): %r", exc)

    async def flush(self, *, with_states: bool = True) -> None:
        """Write what is held; `with_states=False` leaves the parties' last states for later.

        A caller cancelled meanwhile (the loop at shutdown, a request that went away) does not
        cancel the write: the batch is already taken out, so inside its transaction it would be
        lost. The write keeps the lock until it ends, so the next flush comes after it.
        """
        task = asyncio.ensure_future(self._flush(with_states=with_states))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)
        await asyncio.shield(task)

    async def _flush(self, *, with_states: bool) -> None:
        async with self._lock:
            events, self._events = self._events, []
            messages, self._messages = self._messages, []
            states: dict[str, Live] = {}
            if with_states:
                states, self._states = self._states, {}
            if not events and not messages and not states:
                return
            now = now_ms()
            active: list[dict[str, object]] = []
            idle: list[dict[str, object]] = []
            for live in states.values():
                row = {"party_id": live.id, "state": encode(live).decode(), "active": now}
                online = any(m.online for m in live.members.values())
                (active if online else idle).append(row)
            try:
                async with self.db.engine.begin() as conn:
                    if events:
                        await conn.execute(insert(PartyEvent), events)
                    if messages:
                        await conn.execute(insert(ChatMessage), [row for row, _ in messages])
                    if active:
                        await conn.execute(_KEEP_ACTIVE, active)
                    if idle:
                        await conn.execute(_KEEP, idle)
            except Exception as exc:
                # The log and the states wait for the next batch; the messages are written one
                # by one, so a row the database refuses fails only its own sender (who takes
                # back what its party was told).
                self._events = events + self._events
                for party_id, live in states.items():
                    self._states.setdefault(party_id, live)
                await self._one_by_one(messages)
                raise exc from None
            for _, done in messages:
                if not done.done():
                    done.set_result(None)

    async def _one_by_one(
        self, messages: list[tuple[dict[str, object], asyncio.Future[None]]]
    ) -> None:
        for row, done in messages:
            try:
                async with self.db.engine.begin() as conn:
                    await conn.execute(insert(ChatMessage), [row])
            except Exception as exc:
                if not done.done():
                    done.set_exception(exc)
            else:
                if not done.done():
                    done.set_result(None)

    def held_seqs(self, party_id: str) -> list[int]:
        """Versions of the party's events written here but not yet in the database."""
        return [int(str(e["seq"])) for e in self._events if e["party_id"] == party_id]

    async def rebuild(self, party_id: str) -> Live:
        """A live state the live store lost, from the database: the last state kept, or the
        rows themselves (NotFound if there is no such party)."""
        async with self.db.session() as session:
            party = await session.get(Party, party_id)
            if party is None:
                raise NotFound("party not found")
            members = (
                await session.exec(
                    select(PartyMember).where(
                        PartyMember.party_id == party_id,
                        col(PartyMember.left_at).is_(None),
                        col(PartyMember.kicked_at).is_(None),
                    )
                )
            ).all()
            stored = (
                await session.exec(
                    select(func.max(PartyEvent.seq)).where(PartyEvent.party_id == party_id)
                )
            ).one()
        seq = max([stored or 0, *self.held_seqs(party_id)])
        if party.snapshot:
            live = decode(party.snapshot.encode())
        else:
            live = await self._from_rows(party, list(members))
        live.seq = max(live.seq, seq)
        for member in live.members.values():  # presence is rebuilt by the sockets themselves
            member.online = False
        live.ended = live.ended or party.ended_at is not None
        return live

    async def _from_rows(self, party: Party, rows: list[PartyMember]) -> Live:
        """A party that never reached the log writer: its settings and members as stored."""
        async with self.db.session() as session:
            video = await session.get(Video, party.video_id)
            ids = [row.user_id for row in rows if row.user_id]
            users = (await session.exec(select(User).where(col(User.id).in_(ids)))).all()
        names = {user.id: user.username for user in users}
        live = live_of(party, duration=video.duration if video else None)
        for row in rows:
            member = Member(
                id=row.id,
                name=row.display_name,
                role=row.role,
                user_id=row.user_id,
                username=names.get(row.user_id or ""),
                joined_at=int(row.joined_at.timestamp() * 1000),
            )
            live.members[member.id] = member
            if member.role == "HOST":
                live.host_id = member.id
        return live


def live_of(party: Party, *, duration: float | None) -> Live:
    """A party's live state from its row, before anyone joined."""
    return Live(
        id=party.id,
        code=party.code,
        name=party.name,
        video_id=party.video_id,
        duration=duration,
        visibility=party.visibility,
        control=party.control,
        max_members=party.max_members,
        chat_enabled=party.chat_enabled,
        has_password=party.password_hash is not None,
        host_user_id=party.host_user_id,
        created_at=int(party.created_at.timestamp() * 1000),
        ended=party.ended_at is not None,
    )


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
