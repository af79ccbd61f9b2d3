"""The bucket: where inputs, segments and outputs live. S3 in production, a folder embedded."""

from facefleet.storage.base import Storage, StorageError
from facefleet.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StorageError"]
