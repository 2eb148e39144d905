"""Blob storage: where the bytes of stored objects live, under server-generated names."""

from dicomhub.storage.base import BlobInfo, BlobStore
from dicomhub.storage.filesystem import FilesystemBlobStore
from dicomhub.storage.memory import MemoryBlobStore

__all__ = ["BlobInfo", "BlobStore", "FilesystemBlobStore", "MemoryBlobStore"]
