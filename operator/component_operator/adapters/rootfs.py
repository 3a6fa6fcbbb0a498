"""Read a few small files (``/etc/passwd``, ``/etc/group``) of an image's root filesystem
straight from its layers, without unpacking or storing them.

An image whose USER is a name runs as whatever uid that name has in the image's
``/etc/passwd`` (see ``planning.image_users``); the registry only tells the name. The
root filesystem is the image's layers applied bottom-up, so the file a container sees is
the one in the *topmost* layer that mentions it. This module walks the layers from the top
down and streams each one through the decompressor and a tar reader, looking only at the
wanted paths:

* a regular file at the path (``etc/passwd``, also spelled ``./etc/passwd`` or
  ``/etc/passwd``) defines it: its content is read (``MAX_FILE_BYTES`` at most) and the
  search for that path stops at this layer;
* an OCI whiteout deletes it for the layers below: ``etc/.wh.passwd``, ``.wh.etc`` (a whole
  parent), an opaque ``etc/.wh..wh..opq`` (or one at the root), or a parent replaced by
  something that is not a directory. A file in the same layer as a whiteout still counts
  (whiteouts only hide lower layers);
* a symbolic or hard link, device or fifo at the path cannot be read from a stream and is
  reported as such (USER can always be given as numbers instead).

Layers may be plain tar, gzip or zstd, whatever their media type says (the magic bytes
decide: some registries mislabel). zstd needs the ``zstandard`` package or Python 3.14's
``compression.zstd``; without either, a zstd layer is reported as unreadable.

Bounds, all per image inspection and documented in docs/operating.md:

* ``MAX_LAYER_BYTES`` (2 GiB): compressed bytes read from the registry over all layers
  (``COMPONENT_OPERATOR_IMAGE_USER_MAX_LAYER_BYTES`` overrides it in the operator);
* ``MAX_TAR_BYTES`` (8 GiB): decompressed tar bytes scanned, against compression bombs;
* ``MAX_FILE_BYTES`` (1 MiB): the size of the passwd or group file;
* ``MAX_HEADER_BYTES`` (1 MiB): one PAX or GNU long-name header (tarfile holds it in memory).

Only one chunk of a layer (``CHUNK_BYTES``) is held at a time. The functions block; the
operator calls them in a thread (``handlers.image._observe``).
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterator, Sequence

from ..planning.image_users import BUDGET_REASON, TOO_LARGE_REASON, UNREADABLE_REASON, UserFiles

MAX_LAYER_BYTES = 2 * 1024**3
MAX_LAYER_BYTES_ENV = "COMPONENT_OPERATOR_IMAGE_USER_MAX_LAYER_BYTES"
MAX_TAR_BYTES = 8 * 1024**3
MAX_FILE_BYTES = 1024**2
MAX_HEADER_BYTES = 1024**2
CHUNK_BYTES = 64 * 1024

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

OpenLayer = Callable[[dict[str, Any]], AbstractContextManager[Iterator[bytes]]]
"""Given a layer descriptor, a context manager yielding the blob's bytes in chunks."""


class LayerUnreadable(Exception):
    """A layer (or an entry in it) cannot be searched; ``reason`` becomes the Ready reason."""

    def __init__(self, message: str, reason: str = UNREADABLE_REASON):
        super().__init__(message)
        self.reason = reason


class _Budget:
    """Bytes left to read, shared by the layers of one search."""

    def __init__(self, limit: int, what: str):
        self.limit, self.used, self.what = limit, 0, what

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise LayerUnreadable(f"more than the {self.limit} {self.what} allowed ({_human(self.limit)})", BUDGET_REASON)


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of chunks, charging every byte to a budget."""

    def __init__(self, chunks: Iterator[bytes], budget: _Budget):
        self._chunks, self._budget, self._pending = chunks, budget, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._budget.take(len(chunk))
            self._pending = chunk
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class _Metered(io.RawIOBase):
    """A readable stream over another one, charging every byte read to a budget."""

    def __init__(self, source, budget: _Budget):
        self._source, self._budget = source, budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        self._budget.take(len(data))
        buffer[: len(data)] = data
        return len(data)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses PAX and GNU long-name headers larger than MAX_HEADER_BYTES before tarfile reads them."""

    _META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)

    def _proc_member(self, tar):  # tarfile's own hook for special members
        if self.type in self._META_TYPES and self.size > MAX_HEADER_BYTES:
            raise LayerUnreadable(f"a tar header of {self.size} bytes exceeds the {MAX_HEADER_BYTES} allowed")
        return super()._proc_member(tar)


