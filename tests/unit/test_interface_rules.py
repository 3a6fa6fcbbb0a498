"""ComponentInterface rules (§2, §1.5): field validators, clean() order, overlay segments."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from component_operator import kinds

REPO = Path(__file__).resolve().parents[2]


def errors(**spec):
    return [(e.field, e.message) for e in kinds.check_interface(spec)]


def path_messages(relative_path, kind="Anything"):
    return [m for f, m in errors(kind=kind, relativePath=relative_path) if f == "spec.relativePath"]


def segment(value, name=None, visible=True, key="voxelValue"):
    return {key: value, "name": name or f"s{value}", "visible": visible}


def test_example_manifest_interfaces_are_valid():
    documents = list(yaml.safe_load_all((REPO / "examples" / "interfaces.yaml").read_text()))
    assert documents
    for document in documents:
        assert kinds.check_interface(document["spec"]) == [], document["metadata"]["name"]


def test_errors_are_field_addressed_records():
    (error,) = kinds.check_interface({"kind": "Multiple points", "relativePath": "points.json"})
    assert (error.field, error.message) == ("spec.storeInDatabase", "Interface MPOI objects cannot be stored in the database")
    assert str(error) == "spec.storeInDatabase: Interface MPOI objects cannot be stored in the database"


# ---------------------------------------------------------------------------------------
# relativePath field validators: all run, all reported
# ---------------------------------------------------------------------------------------

UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize(
    "relative_path,expected",
    [
        ("result.json", []),
        ("sub/dir/result.json", []),
        ("", ["This field cannot be blank."]),
        ("./x.json", ["Invalid file path, should be x.json."]),
        ("a/../x.json", ["Invalid file path, should be x.json."]),
        ("a//b.json", ["Invalid file path, should be a/b.json."]),
        ("a/./b.json", ["Invalid file path, should be a/b.json."]),
        (".", ["Invalid file path, should be ."]),
        ("x.json/", ["Invalid file path, should be x.json.", "Path must not begin or end with '/'"]),
        ("/x.json", ["Relative paths are not allowed.", "Path must not begin or end with '/'"]),
        ("../x.json", ["Relative paths are not allowed."]),
        ("a/../../x.json", ["Relative paths are not allowed."]),
        ("inputs.json", ["This relative path is reserved"]),
        ("INPUTS.json", ["This relative path is reserved"]),
        ("sub/inputs.json", []),
        (f"out/{UUID}.json", ["Enter a valid value."]),
        (f"{UUID.upper()}/x.json", ["Enter a valid value."]),
        (f"a{UUID}b.json", ["Enter a valid value."]),
        ("x" * 250 + ".json", []),
        ("x" * 251 + ".json", ["Ensure this value has at most 255 characters (it has 256)."]),
        ("nul\x00.json", ["Null characters are not allowed."]),
        (f"/{UUID}/", ["Relative paths are not allowed.", "Path must not begin or end with '/'", "Enter a valid value."]),
    ],
)
def test_relative_path_field_validators(relative_path, expected):
    assert kinds.relative_path_errors(relative_path) == expected
    assert path_messages(relative_path)[: len(expected)] == expected


def test_missing_relative_path_is_blank():
    assert ("spec.relativePath", "This field cannot be blank.") in errors(kind="Anything")


# ---------------------------------------------------------------------------------------
# clean(): relative path per kind
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,relative_path,message",
    [
        ("Anything", "result.txt", "Relative path should end with .json"),
        ("Anything", "result.JSON", "Relative path should end with .json"),
        ("Anything", "images/result.json", "Relative path should not start with images/"),
        ("Thumbnail jpg", "thumb.jpg", "Relative path should end with .jpeg"),
        ("Newick tree-format file", "tree.nwk", "Relative path should end with .newick"),
        ("CSV file (legacy)", "images/x.csv", "Relative path should not start with images/"),
        ("Image", "ct", "Relative path should start with images/"),
        ("Image", "images/ct.mha", "Images should be a directory"),
        ("Segmentation", "imagesx/seg", "Relative path should start with images/"),
    ],
)
def test_relative_path_must_fit_the_kind(kind, relative_path, message):
    spec = {"kind": kind, "relativePath": relative_path, "storeInDatabase": False}
    if kind == "Segmentation":
        spec["overlaySegments"] = [segment(1)]
    assert errors(**spec) == [("spec.relativePath", message)]


@pytest.mark.parametrize(
    "kind,relative_path",
    [("Image", "images/ct"), ("Heat Map", "images/a/b"), ("PDF file", "report.pdf"), ("Thumbnail jpg", "t.jpeg"),
     ("ZIP file (legacy)", "sub/p.zip"), ("Multiple points", "images.json"), ("DICOM Image Set", "images/.dicom")],
)  # fmt: skip
def test_relative_paths_that_fit(kind, relative_path):
    assert errors(kind=kind, relativePath=relative_path, storeInDatabase=False) == []


# ---------------------------------------------------------------------------------------
# clean(): storeInDatabase
# ---------------------------------------------------------------------------------------

MULTIPLE = ["M2DB", "MDIS", "MPOI", "MPOL", "MLIN", "MANG", "MELL", "M3AN"]


@pytest.mark.parametrize("code", MULTIPLE + ["PDF", "ZIP", "IMG", "HMAP"])
def test_store_in_database_refused_by_code(code):
    kind = kinds.resolve_kind(code)
    path = f"images/{code.lower()}" if kind.is_image else f"x{kind.extension}"
    expected = [("spec.storeInDatabase", f"Interface {code} objects cannot be stored in the database")]
    assert errors(kind=kind.label, relativePath=path) == expected  # storeInDatabase defaults to True
    assert errors(kind=kind.label, relativePath=path, storeInDatabase=True) == expected
    assert errors(kind=kind.label, relativePath=path, storeInDatabase=False) == []


@pytest.mark.parametrize("kind", [k for k in kinds.JSON_KINDS if k.code not in MULTIPLE])
def test_store_in_database_allowed(kind):
    assert errors(kind=kind.label, relativePath="v.json") == []
    assert errors(kind=kind.code, relativePath="v.json", storeInDatabase=False) == []


# ---------------------------------------------------------------------------------------
# clean(): order, example value, default value
# ---------------------------------------------------------------------------------------


def test_clean_reports_only_the_first_failing_rule_after_all_field_errors():
    # Field errors (path, schema) plus the first clean() failure (store in database), not the
    # later relative-path-per-kind one.
    result = errors(kind="Multiple points", relativePath="/points.txt", schema={"type": "whatevs"})
    assert result == [
        ("spec.relativePath", "Relative paths are not allowed."),
        ("spec.relativePath", "Path must not begin or end with '/'"),
        ("spec.schema", "Invalid schema: 'whatevs' is not valid under any of the given schemas"),
        ("spec.storeInDatabase", "Interface MPOI objects cannot be stored in the database"),
    ]
    # Overlay segments come before the database rule.
    assert errors(kind="Segmentation", relativePath="images/seg") == [
        ("spec.overlaySegments", "Overlay segments must be set for this interface")
    ]


def test_unknown_kind_still_reports_field_errors():
    result = errors(kind="Heatmap", relativePath="")
    assert result[0][0] == "spec.kind" and "Heat Map" in result[0][1]
    assert result[1:] == [("spec.relativePath", "This field cannot be blank.")]


def test_title_length():
    assert errors(kind="Integer", relativePath="i.json", title="t" * 256) == [
        ("spec.title", "Ensure this value has at most 255 characters (it has 256).")
    ]


def test_example_value_is_validated_with_the_custom_schema():
    base = {"kind": "Integer", "relativePath": "i.json", "schema": {"maximum": 3}}
    assert errors(**base, exampleValue=3) == []
    assert errors(**base, exampleValue=4) == [
        (
            "spec.exampleValue",
            "The example value for this interface is not valid: "
            "JSON does not fulfill schema: instance is greater than the maximum of 3",
        )
    ]
    assert errors(**{**base, "schema": {"maximum": 10}}, exampleValue=4) == []  # re-checked on schema change
    box = {"kind": "2D bounding box", "relativePath": "b.json", "exampleValue": {"corners": []}}
    ((field, message),) = errors(**box)
    assert field == "spec.exampleValue.version"
    assert message.endswith("'version' is a required property")


def test_example_value_only_for_json_kinds():
    message = "Example value can be set for interfaces of JSON kind only"
    assert errors(kind="PDF file", relativePath="r.pdf", storeInDatabase=False, exampleValue="x") == [
        ("spec.exampleValue", message)
    ]
    assert errors(kind="Image", relativePath="images/x", storeInDatabase=False, exampleValue={}) == [
        ("spec.exampleValue", message)
    ]


def test_example_value_not_judged_against_a_broken_schema():
    assert errors(kind="Integer", relativePath="i.json", schema={"type": 5}, exampleValue=1) == [
        ("spec.schema", "Invalid schema: 5 is not valid under any of the given schemas")
    ]


def test_remote_ref_in_schema_is_refused():
    assert errors(kind="Anything", relativePath="a.json", schema={"$ref": "https://example.com/s.json"}) == [
        ("spec.schema", "Invalid schema: remote $ref 'https://example.com/s.json' is not allowed")
    ]


def test_default_value_forbidden_for_files_only():
    message = "A socket that requires a file should not have a default value"
    assert errors(kind="PDF file", relativePath="r.pdf", storeInDatabase=False, defaultValue="x") == [
        ("spec.defaultValue", message)
    ]
    # JSON stored as a file is a File super kind too.
    assert errors(kind="Multiple points", relativePath="p.json", storeInDatabase=False, defaultValue={"a": 1}) == [
        ("spec.defaultValue", message)
    ]
    for falsy in (0, "", [], {}, False):
        assert errors(kind="PDF file", relativePath="r.pdf", storeInDatabase=False, defaultValue=falsy) == []
    # Images and values may have defaults, and defaults are never schema-checked.
    assert errors(kind="Image", relativePath="images/i", storeInDatabase=False, defaultValue="x") == []
    assert errors(kind="Integer", relativePath="i.json", defaultValue="not an integer") == []


# ---------------------------------------------------------------------------------------
# Overlay segments
# ---------------------------------------------------------------------------------------


def seg_errors(segments, kind="Segmentation"):
    path = "images/seg" if kind == "Segmentation" else "v.json"
    return errors(kind=kind, relativePath=path, storeInDatabase=False, overlaySegments=segments)


@pytest.mark.parametrize(
    "values,contiguous",
    [([1], True), ([1, 2], True), ([2, 1, 3], True), ([0, 1], True), ([-1], True), ([1, 3], False), ([2], False), ([0, 2], False)],
)
def test_overlay_segments_contiguous_with_implicit_zero(values, contiguous):
    result = seg_errors([segment(v) for v in values])
    assert result == ([] if contiguous else [("spec.overlaySegments", "Voxel values for overlay segments must be contiguous.")])


def test_overlay_segments_only_for_segmentations():
    assert seg_errors([segment(1)], kind="Anything") == [
        ("spec.overlaySegments", "Overlay segments should only be set for segmentations")
    ]
    assert seg_errors([]) == [("spec.overlaySegments", "Overlay segments must be set for this interface")]


@pytest.mark.parametrize(
    "segments,field,message",
    [
        ([segment(1), {"voxelValue": 2, "visible": True}], "spec.overlaySegments[1].name", "'name' is a required property"),
        ([{"name": "a", "visible": True}], "spec.overlaySegments[0].voxelValue", "'voxelValue' is a required property"),
        ([segment("1")], "spec.overlaySegments[0].voxelValue", "'1' is not of type 'integer'"),
        ([segment(1.5)], "spec.overlaySegments[0].voxelValue", "is not of type 'integer'"),
        ([segment(1, visible="yes")], "spec.overlaySegments[0].visible", "'yes' is not of type 'boolean'"),
        ([{**segment(1), "colour": "red"}], "spec.overlaySegments[0]", "Additional properties are not allowed ('colour' was unexpected)"),
        ([{"voxel_value": 1, "name": "a", "visible": True}, {"name": "b", "visible": True}], "spec.overlaySegments[1].voxel_value", "'voxel_value' is a required property"),
        ({"voxelValue": 1}, "spec.overlaySegments", "is not of type 'array'"),
    ],
)  # fmt: skip
def test_overlay_segments_shape(segments, field, message):
    result = seg_errors(segments)
    assert result[0] == (field, "JSON does not fulfill schema: instance " + message)


def test_overlay_segments_in_grand_challenge_spelling():
    assert seg_errors([segment(1, key="voxel_value"), segment(2, key="voxel_value")]) == []
    assert seg_errors([segment(1, key="voxel_value"), segment(3, key="voxel_value")]) == [
        ("spec.overlaySegments", "Voxel values for overlay segments must be contiguous.")
    ]


CHANGED = "Overlay segments cannot be changed, as values or questions for this ComponentInterface exist."


def test_overlay_segments_update_superset_only_when_in_use():
    old = [segment(1, "s1"), segment(2, "s2")]
    assert kinds.check_overlay_segments_update(old, [*old, segment(3, "s3")], True) == []
    assert kinds.check_overlay_segments_update(old, list(reversed(old)), True) == []
    assert kinds.check_overlay_segments_update(old, old, True) == []
    renamed = [segment(1, "s1"), segment(2, "renamed")]
    removed = [segment(1, "s1")]
    hidden = [segment(1, "s1"), segment(2, "s2", visible=False)]
    for new in (renamed, removed, hidden, []):
        (error,) = kinds.check_overlay_segments_update(old, new, True)
        assert (error.field, error.message) == ("spec.overlaySegments", CHANGED)
        assert kinds.check_overlay_segments_update(old, new, False) == []  # not in use: anything goes


def test_overlay_segments_update_compares_meaning_not_spelling():
    old = [segment(1, "s1", key="voxel_value")]
    assert kinds.check_overlay_segments_update(old, [segment(1, "s1")], True) == []
    # true and 1 are different JSON values even though Python compares them equal.
    assert kinds.check_overlay_segments_update([segment(1, visible=True)], [segment(1, visible=1)], True) != []
