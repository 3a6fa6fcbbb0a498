"""``agent prepare``: the init container that gets a job pod ready.

It puts the agent where the algorithm container can run it (a shared emptyDir), and lays out
``/input`` exactly as grand-challenge does (components spec §3.7), so that algorithms written
for grand-challenge run unchanged: inline values as JSON files, files and images from object
storage, ZIP inputs decompressed, ``inputs.json``, and the model / ground-truth tarballs.

Everything that comes from users is treated as hostile: archive member names are checked
before anything is written (absolute names, ``..``, symbolic links that leave the directory:
"zip-slip"), files are created with ``O_EXCL | O_NOFOLLOW``, sizes are counted while
extracting (declared sizes may lie), and the total staged size is bounded by
``maxInputBytes``; tarballs are extracted with tarfile's ``data`` filter.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..adapters.s3 import AccessDeniedError, ObjectNotFoundError, ObjectTooLargeError, parse_uri
from .invocation import ENV_AGENT_BINARY, INPUTS_JSON, InputItem, Invocation, Roots
from .logs import AgentLog

if TYPE_CHECKING:  # pragma: no cover
    # ``transfer.PresignedStore`` in a pod; anything with its ``download_file`` in tests.
    from .transfer import PresignedStore as ObjectStore

# Messages for users: grand-challenge's (sagemaker-shim) where it has one.
MSG_ZIP_EXTRACT = "Input zip file could not be extracted"
MSG_ZIP_TOO_LARGE = "Contents of zip file too large"
MSG_TAR_EXTRACT = "Tarfile could not be extracted"
MSG_MODEL = "Could not set up model: " + MSG_TAR_EXTRACT
MSG_GROUND_TRUTH = "Could not set up ground truth: " + MSG_TAR_EXTRACT
MSG_INPUTS_TOO_LARGE = "The inputs are too large: {total} bytes, more than the limit of {limit} bytes"
MSG_INPUT_MISSING = "Input {interface!r} could not be found in object storage"
MSG_INPUT_CHECKSUM = "Input {interface!r} does not match its sha256"
MSG_INPUT_DENIED = "Input {interface!r} could not be read from object storage: access denied"
MSG_RESET = "The containers input and output directories could not be reset"

#: Archive members grand-challenge drops (macOS resource forks, Finder and Explorer files).
_JUNK = re.compile(r"(^|/)(__MACOSX|\.DS_Store|desktop\.ini)(/|$)")
_CHUNK = 1024 * 1024


class PrepareError(Exception):
    """Staging failed. ``message`` is for users; ``detail`` names the file, value and rule."""

    def __init__(self, message: str, detail: str = "", interface: str | None = None) -> None:
        super().__init__(f"{message}: {detail}" if detail else message)
        self.message = message
        self.detail = detail
        self.interface = interface


# ---------------------------------------------------------------------------------------
# Installing the agent
# ---------------------------------------------------------------------------------------


def agent_executable_source() -> Path | None:
    """The file to install: ``COMPONENT_OPERATOR_AGENT_BINARY`` (a static agent shipped next to a
    non-frozen ``prepare``), else this static (staticx) binary, else PyInstaller's executable;
    None when not frozen (then a wrapper around this interpreter is installed)."""
    shipped = os.environ.get(ENV_AGENT_BINARY)
    if shipped:
        if not os.path.isfile(shipped):
            raise PrepareError("The agent could not be installed", f"{ENV_AGENT_BINARY}={shipped!r} is not a file")
        return Path(shipped)
    static = os.environ.get("STATICX_PROG_PATH")
    if static and os.path.isfile(static):
        return Path(static)
    if getattr(sys, "frozen", False):
        return Path(sys.executable)
    return None


def install_agent(agent_dir: Path) -> Path:
    """Put a runnable agent at ``agent_dir/agent`` (mode 0555) and return its path."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    target = agent_dir / "agent"
    fd, tmp = tempfile.mkstemp(dir=agent_dir, prefix=".agent-")
    try:
        with os.fdopen(fd, "wb") as out:
            source = agent_executable_source()
            if source is not None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            else:
                # Not frozen (development, tests): a wrapper around this very interpreter.
                python = sys.executable.replace("'", "'\"'\"'")
                out.write(f"#!/bin/sh\nexec '{python}' -I -m component_operator.cli agent \"$@\"\n".encode())
        os.chmod(tmp, 0o555)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------------------------------
# Budget
# ---------------------------------------------------------------------------------------


