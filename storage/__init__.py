"""Media storage behind one small interface, chosen by URL scheme (file://, s3://)."""

from storage.base import Storage, open_storage

__all__ = ["Storage", "open_storage"]
