"""Video types, the feed, the video query, uploads and processing progress."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, cast

import strawberry
from starlette.datastructures import UploadFile
from strawberry.file_uploads import Upload

from models import Rendition as RenditionModel
from models import Video as VideoModel
from models import VideoStatus as VideoStatusEnum
from models.base import as_utc
from resolvers import uploads, videos
from schema.context import Context
from storage.base import CHUNK

if TYPE_CHECKING:
    from schema.channels import Channel
    from schema.users import User

VideoStatus = strawberry.enum(VideoStatusEnum, name="VideoStatus")


@strawberry.type
class Rendition:
    quality: str
    width: int
    height: int
    _key: strawberry.Private[str]

    @classmethod
    def from_model(cls, model: RenditionModel) -> Rendition:
        return cls(
            quality=model.quality, width=model.width, height=model.height, _key=model.storage_key
        )

    @strawberry.field
    async def url(self, info: strawberry.Info[Context]) -> str:
        return await info.context.services.storage.url(self._key)


@strawberry.type
class Video:
    id: strawberry.ID
    title: str
    description: str
    category: str | None
    status: VideoStatus  # type: ignore[valid-type]
    view_count: int
    created_at: datetime
    duration: float | None
    width: int | None
    height: int | None
    progress: int
    failure_reason: str | None
    _model: strawberry.Private[VideoModel]

    @classmethod
    def from_model(cls, model: VideoModel) -> Video:
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

    @strawberry.field
    async def thumbnail_url(self, info: strawberry.Info[Context]) -> str | None:
        key = self._model.thumbnail_key
        return await info.context.services.storage.url(key) if key else None

    @strawberry.field
    async def creator(
        self, info: strawberry.Info[Context]
    ) -> Annotated[User, strawberry.lazy("schema.users")]:
        from schema.users import User

        model = await info.context.loaders.users.load(self._model.owner_id)
        assert model is not None  # owner_id is a foreign key
        return User.from_model(model)

    @strawberry.field
    async def channel(
        self, info: strawberry.Info[Context]
    ) -> Annotated[Channel, strawberry.lazy("schema.channels")] | None:
        from schema.channels import Channel

        model = await info.context.loaders.channel_by_owner.load(self._model.owner_id)
        return Channel.from_model(model) if model else None

    @strawberry.field(description="Playable renditions, smallest first (empty until transcoded).")
    async def renditions(self, info: strawberry.Info[Context]) -> list[Rendition]:
        if self._model.status != VideoStatusEnum.TRANSCODED:
            return []
        models = await info.context.loaders.renditions.load(self._model.id)
        return [Rendition.from_model(model) for model in models]


@strawberry.type
class FeedPage:
    videos: list[Video]
    total_pages: int
    current_page: int
    total: int


@strawberry.type
class VideoQuery:
    @strawberry.field(description="Newest transcoded videos first.")
    async def feed(
        self,
        info: strawberry.Info[Context],
        page: int = 1,
        limit: int = 20,
        category: str | None = None,
    ) -> FeedPage:
        result = await videos.feed(
            db=info.context.services.db, page=page, limit=limit, category=category
        )
        for user in result.creators.values():
            info.context.loaders.users.prime(user.id, user)
        return FeedPage(
            videos=[Video.from_model(model) for model in result.videos],
            total_pages=result.total_pages,
            current_page=result.current_page,
            total=result.total,
        )

    @strawberry.field
    async def video(self, info: strawberry.Info[Context], id: strawberry.ID) -> Video | None:
        model = await videos.find_video(db=info.context.services.db, video_id=str(id))
        return Video.from_model(model) if model else None


@strawberry.type
class VideoUploadMutation:
    @strawberry.mutation(description="Upload a video file; it is PROCESSING until transcoded.")
    async def upload_video(
        self,
        info: strawberry.Info[Context],
        file: Upload,
        title: str,
        description: str | None = None,
        category: str | None = None,
    ) -> Video:
        viewer = await info.context.require_viewer()
        services = info.context.services
        uploads.validate_fields(title, description, category)
        async with uploads.staging(settings=services.settings) as staged:
            received = cast(UploadFile, file)  # what Strawberry's ASGI view hands over
            while chunk := await received.read(CHUNK):
                await staged.write(chunk)
            result = await uploads.upload_video(
                db=services.db,
                storage=services.storage,
                queue=services.queue,
                settings=services.settings,
                owner=viewer,
                staged=staged,
                title=title,
                description=description,
                category=category,
            )
        return Video.from_model(result.video)


@strawberry.type
class VideoProcessingSubscription:
    @strawberry.subscription(
        description="The video's status and progress now and whenever they change, until done."
    )
    async def video_processing(
        self, info: strawberry.Info[Context], video_id: strawberry.ID
    ) -> AsyncGenerator[Video, None]:
        updates = uploads.processing_updates(db=info.context.services.db, video_id=str(video_id))
        async for model in updates:
            yield Video.from_model(model)
