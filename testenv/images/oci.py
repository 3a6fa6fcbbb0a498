"""Deterministic OCI images from a list of files, with the standard library only (no Docker).

The testenv's images (testenv/images/build.py) and the image tests' tiny images
(tests/support/oci_images.py) are built here: tar layers (sorted, PAX, mtime 0, parents
listed, optionally gzip'ed), an image configuration, an OCI manifest, written as an OCI image
layout directory (``crane push`` reads it) and as an OCI layout tar archive (``ctr images
import`` reads it). The same input always gives the same digests.

    layer = oci.layer([oci.File("usr/local/bin/app", source="build/app", mode=0o755)])
    image = oci.image(oci.Config(user="1000:1000", entrypoint=["/usr/local/bin/app"]), [layer])
    oci.write_layout(path, image.blobs, [image.descriptor(annotations=oci.ref_annotations(ref))])
    oci.write_archive(path, "image.tar")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
#: The annotation ``ctr images import`` names an image by, and the OCI one (the tag).
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
EPOCH = "1970-01-01T00:00:00Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class File:
    """One entry of a layer: a regular file (``data`` or the host file ``source``) or a directory."""

    path: str
    data: bytes | None = None
    source: str | os.PathLike | None = None
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    directory: bool = False

    @classmethod
    def dir(cls, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> "File":
        return cls(path, mode=mode, uid=uid, gid=gid, directory=True)

    @property
    def name(self) -> str:
        """The path in the archive: relative, normalised, no ``..``."""
        name = posixpath.normpath("/" + self.path).lstrip("/")
        if not name or ".." in self.path.split("/"):
            raise ValueError(f"bad path in image: {self.path!r}")
        return name

    def content(self) -> bytes:
        if self.directory:
            return b""
        if (self.data is None) == (self.source is None):
            raise ValueError(f"{self.path}: give exactly one of data and source")
        return self.data if self.data is not None else Path(self.source).read_bytes()


@dataclass(frozen=True)
class Blob:
    """Content-addressed bytes with their media type."""

    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Layer:
    blob: Blob
    diff_id: str
    """The digest of the uncompressed tar (what the config's rootfs lists)."""


def tar_bytes(files: Iterable[File]) -> bytes:
    """A PAX tar of ``files``, sorted by path, every parent directory listed (root-owned 0755
    unless given), times 0, no user or group names: the same files give the same bytes."""
    entries = {f.name: f for f in files}
    for name in list(entries):
        parent = posixpath.dirname(name)
        while parent and parent not in entries:
            entries[parent] = File.dir(parent)
            parent = posixpath.dirname(parent)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            entry = entries[name]
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime, info.uname, info.gname = entry.mode, entry.uid, entry.gid, 0, "", ""
            if entry.directory:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = entry.content()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def layer(files: Iterable[File], *, compress: bool = True) -> Layer:
    """A layer holding ``files``, gzip'ed (mtime 0) unless ``compress`` is false."""
    raw = tar_bytes(files)
    if compress:
        return Layer(Blob(OCI_LAYER_GZIP, gzip.compress(raw, compresslevel=9, mtime=0)), sha256(raw))
    return Layer(Blob(OCI_LAYER, raw), sha256(raw))


@dataclass(frozen=True)
class Config:
    """What goes into the image configuration (the ``config`` object and the platform)."""

    user: str = "1000:1000"
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/bin:/usr/bin:/bin"])
    working_dir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    created: str = EPOCH
    created_by: str = "testenv/images/oci.py"
    """The history entry of each layer."""

    @property
    def platform(self) -> dict:
        return {"architecture": self.architecture, "os": self.os, **({"variant": self.variant} if self.variant else {})}

    def document(self, diff_ids: Sequence[str]) -> dict:
        inner = {"User": self.user, "Env": list(self.env), "WorkingDir": self.working_dir, "Labels": dict(self.labels)}
        if self.entrypoint is not None:
            inner["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            inner["Cmd"] = list(self.cmd)
        return {
            **self.platform,
            "created": self.created,
            "config": inner,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [{"created": self.created, "created_by": self.created_by} for _ in diff_ids],
        }


@dataclass(frozen=True)
class Image:
    """One single-platform image: its configuration, layers and manifest."""

    config: Blob
    layers: tuple[Layer, ...]
    manifest: Blob
    platform: dict

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def size(self) -> int:
        """Configuration plus layers, as registries count an image's size."""
        return self.config.size + sum(layer.blob.size for layer in self.layers)

    @property
    def blobs(self) -> list[Blob]:
        return [self.manifest, self.config, *(layer.blob for layer in self.layers)]

    def descriptor(self, *, platform: bool = True, annotations: dict[str, str] | None = None) -> dict:
        """The manifest's descriptor for an index (index.json or a multi-platform index)."""
        extra = {"platform": self.platform} if platform else {}
        if annotations:
            extra["annotations"] = dict(annotations)
        return self.manifest.descriptor(**extra)


def image(config: Config, layers: Sequence[Layer]) -> Image:
    config_blob = Blob(OCI_CONFIG, canonical_json(config.document([layer.diff_id for layer in layers])))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [layer.blob.descriptor() for layer in layers],
    }
    return Image(config_blob, tuple(layers), Blob(OCI_MANIFEST, canonical_json(manifest)), config.platform)


def index(manifests: Sequence[dict]) -> Blob:
    """An OCI image index listing ``manifests`` (descriptors)."""
    return Blob(OCI_INDEX, canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(manifests)}))


def ref_annotations(ref: str) -> dict[str, str]:
    """index.json annotations naming an image: ``ctr images import`` uses the first (the full
    reference), OCI tools the second (the tag)."""
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    return {CONTAINERD_NAME: ref, OCI_REF_NAME: tag}


def write_layout(path: str | os.PathLike, blobs: Iterable[Blob], manifests: Sequence[dict]) -> Blob:
    """Write an OCI image layout: ``oci-layout``, the blobs, and index.json listing
    ``manifests``; returns index.json as a blob (``crane push --index`` pushes exactly it)."""
    path = Path(path)
    blob_dir = path / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_bytes(canonical_json(LAYOUT_VERSION))
    for blob in blobs:
        target = blob_dir / blob.digest.split(":", 1)[1]
        if not target.exists() or target.stat().st_size != blob.size:
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(blob.data)
            tmp.replace(target)
    top = index(manifests)
    (path / "index.json").write_bytes(top.data)
    return top


def write_archive(layout: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """Pack an image layout directory into a tar (``ctr images import`` reads OCI layout
    archives): ``oci-layout``, ``index.json`` and ``blobs/sha256/*``, sorted, times 0."""
    layout, archive = Path(layout), Path(archive)
    names = ["oci-layout", "index.json", "blobs", "blobs/sha256"]
    names += sorted(f"blobs/sha256/{p.name}" for p in (layout / "blobs" / "sha256").iterdir() if not p.name.endswith(".tmp"))
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname = 0, "", ""
            source = layout / name
            if source.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, source.stat().st_size
                with open(source, "rb") as f:
                    tar.addfile(info, f)
    tmp.replace(archive)
    return archive
