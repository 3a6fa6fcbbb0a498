"""The kind catalogue: 40 kinds, their groups, suffixes, database rule and super kinds (§1.1)."""

from __future__ import annotations

import pytest

from component_operator import kinds
from component_operator.kinds import KindGroup, SuperKind

JSON_LABELS = {
    "STR": "String", "INT": "Integer", "FLT": "Float", "BOOL": "Bool", "JSON": "Anything", "CHART": "Chart",
    "2DBB": "2D bounding box", "M2DB": "Multiple 2D bounding boxes", "DIST": "Distance measurement",
    "MDIS": "Multiple distance measurements", "POIN": "Point", "MPOI": "Multiple points", "POLY": "Polygon",
    "MPOL": "Multiple polygons", "LINE": "Line", "MLIN": "Multiple lines", "ANGL": "Angle",
    "MANG": "Multiple angles", "ELLI": "Ellipse", "MELL": "Multiple ellipses", "3ANG": "Three-point angle",
    "M3AN": "Multiple three-point angles", "ATRG": "Affine transform registration", "CHOI": "Choice",
    "MCHO": "Multiple choice",
}  # fmt: skip
IMAGE_LABELS = {"IMG": "Image", "SEG": "Segmentation", "HMAP": "Heat Map", "DSPF": "Displacement field", "DCMIS": "DICOM Image Set"}
FILE_KINDS = {
    "PDF": ("PDF file", ".pdf"), "SQREG": ("SQREG file", ".sqreg"), "JPEG": ("Thumbnail jpg", ".jpeg"),
    "PNG": ("Thumbnail png", ".png"), "OBJ": ("OBJ file", ".obj"), "MP4": ("MP4 file", ".mp4"),
    "NEWCK": ("Newick tree-format file", ".newick"), "BIOM": ("BIOM format", ".biom"),
    "CSV": ("CSV file (legacy)", ".csv"), "ZIP": ("ZIP file (legacy)", ".zip"),
}  # fmt: skip
NOT_IN_DATABASE = {"M2DB", "MDIS", "MPOI", "MPOL", "MLIN", "MANG", "MELL", "M3AN"}


def test_forty_kinds_in_three_groups():
    assert len(kinds.KINDS) == 40
    assert len({k.code for k in kinds.KINDS}) == 40
    assert len({k.label for k in kinds.KINDS}) == 40
    assert [k.code for k in kinds.JSON_KINDS] == list(JSON_LABELS)
    assert [k.code for k in kinds.IMAGE_KINDS] == list(IMAGE_LABELS)
    assert [k.code for k in kinds.FILE_KINDS] == list(FILE_KINDS)
    assert all(len(k.code) <= 5 for k in kinds.KINDS)  # grand-challenge's CharField(max_length=5)


@pytest.mark.parametrize("code,label", JSON_LABELS.items())
def test_json_kinds(code, label):
    kind = kinds.resolve_kind(label)
    assert (kind.code, kind.group, kind.extension) == (code, KindGroup.JSON, ".json")
    assert kind.store_in_database_allowed is (code not in NOT_IN_DATABASE)
    assert kinds.super_kind(kind, True) is SuperKind.VALUE
    assert kinds.super_kind(kind, False) is SuperKind.FILE


@pytest.mark.parametrize("code,label", IMAGE_LABELS.items())
def test_image_kinds(code, label):
    kind = kinds.resolve_kind(label)
    assert (kind.code, kind.group, kind.extension, kind.store_in_database_allowed) == (code, KindGroup.IMAGE, None, False)
    assert kinds.super_kind(kind, True) is kinds.super_kind(kind, False) is SuperKind.IMAGE


@pytest.mark.parametrize("code,expected", FILE_KINDS.items())
def test_file_kinds(code, expected):
    label, extension = expected
    kind = kinds.resolve_kind(label)
    assert (kind.code, kind.group, kind.extension, kind.store_in_database_allowed) == (code, KindGroup.FILE, extension, False)
    assert kinds.super_kind(kind, True) is kinds.super_kind(kind, False) is SuperKind.FILE


def test_thumbnail_jpg_needs_jpeg_suffix():
    assert kinds.resolve_kind("Thumbnail jpg").extension == ".jpeg"


def test_super_kind_values_are_inputs_json_strings():
    assert [s.value for s in SuperKind] == ["Image", "Value", "File"]
    assert kinds.super_kind("Point").value == "Value"


@pytest.mark.parametrize("name", ["2DBB", "2dbb", "hmap", " MPOI ", "csv", "Dcmis"])
def test_codes_resolve_in_any_case(name):
    assert kinds.resolve_kind(name).code == name.strip().upper()


def test_labels_resolve_exactly_as_grand_challenge_writes_them():
    assert kinds.resolve_kind("Heat Map").code == "HMAP"
    assert kinds.resolve_kind("CSV file (legacy)").code == "CSV"
    assert kinds.resolve_kind("ZIP file (legacy)").code == "ZIP"
    assert kinds.resolve_kind(kinds.KINDS_BY_CODE["SEG"]) is kinds.KINDS_BY_CODE["SEG"]


@pytest.mark.parametrize("name", ["Heatmap", "2D Bounding Box", "", "CSV file", None, 42])
def test_unknown_kinds_list_the_valid_labels(name):
    with pytest.raises(kinds.UnknownKindError) as info:
        kinds.resolve_kind(name)
    message = str(info.value)
    assert repr(name) in message
    for label in ("String", "2D bounding box", "Heat Map", "CSV file (legacy)", "DICOM Image Set"):
        assert label in message
    assert isinstance(info.value, ValueError)


def test_kinds_are_immutable():
    with pytest.raises(AttributeError):
        kinds.KINDS[0].code = "X"  # type: ignore[misc]
    with pytest.raises(TypeError):
        kinds.KINDS_BY_CODE["X"] = kinds.KINDS[0]  # type: ignore[index]
