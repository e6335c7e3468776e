"""Watch together on the GraphQL face: the playback state, the seek mutation, the clock."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Annotated

import strawberry

from realtime.events import Event
from resolvers import playback
from schema.context import Context
from schema.permissions import signed_in
from schema.shared import SharedField, register


@strawberry.type(description="The shared playback state of a video after a change.")
class TimestampEvent:
    video_id: strawberry.ID = strawberry.field(description="The video this state is for.")
    timestamp: float = strawberry.field(description="Seconds into the video at `serverTime`.")
    user_id: strawberry.ID | None = strawberry.field(description="Who set it (null: nobody yet).")
    playing: bool = strawberry.field(
        description="True: the playhead advances from `serverTime` at `rate`."
    )
    rate: float = strawberry.field(description="Playback speed, 0.25 to 4.0 (1.0: normal).")
    server_time: float = strawberry.field(description="When it was set, epoch milliseconds.")
    version: int = strawberry.field(description="Strictly increasing per video.")

    @classmethod
    def from_event(cls, event: Event) -> TimestampEvent:
        return cls.from_state(playback.PlaybackState.from_fields(event.data))

    @classmethod
    def from_state(cls, state: playback.PlaybackState) -> TimestampEvent:
        return cls(
            video_id=strawberry.ID(state.video_id),
            timestamp=state.timestamp,
            user_id=strawberry.ID(state.user_id) if state.user_id else None,
            playing=state.playing,
            rate=state.rate,
            server_time=float(state.server_time),
            version=state.version,
        )


@strawberry.type(description="NTP-style clock sample: offset ≈ ((r - t0) + (s - t1)) / 2.")
class ServerClock:
    received_at: float = strawberry.field(description="When the request arrived, epoch ms.")
    sent_at: float = strawberry.field(description="When the answer left, epoch ms.")


@strawberry.type
class PlaybackQuery:
    @strawberry.field(description="The server's clock, for syncing `serverTime`.")
    def server_clock(self) -> ServerClock:
        reading = playback.clock(received_at=playback.precise_now_ms())
        return ServerClock(received_at=reading.received_at, sent_at=reading.sent_at)


@strawberry.type
class PlaybackMutation:
    @strawberry.mutation(
        description="Move the shared playhead (signed-in users); every viewer follows.",
        extensions=signed_in(),
    )
    async def update_video_timestamp(
        self,
        info: strawberry.Info[Context],
        video_id: Annotated[strawberry.ID, strawberry.argument(description="The video's UUID.")],
        timestamp: Annotated[
            float,
            strawberry.argument(
                description="Seconds, from 0 to the video's duration; up to 1 s past it is the end."
            ),
        ],
        playing: Annotated[
            bool | None, strawberry.argument(description="Play or pause; null: unchanged.")
        ] = None,
        rate: Annotated[
            float | None, strawberry.argument(description="Speed, 0.25 to 4.0; null: unchanged.")
        ] = None,
        at: Annotated[
            float | None,
            strawberry.argument(
                description="With `playing: true`: the server-clock time (epoch ms, synced with "
                "`serverClock`) at which `timestamp` is the sender's position. The server moves "
                "the position by the time from `at` to its own stamp (times the rate), so a "
                "change that arrived late still starts where the sender is. Ignored when more "
                "than 1 s from the stamp, or when not playing; null: taken as it is."
            ),
        ] = None,
    ) -> TimestampEvent:
        services = info.context.services
        state = await playback.set_playback(
            db=services.db,
            publisher=services.bus,
            user=info.context.user,
            video_id=str(video_id),
            timestamp=timestamp,
            playing=playing,
            rate=rate,
            at=at,
        )
        return TimestampEvent.from_state(state)


@strawberry.type
class PlaybackSubscription:
    @strawberry.subscription(
        description="The video's public room: the current state first, then every change, in "
        "version order. Anyone may follow it, signed in or not."
    )
    async def video_timestamp(
        self,
        info: strawberry.Info[Context],
        video_id: Annotated[strawberry.ID, strawberry.argument(description="The video's UUID.")],
    ) -> AsyncGenerator[TimestampEvent, None]:
        topic = playback.video_topic(str(video_id))
        async with aclosing(info.context.services.bus.watch(topic)) as events:
            async for event in events:
                yield TimestampEvent.from_event(event)


register("videoTimestamp", SharedField("videoId", playback.video_topic, TimestampEvent.from_event))
