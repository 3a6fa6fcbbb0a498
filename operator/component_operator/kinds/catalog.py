"""The 40 interface kinds of grand-challenge, as one immutable table.

Everything else in the operator asks this module what a kind is: its short code (``2DBB``,
stored on grand-challenge in a 5-character column), the label users write in manifests
("2D bounding box"), its group (JSON value, image, file), the ``relativePath`` suffix the
kind demands, whether its values may live in the database (``storeInDatabase``) and, from
that, its super kind (Value, File or Image), which decides how a value travels to the
container (inline in ``inputs.json`` or as a file under ``/input``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Mapping

from .errors import UnknownKindError


class KindGroup(str, Enum):
    """Which of grand-challenge's ``InterfaceKinds.{json,image,file}`` a kind belongs to."""

    JSON = "json"
    IMAGE = "image"
    FILE = "file"


class SuperKind(str, Enum):
    """How a value is carried; serialised as ``super_kind`` in ``/input/inputs.json``."""

    IMAGE = "Image"
    VALUE = "Value"
    FILE = "File"


@dataclass(frozen=True)
class Kind:
    """One interface kind.

    ``extension`` is the suffix ``relativePath`` must end with (``.json`` for every JSON
    kind, ``.jpeg`` — not ``.jpg`` — for thumbnails ...); image kinds have none because their
    relative path is a directory under ``images/``.
    """

    code: str
    label: str
    group: KindGroup
    extension: str | None
    store_in_database_allowed: bool
    mandatory_isolation: bool = False
    previewable: bool = False

    @property
    def is_json(self) -> bool:
        return self.group is KindGroup.JSON

    @property
    def is_image(self) -> bool:
        return self.group is KindGroup.IMAGE

    @property
    def is_file(self) -> bool:
        return self.group is KindGroup.FILE

    def __str__(self) -> str:
        return self.label


def _json(code: str, label: str, *, in_db: bool = True, isolated: bool = False, previewable: bool = False) -> Kind:
    return Kind(code, label, KindGroup.JSON, ".json", in_db, isolated, previewable)


def _image(code: str, label: str) -> Kind:
    return Kind(code, label, KindGroup.IMAGE, None, False)


def _file(code: str, label: str, extension: str, *, isolated: bool = False) -> Kind:
    return Kind(code, label, KindGroup.FILE, extension, False, isolated)


#: Every kind, in grand-challenge's order: 25 JSON, 5 image, 10 file kinds.
KINDS: tuple[Kind, ...] = (
    _json("STR", "String", previewable=True),
    _json("INT", "Integer", previewable=True),
    _json("FLT", "Float", previewable=True),
    _json("BOOL", "Bool", previewable=True),
    _json("JSON", "Anything"),
    _json("CHART", "Chart", isolated=True),
    _json("2DBB", "2D bounding box"),
    # The "Multiple ..." kinds can be large, so grand-challenge keeps them out of the database.
    _json("M2DB", "Multiple 2D bounding boxes", in_db=False),
    _json("DIST", "Distance measurement"),
    _json("MDIS", "Multiple distance measurements", in_db=False),
    _json("POIN", "Point"),
    _json("MPOI", "Multiple points", in_db=False),
    _json("POLY", "Polygon"),
    _json("MPOL", "Multiple polygons", in_db=False),
    _json("LINE", "Line"),
    _json("MLIN", "Multiple lines", in_db=False),
    _json("ANGL", "Angle"),
    _json("MANG", "Multiple angles", in_db=False),
    _json("ELLI", "Ellipse"),
    _json("MELL", "Multiple ellipses", in_db=False),
    _json("3ANG", "Three-point angle"),
    _json("M3AN", "Multiple three-point angles", in_db=False),
    _json("ATRG", "Affine transform registration"),
    _json("CHOI", "Choice"),
    _json("MCHO", "Multiple choice"),
    _image("IMG", "Image"),
    _image("SEG", "Segmentation"),
    _image("HMAP", "Heat Map"),
    _image("DSPF", "Displacement field"),
    _image("DCMIS", "DICOM Image Set"),
    _file("PDF", "PDF file", ".pdf", isolated=True),
    _file("SQREG", "SQREG file", ".sqreg"),
    _file("JPEG", "Thumbnail jpg", ".jpeg", isolated=True),
    _file("PNG", "Thumbnail png", ".png", isolated=True),
    _file("OBJ", "OBJ file", ".obj"),
    _file("MP4", "MP4 file", ".mp4", isolated=True),
    _file("NEWCK", "Newick tree-format file", ".newick"),
    _file("BIOM", "BIOM format", ".biom"),
    _file("CSV", "CSV file (legacy)", ".csv"),
    _file("ZIP", "ZIP file (legacy)", ".zip"),
)

KINDS_BY_CODE: Mapping[str, Kind] = MappingProxyType({k.code: k for k in KINDS})
KINDS_BY_LABEL: Mapping[str, Kind] = MappingProxyType({k.label: k for k in KINDS})
_KINDS_BY_UPPER_CODE = {k.code.upper(): k for k in KINDS}

JSON_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.is_json)
IMAGE_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.is_image)
FILE_KINDS: tuple[Kind, ...] = tuple(k for k in KINDS if k.is_file)


def resolve_kind(name: str | Kind) -> Kind:
    """The kind for a grand-challenge label ("Heat Map", exact) or code ("HMAP", any case).

    Raises ``UnknownKindError`` listing every valid label.
    """
    if isinstance(name, Kind):
        return name
    if isinstance(name, str):
        kind = KINDS_BY_LABEL.get(name) or _KINDS_BY_UPPER_CODE.get(name.strip().upper())
        if kind is not None:
            return kind
    raise UnknownKindError(name, [k.label for k in KINDS])


def super_kind(kind: str | Kind, store_in_database: bool = True) -> SuperKind:
    """Image for image kinds; Value for JSON kinds kept in the database; File otherwise."""
    kind = resolve_kind(kind)
    if kind.is_image:
        return SuperKind.IMAGE
    if kind.is_json and store_in_database:
        return SuperKind.VALUE
    return SuperKind.FILE
