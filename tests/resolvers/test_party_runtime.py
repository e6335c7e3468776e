"""How a party's changes are written: bursts to one party, and two processes on one live store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import col, select

from models.live import LiveStore, MemoryLive, RedisLive, Swap
from models.parties import PartyEvent, PartyState, PlayerState
from realtime.bus import Bus
from realtime.delivery import Listener
from realtime.events import Event
from resolvers import parties, party_runtime
from resolvers import party_rules as rules
from resolvers.auth import Caller
from resolvers.errors import Forbidden, Unavailable
from resolvers.party_batch import Pending, Transition, run
from resolvers.party_log import PartyTopics
from resolvers.party_runtime import Applied, PartyRuntime, live_key, now_ms, party_topic
from resolvers.party_state import Live, encode
from resolvers.services import Services
from tests.conftest import REDIS_URL
from tests.factories import join_guest, make_user, make_videos


@pytest.fixture
def store(live_store: LiveStore) -> LiveStore:
    return live_store


@pytest.fixture
def created() -> list[str]:
    """The parties a test made (their live records are removed afterwards)."""
    return []


@pytest.fixture
async def runtimes(
    services: Services, store: LiveStore, created: list[str]
) -> AsyncIterator[list[PartyRuntime]]:
    """Two processes' runtimes on one database, bus and live store."""
    made = [
        PartyRuntime(db=services.db, live=store, publisher=services.bus, settings=services.settings)
        for _ in range(2)
    ]
    try:
        yield made
    finally:
        for runtime in made:
            await runtime.close()
        for party_id in created:
            await store.forget(live_key(party_id))


async def _party(
    services: Services, runtime: PartyRuntime, created: list[str], guests: int
) -> tuple[Live, Caller]:
    host = await make_user(services)
    (video,) = await make_videos(services, host.user, 1, duration=90.0)
    live = await parties.create_party(
        runtime=runtime, hashing=services.hashing, user=host.user, video_id=video.id
    )
    created.append(live.id)
    for number in range(guests):
        await join_guest(services, runtime, live.code, f"guest {number}")
    return await runtime.get(live.id), Caller(user=host.user)


def _ready(member_id: str) -> Transition:
    return lambda live: rules.report(
        live, member_id, state=PlayerState.READY, position=10.0, latency_ms=None, now=now_ms()
    )


def _online(member_id: str) -> Transition:
    return lambda live: rules.presence(live, member_id, online=True, latency_ms=None, now=now_ms())


def _play(member_id: str) -> Transition:
    return lambda live: rules.set_playback(
        live,
        member_id,
        timestamp=10.0,
        playing=True,
        rate=None,
        now=now_ms(),
        ready_timeout_ms=60_000,
    )


async def test_a_burst_of_readies_releases_the_barrier_once_with_every_version_once(
    services: Services, runtimes: list[PartyRuntime], created: list[str]
) -> None:
    runtime = runtimes[0]
    live, _ = await _party(services, runtime, created, guests=4)
    members = list(live.members)
    for member_id in members:  # online and no longer IDLE: the barrier waits for each
        await runtime.apply(live.id, _online(member_id))
        await runtime.apply(live.id, _ready(member_id))
    waiting = await runtime.apply(live.id, _play(members[0]))
    assert waiting.live.playback.state == PartyState.WAITING
    assert sorted(waiting.live.playback.waiting_for) == sorted(members)

    answers = await asyncio.gather(*(runtime.apply(live.id, _ready(m)) for m in members))

    after = await runtime.get(live.id)
    assert after.playback.state == PartyState.PLAYING
    assert all(after.members[m].player == PlayerState.READY for m in members)
    events = [event for answer in answers for event in answer.events]
    assert sorted(e.version or 0 for e in events) == list(
        range(waiting.live.seq + 1, after.seq + 1)
    )
    starts = [e for e in events if e.kind == "playback" and e.data["state"] == PartyState.PLAYING]
    assert len(starts) == 1
    for member_id, answer in zip(members, answers, strict=True):
        assert answer.live.members[member_id].player == PlayerState.READY


async def test_a_refused_change_in_a_burst_fails_its_caller_only(
    services: Services, runtimes: list[PartyRuntime], created: list[str]
) -> None:
    runtime = runtimes[0]
    live, _ = await _party(services, runtime, created, guests=3)
    _host, first, second, third = list(live.members)

    answers = await asyncio.gather(
        runtime.apply(live.id, _ready(first)),
        runtime.apply(live.id, _play(second)),  # a guest in a HOST party: refused
        runtime.apply(live.id, _ready(third)),
        return_exceptions=True,
    )

    assert isinstance(answers[0], Applied) and isinstance(answers[2], Applied)
    assert isinstance(answers[1], Forbidden)
    after = await runtime.get(live.id)
    assert after.playback.version == live.playback.version
    assert after.members[first].player == PlayerState.READY
    assert after.members[third].player == PlayerState.READY
    assert after.members[second].player == PlayerState.IDLE
    assert after.seq == live.seq + 2


