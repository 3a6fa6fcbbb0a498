"""Deterministic OCI images from a list of files, with the standard library only (no Docker).

The testenv's images (testenv/images/build.py) and the image tests' tiny images
(tests/support/oci_images.py) are built here: tar layers (sorted, PAX, mtime 0, numeric
owners without names, parents listed, optionally gzip'ed), an image configuration, an OCI
manifest, written as an OCI image layout directory (``crane push`` reads it) and as an OCI
layout tar archive (``ctr images import`` reads it). The same input always gives the same
digests.

    layer = oci.layer([oci.File("usr/local/bin/app", source="build/app", mode=0o755)])
    image = oci.image(oci.Config(user="1000:1000", entrypoint=["/usr/local/bin/app"]), [layer])
    oci.write_layout(path, image.blobs, [image.descriptor(annotations=oci.ref_annotations(ref))])
    oci.write_archive(path, "image.tar")

Layers of whole directory trees (a root filesystem, a virtualenv) are streamed to a file
instead of memory: ``tree(root)`` lists a tree's entries (directories, regular files,
symbolic links, hard links; device nodes, fifos and sockets are refused unless excluded),
``diff(lower, upper)`` lists what changed from one tree to the other (whiteouts for what was
removed), and ``write_layer(files, path)`` writes the tar, gzip'ed, returning a layer whose
blob stays on disk (``FileBlob``). ``unpack(layout, dest)`` applies an image's layers to a
directory, as a container runtime would (whiteouts included), for tests and checks.
"""

from __future__ import annotations

import filecmp
import fnmatch
import hashlib
import io
import json
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence

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
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _archive_name(path: str) -> str:
    """A path in the archive: relative, normalised, no ``..``."""
    name = posixpath.normpath("/" + path).lstrip("/")
    if not name or ".." in path.split("/"):
        raise ValueError(f"bad path in image: {path!r}")
    return name


