"""``component-operator validate``: check values and interface manifests offline.

The same checks the operator runs (admission webhook, reconcilers), without a cluster, so
that a value file or a GitOps repository can be checked in CI before anything is applied:

    component-operator validate value --kind KIND [--schema SCHEMA.json] [--optional] VALUE
    component-operator validate value --kind Segmentation [--segments SEGMENTS.json] IMAGE
    component-operator validate interface MANIFEST.yaml

For image kinds ``IMAGE`` is an image file (an ``.mhd`` finds its ``.raw`` itself) or a
directory (a DICOM series); ``SEGMENTS.json`` holds the interface's overlay segments.

Exit status: 0 valid, 1 invalid (the reasons on stderr, each naming the field, the offending
value and the rule), 2 usage error (bad arguments, unreadable or unparsable files, unknown
kind, broken custom schema). ``VALUE`` and ``MANIFEST`` may be ``-`` for standard input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from . import kinds

API_VERSION = "components.grand-challenge.org/v1alpha1"
_SHOWN_VALUE_CHARS = 100


class UsageError(Exception):
    """A problem with how the command was called (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse reports usage errors (2) and --help (0) this way
        return int(exit_.code or 0)
    try:
        return args.run(args)
    except UsageError as err:
        print(f"component-operator validate: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="component-operator validate",
        description="Check interface values and ComponentInterface manifests (exit 0 valid, 1 invalid, 2 usage).",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    value = sub.add_parser("value", help="check one value (a JSON file, or a file for file kinds)")
    value.add_argument("--kind", required=True, help='kind label ("2D bounding box", "PDF file") or code (2DBB, PDF)')
    value.add_argument("--schema", help="the interface's extra JSON Schema, as a JSON file")
    value.add_argument("--optional", action="store_true", help="also accept null (an optional form field)")
    value.add_argument("--segments", help="Segmentation only: the interface's overlay segments, as a JSON list")
    value.add_argument(
        "value", metavar="VALUE", help="the value file ('-' for standard input); for image kinds an image file or DICOM directory"
    )
    value.set_defaults(run=_validate_value)
    interface = sub.add_parser("interface", help="check ComponentInterface documents of a YAML manifest")
    interface.add_argument("manifest", metavar="MANIFEST", help="YAML file with ComponentInterface documents ('-': stdin)")
    interface.set_defaults(run=_validate_interfaces)
    return parser


# ---------------------------------------------------------------------------------------
# validate value
# ---------------------------------------------------------------------------------------


def _validate_value(args: argparse.Namespace) -> int:
    try:
        kind = kinds.resolve_kind(args.kind)
    except kinds.UnknownKindError as err:
        raise UsageError(str(err)) from None
    schema = _load_json(args.schema, "schema") if args.schema else None
    try:
        kinds.check_custom_schema(schema)
    except kinds.InvalidSchemaError as err:
        raise UsageError(f"{args.schema}: {err.message}") from None
    if args.segments and kind.code != "SEG":
        raise UsageError(f"--segments is only for Segmentation values, not {kind.label}")
    if kind.is_image:
        return _validate_image(kind, args.value, args.segments)
    if kind.is_file:
        return _validate_file(kind, args.value)
    value = _load_json(args.value, "value")
    try:
        kinds.validate_value(kind, value, schema=schema, required=not args.optional)
    except kinds.InvalidSchemaError as err:
        raise UsageError(err.message) from None
    except kinds.ValueValidationError as err:
        where = f"at {err.path}" if err.path else "the value"
        print(f"{_display_name(args.value)}: invalid {kind.label} value", file=sys.stderr)
        print(f"  {where}: {err.detail.removeprefix(err.path + ': ') if err.path else err.detail}", file=sys.stderr)
        print(f"  offending value: {_short_json(err.instance)}", file=sys.stderr)
        print(f"  grand-challenge: {err.message}", file=sys.stderr)
        return 1
    print(f"valid {kind.label} value")
    return 0


def _validate_file(kind: kinds.Kind, source: str) -> int:
    data: Any = sys.stdin.buffer.read() if source == "-" else Path(source)
    if source != "-" and not Path(source).is_file():
        raise UsageError(f"cannot read {source}: no such file")
    try:
        kinds.check_file_content(kind, data)
    except kinds.FileContentError as err:
        print(f"{_display_name(source)}: invalid {kind.label}: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:
        raise UsageError(f"cannot read {source}: {err.strerror or err}") from None
    print(f"valid {kind.label}")
    return 0


def _validate_image(kind: kinds.Kind, source: str, segments_file: str | None) -> int:
    if source == "-":
        raise UsageError(f"{kind.label} values are image files; they cannot be read from standard input")
    path = Path(source)
    if not path.exists():
        raise UsageError(f"cannot read {source}: no such file or directory")
    if path.is_file() and not kinds.is_image_file(path):
        raise UsageError(
            f"{source} is not an image file: {kind.label} is an image kind "
            "(give an .mha, .mhd, .tif/.tiff, .nii/.nii.gz, .nrrd or DICOM file, or a directory of DICOM files)"
        )
    segments = _load_json(segments_file, "segments") if segments_file else None
    if segments is not None:
        try:
            kinds.overlay_voxel_values(segments)
        except ValueError as err:
            raise UsageError(f"{segments_file}: {err}") from None
    try:
        image = kinds.check_image_content(kind, path, overlay_segments=segments)
    except kinds.ImageContentError as err:
        print(f"{source}: invalid {kind.label}", file=sys.stderr)
        print(f"  {err.detail}", file=sys.stderr)
        if err.detail != err.message:  # the detail adds files and values to grand-challenge's words
            print(f"  grand-challenge: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:
        raise UsageError(f"cannot read {source}: {err.strerror or err}") from None
    names = image.file_names if len(image.file_names) <= 3 else (image.file_names[0], f"... ({len(image.files)} files)")
    segments_shown = "" if image.segments is None else f", segments {sorted(image.segments)}"
    print(f"valid {kind.label}: {' + '.join(names)} ({image.format}, {image.pixel_type}, shape {list(image.shape)}{segments_shown})")
    if kind.code == "SEG" and not segments:
        print("  voxel values not checked: no overlay segments given (--segments)")
    for line in image.skipped:
        print(f"  not part of the image: {line}")
    return 0


def _load_json(source: str, what: str) -> Any:
    text = _read_text(source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{_display_name(source)} is not valid JSON ({what} files must be JSON): {err}") from None


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"cannot read {source}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {source}: not UTF-8 text") from None
    except OSError as err:
        raise UsageError(f"cannot read {source}: {err.strerror or err}") from None


# ---------------------------------------------------------------------------------------
# validate interface
# ---------------------------------------------------------------------------------------


def _validate_interfaces(args: argparse.Namespace) -> int:
    text = _read_text(args.manifest)
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise UsageError(f"{_display_name(args.manifest)} is not valid YAML: {err}") from None
    interfaces = []
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "ComponentInterface":
            interfaces.append(document)
        else:
            kind = document.get("kind", "?") if isinstance(document, dict) else type(document).__name__
            print(f"skipping a {kind} document (not a ComponentInterface)", file=sys.stderr)
    if not interfaces:
        raise UsageError(f"{_display_name(args.manifest)} contains no ComponentInterface document")
    invalid = 0
    seen: dict[tuple[str, Any], str] = {}
    for document in interfaces:
        name = (document.get("metadata") or {}).get("name") or "<unnamed>"
        errors = _document_errors(document) + _uniqueness_errors(document, name, seen)
        if errors:
            invalid += 1
            for error in errors:
                shown = _lookup(document, error.field)
                got = f" (got {_short_json(shown)})" if shown is not _MISSING else ""
                print(f"ComponentInterface/{name}: {error.field}: {error.message}{got}", file=sys.stderr)
        else:
            print(f"ComponentInterface/{name}: valid")
    return 1 if invalid else 0


def _document_errors(document: dict[str, Any]) -> list[kinds.InterfaceRuleError]:
    errors = []
    if document.get("apiVersion") != API_VERSION:
        errors.append(kinds.InterfaceRuleError("apiVersion", f"must be {API_VERSION}"))
    if not (document.get("metadata") or {}).get("name"):
        errors.append(kinds.InterfaceRuleError("metadata.name", "Required value"))
    spec = document.get("spec")
    if not isinstance(spec, dict):
        errors.append(kinds.InterfaceRuleError("spec", "must be a mapping with the interface's fields"))
        return errors
    return errors + kinds.check_interface(spec)


def _uniqueness_errors(document: dict[str, Any], name: str, seen: dict) -> list[kinds.InterfaceRuleError]:
    """Titles and relative paths are unique across interfaces (checked within the manifest)."""
    spec = document.get("spec") if isinstance(document.get("spec"), dict) else {}
    errors = []
    for field, label, value in (
        ("spec.relativePath", "Relative path", spec.get("relativePath")),
        ("spec.title", "Title", spec.get("title") or name),
    ):
        if not isinstance(value, str) or not value:
            continue
        other = seen.setdefault((field, value), name)
        if other != name:
            errors.append(kinds.InterfaceRuleError(field, f"Component interface with this {label} already exists ({other})."))
    return errors


_MISSING = object()
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _lookup(document: Any, field: str) -> Any:
    """The value at ``spec.overlaySegments[1].voxelValue`` in the document, or ``_MISSING``."""
    node = document
    for key, index in _FIELD_PART.findall(field):
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node


def _short_json(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[: _SHOWN_VALUE_CHARS - 3] + "..."


def _display_name(source: str) -> str:
    return "<stdin>" if source == "-" else source


if __name__ == "__main__":
    sys.exit(main())
