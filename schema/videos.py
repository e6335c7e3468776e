"""Video types, the feed, the video query, uploads and processing progress."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from strawberry.file_uploads import Upload

from models import Video as VideoModel
from models import VideoStatus as VideoStatusEnum
from models.base import as_utc
from models.values import RenditionValue, VideoValue
from resolvers import processing, uploads, videos
from resolvers.errors import BadInput
from schema.context import Context, soon
from schema.enums import described_enum
from schema.permissions import signed_in

if TYPE_CHECKING:
    from schema.channels import Channel
    from schema.users import User

VideoStatus = described_enum(
    VideoStatusEnum,
    name="VideoStatus",
    description="Where a video is between upload and playback.",
    values={
        "PROCESSING": "Uploaded; waiting for or inside the transcoder (see `progress`).",
        "TRANSCODED": "Every rendition is stored and playable.",
        "FAILED": "The transcoder gave up; `failureReason` says why.",
    },
)


@strawberry.type(description="One playable MP4 encoding of a video.")
class Rendition:
    quality: str = strawberry.field(description='Rung name: "240p", "480p" or "720p".')
    width: int = strawberry.field(description="Frame width in pixels.")
    height: int = strawberry.field(description="Frame height in pixels.")
    _key: strawberry.Private[str]

    @classmethod
    def from_value(cls, value: RenditionValue) -> Rendition:
        return cls(
            quality=value.quality, width=value.width, height=value.height, _key=value.storage_key
        )

    @strawberry.field(description="Where to fetch the MP4 (supports HTTP Range requests).")
    def url(self, info: strawberry.Info[Context]) -> str:
        return media_url(info.context, self._key)


def media_url(context: Context, key: str) -> str:
    """A stored object's URL: made here when the storage needs no I/O for it (local disk),
    else an awaitable of it (a presigned S3 URL), which graphql-core awaits."""
    return context.media_url_now(key) or cast(str, context.media_url(key))


@strawberry.type(description="An uploaded video: public to everyone, signed in or not.")
class Video:
    id: strawberry.ID = strawberry.field(description="The video's UUID.")
    title: str = strawberry.field(description="1 to 200 characters.")
    description: str = strawberry.field(description="Up to 5,000 characters; may be empty.")
    category: str | None = strawberry.field(description="Up to 50 characters; null: none.")
    status: VideoStatus = strawberry.field(  # type: ignore[valid-type]
        description="PROCESSING until transcoded, then TRANSCODED (or FAILED)."
    )
    view_count: int = strawberry.field(
        description="Views: one per REST `GET /api/videos/{id}` of the TRANSCODED video."
    )
    created_at: datetime = strawberry.field(description="When it was uploaded (UTC).")
    duration: float | None = strawberry.field(
        description="Length in seconds; null until the upload has been probed."
    )
    width: int | None = strawberry.field(description="Source frame width in pixels, if known.")
    height: int | None = strawberry.field(description="Source frame height in pixels, if known.")
    progress: int = strawberry.field(description="Transcoding progress, 0 to 100 percent.")
    failure_reason: str | None = strawberry.field(
        description="Why transcoding failed (FAILED only); null otherwise."
    )
    _model: strawberry.Private[VideoModel | VideoValue]

    @classmethod
    def from_model(cls, model: VideoModel | VideoValue) -> Video:
        return cls(
            id=strawberry.ID(model.id),
            title=model.title,
            description=model.description,
            category=model.category,
            status=model.status,
            view_count=model.view_count,
            created_at=as_utc(model.created_at),
            duration=model.duration,
            width=model.width,
            height=model.height,
            progress=model.progress,
            failure_reason=model.failure_reason,
            _model=model,
        )

    @strawberry.field(description="The shared playhead now, in seconds.")
    def current_timestamp(self) -> float:
        return videos.live_position(self._model)

    @strawberry.field(description="A JPEG frame of the video; null until transcoded.")
    def thumbnail_url(self, info: strawberry.Info[Context]) -> str | None:
        key = self._model.thumbnail_key
        return media_url(info.context, key) if key else None

    @strawberry.field(description="The user who uploaded it.")
    def creator(
        self, info: strawberry.Info[Context]
    ) -> Annotated[User, strawberry.lazy("schema.users")]:
        from schema.users import User

        return soon(info.context.loaders.users.load(self._model.owner_id), User.of)

    @strawberry.field(description="The uploader's channel; null if they have none.")
    def channel(
        self, info: strawberry.Info[Context]
    ) -> Annotated[Channel, strawberry.lazy("schema.channels")] | None:
        from schema.channels import Channel

        return soon(info.context.loaders.channel_by_owner.load(self._model.owner_id), Channel.of)

    @strawberry.field(description="Playable renditions, smallest first (empty until transcoded).")
    def renditions(self, info: strawberry.Info[Context]) -> list[Rendition]:
        if self._model.status != VideoStatusEnum.TRANSCODED:
            return []
        loaded = info.context.loaders.renditions.load(self._model.id)
        return soon(loaded, lambda found: [Rendition.from_value(value) for value in found])


@strawberry.type(description="One page of the feed.")
class FeedPage:
    videos: list[Video] = strawberry.field(description="At most `limit` videos, newest first.")
    current_page: int = strawberry.field(description="The page asked for (1-based).")
    _limit: strawberry.Private[int]
    _category: strawberry.Private[str | None]

    async def _total(self, info: strawberry.Info[Context]) -> int:
        services = info.context.services
        return await videos.feed_total(
            db=services.db, counts=services.counts, category=self._category
        )

    @strawberry.field(description="Pages of `limit` videos; 0 when empty.")
    async def total_pages(self, info: strawberry.Info[Context]) -> int:
        return videos.pages(await self._total(info), self._limit)

    @strawberry.field(
        description="Transcoded videos matching the filter (counted only when asked for, "
        "and at most every COWATCH_FEED_COUNT_TTL_S seconds)."
    )
    async def total(self, info: strawberry.Info[Context]) -> int:
        return await self._total(info)


@strawberry.type
class VideoQuery:
    @strawberry.field(description="Newest transcoded videos first. Anyone may call it.")
    async def feed(
        self,
        info: strawberry.Info[Context],
        page: Annotated[
            int, strawberry.argument(description="1-based page number, 1 to 1,000,000.")
        ] = 1,
        limit: Annotated[int, strawberry.argument(description="Videos per page, 1 to 100.")] = 20,
        category: Annotated[
            str | None,
            strawberry.argument(description="Only this category (exact, up to 50 characters)."),
        ] = None,
    ) -> FeedPage:
        found = await videos.feed_slice(
            db=info.context.services.db, page=page, limit=limit, category=category, channels=True
        )
        loaders = info.context.loaders
        for user in found.creators.values():
            loaders.users.prime(user.id, user)
        for owner_id, channel in found.channels.items():
            loaders.channel_by_owner.prime(owner_id, channel)
        return FeedPage(
            videos=[Video.from_model(value) for value in found.videos],
            current_page=found.current_page,
            _limit=limit,
            _category=category,
        )

    @strawberry.field(description="A video by id, in any status; null if there is none.")
    async def video(
        self,
        info: strawberry.Info[Context],
        id: Annotated[strawberry.ID, strawberry.argument(description="The video's UUID.")],
    ) -> Video | None:
        found = await videos.read_video_with_owner(db=info.context.services.db, video_id=str(id))
        if found is None:
            return None
        video, user, channel = found
        loaders = info.context.loaders
        loaders.users.prime(user.id, user)
        loaders.channel_by_owner.prime(user.id, channel)
        return Video.from_model(video)


@strawberry.type
class VideoUploadMutation:
    @strawberry.mutation(
        description="Upload a video file (signed-in users): PROCESSING until transcoded. "
        "Send it as a GraphQL multipart request; COWATCH_MAX_UPLOAD_BYTES caps its size and "
        "COWATCH_USER_QUOTA_BYTES a user's total.",
        extensions=signed_in(),
    )
    async def upload_video(
        self,
        info: strawberry.Info[Context],
        file: Annotated[
            Upload, strawberry.argument(description="The video file (any format FFmpeg reads).")
        ],
        title: Annotated[str, strawberry.argument(description="1 to 200 characters.")],
        description: Annotated[
            str | None, strawberry.argument(description="Up to 5,000 characters.")
        ] = None,
        category: Annotated[
            str | None, strawberry.argument(description="Up to 50 characters.")
        ] = None,
    ) -> Video:
        services = info.context.services
        if not isinstance(file, uploads.StagedUpload):  # staged at intake (schema/intake.py)
            raise BadInput("file: send it as a multipart upload", field="file")
        result = await uploads.upload_video(
            db=services.db,
            storage=services.storage,
            queue=services.queue,
            settings=services.settings,
            owner=info.context.user,
            staged=file,
            title=title,
            description=description,
            category=category,
        )
        return Video.from_model(result.video)


@strawberry.type
class VideoProcessingSubscription:
    @strawberry.subscription(
        description=(
            "The video's status and progress now and whenever they change, until done. Only "
            "the uploader may subscribe (FORBIDDEN otherwise), at most "
            "COWATCH_MAX_PROCESSING_SUBSCRIPTIONS_PER_USER at once per server (RATE_LIMITED)."
        )
    )
    async def video_processing(
        self,
        info: strawberry.Info[Context],
        video_id: Annotated[strawberry.ID, strawberry.argument(description="The video's UUID.")],
    ) -> AsyncGenerator[Video, None]:
        services = info.context.services
        updates = processing.processing_updates(
            db=services.db,
            bus=services.bus,
            cap=services.processing_subscriptions,
            viewer=await info.context.viewer(),
            video_id=str(video_id),
        )
        async for model in updates:
            yield Video.from_model(model)
