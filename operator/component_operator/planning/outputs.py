"""Turn what an algorithm wrote into validated job outputs, all or nothing (pure).

After the agent's signed result is verified, the operator must decide whether every declared
output is there and valid, exactly as grand-challenge's ``Executor.get_outputs`` does
(components spec §3.8), with its messages:

* JSON kinds: the file at ``relativePath`` is read (size-limited), decoded with ``NaN`` and
  ``Infinity`` as ``null``, validated against the kind and the interface's schema; values of
  interfaces with ``storeInDatabase`` go inline into ``status.outputs``, others are
  referenced as files;
* file kinds: extension and content checks (``kinds.check_file_content``);
* image kinds: the directory at ``relativePath`` must hold exactly one ``.mha``, ``.mhd``
  (+ ``.raw``/``.zraw``) or ``.tif``/``.tiff`` image, content-checked with
  ``kinds.check_image_content`` when that check exists.

``{rp}`` in messages is the relative path in Python ``repr``. Only declared outputs are
looked at; other files are ignored. The I/O is injected: ``produced`` is the list of files
from the result document, ``read`` fetches one of them (bytes or a local path, with a size
limit), ``list_dir`` optionally lists an image directory; so this module is tested without
object storage. ``validate`` checks a JSON value against its interface; the operator passes
``ValidationPool.validate_value_sync`` so that an algorithm's output is checked within the
validation budgets (``kinds.sandbox``), the default checks in-process.
"""

from __future__ import annotations

import inspect
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .. import kinds

MSG_NOT_PRODUCED = "Output file {rp!r} was not produced"
MSG_TOO_LARGE = "The output file {rp!r} is too large"
MSG_NOT_JSON = "The output file {rp!r} is not valid json"
MSG_INVALID = "The output file {rp!r} is not valid. {msg}"
MSG_DIR_EMPTY = "Output directory {rp!r} is empty"
MSG_TOO_MANY_FILES = "Too many files produced in {rp!r}"
MSG_NO_IMAGES = "No output images could be imported from {rp!r}"
MSG_ONE_IMAGE = "Only 1 image should be produced in {rp!r}, we found {n}"
MSG_IMAGE_INVALID = "The image produced in {rp!r} is not valid. {msg}"
MSG_IMAGE_TOO_LARGE = "The output image was too large to process, please try again with smaller images"

#: File name endings the output image builders (panimg's mhd and tiff builders) accept.
IMAGE_SUFFIXES = (".mha", ".mhd", ".tif", ".tiff")
IMAGE_COMPANION_SUFFIXES = (".raw", ".zraw")


