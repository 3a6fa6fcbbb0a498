"""SHA-256 of objects in object storage, for inputs digests of files given without one.

A job's identity names files by content (``planning.identity``), but a spec may give only a URI.
The operator then streams the object once and hashes it (never stores it), off the event loop
and a few at a time. Hashes are cached by (URI, ETag, size): an object that is overwritten gets
a new ETag and is hashed again. The cache is bounded (``MAX_ENTRIES``, least recently used
dropped) and lives in the operator's context, not in a module global.

Bounds: objects above ``max_bytes`` (``digestMaxBytes``, default 8 GiB) are not hashed; the job
then has no inputs digest and a batch reports the item as invalid, asking for its sha256.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from .s3 import ObjectInfo, ObjectStore, S3Error

MAX_ENTRIES = 200_000
CONCURRENCY = 4


@dataclass
class ContentHashes:
    store: ObjectStore
    max_bytes: int
    entries: "OrderedDict[tuple[str, str, int], str]" = field(default_factory=OrderedDict)
    _gate: asyncio.Semaphore | None = None

    def cached(self, info: ObjectInfo) -> str | None:
        key = (info.uri, info.etag or "", info.size)
        digest = self.entries.get(key)
        if digest is not None:
            self.entries.move_to_end(key)
        return digest

    def _remember(self, info: ObjectInfo, digest: str) -> None:
        self.entries[(info.uri, info.etag or "", info.size)] = digest
        while len(self.entries) > MAX_ENTRIES:
            self.entries.popitem(last=False)

    async def sha256(self, info: ObjectInfo) -> str:
        """The object's SHA-256 (hex); ``S3Error`` (e.g. ``ObjectTooLargeError``) when it cannot be read."""
        digest = self.cached(info)
        if digest is not None:
            return digest
        self._gate = self._gate or asyncio.Semaphore(CONCURRENCY)
        async with self._gate:
            _, digest = await asyncio.to_thread(self.store.hash_object, info.uri, max_bytes=self.max_bytes)
        self._remember(info, digest)
        return digest

    async def sha256_of_uris(self, uris: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
        """({uri: sha256}, {uri: why not}) for objects known only by URI (one HEAD each, then the cache)."""
        found: dict[str, str] = {}
        problems: dict[str, str] = {}
        for uri in uris:
            try:
                info = await asyncio.to_thread(self.store.get_object_metadata, uri)
                found[uri] = await self.sha256(info)
            except S3Error as err:
                problems[uri] = str(err)
        return found, problems
