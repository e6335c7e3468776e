"""A party's home: the process that applies every process's player reports (Redis, two runtimes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from models.live import RedisLive, Swap
from models.parties import PlayerState
from resolvers import parties, party_home
from resolvers.errors import BadInput, Forbidden
from resolvers.party_runtime import PartyRuntime, live_key
from resolvers.party_state import Live
from resolvers.services import Services
from tests.conftest import REDIS_URL
from tests.factories import join_guest, make_user, make_videos

# Two processes sharing a live store is the production shape: PostgreSQL (three party log
# writers on one SQLite file would wait on its lock).
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


class CountingLive(RedisLive):
    """One process's connection to the live store, counting the compare-and-sets it made."""

    swaps = 0

    async def swap(
        self,
        key: str,
        revision: int,
        value: bytes,
        publish: Sequence[tuple[str, str]] = (),
        **chain: str,
    ) -> Swap:
        self.swaps += 1
        return await super().swap(key, revision, value, publish, **chain)


@pytest.fixture
async def runtimes(services: Services) -> AsyncIterator[list[PartyRuntime]]:
    """Two processes' runtimes, each with its own connection to the live store and its inbox."""
    made = [
        PartyRuntime(
            db=services.db,
            live=CountingLive(REDIS_URL),
            publisher=services.bus,
            settings=services.settings,
        )
        for _ in range(2)
    ]
    for runtime in made:
        await runtime.start()
        await runtime.homes.listening.wait()
    try:
        yield made
    finally:
        for runtime in made:
            await runtime.close()
            await runtime.store.close()


@pytest.fixture
async def party(services: Services, runtimes: list[PartyRuntime]) -> AsyncIterator[Live]:
    """A party with its host and one guest, made on the first process."""
    host = await make_user(services)
    (video,) = await make_videos(services, host.user, 1, duration=90.0)
    live = await parties.create_party(
        runtime=runtimes[0], hashing=services.hashing, user=host.user, video_id=video.id
    )
    await join_guest(services, runtimes[0], live.code, "guest")
    try:
        yield await runtimes[0].get(live.id)
    finally:
        await runtimes[0].store.forget(live_key(live.id))


def _guest(party: Live) -> str:
    return next(m for m in party.members if m != party.host_id)


def _swaps(runtime: PartyRuntime) -> int:
    assert isinstance(runtime.store, CountingLive)
    return runtime.store.swaps


async def test_a_report_at_another_process_is_applied_by_the_home(
    runtimes: list[PartyRuntime], party: Live
) -> None:
    home, other = runtimes
    assert await home.homes.home(party.id) == home.process  # claimed first
    guest = _guest(party)
    before = _swaps(home), _swaps(other)

    live = await other.homes.report(
        party.id, guest, state=PlayerState.READY, position=1.0, latency_ms=12.0, offset_ms=4.4
    )

    assert live.members[guest].player == PlayerState.READY
    assert (live.members[guest].latency_ms, live.members[guest].offset_ms) == (12.0, 4.0)
    assert _swaps(other) == before[1]  # the other process wrote nothing itself
    assert _swaps(home) == before[0] + 1
    assert (await other.get(party.id)).members[guest].player == PlayerState.READY


async def test_the_process_where_the_hosts_socket_opens_takes_the_home_over(
    runtimes: list[PartyRuntime], party: Live
) -> None:
    first, second = runtimes
    assert await first.homes.home(party.id) == first.process  # claimed first
    await second.socket_opened(party.id, _guest(party), None)
    assert await second.store.claim(live_key(party.id), second.process, 3000) == first.process

    await second.socket_opened(party.id, party.host_id or "", None)

    assert await first.store.claim(live_key(party.id), first.process, 3000) == second.process
    guest = _guest(party)
    before = _swaps(first), _swaps(second)
    first.homes.forget(party.id)  # its copy of the home is old: asked anew
    await first.homes.report(
        party.id, guest, state=PlayerState.READY, position=1.0, latency_ms=None
    )
    assert (_swaps(first), _swaps(second)) == (before[0], before[1] + 1)  # applied at the new home


