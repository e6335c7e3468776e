"""Where live parties are kept, changed and announced, in this process and across processes.

`PartyRuntime` is built once in the app's lifespan. It keeps the last state it saw of each party
(`Live`, as stored in the live store), applies a transition of `resolvers/party_rules.py` to it
and writes it back with compare-and-set in one round trip; when another process wrote first, the
refusal carries the stored state and the transition runs again on it. A change that arrives
while writes of its party are in flight does not wait for their answers: it is applied to the
state the last of them writes and sent behind it, naming it (`LiveStore.swap`'s `after`), so it
is written only if that one was; a refusal sends the changes behind it round again, in order.
Changes whose events wait for a row (a chat message's) go alone, and the changes arriving
meanwhile go together in the next write (`resolvers/party_batch.py`).
Then the events are published on the party's topic with consecutive versions: in the production
shape inside the compare-and-set itself (one round trip for the write and the publication, and
the other processes hear of changes in the order they were written), else one round trip after.
What must outlive the live store goes to the database behind it (`PartyLogWriter`): the log of
events (`Party.events`, replays) and the party's last state, from which a lost state is rebuilt.
Members' player reports (the ready barrier's traffic) are applied by the party's home process,
which the others hand them to (`resolvers/party_home.py`), so a round's readies are one batch.
Presence (which members have a socket open, in any process) and the timers a party needs (the
ready barrier's timeout, a premiere's start, a host away too long) are kept here as well, with a
sweeper that also covers another process's (one round trip per pass for all of its parties).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, update
from sqlmodel import col, select

from models.base import utcnow
from models.parties import Party, PartyEvent
from realtime.events import Event, Publisher, topic
from resolvers.errors import NotFound, Unavailable
from resolvers.party_batch import Keep, Outcome, Pending, Transition, fail, run
from resolvers.party_home import HOME_LEASE_MS, Homes
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
from resolvers.party_state import Live, decode, encode, live_key
from resolvers.videos import now_ms

if TYPE_CHECKING:
    from config import Settings
    from models.db import Database
    from models.live import LiveStore, Tended

log = logging.getLogger("cowatch.parties")

#: How often this process refreshes the presence of its sockets, and how long an entry lives
#: without a refresh (a process that died is noticed within it).
PRESENCE_REFRESH_S = 1.0
PRESENCE_TTL_MS = 3000
#: Parties refreshed per round trip of a presence pass.
TEND_CHUNK = 20
#: How often the database is searched for parties idle past COWATCH_PARTY_IDLE_S.
IDLE_SWEEP_S = 60.0
CAS_ATTEMPTS = 50
#: Parties whose last known state this process keeps (a write starts from it, not from a read).
CACHED_STATES = 10_000
#: How long after its party ended a reaction stays in the party's log (seconds).
REACTION_KEEP_S = 3600


def party_topic(party_id: str) -> str:
    return topic("party", party_id)


class PartyPublisher(Publisher, Protocol):
    """The bus as the runtime uses it: it may hand the publication to the live store's write."""

    def wire(self, events: list[Event], redis_url: str | None) -> list[tuple[str, str]] | None:
        """The messages to publish with a write through `redis_url`; None if it cannot."""
        ...

    def deliver_here(self, events: list[Event]) -> None: ...


@dataclass(frozen=True)
class Applied:
    """A transition that was written: the state after it and the events it published."""

    live: Live
    events: list[Event]


@dataclass(eq=False)
class Flights:
    """The writes of one party this process sent and has not heard back about."""

    count: int = 0
    #: what the newest of them stores if it is written: (its line, the revision, the bytes, its
    #: token). A line is the writes sent one behind the other from one stored state; once one of
    #: them is refused, so is every write of its line sent after it, and the next write starts a
    #: new line from the stored state (None until then).
    head: tuple[int, int, bytes, str] | None = None