@dataclass
class Budget:
    """Bytes staged so far against ``maxInputBytes``."""

    limit: int
    used: int = 0
    items: list[tuple[str, int]] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def charge(self, size: int, what: str, interface: str | None = None) -> None:
        if self.used + size > self.limit:
            total = self.used + size
            largest = max([*self.items, (what, size)], key=lambda item: item[1])
            raise PrepareError(
                MSG_INPUTS_TOO_LARGE.format(total=total, limit=self.limit),
                f"{what} is {size} bytes; the inputs staged so far add up to {total} bytes, more than the limit "
                f"of {self.limit} bytes (maxInputBytes); the largest is {largest[0]} ({largest[1]} bytes)",
                interface,
            )
        self.used += size
        self.items.append((what, size))


# ---------------------------------------------------------------------------------------
# Safe file creation
# ---------------------------------------------------------------------------------------


def _inside(root: Path, path: Path) -> bool:
    root_real = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real + os.sep)


def _safe_target(root: Path, relative: str) -> Path:
    """``root/relative`` with its parents created, refusing to leave ``root`` through symlinks."""
    target = root / relative if relative else root
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(root, target.parent):
        raise PrepareError(MSG_ZIP_EXTRACT, f"{relative!r} would be written outside {root} (through a symbolic link)")
    return target


def _create_exclusive(path: Path):
    """A new file opened for writing; fails if anything (file or symlink) is already there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags, 0o644), "wb")


# ---------------------------------------------------------------------------------------
# ZIP
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipPlan:
    files: list[tuple[zipfile.ZipInfo, str]]  # member, destination (relative, common prefix removed)
    links: list[tuple[zipfile.ZipInfo, str]]  # symbolic links, same
    declared_bytes: int


def _member_problem(name: str) -> str | None:
    """Why a member name is unsafe (None when it is fine)."""
    if "\x00" in name:
        return "contains a NUL byte"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        return "is an absolute path"
    if ".." in unified.split("/"):
        return "contains '..'"
    return None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def plan_zip(archive: zipfile.ZipFile, *, max_entries: int) -> ZipPlan:
    """Check every member name, drop junk, strip the common directory (as the shim does)."""
    members = archive.infolist()
    if len(members) > max_entries:
        raise PrepareError(
            MSG_ZIP_TOO_LARGE,
            f"the archive has {len(members)} entries, more than the limit of {max_entries} (maxZipEntries)",
        )
    kept: list[zipfile.ZipInfo] = []
    for info in members:
        problem = _member_problem(info.filename)
        if problem:
            raise PrepareError(MSG_ZIP_EXTRACT, f"member {info.filename!r} {problem}; refusing to extract (zip-slip)")
        name = info.filename.replace("\\", "/")
        if info.is_dir() or _JUNK.search(name):
            continue
        kept.append(info)
    names = [posixpath.normpath(i.filename.replace("\\", "/")) for i in kept]
    if len(names) == 1:
        common = posixpath.dirname(names[0])
    elif names:
        common = posixpath.commonpath(names)
        if common in names:  # a file name cannot be the common directory
            common = posixpath.dirname(common)
    else:
        common = ""
    common = "" if common in (".", "") else common
    files, links, declared = [], [], 0
    seen: set[str] = set()
    for info, name in zip(kept, names):
        dest = name[len(common) + 1 :] if common else name
        if dest in seen:
            raise PrepareError(MSG_ZIP_EXTRACT, f"member {info.filename!r} appears more than once")
        seen.add(dest)
        if _is_symlink(info):
            links.append((info, dest))
        else:
            files.append((info, dest))
            declared += info.file_size
    return ZipPlan(files, links, declared)


def safe_extract_zip(src: Path, dest: Path, *, max_bytes: int, max_entries: int) -> int:
    """Extract ``src`` into ``dest`` (which must exist); returns the bytes written.

    Raises ``PrepareError`` with ``MSG_ZIP_EXTRACT`` (unreadable archive, unsafe names,
    escaping links, unsupported compression, CRC errors) or ``MSG_ZIP_TOO_LARGE`` (more than
    ``max_entries`` entries, more than ``max_bytes`` uncompressed, disk full).
    """
    try:
        archive = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        raise PrepareError(MSG_ZIP_EXTRACT, f"not a readable ZIP archive: {err}") from None
    written = 0
    with archive:
        plan = plan_zip(archive, max_entries=max_entries)
        if plan.declared_bytes > max_bytes:
            raise PrepareError(
                MSG_ZIP_TOO_LARGE,
                f"the archive unpacks to {plan.declared_bytes} bytes, more than the {max_bytes} bytes left "
                "of the input limit (maxInputBytes)",
            )
        for info, name in plan.links:
            target = archive.read(info).decode("utf-8", "replace")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise PrepareError(
                    MSG_ZIP_EXTRACT, f"member {info.filename!r} is a symbolic link to {target!r}, outside the archive"
                )
        try:
            for info, name in plan.files:
                path = _safe_target(dest, name)
                try:
                    out = _create_exclusive(path)
                except FileExistsError:
                    raise PrepareError(MSG_ZIP_EXTRACT, f"member {info.filename!r} would overwrite {path}") from None
                with out, archive.open(info) as stream:
                    while chunk := stream.read(_CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise PrepareError(
                                MSG_ZIP_TOO_LARGE,
                                f"more than {max_bytes} bytes unpacked (at member {info.filename!r}; its header "
                                "declares less): over the input limit (maxInputBytes)",
                            )
                        out.write(chunk)
            for info, name in plan.links:
                path = _safe_target(dest, name)
                os.symlink(archive.read(info).decode("utf-8", "replace"), path)
        except PrepareError:
            raise
        except NotImplementedError as err:
            raise PrepareError(MSG_ZIP_EXTRACT, f"unsupported compression method: {err}") from None
        except RuntimeError as err:  # encrypted members
            raise PrepareError(MSG_ZIP_EXTRACT, str(err)) from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise PrepareError(MSG_ZIP_EXTRACT, f"the archive is damaged: {err}") from None
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise PrepareError(MSG_ZIP_TOO_LARGE, "no space left on the input volume") from None
            raise PrepareError(MSG_ZIP_EXTRACT, f"{err.strerror}: {err.filename}") from None
    return written


# ---------------------------------------------------------------------------------------
# Tarballs (model, ground truth)
# ---------------------------------------------------------------------------------------


def safe_extract_tarball(src: Path, dest: Path, *, max_bytes: int, message: str) -> int:
    """Extract a (compressed) tarball with the ``data`` filter; returns the bytes of its files."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(src, mode="r:*") as tar:
            members = tar.getmembers()
            total = sum(m.size for m in members if m.isreg())
            if total > max_bytes:
                raise PrepareError(
                    message, f"the tarball unpacks to {total} bytes, more than the limit of {max_bytes} bytes (maxInputBytes)"
                )
            tar.extractall(dest, members=members, filter="data")
    except PrepareError:
        raise
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise PrepareError(message, f"{type(err).__name__}: {err}") from None
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise PrepareError(message, "no space left on the volume") from None
        raise PrepareError(message, f"{err.strerror}: {err.filename}") from None
    return total