@dataclass(frozen=True)
class File:
    """One entry of a layer: a regular file (``data`` or the host file ``source``), a directory,
    a symbolic link (``symlink``: its target, kept as given) or a hard link (``hardlink``: an
    earlier regular file of the same layer)."""

    path: str
    data: bytes | None = None
    source: str | os.PathLike | None = None
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    directory: bool = False
    symlink: str | None = None
    hardlink: str | None = None

    @classmethod
    def dir(cls, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> "File":
        return cls(path, mode=mode, uid=uid, gid=gid, directory=True)

    @classmethod
    def link(cls, path: str, target: str, uid: int = 0, gid: int = 0) -> "File":
        """A symbolic link ``path`` -> ``target``."""
        return cls(path, mode=0o777, uid=uid, gid=gid, symlink=target)

    @classmethod
    def whiteout(cls, path: str) -> "File":
        """The OCI whiteout hiding ``path`` (and all below it) of the layers underneath."""
        name = _archive_name(path)
        return cls(posixpath.join(posixpath.dirname(name), WHITEOUT + posixpath.basename(name)), data=b"")

    @property
    def name(self) -> str:
        """The path in the archive: relative, normalised, no ``..``."""
        return _archive_name(self.path)

    @property
    def regular(self) -> bool:
        return not self.directory and self.symlink is None and self.hardlink is None

    def size(self) -> int:
        if not self.regular:
            return 0
        self._check()
        return len(self.data) if self.data is not None else os.stat(self.source).st_size

    def open(self) -> BinaryIO:
        self._check()
        return io.BytesIO(self.data) if self.data is not None else open(self.source, "rb")

    def content(self) -> bytes:
        if not self.regular:
            return b""
        with self.open() as f:
            return f.read()

    def _check(self) -> None:
        if (self.data is None) == (self.source is None):
            raise ValueError(f"{self.path}: give exactly one of data and source")


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

    def save(self, target: Path) -> None:
        target.write_bytes(self.data)


@dataclass(frozen=True)
class FileBlob:
    """A blob kept in a file (a large layer), with its digest and size known beforehand."""

    media_type: str
    path: Path
    digest: str
    size: int

    @classmethod
    def load(cls, media_type: str, path: str | os.PathLike, digest: str | None = None) -> "FileBlob":
        """The blob in ``path``; its digest is computed unless given (then only the size is checked)."""
        path = Path(path)
        if digest is None:
            with open(path, "rb") as f:
                digest = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
        return cls(media_type, path, digest, path.stat().st_size)

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def save(self, target: Path) -> None:
        """A hard link to the file when possible (same file system), else a copy."""
        if self.path.stat().st_size != self.size:
            raise ValueError(f"{self.path}: {self.path.stat().st_size} bytes, expected {self.size} ({self.digest})")
        try:
            os.link(self.path, target)
        except OSError:
            shutil.copyfile(self.path, target)


@dataclass(frozen=True)
class Layer:
    blob: Blob | FileBlob
    diff_id: str
    """The digest of the uncompressed tar (what the config's rootfs lists)."""


class _Sink:
    """What tarfile writes to: hashes and counts the tar (the diff_id), gzip's it (zlib, mtime
    0, the bytes ``gzip.compress(..., mtime=0)`` gives) unless ``level`` is None, and hashes,
    counts and writes the result to ``out``."""

    def __init__(self, out: BinaryIO, level: int | None):
        self.out, self.raw, self.raw_size, self.stored, self.stored_size = out, hashlib.sha256(), 0, hashlib.sha256(), 0
        self.zlib = zlib.compressobj(level, zlib.DEFLATED, 31) if level is not None else None

    def tell(self) -> int:
        return self.raw_size

    def write(self, data: bytes) -> int:
        self.raw.update(data)
        self.raw_size += len(data)
        self._emit(self.zlib.compress(data) if self.zlib else data)
        return len(data)

    def finish(self) -> None:
        if self.zlib:
            self._emit(self.zlib.flush())

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self.stored.update(chunk)
            self.stored_size += len(chunk)
            self.out.write(chunk)


def _write_tar(files: Iterable[File], fileobj) -> None:
    """A PAX tar of ``files``, sorted by path, every parent directory listed (root-owned 0755
    unless given), times 0, numeric owners without names: the same files give the same bytes.
    A hard link must point to a regular file of the same tar that sorts before it."""
    entries = {f.name: f for f in files}
    for name in list(entries):
        parent = posixpath.dirname(name)
        while parent and parent not in entries:
            entries[parent] = File.dir(parent)
            parent = posixpath.dirname(parent)
    written: set[str] = set()  # regular files, which hard links may point to
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            entry = entries[name]
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid, info.mtime, info.uname, info.gname = entry.mode, entry.uid, entry.gid, 0, "", ""
            if entry.directory:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.symlink is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.symlink
                tar.addfile(info)
            elif entry.hardlink is not None:
                target = _archive_name(entry.hardlink)
                if target not in written:
                    raise ValueError(f"{name}: hard link to {target!r}, which is not an earlier regular file of the layer")
                info.type, info.linkname = tarfile.LNKTYPE, target
                tar.addfile(info)
            else:
                info.size = entry.size()
                with entry.open() as f:
                    tar.addfile(info, f)
                written.add(name)


def tar_bytes(files: Iterable[File]) -> bytes:
    """The tar of ``files`` (see ``_write_tar``), in memory."""
    out = io.BytesIO()
    _write_tar(files, out)
    return out.getvalue()


def layer(files: Iterable[File], *, compress: bool = True, level: int = 9) -> Layer:
    """A layer holding ``files``, in memory, gzip'ed (mtime 0) unless ``compress`` is false."""
    out = io.BytesIO()
    sink = _Sink(out, level if compress else None)
    _write_tar(files, sink)
    sink.finish()
    return Layer(Blob(OCI_LAYER_GZIP if compress else OCI_LAYER, out.getvalue()), "sha256:" + sink.raw.hexdigest())


def write_layer(files: Iterable[File], path: str | os.PathLike, *, compress: bool = True, level: int = 6) -> Layer:
    """A layer holding ``files``, streamed to the file ``path`` (gzip'ed unless ``compress`` is
    false): for trees too large to hold in memory. Level 6 is about twice as fast as 9 on
    binaries for a few percent more bytes."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        sink = _Sink(out, level if compress else None)
        _write_tar(files, sink)
        sink.finish()
    tmp.replace(path)
    blob = FileBlob(OCI_LAYER_GZIP if compress else OCI_LAYER, path, "sha256:" + sink.stored.hexdigest(), sink.stored_size)
    return Layer(blob, "sha256:" + sink.raw.hexdigest())


# --- directory trees --------------------------------------------------------------------------


def _excluded(name: str, exclude: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)


def _scan(root: Path, exclude: Sequence[str]) -> dict[str, tuple[os.stat_result, Path]]:
    """Every entry below ``root`` (relative POSIX path -> lstat, host path), not following
    symbolic links and not descending into excluded directories (fnmatch patterns on the
    relative path: ``dev/*`` keeps ``dev`` and drops what is in it)."""
    found: dict[str, tuple[os.stat_result, Path]] = {}
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as it:
            for entry in it:
                name = f"{prefix}{entry.name}"
                if _excluded(name, exclude):
                    continue
                st = entry.stat(follow_symlinks=False)
                found[name] = (st, Path(entry.path))
                if stat.S_ISDIR(st.st_mode):
                    pending.append((name + "/", Path(entry.path)))
    return found


def _files(scanned: dict[str, tuple[os.stat_result, Path]], names: Iterable[str], prefix: str) -> list[File]:
    """Layer entries for ``names`` of a scan, under ``prefix``. Regular files sharing an inode
    become hard links to the first of them in the tar's (sorted) order."""
    files, first_of_inode = [], {}
    for name in sorted(names, key=lambda n: _archive_name(posixpath.join(prefix, n))):
        st, host = scanned[name]
        path = posixpath.join(prefix, name)
        mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
        if stat.S_ISDIR(st.st_mode):
            files.append(File.dir(path, mode=mode, uid=uid, gid=gid))
        elif stat.S_ISLNK(st.st_mode):
            files.append(File(path, mode=mode, uid=uid, gid=gid, symlink=os.readlink(host)))
        elif stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in first_of_inode:
                files.append(File(path, mode=mode, uid=uid, gid=gid, hardlink=first_of_inode[key]))
            else:
                first_of_inode[key] = path
                files.append(File(path, source=host, mode=mode, uid=uid, gid=gid))
        else:
            kind = "device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "fifo or socket"
            raise ValueError(f"{host}: a {kind} cannot go into a layer (exclude it)")
    return files


def tree(root: str | os.PathLike, prefix: str = "", *, exclude: Sequence[str] = ()) -> list[File]:
    """The entries of the directory tree ``root`` as layer files, under ``prefix`` (which then
    is an entry too, with ``root``'s owner and mode). Modes (setuid, sticky ...), numeric
    owners, symbolic links (targets as they are) and hard links are kept; times are not."""
    root = Path(root)
    scanned = _scan(root, exclude)
    files = _files(scanned, scanned, prefix)
    if prefix:
        st = root.stat()
        files.insert(0, File.dir(prefix, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid))
    return files


def _same(a: tuple[os.stat_result, Path], b: tuple[os.stat_result, Path]) -> bool:
    (sa, pa), (sb, pb) = a, b
    if (sa.st_mode, sa.st_uid, sa.st_gid) != (sb.st_mode, sb.st_uid, sb.st_gid):
        return False  # the mode includes the type
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(pa) == os.readlink(pb)
    if stat.S_ISREG(sa.st_mode):
        return sa.st_size == sb.st_size and filecmp.cmp(pa, pb, shallow=False)
    return True


def diff(lower: str | os.PathLike, upper: str | os.PathLike, *, exclude: Sequence[str] = ()) -> list[File]:
    """What changed from the tree ``lower`` to the tree ``upper``, as the entries of a layer
    to put on top of ``lower``'s: new and changed entries (by type, mode, owner, content or
    link target, not time), the directories above them as they are in ``upper``, and a
    whiteout for each removed entry (the topmost one of a removed subtree)."""
    old, new = _scan(Path(lower), exclude), _scan(Path(upper), exclude)
    changed = {name for name, entry in new.items() if name not in old or not _same(old[name], entry)}
    def still_a_directory(name: str) -> bool:
        return name == "" or (name in new and stat.S_ISDIR(new[name][0].st_mode) and stat.S_ISDIR(old[name][0].st_mode))

    # the topmost removed entries; what was in a directory replaced by a file goes with it
    removed = sorted(name for name in old if name not in new and still_a_directory(posixpath.dirname(name)))
    wanted = set(changed)
    for name in changed | set(removed):
        parent = posixpath.dirname(name)
        while parent and parent not in wanted:
            wanted.add(parent)
            parent = posixpath.dirname(parent)
    return _files(new, wanted, "") + [File.whiteout(name) for name in removed]


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
    """The history entry of each layer, unless ``history`` gives one per layer."""
    history: Sequence[str] | None = None

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
            "history": [{"created": self.created, "created_by": by} for by in self._history(len(diff_ids))],
        }


    def _history(self, layers: int) -> list[str]:
        if self.history is None:
            return [self.created_by] * layers
        if len(self.history) != layers:
            raise ValueError(f"{len(self.history)} history entries for {layers} layers")
        return list(self.history)


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
    def blobs(self) -> list[Blob | FileBlob]:
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


def write_layout(path: str | os.PathLike, blobs: Iterable[Blob | FileBlob], manifests: Sequence[dict]) -> Blob:
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
            tmp.unlink(missing_ok=True)
            blob.save(tmp)
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


# --- reading images back ----------------------------------------------------------------------


def read_image(layout: str | os.PathLike, ref: str | None = None) -> tuple[dict, dict, list[Path]]:
    """The manifest, configuration and layer blob paths of the image in an OCI layout directory:
    the one named ``ref`` (its ``io.containerd.image.name`` or tag), or the only one."""
    layout = Path(layout)

    def blob(digest: str) -> Path:
        return layout / "blobs" / digest.replace(":", "/", 1)

    manifests = json.loads((layout / "index.json").read_bytes())["manifests"]
    if ref is not None:
        manifests = [m for m in manifests if ref in (m.get("annotations") or {}).values()]
    if len(manifests) != 1:
        raise ValueError(f"{layout}: {len(manifests)} images{f' named {ref}' if ref else ''}, expected one")
    manifest = json.loads(blob(manifests[0]["digest"]).read_bytes())
    config = json.loads(blob(manifest["config"]["digest"]).read_bytes())
    return manifest, config, [blob(layer["digest"]) for layer in manifest["layers"]]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def unpack(layout: str | os.PathLike, dest: str | os.PathLike, ref: str | None = None) -> dict:
    """Apply the layers of the image in ``layout`` to the directory ``dest``, as a container
    runtime does: in order, whiteouts hiding what the layers below have, an entry replacing
    one of another type, owners numeric (as root) and modes kept. Returns the configuration.
    For the project's own images (tests, checks): links are not resolved inside ``dest``, so
    an entry under a symbolic link of a lower layer is refused."""
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    _, config, layers = read_image(layout, ref)
    extra = {"filter": tarfile.fully_trusted_filter} if hasattr(tarfile, "fully_trusted_filter") else {}
    for path in layers:
        with tarfile.open(path, mode="r:*") as tar:
            members = tar.getmembers()
            kept = []
            for member in members:
                parent, base = posixpath.split(member.name)
                target_dir = dest / parent
                if os.path.realpath(target_dir) != str(target_dir):
                    raise ValueError(f"{path.name}: {member.name} is below a symbolic link")
                if base == OPAQUE:
                    for child in target_dir.iterdir():
                        _remove(child)
                elif base.startswith(WHITEOUT):
                    _remove(target_dir / base[len(WHITEOUT):])
                else:
                    kept.append(member)
            for member in kept:
                target = dest / member.name
                if os.path.lexists(target) and not (member.isdir() and target.is_dir() and not target.is_symlink()):
                    _remove(target)
            tar.extractall(dest, members=kept, numeric_owner=True, **extra)
    return config
