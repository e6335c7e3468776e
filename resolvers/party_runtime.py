"""Where live parties are kept, changed and announced, in this process and across processes.

`PartyRuntime` is built once in the app's lifespan. It reads a party's `Live` state from the live
store (rebuilding it from the database if the store lost it), applies a transition of
`resolvers/party_state.py` and writes it back with compare-and-set (retrying when another process
won), then publishes the transition's events on the party's topic with consecutive versions. What
must outlive the live store goes to the database behind it (`PartyLogWriter`): the log of events
(`Party.events`, replays) and the party's last state. Presence (which members have a socket open,
in any process) and the timers a party needs (the ready barrier's timeout, a premiere's start, a
host away too long) are kept here as well, with a sweeper that also covers another process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, update
from sqlmodel import col, select

from models import User, Video
from models.base import utcnow
from models.parties import Party, PartyEvent, PartyMember
from realtime.events import Event, Publisher, topic
from resolvers.errors import NotFound, Unavailable
from resolvers.party_log import PartyLogWriter
from resolvers.party_rules import (
    MAX_LEAD_MS,
    START_MARGIN_MS,
    barrier_timeout,
    end,
    host_away,
    presence,
    start_scheduled,
)
from resolvers.party_state import Change, Live, Member, decode, encode, media_time
from resolvers.videos import now_ms

if TYPE_CHECKING:
    from config import Settings
    from models.db import Database
    from models.live import LiveStore

log = logging.getLogger("cowatch.parties")

#: How often this process refreshes the presence of its sockets, and how long an entry lives
#: without a refresh (a process that died is noticed within it).
PRESENCE_REFRESH_S = 1.0
PRESENCE_TTL_MS = 3000
#: How often the database is searched for parties idle past COWATCH_PARTY_IDLE_S.
IDLE_SWEEP_S = 60.0
CAS_ATTEMPTS = 50
#: How long after its party ended a reaction stays in the party's log (seconds).
REACTION_KEEP_S = 3600

Transition = Callable[[Live], list[Change]]


def party_topic(party_id: str) -> str:
    return topic("party", party_id)


def live_key(party_id: str) -> str:
    return f"party:{party_id}"


@dataclass(frozen=True)
class Applied:
    """A transition that was written: the state after it and the events it published."""

    live: Live
    events: list[Event]


class PartyRuntime:
    def __init__(
        self, *, db: Database, live: LiveStore, publisher: Publisher, settings: Settings
    ) -> None:
        self.db = db
        self.store = live
        self.publisher = publisher
        self.settings = settings
        self.process = uuid.uuid4().hex[:12]
        self.writer = PartyLogWriter(db)
        #: sockets of this process per party and member
        self.sockets: dict[str, dict[str, int]] = defaultdict(dict)
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self.writer.run(), name="cowatch-party-log"),
            asyncio.create_task(self._presence_loop(), name="cowatch-party-presence"),
            asyncio.create_task(self._idle_loop(), name="cowatch-party-idle"),
        ]

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in [*self._loops, *self._tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.writer.flush()

    # -- reading and changing a party ---------------------------------------------------
    async def load(self, party_id: str) -> tuple[int, Live]:
        """The party's live state and its revision; NotFound if there is no such party."""
        found = await self.store.read(live_key(party_id))
        if found is not None:
            return found[0], decode(found[1])
        live = await self._rebuild(party_id)
        revision = await self.store.write(live_key(party_id), 0, encode(live))
        if revision:
            return revision, live
        found = await self.store.read(live_key(party_id))  # another process rebuilt it first
        if found is None:
            raise Unavailable("the party's state could not be loaded; try again")
        return found[0], decode(found[1])

    async def get(self, party_id: str) -> Live:
        return (await self.load(party_id))[1]

    async def apply(
        self,
        party_id: str,
        transition: Transition,
        keep: Callable[[list[Event]], Awaitable[None]] | None = None,
    ) -> Applied:
        """Apply `transition` with compare-and-set, then publish its events in order.

        `keep` stores what the events announce (a chat message's row) before anyone hears of
        them; if it fails, the events still go out (their versions are taken) and the error is
        raised for the caller to take back what was announced.
        """
        for _ in range(CAS_ATTEMPTS):
            revision, live = await self.load(party_id)
            changes = transition(live)  # a DomainError here leaves everything as it was
            now = now_ms()
            events = [
                Event(
                    topic=party_topic(party_id),
                    version=live.seq + index,
                    kind=change.kind,
                    # An event's own fields win: a playhead's `server_time` is when its
                    # `timestamp` holds (a start's is in the future), not when it was sent.
                    data={"server_time": now, "media_time": media_time(live, now), **change.data},
                )
                for index, change in enumerate(changes, start=1)
            ]
            live.seq += len(changes)
            if not await self.store.write(live_key(party_id), revision, encode(live)):
                continue
            for change, event in zip(changes, events, strict=True):
                if change.logged:
                    self.writer.log(party_id, event)
            self.writer.keep(live)
            try:
                if keep is not None:
                    await keep(events)
            finally:
                for event in events:
                    await self.publisher.publish(event)
                self._arm_timers(live)
            return Applied(live=live, events=events)
        raise Unavailable("the party is too busy right now; try again")

    def spawn(self, party_id: str, transition: Transition) -> None:
        """Apply a transition in the background (timers, presence); failures are logged."""
        task = asyncio.create_task(self._quietly(party_id, transition))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quietly(self, party_id: str, transition: Transition) -> None:
        try:
            await self.apply(party_id, transition)
        except Exception as exc:
            log.warning("party %s: a background change failed: %r", party_id, exc)

    async def _rebuild(self, party_id: str) -> Live:
        """The live state from the database: the last state kept, or the rows themselves."""
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
        seq = max([stored or 0, *self.writer.held_seqs(party_id)])
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

    # -- timers ---------------------------------------------------------------------------
    def _arm_timers(self, live: Live) -> None:
        playback = live.playback
        version = playback.version
        if playback.deadline is not None and playback.state == "WAITING":
            self._arm(live.id, "barrier", playback.deadline, _timeout(version))
        if playback.scheduled and playback.effective_at is not None:
            at = playback.effective_at - START_MARGIN_MS - MAX_LEAD_MS
            self._arm(live.id, "premiere", at, _premiere(version))

    def _arm(self, party_id: str, kind: str, at_ms: int, transition: Transition) -> None:
        key = (party_id, kind)
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        delay = max(0.0, (at_ms - now_ms()) / 1000)
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key, party_id, transition)

    def _fire(self, key: tuple[str, str], party_id: str, transition: Transition) -> None:
        self._timers.pop(key, None)
        self.spawn(party_id, transition)

    # -- presence -------------------------------------------------------------------------
    def _entry(self, member_id: str) -> str:
        return f"{member_id}|{self.process}"

    async def socket_opened(self, party_id: str, member_id: str, latency_ms: float | None) -> None:
        """One more socket of this member listens to the party (the first makes it online)."""
        counts = self.sockets[party_id]
        counts[member_id] = counts.get(member_id, 0) + 1
        if counts[member_id] > 1:
            return
        entry = {self._entry(member_id): now_ms() + PRESENCE_TTL_MS}
        await self.store.present(live_key(party_id), entry)
        await self.apply(
            party_id,
            lambda live: presence(
                live, member_id, online=True, latency_ms=latency_ms, now=now_ms()
            ),
        )

    async def socket_closed(self, party_id: str, member_id: str) -> None:
        """A socket of this member stopped listening; its last one, anywhere, makes it leave."""
        counts = self.sockets.get(party_id)
        if counts is None or member_id not in counts:
            return
        counts[member_id] -= 1
        if counts[member_id] > 0:
            return
        del counts[member_id]
        if not counts:
            del self.sockets[party_id]
        await self.store.absent(live_key(party_id), self._entry(member_id))
        await self._offline_if_gone(party_id, {member_id})

    async def _offline_if_gone(self, party_id: str, members: set[str]) -> None:
        entries = await self.store.presence(live_key(party_id))
        now = now_ms()
        alive = {entry.split("|")[0] for entry, expires in entries.items() if expires > now}
        for member_id in members - alive:
            with contextlib.suppress(NotFound):
                await self.apply(party_id, _offline(member_id))

    async def _presence_loop(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_REFRESH_S)
            for party_id in list(self.sockets):
                try:
                    await self.tend(party_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("party %s: presence pass failed: %r", party_id, exc)

    async def tend(self, party_id: str) -> None:
        """Refresh this process's presence entries for the party; retire the expired entries
        of processes that died; fire the party's overdue timers (their process may be gone)."""
        counts = self.sockets.get(party_id, {})
        key = live_key(party_id)
        await self.store.present(key, {self._entry(m): now_ms() + PRESENCE_TTL_MS for m in counts})
        now = now_ms()
        stale = [entry for entry, until in (await self.store.presence(key)).items() if until <= now]
        for entry in stale:
            await self.store.absent(key, entry)
        if stale:
            await self._offline_if_gone(party_id, {entry.split("|")[0] for entry in stale})
        live = await self.get(party_id)
        playback = live.playback
        if playback.deadline is not None and now >= playback.deadline:
            self.spawn(party_id, _timeout(playback.version))
        if playback.scheduled:
            self.spawn(party_id, _premiere(playback.version))
        if host_away(live, now):  # a copy: `live` is not written back here
            self.spawn(party_id, lambda state: host_away(state, now_ms()))

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(IDLE_SWEEP_S)
            try:
                await self.end_idle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("idle party sweep failed: %r", exc)

    async def end_idle(self) -> list[str]:
        """End every party nobody was online in for COWATCH_PARTY_IDLE_S; their ids."""
        await self.writer.flush()
        cutoff = now_ms() - self.settings.party_idle_s * 1000
        async with self.db.session() as session:
            rows = (
                await session.exec(
                    select(Party.id).where(
                        col(Party.ended_at).is_(None), col(Party.active_at) < cutoff
                    )
                )
            ).all()
        ended = []
        for party_id in rows:
            entries = await self.store.presence(live_key(party_id))
            if any(until > now_ms() for until in entries.values()):
                continue
            with contextlib.suppress(NotFound):
                await self.apply(party_id, end)
                await self.mark_ended(party_id)
                ended.append(party_id)
        await self.prune_reactions()
        return ended

    async def prune_reactions(self) -> None:
        """Reactions are kept for the party's life: an hour after it ended, they go."""
        cutoff = utcnow() - timedelta(seconds=REACTION_KEEP_S)
        ended = select(Party.id).where(col(Party.ended_at) < cutoff)
        async with self.db.engine.begin() as conn:
            await conn.execute(
                delete(PartyEvent).where(
                    col(PartyEvent.kind) == "reaction", col(PartyEvent.party_id).in_(ended)
                )
            )

    async def mark_ended(self, party_id: str) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(
                update(Party).where(col(Party.id) == party_id).values(ended_at=utcnow())
            )


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


def _timeout(version: int) -> Transition:
    return lambda live: barrier_timeout(live, version, now_ms())


def _premiere(version: int) -> Transition:
    return lambda live: start_scheduled(live, version, now_ms())


def _offline(member_id: str) -> Transition:
    return lambda live: presence(live, member_id, online=False, latency_ms=None, now=now_ms())