# ---------------------------------------------------------------------------------------
# Staging
# ---------------------------------------------------------------------------------------


def reset_directory(path: Path) -> None:
    """Create ``path`` or remove everything inside it (the directory itself stays)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        for entry in path.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    except OSError as err:
        raise PrepareError(MSG_RESET, f"{path}: {err.strerror}") from None


def _describe(item: InputItem) -> str:
    return f"input {item.interface!r} ({item.source})"


def _download(store: "ObjectStore", item: InputItem, target: Path, budget: Budget, log: AgentLog) -> int:
    try:
        size, digest = store.download_file(item.source, target, max_bytes=budget.remaining, sha256=True)
    except ObjectTooLargeError as err:
        budget.charge(err.size, _describe(item), item.interface)  # raises with the totals
        raise  # pragma: no cover - charge always raises here
    except ObjectNotFoundError as err:
        raise PrepareError(MSG_INPUT_MISSING.format(interface=item.interface), str(err), item.interface) from None
    except AccessDeniedError as err:
        raise PrepareError(MSG_INPUT_DENIED.format(interface=item.interface), str(err), item.interface) from None
    if item.sha256 and digest != item.sha256:
        target.unlink(missing_ok=True)
        raise PrepareError(
            MSG_INPUT_CHECKSUM.format(interface=item.interface),
            f"{item.source} has sha256 {digest}, expected {item.sha256}", item.interface,
        )
    budget.charge(size, _describe(item), item.interface)
    log.internal(f"staged {item.source} ({size} bytes) for input {item.interface!r}")
    return size


def _claim(target: Path, root: Path, interface: str | None) -> Path:
    """``target``'s parents created; refuses a path another input (or an archive) already took."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        what = f"Input {interface!r} could not be staged" if interface else f"{target.name} could not be written"
        raise PrepareError(what, f"{target} already exists: another input (or a ZIP archive) put a file there",
                           interface)
    if not _inside(root, target.parent):
        raise PrepareError(f"Input {interface!r} could not be staged", f"{target} is outside {root}", interface)
    return target


