"""The members of bench/parties.py: one client process's share of the parties, on uvloop.

Each member is a minimal RFC 6455 client (no per-message task; frames decoded by msgspec into
the few fields it reads). It subscribes with `party:subscribe`, answers every WAITING
`party:playback` with `party:ready` READY at the new position, answers pings, and checks that
the party's event counters (`seq`) it receives follow each other, from the snapshot's on. A
party's first member is its host: on a fixed schedule it sends `party:playback` (a new
position, playing); with chat on, half a period later one member (each in turn) sends
`chat:send`, and every member expects that `party:chat_message`.

A round is one change: from the moment the host sends it to the moment the last member has
the PLAYING `party:playback` for that position (and, for comparison, the last WAITING one).
Times are `time.monotonic()`, one clock for every process on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import cast

import msgspec

#: Sockets each client process opens at once (a storm of handshakes starves the heartbeat).
BATCH = 50
#: Client frames must be masked (RFC 6455); on loopback a zero key keeps XOR off the profile.
ZERO_MASK = b"\x00\x00\x00\x00"


class Message(msgspec.Struct):
    body: str = ""


class Frame(msgspec.Struct):
    type: str
    seq: int | None = None  # the party's event counter (a playback's `version` is the playhead's)
    state: str | None = None
    timestamp: float | None = None
    code: str | None = None
    message: Message | str | None = None  # a chat message, or an error's text


decode_frame = msgspec.json.Decoder(Frame).decode


@dataclass(frozen=True)
class MemberSpec:
    port: int
    path: str  # "/ws?token=…"


@dataclass(frozen=True)
class PartySpec:
    id: str
    members: list[MemberSpec]
    #: when in each second this party changes its playhead (0 ≤ offset < 1)
    offset: float


@dataclass(frozen=True)
class Schedule:
    start: float  # time.monotonic() of round 0
    warmup: float  # seconds of rounds not measured
    seconds: float  # seconds of measured rounds
    rate: float  # changes per party per second
    drain: float  # seconds to wait for the last rounds
    chat: bool  # one chat message per party per change, half a period after it


@dataclass
class Round:
    sent: float
    measured: bool
    waiting: int = 0
    waiting_last: float = 0.0
    playing: int = 0


@dataclass
class Chat:
    sent: float
    measured: bool
    received: int = 0


@dataclass
class Tally:
    rounds: int = 0
    completed: int = 0
    latencies: bytes = b""  # array("d"), ms: change → last member's PLAYING
    waiting: bytes = b""  # array("d"), ms: change → last member's WAITING
    #: array("d"), ms: last member's WAITING (each member answers it at once) → last PLAYING:
    #: the barrier's own time, the members' ready reports to the start
    barrier: bytes = b""
    received: int = 0
    lost: int = 0
    out_of_order: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    closed: int = 0
    cpu_s: float = 0.0  # while the changes were sent (warm-up and measured seconds)
    lag: bytes = b""  # array("d"), ms: how late each change was sent
    chats: int = 0  # measured chat messages sent
    chats_completed: int = 0  # … that every member of the party received
    chat_latencies: bytes = b""  # array("d"), ms: chat:send → last member's party:chat_message


class Open:
    """The measured rounds (and chat messages) of this process not yet complete."""

    def __init__(self) -> None:
        self.count = 0
        self.sending = True
        self.none_left = asyncio.Event()

    def closed_one(self) -> None:
        self.count -= 1
        if not self.count and not self.sending:
            self.none_left.set()

    def sent_all(self) -> None:
        self.sending = False
        if not self.count:
            self.none_left.set()


class Party:
    def __init__(self, spec: PartySpec, open_rounds: Open) -> None:
        self.spec = spec
        self.open = open_rounds
        self.members: list[Member] = []
        self.rounds: dict[float, Round] = {}
        self.latencies: list[float] = []
        self.waits: list[float] = []
        self.barriers: list[float] = []
        self.measured = 0
        self.chats: dict[str, Chat] = {}
        self.chat_latencies: list[float] = []
        self.chats_measured = 0

    def on_playback(self, frame: Frame, now: float) -> None:
        current = self.rounds.get(frame.timestamp or -1.0)
        if current is None:
            return
        if frame.state == "WAITING":
            current.waiting += 1
            current.waiting_last = now
            if current.waiting == len(self.members) and current.measured:
                self.waits.append((now - current.sent) * 1000)
        elif frame.state == "PLAYING":
            current.playing += 1
            if current.playing == len(self.members):
                if current.measured:
                    self.latencies.append((now - current.sent) * 1000)
                    self.barriers.append((now - current.waiting_last) * 1000)
                    self.open.closed_one()
                del self.rounds[frame.timestamp or -1.0]

    def on_chat(self, body: str, now: float) -> None:
        current = self.chats.get(body)
        if current is None:
            return
        current.received += 1
        if current.received == len(self.members):
            if current.measured:
                self.chat_latencies.append((now - current.sent) * 1000)
                self.open.closed_one()
            del self.chats[body]


class Member(asyncio.Protocol):
    """Just enough RFC 6455 for a party member."""

    def __init__(self, party: Party, spec: MemberSpec) -> None:
        self.party = party
        self.request = (
            f"GET {spec.path} HTTP/1.1\r\nHost: 127.0.0.1:{spec.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.last_seq = -1
        self.received = 0
        self.lost = 0
        self.out_of_order = 0
        self.errors: Counter[str] = Counter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not asyncio's class
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("closed before the snapshot"))

    def send(self, payload: bytes, opcode: int = 1) -> None:
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, 0x80 | length])
        else:
            header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
        if self.transport is None or self.transport.is_closing():
            self.errors["sent on a closed socket"] += 1
            return
        self.transport.write(header + ZERO_MASK + payload)

    def send_json(self, message: dict[str, object]) -> None:
        self.send(json.dumps(message, separators=(",", ":")).encode())

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            head, sep, rest = bytes(buffer).partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.subscribed.set_exception(ConnectionError(head.decode(errors="replace")))
                return
            self.upgraded = True
            buffer[:] = rest
            self.send_json({"type": "party:subscribe", "party_id": self.party.spec.id})
        at, end = 0, len(buffer)
        now = time.monotonic()
        while end - at >= 2:
            opcode, length, offset = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(buffer[at + 2 : at + 4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(buffer[at + 2 : at + 10], "big"), 10
            if end - at < offset + length:
                break
            payload = bytes(buffer[at + offset : at + offset + length])
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:  # the server's heartbeat: answer at once, as a browser does
                self.send(payload, opcode=10)
            elif opcode == 8:  # the server closes: keep its code and reason
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.errors[f"closed {code} {payload[2:].decode(errors='replace')}"] += 1
                self.closed = True
            at += offset + length
        del buffer[:at]

    def on_text(self, payload: bytes, now: float) -> None:
        frame = decode_frame(payload)
        if frame.type == "error":
            self.errors[f"{frame.code}: {frame.message}"[:120]] += 1
            return
        if frame.seq is None:
            return
        if frame.type == "party:snapshot" and not self.subscribed.done():
            self.last_seq = frame.seq
            self.subscribed.set_result(None)
            return
        self.received += 1
        if frame.seq == self.last_seq + 1:
            self.last_seq = frame.seq
        elif frame.seq > self.last_seq:
            self.lost += frame.seq - self.last_seq - 1
            self.last_seq = frame.seq
        else:
            self.out_of_order += 1
        if frame.type == "party:playback":
            if frame.state == "WAITING" and frame.timestamp is not None:
                self.send_json(
                    {
                        "type": "party:ready",
                        "party_id": self.party.spec.id,
                        "state": "READY",
                        "position": frame.timestamp,
                    }
                )
            self.party.on_playback(frame, now)
        elif frame.type == "party:chat_message" and isinstance(frame.message, Message):
            self.party.on_chat(frame.message.body, now)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(parties: list[Party]) -> None:
    loop = asyncio.get_running_loop()

    async def one(party: Party, spec: MemberSpec) -> Member:
        _, member = await loop.create_connection(
            lambda: Member(party, spec), "127.0.0.1", spec.port
        )
        await asyncio.wait_for(member.subscribed, 120)
        return member

    pairs = [(party, spec) for party in parties for spec in party.spec.members]
    for first in range(0, len(pairs), BATCH):
        batch = pairs[first : first + BATCH]
        members = await asyncio.gather(*(one(party, spec) for party, spec in batch))
        for (party, _spec), member in zip(batch, members, strict=True):
            party.members.append(member)


def position(index: int) -> float:
    """Round `index`'s position: distinct for 3,000 rounds, inside an hour-long video."""
    return float(1 + index % 3000)


