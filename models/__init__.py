"""Database tables, the engine and migrations."""

from models.channels import Channel
from models.chat import ChatMessage
from models.db import Database
from models.parties import Party, PartyEvent, PartyMember
from models.transcodes import TranscodeRun
from models.users import RevokedToken, User
from models.videos import Rendition, Video, VideoStatus

__all__ = [
    "Channel",
    "ChatMessage",
    "Database",
    "Party",
    "PartyEvent",
    "PartyMember",
    "Rendition",
    "RevokedToken",
    "TranscodeRun",
    "User",
    "Video",
    "VideoStatus",
]