def stage_input(store: "ObjectStore", item: InputItem, input_root: Path, staging: Path, budget: Budget,
                invocation: Invocation, log: AgentLog) -> None:
    target = input_root / item.target if item.target else input_root
    if item.super_kind == "Value":
        data = json.dumps(item.value).encode("utf-8")
        budget.charge(len(data), f"input {item.interface!r} (inline value)", item.interface)
        with _create_exclusive(_claim(target, input_root, item.interface)) as out:
            out.write(data)
        log.internal(f"staged the value of input {item.interface!r} at {target}")
        return
    if item.super_kind == "Image":
        name = posixpath.basename(parse_uri(item.source).key)
        target.mkdir(parents=True, exist_ok=True)
        _download(store, item, _claim(target / name, input_root, item.interface), budget, log)
        return
    if not item.decompress:
        _download(store, item, _claim(target, input_root, item.interface), budget, log)
        return
    archive = staging / f"{len(budget.items)}.zip"
    size = _download(store, item, archive, budget, log)
    budget.used -= size  # the archive is temporary: its contents count instead
    budget.items.pop()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = safe_extract_zip(archive, target.parent, max_bytes=budget.remaining,
                                   max_entries=invocation.max_zip_entries)
    except PrepareError as err:
        err.interface = item.interface
        err.detail = f"{_describe(item)}: {err.detail}"
        raise
    finally:
        archive.unlink(missing_ok=True)
    budget.charge(written, f"{_describe(item)} unpacked", item.interface)
    log.internal(f"unpacked {item.source} ({written} bytes) into {target.parent} for input {item.interface!r}")


def stage_tarball(store: "ObjectStore", uri: str, dest: Path, staging: Path, *, max_bytes: int, message: str,
                  log: AgentLog) -> None:
    archive = staging / ("tarball-" + hashlib.sha256(uri.encode()).hexdigest()[:12])
    try:
        store.download_file(uri, archive, max_bytes=max_bytes)
    except ObjectTooLargeError as err:
        raise PrepareError(message, f"{uri} is {err.size} bytes, more than the limit of {max_bytes} bytes") from None
    except ObjectNotFoundError as err:
        raise PrepareError(message, f"{uri} could not be found: {err}") from None
    except AccessDeniedError as err:
        raise PrepareError(message, f"{uri} could not be read: {err}") from None
    try:
        size = safe_extract_tarball(archive, dest, max_bytes=max_bytes, message=message)
    finally:
        archive.unlink(missing_ok=True)
    log.internal(f"extracted {uri} ({size} bytes) into {dest}")


def prepare(invocation: Invocation, store: "ObjectStore", roots: Roots, log: AgentLog,
            *, install: Callable[[Path], Path] = install_agent) -> int:
    """Install the agent and stage everything; returns the staged input bytes."""
    os.umask(0o022)
    agent = install(roots.agent_dir)
    log.internal(f"installed the agent at {agent}")
    reset_directory(roots.input)
    staging = Path(tempfile.mkdtemp(dir=roots.agent_dir, prefix=".staging-"))
    try:
        budget = Budget(invocation.max_input_bytes)
        for item in invocation.inputs:
            stage_input(store, item, roots.input, staging, budget, invocation, log)
        inputs_json = json.dumps(invocation.inputs_json_document()).encode("utf-8")
        with _create_exclusive(_claim(roots.input / INPUTS_JSON, roots.input, None)) as out:
            out.write(inputs_json)
        if invocation.model:
            stage_tarball(store, invocation.model, roots.model, staging, max_bytes=invocation.max_input_bytes,
                          message=MSG_MODEL, log=log)
        if invocation.ground_truth:
            stage_tarball(store, invocation.ground_truth, roots.ground_truth, staging,
                          max_bytes=invocation.max_input_bytes, message=MSG_GROUND_TRUTH, log=log)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.internal(f"staged {len(invocation.inputs)} input(s), {budget.used} bytes, into {roots.input}")
    return budget.used