async def test_a_process_working_from_an_older_state_loses_nothing_of_the_newer_one(
    services: Services, runtimes: list[PartyRuntime], created: list[str]
) -> None:
    one, two = runtimes
    live, _ = await _party(services, one, created, guests=1)
    await two.get(live.id)  # the second process has seen the party as it is now
    late = await join_guest(services, one, live.code, "late")

    await two.apply(live.id, _ready(live.host_id or ""))

    after = await one.get(live.id)
    assert late in after.members
    assert after.members[live.host_id or ""].player == PlayerState.READY


async def test_a_state_held_from_before_the_live_store_lost_it_cannot_overwrite_the_rebuilt_one(
    services: Services, store: LiveStore, runtimes: list[PartyRuntime], created: list[str]
) -> None:
    one, two = runtimes
    live, _ = await _party(services, one, created, guests=1)  # three writes: created, host, guest
    await two.get(live.id)
    await store.forget(live_key(live.id))  # Redis flushed or restarted
    await one.get(live.id)  # rebuilt from the database: a new record
    late = [await join_guest(services, one, live.code, f"late {n}") for n in range(2)]  # two writes

    await two.apply(live.id, _ready(live.host_id or ""))

    after = await one.get(live.id)
    assert all(member_id in after.members for member_id in late)
    assert after.members[live.host_id or ""].player == PlayerState.READY


async def test_a_change_that_changes_nothing_writes_nothing_and_publishes_nothing(
    services: Services, store: LiveStore, runtimes: list[PartyRuntime], created: list[str]
) -> None:
    runtime = runtimes[0]
    live, _ = await _party(services, runtime, created, guests=1)
    guest = next(m for m in live.members if m != live.host_id)
    await runtime.apply(live.id, _online(guest))
    before = await store.read(live_key(live.id))

    again = await runtime.apply(live.id, _online(guest))  # already online: nothing to say

    assert again.events == []
    assert await store.read(live_key(live.id)) == before


async def test_a_change_that_changes_nothing_on_an_old_copy_is_judged_on_the_stored_state(
    services: Services, runtimes: list[PartyRuntime], created: list[str]
) -> None:
    one, two = runtimes
    live, _ = await _party(services, one, created, guests=1)
    guest = next(m for m in live.members if m != live.host_id)
    await two.get(live.id)  # the second process saw the guest offline
    await one.apply(live.id, _online(guest))
    await one.apply(live.id, _online(live.host_id or ""))
    await one.apply(live.id, _ready(guest))

    # On the second process's copy the guest is offline and IDLE: going offline changes
    # nothing there, while the stored state has it online; the change must reach that state.
    left = await two.apply(live.id, _offline(guest))

    assert [event.kind for event in left.events][:1] == ["member_left"]
    assert not (await one.get(live.id)).members[guest].online


async def test_closing_while_the_log_writer_is_in_its_transaction_loses_none_of_its_batch(
    services: Services,
) -> None:
    runtime = PartyRuntime(
        db=services.db, live=MemoryLive(), publisher=services.bus, settings=services.settings
    )
    live, _ = await _party(services, runtime, [], guests=2)  # its events held by the writer
    writing = asyncio.Event()

    def on_statement(*args: Any) -> None:
        if str(args[2]).startswith("INSERT INTO party_events"):
            writing.set()

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", on_statement)
    await runtime.start()
    await writing.wait()  # the writer's loop has sent its batch and awaits the database

    await runtime.close()

    async with services.db.session() as session:
        query = select(PartyEvent.seq).where(PartyEvent.party_id == live.id)
        logged = (await session.exec(query.order_by(col(PartyEvent.seq)))).all()
    assert list(logged) == list(range(1, live.seq + 1))


