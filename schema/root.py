"""Assemble Query, Mutation and Subscription from the per-domain pieces."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from schema.channels import ChannelMutation, ChannelQuery
from schema.chat import ChatMutation
from schema.documents import DocumentCache
from schema.engine import CachedDocuments, CompiledPlans, self_check
from schema.errors import DomainErrors
from schema.parties import PartyMutation, PartyQuery, PartySubscription
from schema.playback import PlaybackMutation, PlaybackQuery, PlaybackSubscription
from schema.users import UserMutation, UserQuery
from schema.videos import VideoProcessingSubscription, VideoQuery, VideoUploadMutation


@strawberry.type(description="Reads. Anyone may call them unless a field says otherwise.")
class Query(UserQuery, ChannelQuery, VideoQuery, PlaybackQuery, PartyQuery):
    pass


@strawberry.type(
    description="Changes. Signed-in means `Authorization: Bearer <token>` (or the "
    "Authentication cookie): none is UNAUTHENTICATED, as is a bad or expired one."
)
class Mutation(
    UserMutation,
    ChannelMutation,
    VideoUploadMutation,
    PlaybackMutation,
    PartyMutation,
    ChatMutation,
):
    pass


@strawberry.type(
    description="Live updates over a websocket at /graphql (graphql-transport-ws or the legacy "
    "graphql-ws); the socket must sign in with `Authorization` in `connection_init`."
)
class Subscription(VideoProcessingSubscription, PlaybackSubscription, PartySubscription):
    pass


class CowatchSchema(strawberry.Schema):
    #: parsed and validated documents (and their plans), shared by every operation on this schema
    documents: DocumentCache

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Unexpected errors are logged by DomainErrors when masked; the rest are the caller's."""


#: the default budget of the document cache: the text of the documents kept, in bytes
DOCUMENT_CACHE_BYTES = 1024 * 1024


def build_schema(
    *,
    extensions: list[type[SchemaExtension] | Any] | None = None,
    document_cache_bytes: int = DOCUMENT_CACHE_BYTES,
    compiled_plans: bool = True,
) -> CowatchSchema:
    """The schema; its extensions run in order, and the document cache comes last (see engine)."""
    self_check()
    documents = DocumentCache(max_bytes=document_cache_bytes)
    schema = CowatchSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            DomainErrors,
            *(extensions or []),
            lambda: CachedDocuments(cache=documents),
            *([CompiledPlans] if compiled_plans else []),
        ],
    )
    schema.documents = documents
    return schema
