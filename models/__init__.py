"""Database tables, the engine and migrations."""

from models.channels import Channel
from models.db import Database
from models.users import RevokedToken, User
from models.videos import Rendition, Video, VideoStatus

__all__ = ["Channel", "Database", "Rendition", "RevokedToken", "User", "Video", "VideoStatus"]