class GatedLive(MemoryLive):
    """A live store whose writes wait while it is `shut`. `open` carries out the waiting ones in
    the order they were sent, all of them before any writer hears its answer: as Redis runs a
    connection's commands (`models/redis_pool.py`, `InOrder`)."""

    def __init__(self) -> None:
        super().__init__()
        self.shut = False
        self._held: list[tuple[Any, Any, asyncio.Future[Swap]]] = []
        self._sent = asyncio.Event()

    async def swap(self, *args: Any, **kwargs: Any) -> Any:
        if not self.shut:
            return await super().swap(*args, **kwargs)
        done: asyncio.Future[Swap] = asyncio.get_running_loop().create_future()
        self._held.append((args, kwargs, done))
        self._sent.set()
        return await done

    async def holding(self, writes: int) -> None:
        """Until `writes` writes wait."""
        while len(self._held) < writes:
            self._sent.clear()
            await self._sent.wait()

    async def open(self) -> None:
        self.shut = False
        held, self._held = self._held, []
        answers = [await MemoryLive.swap(self, *args, **kwargs) for args, kwargs, _ in held]
        for (_, _, done), answer in zip(held, answers, strict=True):
            if not done.done():  # its writer may have gone
                done.set_result(answer)


@pytest.fixture
async def gated(services: Services) -> AsyncIterator[tuple[GatedLive, PartyRuntime]]:
    store = GatedLive()
    runtime = PartyRuntime(
        db=services.db, live=store, publisher=services.bus, settings=services.settings
    )
    try:
        yield store, runtime
    finally:
        await store.open()
        await runtime.close()


async def test_a_change_is_sent_without_waiting_for_the_answer_to_the_one_before(
    services: Services, gated: tuple[GatedLive, PartyRuntime]
) -> None:
    store, runtime = gated
    live, _ = await _party(services, runtime, [], guests=2)
    first, second = (m for m in live.members if m != live.host_id)
    store.shut = True

    answers = [asyncio.create_task(runtime.apply(live.id, _ready(m))) for m in (first, second)]
    await store.holding(2)  # both writes sent, the first not answered yet
    await store.open()

    one, two = [await answer for answer in answers]
    assert [e.version for e in one.events] == [live.seq + 1]
    assert [e.version for e in two.events] == [live.seq + 2]
    after = await runtime.get(live.id)
    assert after.seq == live.seq + 2
    assert {after.members[m].player for m in (first, second)} == {PlayerState.READY}


async def test_a_refused_write_refuses_the_ones_sent_behind_it_and_they_go_again_in_order(
    services: Services, gated: tuple[GatedLive, PartyRuntime]
) -> None:
    store, runtime = gated
    live, _ = await _party(services, runtime, [], guests=3)
    first, second, third = (m for m in live.members if m != live.host_id)
    store.shut = True
    answers = [asyncio.create_task(runtime.apply(live.id, _ready(m))) for m in (first, second)]
    await store.holding(2)

    # Another process writes first: its write takes the revision the first write expected,
    # and leaves the record at the very revision the second one (sent behind it) expects.
    revision, raw = await store.read(live_key(live.id)) or (0, b"")
    pending = Pending(_ready(third), None, asyncio.get_running_loop().create_future())
    other, _ = run(live.id, [pending], raw)
    assert (await MemoryLive.swap(store, live_key(live.id), revision, encode(other))).written
    await store.open()

    one, two = [await answer for answer in answers]
    after = await runtime.get(live.id)
    assert {after.members[m].player for m in (first, second, third)} == {PlayerState.READY}
    assert after.seq == live.seq + 3
    assert [e.version for e in one.events] == [live.seq + 2]  # in the order they were made
    assert [e.version for e in two.events] == [live.seq + 3]


class RefusalsLive(RedisLive):
    """The live store in Redis, counting the swaps it refused."""

    refused = 0

    async def swap(self, *args: Any, **kwargs: Any) -> Any:
        swap = await super().swap(*args, **kwargs)
        self.refused += not swap.written
        return swap


async def test_on_redis_changes_sent_one_behind_the_other_are_written_in_that_order(
    services: Services, created: list[str]
) -> None:
    store = RefusalsLive(REDIS_URL)
    runtime = PartyRuntime(
        db=services.db, live=store, publisher=services.bus, settings=services.settings
    )
    try:
        live, _ = await _party(services, runtime, created, guests=1)
        guest = next(m for m in live.members if m != live.host_id)

        answers = await asyncio.gather(
            *(runtime.apply(live.id, _offset(guest, ms)) for ms in range(1, 41))
        )

        assert store.refused == 0  # each one written where the one before it left the record
        assert [e.version for a in answers for e in a.events] == list(
            range(live.seq + 1, live.seq + 41)
        )
        assert (await runtime.get(live.id)).members[guest].offset_ms == 40
    finally:
        await runtime.close()
        for party_id in created:
            await store.forget(live_key(party_id))
        await store.close()


def _offset(member_id: str, offset_ms: int) -> Transition:
    return lambda live: rules.report(
        live,
        member_id,
        state=PlayerState.READY,
        position=10.0,
        latency_ms=None,
        offset_ms=offset_ms,
        now=now_ms(),
    )