async def test_a_report_the_home_refuses_fails_here_with_the_same_error(
    runtimes: list[PartyRuntime], party: Live
) -> None:
    home, other = runtimes
    await home.homes.home(party.id)
    guest = _guest(party)

    with pytest.raises(Forbidden):
        await other.homes.report(
            party.id, "not-a-member", state=PlayerState.READY, position=1.0, latency_ms=None
        )
    with pytest.raises(BadInput) as refused:
        await other.homes.report(party.id, guest, state="SLEEPING", position=1.0, latency_ms=None)
    assert refused.value.details == {"field": "state"}
    for offset in (-3.0, "3"):  # refused at the home, or here when it cannot travel
        with pytest.raises(BadInput) as refused:
            await other.homes.report(
                party.id, guest, state="READY", position=1.0, latency_ms=None, offset_ms=offset
            )
        assert refused.value.details == {"field": "offset_ms"}
    assert (await other.get(party.id)).members[guest].player == PlayerState.IDLE


async def test_a_report_for_a_home_that_is_gone_is_applied_here(
    runtimes: list[PartyRuntime], party: Live
) -> None:
    home, other = runtimes
    await home.homes.home(party.id)
    assert await other.homes.home(party.id) == home.process
    await home.close()  # the home's process stopped: nobody listens to its inbox
    guest = _guest(party)
    before = _swaps(other)

    live = await other.homes.report(
        party.id, guest, state=PlayerState.READY, position=1.0, latency_ms=None
    )

    assert live.members[guest].player == PlayerState.READY
    assert _swaps(other) == before + 1


async def test_a_report_the_home_never_answers_is_applied_here_after_the_wait(
    runtimes: list[PartyRuntime], party: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, other = runtimes
    await home.homes.home(party.id)
    heard: list[str] = []

    async def silent(request: party_home.Report) -> None:
        heard.append(request.member)  # the home hears the report and never answers

    monkeypatch.setattr(home.homes, "_serve", silent)
    monkeypatch.setattr(party_home, "FORWARD_WAIT_S", 0.2)
    guest = _guest(party)
    before = _swaps(other), _swaps(home)

    live = await other.homes.report(
        party.id, guest, state=PlayerState.READY, position=1.0, latency_ms=None
    )

    assert heard == [guest]
    assert live.members[guest].player == PlayerState.READY
    assert (_swaps(other), _swaps(home)) == (before[0] + 1, before[1])


async def test_a_handed_report_is_applied_by_the_home_which_answers_nothing(
    runtimes: list[PartyRuntime], party: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket's report: the process it arrived at goes on at once, and the home's
    acceptance costs no answer."""
    home, other = runtimes
    await home.homes.home(party.id)
    served = asyncio.Event()
    posted: list[str] = []
    serve, post = home.homes._serve, home.store.post

    async def serving(request: party_home.Report) -> None:
        await serve(request)
        served.set()

    async def posting(process: str, message: bytes) -> bool:
        posted.append(process)
        return await post(process, message)

    monkeypatch.setattr(home.homes, "_serve", serving)
    monkeypatch.setattr(home.store, "post", posting)
    refusals: list[Exception] = []
    guest = _guest(party)
    before = _swaps(other)

    await other.homes.hand(
        party.id,
        guest,
        state=PlayerState.READY,
        position=1.0,
        latency_ms=9.0,
        refused=refusals.append,
    )
    await served.wait()

    assert (await other.get(party.id)).members[guest].player == PlayerState.READY
    assert posted == []  # no answer
    assert refusals == []
    assert _swaps(other) == before


async def test_a_handed_report_the_home_refuses_is_refused_later(
    runtimes: list[PartyRuntime], party: Live
) -> None:
    home, other = runtimes
    await home.homes.home(party.id)
    refusal: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    await other.homes.hand(
        party.id,
        _guest(party),
        state="SLEEPING",
        position=1.0,
        latency_ms=None,
        refused=refusal.set_result,
    )

    error = await refusal
    assert isinstance(error, BadInput)
    assert error.details == {"field": "state"}
    assert other.homes._refusals == {}


async def test_a_handed_report_at_its_home_is_applied_there_and_refused_at_once(
    runtimes: list[PartyRuntime], party: Live
) -> None:
    home, _other = runtimes
    await home.homes.home(party.id)
    refusals: list[Exception] = []
    guest = _guest(party)

    await home.homes.hand(
        party.id,
        guest,
        state=PlayerState.READY,
        position=1.0,
        latency_ms=None,
        refused=refusals.append,
    )
    assert (await home.get(party.id)).members[guest].player == PlayerState.READY
    with pytest.raises(Forbidden):
        await home.homes.hand(
            party.id,
            "not-a-member",
            state=PlayerState.READY,
            position=1.0,
            latency_ms=None,
            refused=refusals.append,
        )
    assert refusals == []