class PartyRuntime:
    def __init__(
        self, *, db: Database, live: LiveStore, publisher: PartyPublisher, settings: Settings
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
        #: set by `close`: no more background work or timers
        self._closing = False
        #: the last state this process saw of each party (revision, bytes), oldest first
        self._states: dict[str, tuple[int, bytes]] = {}
        #: changes waiting behind a write whose events wait for a row, per party
        self._queues: dict[str, list[Pending]] = {}
        #: writes in flight, per party
        self._flights: dict[str, Flights] = {}
        self._lines = itertools.count(1)
        self._tokens = itertools.count(1)
        #: where each party's player reports are applied (`resolvers/party_home.py`)
        self.homes = Homes(live, self.process, self._apply_live, self._background)

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self.writer.run(), name="cowatch-party-log"),
            asyncio.create_task(self.homes.listen(), name="cowatch-party-inbox"),
            asyncio.create_task(
                _every(PRESENCE_REFRESH_S, self.tend, "presence pass"),
                name="cowatch-party-presence",
            ),
            asyncio.create_task(
                _every(IDLE_SWEEP_S, self.end_idle, "idle party sweep"), name="cowatch-party-idle"
            ),
        ]

    async def close(self) -> None:
        """Stop the loops, the timers and the background work, then write what is held.
        Work a cancelled task starts on its way out (a queued write's drain, a timer it arms)
        is not started: nothing of this runtime runs after `close`."""
        self._closing = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        while pending := [*self._loops, *self._tasks]:
            self._loops = []
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks.difference_update(pending)
        await self.writer.flush()  # after any flush a cancelled loop had begun (it runs on)

    # -- reading and changing a party ---------------------------------------------------
    async def load(self, party_id: str) -> tuple[int, Live]:
        """The party's live state as stored now, and its revision; NotFound if there is none."""
        revision, raw = await self._fetch(party_id)
        return revision, decode(raw)

    async def get(self, party_id: str) -> Live:
        return (await self.load(party_id))[1]

    async def peek(self, party_id: str) -> Live:
        """The last state of the party this process saw (read if it saw none): possibly behind
        the stored one, so only for lookups a transition checks again (who a caller is)."""
        found = self._states.get(party_id)
        return decode(found[1]) if found is not None else await self.get(party_id)

    async def create(self, live: Live) -> None:
        """Store a new party's first state (Unavailable if its key is somehow taken)."""
        raw = encode(live)
        swap = await self.store.swap(live_key(live.id), 0, raw)
        if not swap.written:
            raise Unavailable("the party could not be created; try again")
        self._remember(live.id, swap.revision, raw)

    async def _fetch(self, party_id: str) -> tuple[int, bytes]:
        """The stored state (rebuilt from the database if the live store lost it)."""
        key = live_key(party_id)
        found = await self.store.read(key)
        if found is None:
            raw = encode(await self.writer.rebuild(party_id))
            swap = await self.store.swap(key, 0, raw)
            if swap.written:
                found = swap.revision, raw
            elif swap.value is not None:  # another process rebuilt it first
                found = swap.revision, swap.value
            else:
                raise Unavailable("the party's state could not be loaded; try again")
        self._remember(party_id, *found)
        return found

    def _remember(self, party_id: str, revision: int, raw: bytes) -> None:
        """Keep the newest state seen (revisions only grow, even across a lost record)."""
        cache = self._states
        known = cache.pop(party_id, None)
        if known is not None and known[0] > revision:
            revision, raw = known
        cache[party_id] = (revision, raw)
        if len(cache) > CACHED_STATES:
            del cache[next(iter(cache))]

    async def apply(
        self,
        party_id: str,
        transition: Transition,
        keep: Keep | None = None,
    ) -> Applied:
        """Apply `transition` with compare-and-set, then publish its events in order.

        A change is sent at once, behind the writes of its party in flight (see the module's
        docstring): the last READY of a barrier round does not wait for the answer to the one
        before it. A transition that raises (a DomainError) fails its own caller only.

        `keep` stores what the events announce (a chat message's row) before anyone hears of
        them; if it fails, the events still go out (their versions are taken) and the error is
        raised for the caller to take back what was announced. Such a change holds its party:
        the changes that arrive meanwhile go together in the next write, in arrival order (a
        group commit: the log writer commits their rows together).
        """
        pending = Pending(transition, keep, asyncio.get_running_loop().create_future())
        queue = self._queues.get(party_id)
        if queue is not None:
            queue.append(pending)
            return await pending.done
        if keep is None:
            await self._commit(party_id, [pending])
            return pending.done.result()
        self._queues[party_id] = []
        try:
            await self._commit(party_id, [pending])
        finally:
            queued = self._queues[party_id]
            if queued and not self._closing:
                self._background(self._drain(party_id))
            else:
                del self._queues[party_id]
                for behind in queued:  # closing: no drain will write them
                    fail(behind, Unavailable("the server is shutting down; try again"))
        return pending.done.result()

    async def _drain(self, party_id: str) -> None:
        """Write what queued behind a write, batch after batch, until nothing is left."""
        try:
            while batch := self._queues[party_id]:
                self._queues[party_id] = []
                await self._commit(party_id, batch)
        finally:
            for pending in self._queues.pop(party_id, []):
                fail(pending, Unavailable("the server is shutting down; try again"))

    async def _commit(self, party_id: str, batch: list[Pending]) -> None:
        batch = [pending for pending in batch if not pending.done.done()]  # callers gone
        try:
            if batch:
                await self._write(party_id, batch)
        except Exception as exc:
            for pending in batch:
                fail(pending, exc)
        except BaseException:
            for pending in batch:
                fail(pending, Unavailable("the change was interrupted; try again"))
            raise

    async def _write(self, party_id: str, batch: list[Pending]) -> None:
        key = live_key(party_id)
        found = self._states.get(party_id)
        current = False  # whether `found` is known to be the stored state (not a copy)
        stored = False  # work from the stored state even behind writes in flight
        for _ in range(CAS_ATTEMPTS):
            flights = self._flights.get(party_id)
            head = flights.head if flights is not None and not stored else None
            if head is not None:  # behind the writes in flight, from what they store
                line, revision, raw, after = head
            elif found is None:
                found, current = await self._fetch(party_id), True
                continue  # writes may have been sent meanwhile
            else:
                (revision, raw), line, after = found, next(self._lines), ""
            live, outcomes = run(party_id, batch, raw)
            final = encode(live)
            if head is not None and (
                final == raw or all(isinstance(outcome, Exception) for outcome in outcomes)
            ):
                # A refusal, or no change, is judged on the stored state, not on what writes
                # still in flight would store if they are written.
                found, stored = None, True
                continue
            if all(isinstance(outcome, Exception) for outcome in outcomes):
                if not current:  # a refusal must come from the stored state, not a copy
                    found = None
                    continue
                for pending, outcome in zip(batch, outcomes, strict=True):
                    assert isinstance(outcome, Exception)
                    fail(pending, outcome)
                return
            if final == raw:
                # Nothing changed (a timer whose moment passed, a member already online): no
                # write, no events. Judged on the stored state only, like a refusal.
                if not current:
                    found = None
                    continue
                self._arm_timers(live)
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, Exception):
                        fail(pending, outcome)
                    elif not pending.done.done():
                        pending.done.set_result(Applied(live=outcome.live(live), events=[]))
                return
            wire = None
            if all(pending.keep is None for pending in batch):  # a kept row goes first
                events = [e for o in outcomes if isinstance(o, Outcome) for e in o.events]
                wire = self.publisher.wire(events, self.store.url) if events else None
            token = f"{self.process}.{next(self._tokens)}"
            if flights is None:
                flights = self._flights[party_id] = Flights()
            flights.count += 1
            flights.head = (line, revision + 1, final, token)
            try:
                swap = await self.store.swap(
                    key, revision, final, wire or (), token=token, after=after
                )
            except BaseException:
                self._landed(party_id, flights, line, written=False)
                raise
            self._landed(party_id, flights, line, written=swap.written)
            if not swap.written:
                found = None  # the live store lost it (rebuilt by the next fetch)
                if swap.value is not None:
                    found, current = (swap.revision, swap.value), True
                    self._remember(party_id, *found)
                continue
            self._remember(party_id, swap.revision, final)
            await self._announce(live, batch, outcomes, published=swap.published)
            return
        raise Unavailable("the party is too busy right now; try again")

    def _landed(self, party_id: str, flights: Flights, line: int, *, written: bool) -> None:
        """A write of `line` was answered (or failed)."""
        flights.count -= 1
        if not written and flights.head is not None and flights.head[0] == line:
            flights.head = None  # the rest of its line is refused too: the next starts anew
        if flights.count == 0 and self._flights.get(party_id) is flights:
            del self._flights[party_id]

    async def _announce(
        self,
        live: Live,
        batch: list[Pending],
        outcomes: list[Outcome | Exception],
        *,
        published: bool = False,
    ) -> None:
        """After a write: log, keep, publish every event in version order (here only, if the
        write `published` them to the other processes), arm the timers."""
        events: list[Event] = []
        keeping: list[tuple[int, Awaitable[None]]] = []
        failures: list[BaseException | None] = [
            outcome if isinstance(outcome, Exception) else None for outcome in outcomes
        ]
        try:
            for index, (pending, outcome) in enumerate(zip(batch, outcomes, strict=True)):
                if isinstance(outcome, Outcome):
                    for change, event in zip(outcome.changes, outcome.events, strict=True):
                        if change.logged:
                            self.writer.log(live.id, event)
                    events += outcome.events
                    if pending.keep is not None:
                        keeping.append((index, pending.keep(outcome.events)))
            self.writer.keep(live)
            if keeping:  # side by side: the log writer commits them together
                kept = await asyncio.gather(*(k for _, k in keeping), return_exceptions=True)
                for (index, _), result in zip(keeping, kept, strict=True):
                    if isinstance(result, Exception):
                        failures[index] = result
                    elif isinstance(result, BaseException):
                        raise result
        finally:
            if published:
                self.publisher.deliver_here(events)
            else:
                await self.publisher.publish_all(events)
            self._arm_timers(live)
        for pending, outcome, failure in zip(batch, outcomes, failures, strict=True):
            if isinstance(failure, Exception):
                fail(pending, failure)
            elif isinstance(outcome, Outcome) and not pending.done.done():
                pending.done.set_result(Applied(live=outcome.live(live), events=outcome.events))

    async def _apply_live(self, party_id: str, transition: Transition) -> Live:
        return (await self.apply(party_id, transition)).live

    def spawn(self, party_id: str, transition: Transition) -> None:
        """Apply a transition in the background (timers, presence); failures are logged."""
        self._background(self._quietly(party_id, transition))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        if self._closing:
            work.close()  # never started: the runtime is closing
            return
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quietly(self, party_id: str, transition: Transition) -> None:
        try:
            await self.apply(party_id, transition)
        except Exception as exc:
            log.warning("party %s: a background change failed: %r", party_id, exc)

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
        if self._closing:
            return
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
        applied = await self.apply(
            party_id,
            lambda live: presence(
                live, member_id, online=True, latency_ms=latency_ms, now=now_ms()
            ),
        )
        if applied.live.host_id == member_id:  # the host's process: the party's home
            await self.homes.take(party_id)

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

    async def tend(self) -> None:
        """Refresh this process's presence entries for its parties, claim or renew their homes
        and read each party back, a round trip per TEND_CHUNK parties; then per party: retire
        the expired entries of processes that died and fire the overdue timers (their process
        may be gone). Chunks keep each step short: one pipeline for 100 parties held the event
        loop for 8 to 19 ms at a time, once a second, in every process."""
        expiry = now_ms() + PRESENCE_TTL_MS
        mine = [
            (live_key(party_id), {self._entry(member_id): expiry for member_id in counts})
            for party_id, counts in list(self.sockets.items())
        ]
        for start in range(0, len(mine), TEND_CHUNK):
            chunk = dict(mine[start : start + TEND_CHUNK])
            found = await self.store.refresh(chunk, self.process, HOME_LEASE_MS)
            for key, tended in found.items():
                party_id = key.partition(":")[2]
                self.homes.seen(party_id, tended.home)
                try:
                    await self._tend(party_id, tended)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("party %s: presence pass failed: %r", party_id, exc)

    async def _tend(self, party_id: str, tended: Tended) -> None:
        if tended.record is None:
            live = await self.get(party_id)  # the live store lost it: rebuilt
        else:
            self._remember(party_id, *tended.record)
            live = decode(tended.record[1])
        now = now_ms()
        stale = [entry for entry, until in tended.presence.items() if until <= now]
        key = live_key(party_id)
        for entry in stale:
            await self.store.absent(key, entry)
        if stale:
            await self._offline_if_gone(party_id, {entry.split("|")[0] for entry in stale})
        playback = live.playback
        if playback.deadline is not None and now >= playback.deadline:
            self.spawn(party_id, _timeout(playback.version))
        if playback.scheduled:
            self.spawn(party_id, _premiere(playback.version))
        if host_away(live, now):  # a copy: `live` is not written back here
            self.spawn(party_id, lambda state: host_away(state, now_ms()))

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


async def _every(seconds: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `work` every `seconds` until cancelled; a pass that fails is logged, not fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed: %r", what, exc)


def _timeout(version: int) -> Transition:
    return lambda live: barrier_timeout(live, version, now_ms())


def _premiere(version: int) -> Transition:
    return lambda live: start_scheduled(live, version, now_ms())


def _offline(member_id: str) -> Transition:
    return lambda live: presence(live, member_id, online=False, latency_ms=None, now=now_ms())