def _human(count: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"


def normalize(name: str) -> str:
    """A tar entry's path as a path below the root: ``./etc/passwd`` and ``/etc/passwd`` -> ``etc/passwd``."""
    return posixpath.normpath("/" + name).lstrip("/")


def _below(path: str, directory: str) -> bool:
    """Whether ``path`` lies inside ``directory`` (``""`` is the root)."""
    return directory == "" or path.startswith(directory + "/")


def _decompressed(raw: io.BufferedReader, what: str):
    magic = raw.peek(4)[:4]
    if magic[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic == ZSTD_MAGIC:
        return _zstd_reader(raw, what)
    return raw


def _zstd_reader(raw, what: str):
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        zstandard = None
    if zstandard is not None:
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
    except ImportError:
        raise LayerUnreadable(f"{what} is zstd-compressed, and this operator has no zstd decoder (the zstandard package)") from None
    return zstd.ZstdFile(raw)


def _decode_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [tarfile.TarError, OSError, EOFError, zlib.error]
    try:
        import zstandard  # type: ignore[import-not-found]

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    try:
        from compression import zstd  # type: ignore[import-not-found]

        errors.append(zstd.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    return "a device, fifo or other special file"


def _scan_layer(tar: tarfile.TarFile, pending: set[str], max_file_bytes: int, what: str) -> tuple[dict[str, bytes], set[str]]:
    """(paths this layer defines -> content, paths it deletes for the layers below)."""
    found: dict[str, bytes] = {}
    hidden: set[str] = set()
    while True:
        member = tar.next()
        tar.members.clear()  # tarfile keeps every header it read; we need none of them
        if member is None:
            break
        name = normalize(member.name)
        parent, base = posixpath.split(name)
        if base == OPAQUE:
            hidden.update(p for p in pending if _below(p, parent))
        elif base.startswith(WHITEOUT):
            target = posixpath.join(parent, base[len(WHITEOUT):])
            hidden.update(p for p in pending if p == target or _below(p, target))
        elif name in pending:
            if member.isreg():
                if member.size > max_file_bytes:
                    raise LayerUnreadable(
                        f"/{name} in {what} is {member.size} bytes, more than the {max_file_bytes} ({_human(max_file_bytes)}) allowed",
                        TOO_LARGE_REASON,
                    )
                handle = tar.extractfile(member)
                found[name] = handle.read(max_file_bytes + 1) if handle else b""
                if pending <= found.keys():
                    break  # every path is defined here; the rest of the layer cannot change that
            elif member.isdir():
                hidden.add(name)  # a directory, not a file: there is no such file
            else:
                raise LayerUnreadable(f"/{name} in {what} is {_kind(member)}, which the operator does not follow")
        elif not member.isdir() and any(_below(p, name) for p in pending):
            if member.issym() or member.islnk():
                raise LayerUnreadable(f"/{name} in {what} is {_kind(member)}, which the operator does not follow")
            hidden.update(p for p in pending if _below(p, name))  # a file where a parent directory was
    return found, hidden


def read_files(
    open_layer: OpenLayer,
    layers: Sequence[dict[str, Any]],
    wanted: Sequence[str],
    *,
    max_layer_bytes: int = MAX_LAYER_BYTES,
    max_tar_bytes: int = MAX_TAR_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> UserFiles:
    """The content of each ``wanted`` path (``etc/passwd``...) in the root filesystem of ``layers``
    (manifest order: base first), None where no layer has it; or the reason the search stopped.

    Registry errors raised by ``open_layer`` (a transient outage) propagate unchanged.
    """
    pending = {normalize(p) for p in wanted}
    result: dict[str, bytes | None] = {}
    compressed = _Budget(max_layer_bytes, f"compressed layer bytes ({MAX_LAYER_BYTES_ENV})")
    scanned = _Budget(max_tar_bytes, "decompressed layer bytes")
    decode_errors = _decode_errors()
    read = 0
    try:
        for descriptor in reversed(layers):
            if not pending:
                break
            what = f"layer {descriptor.get('digest')}"
            read += 1
            before = scanned.used
            with open_layer(descriptor) as chunks:
                raw = io.BufferedReader(_ChunkReader(chunks, compressed), CHUNK_BYTES)
                try:
                    stream = io.BufferedReader(_Metered(_decompressed(raw, what), scanned), CHUNK_BYTES)
                    tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo)
                    found, hidden = _scan_layer(tar, pending, max_file_bytes, what)
                except tarfile.ReadError as err:
                    if scanned.used == before:  # an empty blob: a layer without entries
                        found, hidden = {}, set()
                    else:
                        raise LayerUnreadable(f"{what} ({descriptor.get('mediaType')}) is not a readable tar archive: {err}") from None
                except LayerUnreadable:
                    raise
                except decode_errors as err:
                    raise LayerUnreadable(f"{what} ({descriptor.get('mediaType')}) is not a readable tar archive: {err}") from None
            for path in list(pending):
                if path in found or path in hidden:
                    result[path] = found.get(path)
                    pending.discard(path)
    except LayerUnreadable as err:
        searched = ", ".join(f"/{p}" for p in sorted(pending)) or "the files"
        message = f"searching the image's layers for {searched} stopped: {err}"
        if err.reason == BUDGET_REASON:
            message = f"searching the image's layers for {searched} read {err}, after {read} of {len(layers)} layers"
        return UserFiles(files=result, error=message, error_reason=err.reason, layers_read=read, bytes_read=compressed.used)
    result.update({path: None for path in pending})
    return UserFiles(files=result, layers_read=read, bytes_read=compressed.used)