async def test_closing_starts_no_work_and_fails_the_changes_queued_behind_a_write(
    services: Services,
) -> None:
    store = GatedLive()
    runtime = PartyRuntime(
        db=services.db, live=store, publisher=services.bus, settings=services.settings
    )
    live, _ = await _party(services, runtime, [], guests=1)
    guest = next(m for m in live.members if m != live.host_id)
    store.shut = True

    async def kept(events: list[Event]) -> None:
        pass

    async def holding() -> None:  # a change with a row to keep: the changes behind it queue
        await runtime.apply(live.id, _online(guest), keep=kept)

    runtime._background(holding())  # in the background: its write waits
    await store.holding(1)
    applied: list[str] = []

    def behind(state: Live) -> list[rules.Change]:
        applied.append(state.id)
        return _ready(guest)(state)

    queued = asyncio.create_task(runtime.apply(live.id, behind))  # behind the write in flight

    await runtime.close()

    # Before: the cancelled write's caller started a drain after close, which wrote the change
    # behind it (here it waited for the store for ever).
    with pytest.raises(Unavailable):
        await asyncio.wait_for(queued, 30)
    assert applied == []
    runtime.spawn(live.id, behind)  # after close: nothing starts
    await store.open()
    assert not runtime._tasks and not runtime._timers


def _offline(member_id: str) -> Transition:
    return lambda live: rules.presence(live, member_id, online=False, latency_ms=None, now=now_ms())


class CountingBus(Bus):
    """A process's bus that counts the events it sent to Redis itself."""

    sent = 0

    async def publish_all(self, events: list[Event]) -> None:
        self.sent += len(events)
        await super().publish_all(events)


async def test_on_redis_a_change_is_published_by_its_write_and_heard_by_the_other_process(
    services: Services, created: list[str]
) -> None:
    store = RedisLive(REDIS_URL)
    buses = [CountingBus(REDIS_URL), CountingBus(REDIS_URL)]
    one, two = (
        PartyRuntime(db=services.db, live=store, publisher=bus, settings=services.settings)
        for bus in buses
    )
    heard: list[list[str]] = [[], []]
    arrived = asyncio.Event()
    try:
        for bus, runtime in zip(buses, (one, two), strict=True):
            bus.sources["party"] = PartyTopics(runtime)
            await bus.start()
            await bus.connected.wait()
        live, _ = await _party(services, one, created, guests=1)
        for number, bus in enumerate(buses):

            async def send(frame: str, into: list[str] = heard[number]) -> None:
                into.append(frame)
                arrived.set()

            listener = Listener(bus.open_outbox(send), lambda e, _: f"{e.kind}:{e.version}")
            await bus.subscribe(party_topic(live.id), listener)
        guest = next(m for m in live.members if m != live.host_id)

        applied = await one.apply(live.id, _online(guest))

        expected = [f"{e.kind}:{e.version}" for e in applied.events]
        assert expected == [f"member_updated:{live.seq + 1}"]
        async with asyncio.timeout(10):
            while any(frames[-1:] != expected[-1:] for frames in heard):
                arrived.clear()
                await arrived.wait()
        assert all(frames[-len(expected) :] == expected for frames in heard)
        assert buses[0].sent == 0  # the write published them, not the bus
    finally:
        for runtime in (one, two):
            await runtime.close()
        for bus in buses:
            await bus.close()
        for party_id in created:
            await store.forget(live_key(party_id))
        await store.close()


async def test_a_presence_pass_renews_every_party_a_chunk_at_a_time(
    services: Services,
    store: LiveStore,
    runtimes: list[PartyRuntime],
    created: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = runtimes[0]
    monkeypatch.setattr(party_runtime, "TEND_CHUNK", 2)
    made = [(await _party(services, runtime, created, guests=0))[0] for _ in range(3)]
    for live in made:
        await runtime.socket_opened(live.id, live.host_id or "", latency_ms=None)
    before = {live.id: await store.presence(live_key(live.id)) for live in made}
    chunks: list[list[str]] = []
    refresh = store.refresh

    async def counted(entries: dict[str, dict[str, int]], process: str, lease_ms: int) -> Any:
        chunks.append(list(entries))
        return await refresh(entries, process, lease_ms)

    monkeypatch.setattr(store, "refresh", counted)

    await runtime.tend()

    assert [len(chunk) for chunk in chunks] == [2, 1]
    assert sorted(key for chunk in chunks for key in chunk) == sorted(
        live_key(live.id) for live in made
    )
    for live in made:
        ((entry, expiry),) = (await store.presence(live_key(live.id))).items()
        assert expiry >= before[live.id][entry]