def send_change(party: Party, index: int, measured: bool) -> None:
    value = position(index)
    party.rounds[value] = Round(sent=time.monotonic(), measured=measured)
    party.members[0].send_json(
        {"type": "party:playback", "party_id": party.spec.id, "timestamp": value, "playing": True}
    )
    if measured:
        party.measured += 1
        party.open.count += 1


def send_chat(party: Party, index: int, measured: bool) -> None:
    """Round `index`'s chat message, from each member in turn."""
    body = f"message {index} of {party.spec.id}"
    party.chats[body] = Chat(sent=time.monotonic(), measured=measured)
    sender = party.members[index % len(party.members)]
    sender.send_json({"type": "chat:send", "party_id": party.spec.id, "body": body})
    if measured:
        party.chats_measured += 1
        party.open.count += 1


async def change_loop(parties: list[Party], schedule: Schedule) -> list[float]:
    """Each host sends its changes (and each party its chat) on time; how late each was (ms)."""
    period = 1 / schedule.rate
    total = int((schedule.warmup + schedule.seconds) * schedule.rate)
    measured_from = int(schedule.warmup * schedule.rate)
    sends = [send_change, send_chat] if schedule.chat else [send_change]
    due = sorted(
        (schedule.start + (index + party.spec.offset + kind / 2) * period, index, ordinal, kind)
        for ordinal, party in enumerate(parties)
        for index in range(total)
        for kind in range(len(sends))
    )
    lag: list[float] = []
    at = 0
    while at < len(due):
        now = time.monotonic()
        while at < len(due) and due[at][0] <= now:
            when, index, ordinal, kind = due[at]
            sends[kind](parties[ordinal], index, index >= measured_from)
            if index >= measured_from:
                lag.append((now - when) * 1000)
            at += 1
        if at < len(due):
            await asyncio.sleep(max(0.0, due[at][0] - time.monotonic()))
    return lag


