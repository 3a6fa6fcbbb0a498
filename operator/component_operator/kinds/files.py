"""Content checks for values of the file kinds (PDF, PNG, ZIP, CSV, Newick, BIOM ...).

grand-challenge checks only a few file kinds by content (Newick with Biopython, BIOM with
h5py + biom-format) and otherwise relies on libmagic's MIME sniffing, which is kind-blind.
Here every file kind gets a cheap, dependency-free check that the bytes are what the kind
promises, run before an input is staged or an output is accepted:

* PDF ``%PDF-`` header, PNG signature, JPEG SOI marker, MP4 ``ftyp`` box, SQREG SQLite header;
* ZIP: a readable archive whose members pass their CRC check;
* CSV: UTF-8 text that the ``csv`` module parses;
* Newick: a small parser (grammar below) with grand-challenge's two messages;
* OBJ: text whose statements all start with a Wavefront OBJ keyword;
* BIOM: **only the HDF5 signature** is checked. h5py and biom-format are not dependencies of
  the operator, so a file that is HDF5 but not a BIOM table passes here while grand-challenge
  would reject it with ``Does not appear to be a BIOM-format file``.

JSON kinds stored as files (``storeInDatabase: false``) are decoded and schema-checked.
Image kinds are imported by other code and are refused here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path, PurePath
from typing import Any, BinaryIO, Callable

from .catalog import Kind, resolve_kind
from .errors import FileContentError
from .limits import MAX_NESTING_DEPTH

#: grand-challenge's allowed file name endings for attached files, in its order.
ALLOWED_FILE_EXTENSIONS = (".json", ".zip", ".csv", ".png", ".jpg", ".jpeg", ".pdf", ".sqreg", ".obj", ".mp4", ".newick", ".biom")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
PDF_HEADER = b"%PDF-"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
SQLITE_HEADER = b"SQLite format 3\x00"
# Largest JSON file decoded in memory, as grand-challenge's "too large to process" guard.
MAX_JSON_FILE_BYTES = 2 * 1024**3

Source = bytes | bytearray | memoryview | str | os.PathLike


def check_file_extension(name: str | os.PathLike) -> None:
    """All suffixes of the name, lower-cased, must end with an allowed extension (§1.4)."""
    suffix = "".join(PurePath(os.fspath(name)).suffixes).lower()
    if not suffix.endswith(ALLOWED_FILE_EXTENSIONS):
        allowed = ", ".join(ALLOWED_FILE_EXTENSIONS)
        raise FileContentError(f"File of type {suffix} is not supported. Allowed types are {allowed}.")


def check_file_content(kind: str | Kind, source: Source, *, schema: Any = None, python_regex: bool = False) -> None:
    """Raise ``FileContentError`` unless the file's bytes fit the kind.

    ``source`` is the content (``bytes``) or a path (``str``/``PathLike``); large files are
    streamed. For JSON kinds the file is decoded and validated against ``schema`` too
    (``python_regex``: see ``values.validate_value``).
    """
    kind = resolve_kind(kind)
    if kind.is_image:
        raise ValueError(f"{kind.label} is an image kind: images are imported, not content-checked here")
    if kind.is_json:
        _check_json_file(kind, source, schema, python_regex)
        return
    _CHECKS[kind.code](source)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def _open(source: Source) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return open(Path(source), "rb")  # noqa: SIM115 - returned to a with-block


def _head(source: Source, size: int) -> bytes:
    with _open(source) as stream:
        return stream.read(size)


def _fail(message: str) -> FileContentError:
    return FileContentError(message)


def _magic(label: str, signature: bytes, what: str) -> Callable[[Source], None]:
    def check(source: Source) -> None:
        if _head(source, len(signature)) != signature:
            raise _fail(f"The file is not a valid {label}: it does not start with {what}")

    return check


def _check_mp4(source: Source) -> None:
    # ISO base media files open with a box: 4-byte size, then the type "ftyp".
    head = _head(source, 12)
    box_size = int.from_bytes(head[:4], "big")  # 0: to end of file, 1: 64-bit size follows
    if len(head) < 12 or head[4:8] != b"ftyp" or 1 < box_size < 8:
        raise _fail("The file is not a valid MP4 file: it does not start with an 'ftyp' box")


def _check_zip(source: Source) -> None:
    stream = _open(source)
    with stream:
        if not zipfile.is_zipfile(stream):
            raise _fail("The file is not a valid ZIP file")
        stream.seek(0)
        try:
            with zipfile.ZipFile(stream) as archive:
                broken = archive.testzip()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as err:
            raise _fail(f"The file is not a valid ZIP file: {err}") from None
    if broken is not None:
        raise _fail(f"The ZIP file is damaged: member {broken!r} fails its CRC check")


def _check_csv(source: Source) -> None:
    with _open(source) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

        def lines():
            # The csv module accepts NUL bytes; a file containing them is binary, not CSV.
            for number, line in enumerate(text, start=1):
                if "\x00" in line:
                    raise _fail(f"The CSV file is not text (NUL byte on line {number})")
                yield line

        try:
            for _ in csv.reader(lines(), strict=True):
                pass
        except UnicodeDecodeError as err:
            raise _fail(f"The CSV file is not UTF-8 text: {err.reason} at byte {err.start}") from None
        except csv.Error as err:
            raise _fail(f"The CSV file could not be parsed: {err}") from None


def _check_biom(source: Source) -> None:
    # HDF5 allows a user block before the superblock: it starts at 0, 512, 1024, 2048 ...
    with _open(source) as stream:
        offset = 0
        while True:
            stream.seek(offset)
            block = stream.read(len(HDF5_SIGNATURE))
            if block == HDF5_SIGNATURE:
                return
            if len(block) < len(HDF5_SIGNATURE):
                break
            offset = 512 if offset == 0 else offset * 2
    raise _fail("Only BIOM in valid HDF5 binary file format are supported")


def _check_json_file(kind: Kind, source: Source, schema: Any, python_regex: bool = False) -> None:
    from .values import validate_value  # local: values imports are heavier than file checks

    with _open(source) as stream:
        data = stream.read(MAX_JSON_FILE_BYTES + 1)
    if len(data) > MAX_JSON_FILE_BYTES:
        raise _fail("The file was too large to process, please try again with a smaller file")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail("The file could not be decoded") from None
    except json.JSONDecodeError as err:
        raise _fail(str(err)) from None
    except RecursionError:  # the decoder recurses per level: ~1000 levels exhaust the stack
        raise _fail(
            f"The file is nested too deeply to decode (values may nest at most {MAX_NESTING_DEPTH} levels)"
        ) from None
    validate_value(kind, value, schema=schema, python_regex=python_regex)


# ---------------------------------------------------------------------------------------
# OBJ
# ---------------------------------------------------------------------------------------

# Wavefront OBJ statements (geometry, grouping, display/render attributes, free-form curves).
OBJ_KEYWORDS = frozenset(
    "v vt vn vp cstype deg bmat step p l f curv curv2 surf parm trim hole scrv sp end con "
    "g s mg o bevel c_interp d_interp lod usemtl mtllib shadow_obj trace_obj ctech stech "
    "maplib usemap call csh res".split()
)


def _check_obj(source: Source) -> None:
    with _open(source) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline=None)
        continued = False
        try:
            for number, line in enumerate(text, start=1):
                if "\x00" in line:
                    raise _fail(f"The OBJ file is not text (NUL byte on line {number})")
                stripped = line.strip()
                was_continued, continued = continued, stripped.endswith("\\")
                if was_continued or not stripped or stripped.startswith("#"):
                    continue
                keyword = stripped.split(None, 1)[0]
                if keyword not in OBJ_KEYWORDS:
                    raise _fail(f"The OBJ file has an unknown statement {keyword[:40]!r} on line {number}")
        except UnicodeDecodeError as err:
            raise _fail(f"The OBJ file is not UTF-8 text: {err.reason}") from None


# ---------------------------------------------------------------------------------------
# Newick
# ---------------------------------------------------------------------------------------


class NewickError(ValueError):
    """Malformed Newick text."""


def _newick_tokens(text: str):
    """Tokens: ``( ) , : ;`` and labels; comments ``[...]`` and whitespace are dropped."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "[":
            end = text.find("]", i + 1)
            if end < 0:
                raise NewickError(f"unterminated comment starting at character {i + 1}")
            i = end + 1
        elif char in "(),:;":
            yield char, i
            i += 1
        elif char == "'":
            label, j = [], i + 1
            while True:
                if j >= n:
                    raise NewickError(f"unterminated quoted label starting at character {i + 1}")
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":  # '' is an escaped quote
                        label.append("'")
                        j += 2
                        continue
                    break
                label.append(text[j])
                j += 1
            yield "label", i
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "(),:;[']":
                j += 1
            yield ("label:" + text[i:j]), i
            i = j


def parse_newick(text: str) -> int:
    """Count the trees in Newick text; raise ``NewickError`` on malformed text.

    Grammar: ``tree := subtree [":" length] ";"`` (the last ``;`` may be missing),
    ``subtree := "(" subtree {"," subtree} ")" [label] | [label]``; labels may be quoted,
    lengths are numbers, ``[...]`` comments are ignored. ``();`` and ``()`` are one tree each.
    """
    trees = 0
    depth = 0
    expecting_subtree = True  # at tree start, after "(" or ","
    labelled = has_length = False  # of the subtree just completed
    in_tree = False
    pending_length = False
    for token, position in _newick_tokens(text):
        where = f"at character {position + 1}"
        if pending_length:
            value = token[len("label:") :] if token.startswith("label:") else None
            try:
                float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise NewickError(f"branch length must be a number {where}") from None
            pending_length, has_length = False, True
            continue
        in_tree = True
        if token == "(":
            if not expecting_subtree:
                raise NewickError(f"unexpected '(' {where}: a subtree must follow '(' or ','")
            depth += 1
            continue
        if token.startswith("label"):
            if labelled or has_length:
                raise NewickError(f"unexpected label {where}")
            expecting_subtree, labelled = False, True
            continue
        if token == ":":
            if has_length:
                raise NewickError(f"second branch length {where}")
            expecting_subtree, pending_length = False, True
            continue
        # ")" "," ";" end the current subtree (an empty leaf when nothing was written).
        labelled = has_length = False
        if token == ",":
            if depth == 0:
                raise NewickError(f"',' outside of parentheses {where}")
            expecting_subtree = True
        elif token == ")":
            if depth == 0:
                raise NewickError(f"unexpected ')' {where}: no matching '('")
            depth -= 1
            expecting_subtree = False
        else:  # ";"
            if depth:
                raise NewickError(f"{_parentheses(depth)} not closed {where}")
            trees, in_tree, expecting_subtree = trees + 1, False, True
    if pending_length:
        raise NewickError("branch length missing at the end of the text")
    if depth:
        raise NewickError(f"{_parentheses(depth)} not closed at the end of the text")
    return trees + (1 if in_tree else 0)


def _parentheses(count: int) -> str:
    return "1 opening parenthesis" if count == 1 else f"{count} opening parentheses"


def _check_newick(source: Source) -> None:
    with _open(source) as stream:
        raw = stream.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail("Invalid Newick tree format: the file is not UTF-8 text") from None
    try:
        trees = parse_newick(text)
    except NewickError as err:
        raise _fail(f"Invalid Newick tree format: {err}") from None
    if trees == 0:
        raise _fail("No Newick tree found")


_CHECKS: dict[str, Callable[[Source], None]] = {
    "PDF": _magic("PDF file", PDF_HEADER, "'%PDF-'"),
    "PNG": _magic("PNG image", PNG_SIGNATURE, "the PNG signature"),
    "JPEG": _magic("JPEG image", JPEG_SOI, "a JPEG start-of-image marker"),
    "SQREG": _magic("SQREG (SQLite) file", SQLITE_HEADER, "'SQLite format 3'"),
    "MP4": _check_mp4,
    "ZIP": _check_zip,
    "CSV": _check_csv,
    "OBJ": _check_obj,
    "NEWCK": _check_newick,
    "BIOM": _check_biom,
}
