"""One writer per party: its home process applies the player reports of every process's members.

Every process may change a party (`PartyRuntime.apply`, compare-and-set), and that stays correct
whichever process writes. It is slow where changes of one party arrive at several processes at
once, which is what the ready barrier does: a round's five readies reach two processes within a
millisecond or two, each process batches its own, and the batches refuse each other's
compare-and-sets, so a round took three to five writes one after another (docs/PERFORMANCE.md,
"Two processes: where the time goes"). So a party has a home: the process holding its lease in
the live store, claimed by the first process that asks and renewed by the presence pass of a
process with sockets in the party (`PartyRuntime.tend`). The process where a socket of the
party's host opens takes the home over, so the host's changes are written where the readies
are, and the homes of many parties spread over the processes their hosts talk to. (Before,
the first presence pass to see a party claimed it: in a bench of 100 parties on two processes,
one of them made 88 % of the compare-and-sets.) The other processes hand their members'
reports to the home's inbox; it applies them where its own writes of the party are (each sent
behind those in flight, `PartyRuntime.apply`) and answers with the state after it. A socket's
report (`/ws` `party:ready`, which is answered only when refused) does not wait for that: the
home answers it only if it refuses it, and the process that handed it on is on to the socket's
next message.

Nothing depends on the home for correctness: it applies a report with compare-and-set like any
change, and where no home answers (nobody listens to its inbox, or no answer within
`FORWARD_WAIT_S`), the report is applied here. A report applied twice that way changes nothing
the second time. A report handed on without waiting is lost if the home's process dies between
hearing and applying it: the member's next report, or the ready barrier's timeout, makes up for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeGuard

import msgspec

from resolvers import party_rules as rules
from resolvers.errors import BadInput, DomainError, Forbidden, NotFound, Unavailable
from resolvers.party_rules import PartyEnded
from resolvers.party_state import Live, live_key
from resolvers.videos import now_ms

if TYPE_CHECKING:
    from models.live import LiveStore
    from resolvers.party_batch import Transition

log = logging.getLogger("cowatch.parties")

#: How long a home's lease lasts without renewal (ms); the presence pass renews it every second.
HOME_LEASE_MS = 3000
#: How long a report handed to a home waits for its answer before it is applied here (seconds).
FORWARD_WAIT_S = 1.0
#: Parties whose home this process remembers (one asked about after that is asked anew).
KNOWN_HOMES = 10_000
#: How long to wait before listening again after the inbox's connection failed (seconds).
RELISTEN_S = 1.0
#: The errors a report's rules raise, by name, so that the home's answer raises the same here.
ERRORS: dict[str, type[DomainError]] = {
    cls.__name__: cls for cls in (BadInput, Forbidden, NotFound, PartyEnded, Unavailable)
}


class Report(msgspec.Struct, tag="report"):
    """A member's player report, handed by the process it arrived at to the party's home."""

    id: str
    origin: str
    party: str
    member: str
    state: str
    position: float
    latency_ms: float | None
    #: the member's sync offset as its page measured it (ms), if the report carries one
    offset_ms: float | None = None
    #: answer only a refusal (the process that handed it on is not waiting for the state)
    quiet: bool = False


class Answer(msgspec.Struct, tag="answer"):
    """The home's answer: the party's state after the report, or the error it raised."""

    id: str
    state: Live | None = None
    error: str | None = None
    message: str = ""
    details: dict[str, Any] = msgspec.field(default_factory=dict)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Report | Answer).decode


def report_transition(
    member_id: str,
    state: str,
    position: object,
    latency_ms: float | None,
    offset_ms: object = None,
) -> Transition:
    return lambda live: rules.report(
        live,
        member_id,
        state=state,
        position=position,
        latency_ms=latency_ms,
        offset_ms=offset_ms,
        now=now_ms(),
    )


class Homes:
    """This process's side of the homes: which process each party's home is, the reports this
    process hands to them, and the inbox where other processes hand theirs to this one."""

    def __init__(
        self,
        store: LiveStore,
        process: str,
        apply: Callable[[str, Transition], Awaitable[Live]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.store = store
        self.process = process
        self._apply = apply
        self._spawn = spawn
        #: party -> (its home, until when that is trusted without asking: monotonic seconds)
        self._homes: dict[str, tuple[str, float]] = {}
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        #: reports handed on without waiting, oldest first: who hears of a refusal, and until
        #: when (monotonic seconds); the expired ones go as new ones come
        self._refusals: dict[str, tuple[Callable[[DomainError], None], float]] = {}
        self.listening = asyncio.Event()

    async def listen(self) -> None:
        """Serve this process's inbox until cancelled, listening again after a failure."""
        while True:
            try:
                await self.store.listen(self.process, self._received, self.listening)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("party inbox failed (%r); listening again", exc)
            await asyncio.sleep(RELISTEN_S)

    def seen(self, party_id: str, home: str) -> None:
        """The presence pass read (or renewed) the party's home."""
        homes = self._homes
        homes.pop(party_id, None)  # newest last, so the oldest goes first when full
        homes[party_id] = (home, time.monotonic() + HOME_LEASE_MS / 2000)
        if len(homes) > KNOWN_HOMES:
            del homes[next(iter(homes))]

    async def take(self, party_id: str) -> None:
        """Make this process the party's home (the process a party's host talks to)."""
        if self.listening.is_set():  # else nothing could be handed to it
            await self.store.take(live_key(party_id), self.process, HOME_LEASE_MS)
            self.seen(party_id, self.process)

    def forget(self, party_id: str) -> None:
        self._homes.pop(party_id, None)

    async def home(self, party_id: str) -> str:
        """The party's home as last known, asked anew (and claimed if it has none) when that
        is older than half a lease; this process while its inbox is not listening."""
        if not self.listening.is_set():
            return self.process
        known = self._homes.get(party_id)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        home = await self.store.claim(live_key(party_id), self.process, HOME_LEASE_MS)
        self.seen(party_id, home)
        return home

    async def report(
        self,
        party_id: str,
        member_id: str,
        *,
        state: str,
        position: object,
        latency_ms: float | None,
        offset_ms: object = None,
    ) -> Live:
        """Apply a member's report at the party's home; the party's state after it."""
        if (away := await self._elsewhere(party_id, position, offset_ms)) is not None:
            home, at, offset = away
            request = self._request(party_id, member_id, state, at, latency_ms, offset)
            answer = await self._forward(home, request)
            if answer is not None:
                return _result(answer)
            self.forget(party_id)  # gone or too slow: asked again next time
        return await self._apply(
            party_id, report_transition(member_id, state, position, latency_ms, offset_ms)
        )

    async def hand(
        self,
        party_id: str,
        member_id: str,
        *,
        state: str,
        position: object,
        latency_ms: float | None,
        refused: Callable[[DomainError], None],
        offset_ms: object = None,
    ) -> None:
        """Hand a member's report to the party's home without waiting for the state after it:
        `refused` hears of it if the home refuses it (within `FORWARD_WAIT_S`). Where this
        process is the home, or no home listens, it is applied here and its refusal raised."""
        if (away := await self._elsewhere(party_id, position, offset_ms)) is not None:
            home, at, offset = away
            request = self._request(party_id, member_id, state, at, latency_ms, offset, quiet=True)
            # Listening for a refusal before handing it on: one may come back before PUBLISH's
            # own reply does.
            now = time.monotonic()
            refusals = self._refusals
            while refusals:  # oldest first: the expired ones are at the front
                oldest = next(iter(refusals))
                if refusals[oldest][1] > now:
                    break
                del refusals[oldest]
            refusals[request.id] = (refused, now + FORWARD_WAIT_S)
            if await self.store.post(home, _encode(request)):
                return
            refusals.pop(request.id, None)
            self.forget(party_id)  # gone: asked again next time
        await self._apply(
            party_id, report_transition(member_id, state, position, latency_ms, offset_ms)
        )

    async def _elsewhere(
        self, party_id: str, position: object, offset_ms: object
    ) -> tuple[str, float, float | None] | None:
        """(the party's home, the position, the offset) if a report goes there: the home is
        another process and the numbers can travel (ones the rules refuse are refused here)."""
        home = await self.home(party_id)
        if home == self.process or not _number(position):
            return None
        if offset_ms is not None and not _number(offset_ms):
            return None
        return home, float(position), None if offset_ms is None else float(offset_ms)

    def _request(
        self,
        party_id: str,
        member_id: str,
        state: str,
        position: float,
        latency_ms: float | None,
        offset_ms: float | None,
        *,
        quiet: bool = False,
    ) -> Report:
        return Report(
            id=uuid.uuid4().hex,
            origin=self.process,
            party=party_id,
            member=member_id,
            state=state,
            position=position,
            latency_ms=latency_ms,
            offset_ms=offset_ms,
            quiet=quiet,
        )

    async def _forward(self, home: str, request: Report) -> Answer | None:
        waiting = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = waiting
        try:
            if not await self.store.post(home, _encode(request)):
                return None
            return await asyncio.wait_for(waiting, FORWARD_WAIT_S)
        except TimeoutError:
            log.warning("party %s: home %s did not answer a report", request.party, home)
            return None
        finally:
            self._waiting.pop(request.id, None)

    def _received(self, raw: bytes) -> None:
        try:
            message = _decode(raw)
        except msgspec.ValidationError as exc:
            log.warning("ignoring a malformed party inbox message: %r", exc)
            return
        if isinstance(message, Answer):
            waiting = self._waiting.get(message.id)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
            elif (handed := self._refusals.pop(message.id, None)) is not None:
                refused, until = handed
                if until > time.monotonic():
                    refused(_refusal(message))
        else:
            self._spawn(self._serve(message))

    async def _serve(self, request: Report) -> None:
        transition = report_transition(
            request.member, request.state, request.position, request.latency_ms, request.offset_ms
        )
        try:
            live = await self._apply(request.party, transition)
            if request.quiet:
                return
            answer = Answer(id=request.id, state=live)
        except DomainError as exc:
            name = type(exc).__name__ if type(exc).__name__ in ERRORS else Unavailable.__name__
            answer = Answer(id=request.id, error=name, message=exc.message, details=exc.details)
        except Exception as exc:
            log.warning("party %s: a handed report failed: %r", request.party, exc)
            answer = Answer(id=request.id, error=Unavailable.__name__, message="try again")
        with contextlib.suppress(Exception):  # the origin gives up on its own
            await self.store.post(request.origin, _encode(answer))


def _number(value: object) -> TypeGuard[int | float]:
    """A JSON number (not a boolean): what a report's numbers must be to travel."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _result(answer: Answer) -> Live:
    if answer.error is not None:
        raise _refusal(answer)
    assert answer.state is not None
    return answer.state


def _refusal(answer: Answer) -> DomainError:
    return ERRORS.get(answer.error or "", Unavailable)(answer.message, **answer.details)