async def run(pipe: Connection, specs: list[PartySpec]) -> None:
    open_rounds = Open()
    parties = [Party(spec, open_rounds) for spec in specs]
    try:
        await connect(parties)
    except (OSError, TimeoutError) as exc:
        pipe.send(f"failed: {exc!r}")
        return
    loop = asyncio.get_running_loop()
    pipe.send("ready")
    schedule: Schedule = await loop.run_in_executor(None, pipe.recv)
    await asyncio.sleep(max(0.0, schedule.start - time.monotonic()))
    cpu_at = time.process_time()
    lag = await change_loop(parties, schedule)
    cpu_s = time.process_time() - cpu_at
    open_rounds.sent_all()
    with contextlib.suppress(TimeoutError):  # a round that never completes is reported as such
        await asyncio.wait_for(open_rounds.none_left.wait(), schedule.drain)
    members = [member for party in parties for member in party.members]
    errors: Counter[str] = Counter()
    for member in members:
        errors.update(member.errors)
    tally = Tally(
        rounds=sum(party.measured for party in parties),
        completed=sum(len(party.latencies) for party in parties),
        latencies=array("d", (x for party in parties for x in party.latencies)).tobytes(),
        waiting=array("d", (x for party in parties for x in party.waits)).tobytes(),
        barrier=array("d", (x for party in parties for x in party.barriers)).tobytes(),
        received=sum(m.received for m in members),
        lost=sum(m.lost for m in members),
        out_of_order=sum(m.out_of_order for m in members),
        errors=errors,
        closed=sum(1 for m in members if m.closed),
        cpu_s=cpu_s,
        lag=array("d", lag).tobytes(),
        chats=sum(party.chats_measured for party in parties),
        chats_completed=sum(len(party.chat_latencies) for party in parties),
        chat_latencies=array("d", (x for p in parties for x in p.chat_latencies)).tobytes(),
    )
    pipe.send(tally)
    for member in members:
        member.close()
    await asyncio.sleep(0.5)  # let the close frames and FINs go out


def client_process(pipe: Connection, specs: list[PartySpec]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(pipe, specs))
    else:
        uvloop.run(run(pipe, specs))