class OutputTooLargeError(Exception):
    """Raised by a reader when the object is larger than the limit it was given."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


#: ``read(relative_path, max_bytes)`` -> content, a local file, or None when there is none.
Reader = Callable[[str, int], "bytes | os.PathLike[str] | str | None"]
#: ``list_dir(relative_dir)`` -> relative paths of the files below it.
Lister = Callable[[str], Sequence[str]]
#: ``validate(kind, value, schema=...)`` raises ``kinds.ValueValidationError`` for an invalid value.
ValueValidator = Callable[..., None]


def _validate_in_process(kind: kinds.Kind, value: Any, *, schema: Any = None) -> None:
    kinds.validate_value(kind, value, schema=schema)


@dataclass(frozen=True)
class OutputLimits:
    max_value_bytes: int = 256 * 1024
    """JSON outputs stored inline in status (``storeInDatabase``): the object must stay small."""
    max_json_file_bytes: int = 64 * 1024**2
    """JSON outputs kept as files."""
    max_file_bytes: int = 1024**3
    max_image_bytes: int = 2 * 1024**3
    max_image_files: int = 1000
    """grand-challenge lists at most 1000 objects per image directory."""


@dataclass(frozen=True)
class OutputSpec:
    """What an output interface declares (from ``ComponentInterface.spec``)."""

    interface: str
    kind: str
    relative_path: str
    store_in_database: bool = True
    schema: Any = None
    overlay_segments: Sequence[Mapping[str, Any]] | None = None

    @classmethod
    def from_interface(cls, name: str, interface: Mapping[str, Any]) -> "OutputSpec":
        """From a ComponentInterface object (or its ``spec``) named ``name``."""
        spec = interface.get("spec", interface)
        return cls(
            interface=name,
            kind=spec["kind"],
            relative_path=spec["relativePath"],
            store_in_database=bool(spec.get("storeInDatabase", True)),
            schema=spec.get("schema") or None,
            overlay_segments=spec.get("overlaySegments") or None,
        )


@dataclass(frozen=True)
class ProducedFile:
    """One file the agent uploaded (an entry of the result's ``outputs``)."""

    relative_path: str
    uri: str
    size: int
    sha256: str

    @classmethod
    def coerce(cls, item: Any) -> "ProducedFile":
        if isinstance(item, ProducedFile):
            return item
        if isinstance(item, Mapping):
            return cls(item["relative_path"], item["uri"], int(item["size"]), item["sha256"])
        return cls(item.relative_path, item.uri, int(item.size), item.sha256)  # result.OutputFile

    def ref(self) -> dict[str, Any]:
        return {"uri": self.uri, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class ParsedOutputs:
    """Either ``outputs`` (for ``status.outputs``) or an error for the job."""

    outputs: list[dict[str, Any]] | None
    error_message: str | None = None
    detailed_error_message: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outputs is not None


class _Failure(Exception):
    def __init__(self, message: str, detail: str, extra: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.extra = dict(extra or {})


def parse_outputs(
    specs: Sequence[OutputSpec],
    *,
    produced: Iterable[Any],
    read: Reader,
    list_dir: Lister | None = None,
    limits: OutputLimits = OutputLimits(),
    validate: ValueValidator = _validate_in_process,
) -> ParsedOutputs:
    """Validate every declared output; all must pass or none is kept.

    The first failing output (in ``specs`` order) gives ``error_message``; every failing
    output has an entry (keyed by interface name) in ``detailed_error_message``.
    """
    files = {f.relative_path: f for f in (ProducedFile.coerce(item) for item in produced)}
    outputs: list[dict[str, Any]] = []
    first: str | None = None
    detail: dict[str, str] = {}
    for spec in specs:
        try:
            outputs.append(_parse_one(spec, files, read, list_dir, limits, validate))
        except _Failure as failure:
            first = first or failure.message
            detail[spec.interface] = failure.detail
            for key, value in failure.extra.items():
                detail.setdefault(key, value)
    if first is not None:
        return ParsedOutputs(None, first[:1024], detail)
    return ParsedOutputs(outputs)


def _parse_one(spec: OutputSpec, files: Mapping[str, ProducedFile], read: Reader, list_dir: Lister | None,
               limits: OutputLimits, validate: ValueValidator = _validate_in_process) -> dict[str, Any]:
    kind = kinds.resolve_kind(spec.kind)
    if kind.is_json:
        return _json_output(spec, kind, files, read, limits, validate)
    if kind.is_image:
        return _image_output(spec, kind, files, read, list_dir, limits)
    return _file_output(spec, kind, files, read, limits)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def _not_produced(rp: str, files: Mapping[str, ProducedFile]) -> _Failure:
    names = sorted(files)
    listed = ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
    seen = f"the algorithm wrote {len(names)} file(s): {listed}" if names else "the algorithm wrote no files"
    return _Failure(MSG_NOT_PRODUCED.format(rp=rp), f"{rp!r} is not in the output directory; {seen}")


def _too_large(rp: str, size: int, limit: int) -> _Failure:
    return _Failure(MSG_TOO_LARGE.format(rp=rp), f"{rp!r} is {size} bytes, more than the limit of {limit} bytes")


def _fetch(rp: str, files: Mapping[str, ProducedFile], read: Reader, limit: int):
    produced = files.get(rp)
    if produced is None:
        raise _not_produced(rp, files)
    if produced.size > limit:
        raise _too_large(rp, produced.size, limit)
    try:
        content = read(rp, limit)
    except OutputTooLargeError as err:
        raise _too_large(rp, err.size, limit) from None
    if content is None:
        raise _not_produced(rp, files)
    return produced, content


def _as_bytes(content: Any) -> bytes:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    return Path(content).read_bytes()


def _message(err: Exception) -> tuple[str, str]:
    """(grand-challenge's message, the plain detail) of a kinds error."""
    message = getattr(err, "message", None) or str(err)
    detail = getattr(err, "detail", None) or str(err)
    return message, detail


# ---------------------------------------------------------------------------------------
# Per super kind
# ---------------------------------------------------------------------------------------


def _json_output(spec: OutputSpec, kind: kinds.Kind, files: Mapping[str, ProducedFile], read: Reader,
                 limits: OutputLimits, validate: ValueValidator = _validate_in_process) -> dict[str, Any]:
    rp = spec.relative_path
    in_status = kinds.super_kind(kind, spec.store_in_database) is kinds.SuperKind.VALUE
    limit = limits.max_value_bytes if in_status else limits.max_json_file_bytes
    produced, content = _fetch(rp, files, read, limit)
    data = _as_bytes(content)
    if len(data) > limit:
        raise _too_large(rp, len(data), limit)
    try:
        value = json.loads(data, parse_constant=lambda _constant: None)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _Failure(MSG_NOT_JSON.format(rp=rp), f"{rp!r} cannot be decoded as JSON: {err}") from None
    try:
        validate(kind, value, schema=spec.schema)
    except kinds.ValueValidationError as err:
        message, detail = _message(err)
        raise _Failure(
            MSG_INVALID.format(rp=rp, msg=message),
            f"{rp!r} ({kind.label}): {detail}; the value was {_short(value)}",
        ) from None
    if in_status:
        return {"interface": spec.interface, "value": value}
    return {"interface": spec.interface, "file": produced.ref()}


def _file_output(spec: OutputSpec, kind: kinds.Kind, files: Mapping[str, ProducedFile], read: Reader,
                 limits: OutputLimits) -> dict[str, Any]:
    rp = spec.relative_path
    if rp not in files:
        raise _not_produced(rp, files)
    try:
        kinds.check_file_extension(rp)
    except kinds.FileContentError as err:
        message, detail = _message(err)
        raise _Failure(MSG_INVALID.format(rp=rp, msg=message), f"{rp!r}: {detail}") from None
    produced, content = _fetch(rp, files, read, limits.max_file_bytes)
    try:
        source = bytes(content) if isinstance(content, (bytes, bytearray, memoryview)) else Path(content)
        kinds.check_file_content(kind, source)
    except kinds.ValueValidationError as err:
        message, detail = _message(err)
        raise _Failure(MSG_INVALID.format(rp=rp, msg=message), f"{rp!r} ({kind.label}): {detail}") from None
    return {"interface": spec.interface, "file": produced.ref()}


def _image_files(rp: str, files: Mapping[str, ProducedFile], list_dir: Lister | None) -> list[str]:
    if list_dir is not None:
        return sorted(list_dir(rp))
    prefix = f"{rp.rstrip('/')}/" if rp else ""
    return sorted(name for name in files if name.startswith(prefix))


def group_images(names: Sequence[str]) -> tuple[list[list[str]], dict[str, str]]:
    """([[main file, companions…] per image], {file: why it is not an image})."""
    lower = {name: name.lower() for name in names}
    images: list[list[str]] = []
    companions_used: set[str] = set()
    for name in names:
        if lower[name].endswith(IMAGE_SUFFIXES):
            group = [name]
            if lower[name].endswith(".mhd"):
                stem = name[: -len(".mhd")]
                for suffix in IMAGE_COMPANION_SUFFIXES:
                    for other in names:
                        if other.lower() == (stem + suffix).lower():
                            group.append(other)
                            companions_used.add(other)
            images.append(group)
    errors = {
        name: "not an image file the output importers accept (.mha, .mhd with .raw/.zraw, .tif, .tiff)"
        for name in names
        if not lower[name].endswith(IMAGE_SUFFIXES) and name not in companions_used
    }
    return images, errors


def _image_output(spec: OutputSpec, kind: kinds.Kind, files: Mapping[str, ProducedFile], read: Reader,
                  list_dir: Lister | None, limits: OutputLimits) -> dict[str, Any]:
    rp = spec.relative_path
    names = _image_files(rp, files, list_dir)
    if len(names) > limits.max_image_files:
        raise _Failure(MSG_TOO_MANY_FILES.format(rp=rp),
                       f"{rp!r} holds {len(names)} files, more than the {limits.max_image_files} that are read")
    if not names:
        raise _Failure(MSG_DIR_EMPTY.format(rp=rp), f"no file was written below {rp!r}")
    images, errors = group_images(names)
    if not images:
        raise _Failure(MSG_NO_IMAGES.format(rp=rp), f"none of the {len(names)} file(s) in {rp!r} is an image", errors)
    if len(images) > 1:
        found = ", ".join(repr(group[0]) for group in images)
        raise _Failure(MSG_ONE_IMAGE.format(rp=rp, n=len(images)), f"{rp!r} holds {len(images)} images: {found}")
    group = images[0]
    main = files.get(group[0])
    total = sum(files[name].size for name in group if name in files)
    if total > limits.max_image_bytes:
        raise _Failure(MSG_IMAGE_TOO_LARGE, f"the image in {rp!r} is {total} bytes, more than the limit of "
                                            f"{limits.max_image_bytes} bytes")
    check = getattr(kinds, "check_image_content", None)
    if check is not None:
        _check_image(check, spec, kind, group, read, limits)
    if main is None:  # listed by list_dir but not in the result: cannot reference it
        raise _not_produced(group[0], files)
    return {"interface": spec.interface, "image": main.ref()}


def _check_image(check: Callable[..., Any], spec: OutputSpec, kind: kinds.Kind, group: list[str], read: Reader,
                 limits: OutputLimits) -> None:
    rp = spec.relative_path
    with tempfile.TemporaryDirectory(prefix="component-operator-image-") as scratch:
        paths: list[Path] = []
        for name in group:
            try:
                content = read(name, limits.max_image_bytes)
            except OutputTooLargeError as err:
                raise _Failure(MSG_IMAGE_TOO_LARGE, f"{name!r} is {err.size} bytes, more than the limit of "
                                                    f"{limits.max_image_bytes} bytes") from None
            if content is None:
                raise _Failure(MSG_NO_IMAGES.format(rp=rp), f"{name!r} could not be read", {name: "could not be read"})
            if isinstance(content, (bytes, bytearray, memoryview)):
                # Keep the file names: an .mhd header names its data file.
                local = Path(scratch) / posixpath.basename(name)
                local.write_bytes(bytes(content))
                paths.append(local)
            else:
                paths.append(Path(content))
        kwargs: dict[str, Any] = {"overlay_segments": spec.overlay_segments}
        if "job_output" in inspect.signature(check).parameters:
            kwargs["job_output"] = True  # only the formats grand-challenge imports from job outputs
        try:
            check(kind, paths, **kwargs)
        except (kinds.ValueValidationError, ValueError) as err:
            message, detail = _message(err)
            raise _Failure(MSG_IMAGE_INVALID.format(rp=rp, msg=message), f"{group[0]!r} ({kind.label}): {detail}") from None


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
