"""The shared playhead: set a video's playback state, read it, publish it to every viewer."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import case, literal
from sqlmodel import col, or_, update

from models import User, Video
from models.db import Database
from realtime.events import Event, Head, Publisher, topic
from resolvers.errors import BadInput, NotFound
from resolvers.party_rules import END_SLACK_S
from resolvers.videos import find_video, now_ms

MIN_RATE = 0.25
MAX_RATE = 4.0


@dataclass(frozen=True)
class PlaybackState:
    """What every viewer of a video should be watching; `version` orders states per video."""

    video_id: str
    timestamp: float
    playing: bool
    rate: float
    server_time: int
    version: int
    user_id: str | None

    @classmethod
    def from_video(cls, video: Video) -> PlaybackState:
        return cls(
            video_id=video.id,
            timestamp=video.playback_timestamp,
            playing=video.playback_playing,
            rate=video.playback_rate,
            server_time=video.playback_server_time,
            version=video.playback_version,
            user_id=video.playback_user_id,
        )

    def fields(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "timestamp": self.timestamp,
            "user_id": self.user_id,
            "playing": self.playing,
            "rate": self.rate,
            "server_time": self.server_time,
            "version": self.version,
        }

    def to_event(self) -> Event:
        return Event(
            topic=video_topic(self.video_id),
            version=self.version,
            kind="playback",
            data=self.fields(),
        )

    @classmethod
    def from_fields(cls, data: dict[str, Any]) -> PlaybackState:
        return cls(
            video_id=str(data["video_id"]),
            timestamp=float(data["timestamp"]),
            playing=bool(data["playing"]),
            rate=float(data["rate"]),
            server_time=int(data["server_time"]),
            version=int(data["version"]),
            user_id=data["user_id"],
        )


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{name} must be a number", field=name)
    if not math.isfinite(value):
        raise BadInput(f"{name} must be a finite number", field=name)
    return float(value)


def validate(
    timestamp: object, playing: object, rate: object
) -> tuple[float, bool | None, float | None]:
    """A finite, non-negative timestamp; a boolean `playing`; a sane `rate` (None: unchanged)."""
    position = _number(timestamp, "timestamp")
    if position < 0:
        raise BadInput("timestamp must not be negative", field="timestamp")
    if playing is not None and not isinstance(playing, bool):
        raise BadInput("playing must be a boolean", field="playing")
    speed = None
    if rate is not None:
        speed = _number(rate, "rate")
        if not MIN_RATE <= speed <= MAX_RATE:
            raise BadInput(f"rate must be between {MIN_RATE} and {MAX_RATE}", field="rate")
    return position, playing, speed


#: How far a sender's `at` may be from the server's stamp, either way, and still be used (s).
MAX_LEAD_S = 1.0


def lead_s(at: object, stamp_ms: int) -> float | None:
    """Seconds from a sender's `at` (server-clock epoch ms) to the stamp; None if `at` is absent
    or further off than MAX_LEAD_S (a clock not synced yet: the timestamp is taken as it is)."""
    if at is None:
        return None
    moment = _number(at, "at")
    lead = (stamp_ms - moment) / 1000
    return lead if abs(lead) <= MAX_LEAD_S else None


def video_topic(video_id: str) -> str:
    """The realtime topic of a video's public room (seed 000's per-video playhead)."""
    return topic("video", video_id)


async def current_state(*, db: Database, video_id: str) -> PlaybackState:
    video = await find_video(db=db, video_id=video_id)
    if video is None:
        raise NotFound("video not found")
    return PlaybackState.from_video(video)


class Playheads:
    """The truth of `video:<id>` topics: the state in the videos row (a Source for the bus)."""

    stateful: ClassVar[bool] = True

    def __init__(self, db: Database) -> None:
        self._db = db

    async def head(self, name: str) -> Head:
        state = await current_state(db=self._db, video_id=name.partition(":")[2])
        return Head(version=state.version, state=state.to_event())

    async def since(self, name: str, version: int | None) -> list[Event]:
        state = await current_state(db=self._db, video_id=name.partition(":")[2])
        return [state.to_event()] if version is None or state.version > version else []


async def set_playback(
    *,
    db: Database,
    publisher: Publisher,
    user: User,
    video_id: str,
    timestamp: object,
    playing: object = None,
    rate: object = None,
    at: object = None,
) -> PlaybackState:
    """Move the shared playhead and tell every subscriber, on every process.

    `at` (optional, with `playing` true): the server-clock time at which `timestamp` is the
    sender's position. The stored position is moved by the time from `at` to the stamp (at the
    room's rate), so a change that took longer to arrive than its sender expected (a lost
    segment resent, a queue) still starts where the sender is, instead of leaving the sender
    that far ahead of everyone else.

    One statement does it all: `UPDATE … SET version = version + 1 … WHERE id = :id AND the
    timestamp is at most END_SLACK_S past the duration (a NULL duration, not transcoded yet,
    only bounds it below) RETURNING …`; a timestamp just past the end is stored as the end
    (players report durations a few ms longer than the container's). Concurrent seeks on any
    number of processes never share a version, and a seek costs one round trip; only a refused
    one looks the video up to say why.
    """
    position, playing_flag, speed = validate(timestamp, playing, rate)
    stamp = now_ms()
    lead = lead_s(at, stamp)
    duration = col(Video.duration)
    target: Any = literal(position)
    if lead is not None and playing_flag is True:
        pace = literal(speed) if speed is not None else col(Video.playback_rate)
        moved = literal(position) + literal(lead) * pace
        target = case((moved < 0, literal(0.0)), else_=moved)
    values: dict[str, Any] = {
        "playback_timestamp": case((duration < target, duration), else_=target),
        "playback_server_time": stamp,
        "playback_version": col(Video.playback_version) + 1,
        "playback_user_id": user.id,
    }
    if playing_flag is not None:
        values["playback_playing"] = playing_flag
    if speed is not None:
        values["playback_rate"] = speed
    statement = (
        update(Video)
        .where(
            col(Video.id) == video_id,
            or_(duration.is_(None), duration + END_SLACK_S >= position),
        )
        .values(**values)
        .returning(
            col(Video.playback_timestamp),
            col(Video.playback_playing),
            col(Video.playback_rate),
            col(Video.playback_server_time),
            col(Video.playback_version),
            col(Video.playback_user_id),
        )
    )
    async with db.session() as session:
        row = (await session.exec(statement)).first()  # type: ignore[call-overload]
        await session.commit()
    if row is None:
        video = await find_video(db=db, video_id=video_id)
        if video is None:
            raise NotFound("video not found")
        end = f" ({video.duration:g} s)" if video.duration is not None else ""
        raise BadInput(f"timestamp is past the end of the video{end}", field="timestamp")
    state = PlaybackState(
        video_id=video_id,
        timestamp=row[0],
        playing=row[1],
        rate=row[2],
        server_time=row[3],
        version=row[4],
        user_id=row[5],
    )
    await publisher.publish(state.to_event())
    return state


@dataclass(frozen=True)
class ClockReading:
    """An NTP-style sample: when the request arrived and when the answer left (epoch ms)."""

    received_at: float
    sent_at: float


def precise_now_ms() -> float:
    return time.time_ns() / 1_000_000


def clock(*, received_at: float) -> ClockReading:
    return ClockReading(received_at=received_at, sent_at=precise_now_ms())
