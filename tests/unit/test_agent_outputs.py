"""Output parsing with grand-challenge's rules and messages (planning.outputs, pure).

We test these aspects, one per message of components spec §3.8: JSON outputs (not produced,
too large by the listed size and by the reader, not JSON, NaN/Infinity as null, invalid for
the kind or the interface's schema, inline vs. file reference by ``storeInDatabase``); file
outputs (not produced, extension, content); image outputs (empty directory, too many files,
nothing importable, more than one image, content check with overlay segments, too large);
all-or-nothing with the first failure as the message; ``{rp}`` in Python repr.
"""

from __future__ import annotations

import hashlib

import pytest

from component_operator import kinds
from component_operator.agent.result import OutputFile
from component_operator.planning import outputs as out
from component_operator.planning.outputs import OutputSpec, OutputTooLargeError, parse_outputs

PREFIX = "s3://outputs/ns/job/0/"


def fileset(contents: dict[str, bytes]):
    """(produced list as in the result, a reader over the same contents)."""
    produced = [
        OutputFile(relative_path=rp, size=len(data), sha256=hashlib.sha256(data).hexdigest(), uri=PREFIX + rp)
        for rp, data in contents.items()
    ]

    def read(rp: str, max_bytes: int):
        data = contents.get(rp)
        if data is not None and len(data) > max_bytes:
            raise OutputTooLargeError(len(data))
        return data

    return produced, read


def parse(specs, contents, **kwargs):
    produced, read = fileset(contents)
    return parse_outputs(specs, produced=produced, read=read, **kwargs)


FLOAT = OutputSpec("probability", "Float", "probability.json")


def test_json_value_goes_inline():
    parsed = parse([FLOAT], {"probability.json": b"0.75", "unrelated.txt": b"ignored"})
    assert parsed.ok and parsed.outputs == [{"interface": "probability", "value": 0.75}]


def test_json_not_produced():
    parsed = parse([FLOAT], {"other.json": b"1"})
    assert not parsed.ok
    assert parsed.error_message == "Output file 'probability.json' was not produced"
    assert "the algorithm wrote 1 file(s): 'other.json'" in parsed.detailed_error_message["probability"]


def test_json_too_large_names_the_actual_size():
    parsed = parse([FLOAT], {"probability.json": b"1" * 300_000})
    assert parsed.error_message == "The output file 'probability.json' is too large"
    assert parsed.detailed_error_message["probability"] == (
        "'probability.json' is 300000 bytes, more than the limit of 262144 bytes")


def test_json_too_large_when_the_reader_finds_out():
    produced, _ = fileset({"probability.json": b"1"})

    def read(rp, max_bytes):
        raise OutputTooLargeError(5_000_000)

    parsed = parse_outputs([FLOAT], produced=produced, read=read)
    assert parsed.error_message == "The output file 'probability.json' is too large"
    assert "5000000 bytes" in parsed.detailed_error_message["probability"]


def test_json_not_valid_json():
    for data in (b"{", b"\xff\xfe", b"0.5 trailing"):
        parsed = parse([FLOAT], {"probability.json": data})
        assert parsed.error_message == "The output file 'probability.json' is not valid json"


def test_nan_and_infinity_become_null():
    anything = OutputSpec("metrics", "Anything", "metrics.json")
    parsed = parse([anything], {"metrics.json": b'{"a": NaN, "b": [Infinity, -Infinity]}'})
    assert parsed.outputs == [{"interface": "metrics", "value": {"a": None, "b": [None, None]}}]
    # ... so a Float output of NaN is invalid (grand-challenge's quirk 5).
    parsed = parse([FLOAT], {"probability.json": b"NaN"})
    assert parsed.error_message == (
        "The output file 'probability.json' is not valid. JSON does not fulfill schema: instance is not of type 'number'")
    assert "expected number, got null; the value was null" in parsed.detailed_error_message["probability"]


def test_json_invalid_for_kind_and_schema():
    box = OutputSpec("box", "2D bounding box", "box.json")
    parsed = parse([box], {"box.json": b'{"type": "2D bounding box"}'})
    assert parsed.error_message == (
        "The output file 'box.json' is not valid. JSON does not fulfill schema: instance 'version' is a required property")
    bounded = OutputSpec("probability", "Float", "probability.json", schema={"type": "number", "maximum": 1})
    parsed = parse([bounded], {"probability.json": b"1.5"})
    assert parsed.error_message.startswith("The output file 'probability.json' is not valid. JSON does not fulfill schema")
    assert "must be <= 1, got 1.5" in parsed.detailed_error_message["probability"]


def test_json_not_in_database_becomes_a_file_reference():
    points = OutputSpec("points", "Multiple points", "points.json", store_in_database=False)
    data = b'{"type": "Multiple points", "points": [], "version": {"major": 1, "minor": 0}}'
    parsed = parse([points], {"points.json": data})
    assert parsed.outputs == [{"interface": "points", "file": {
        "uri": PREFIX + "points.json", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}]


def test_file_outputs():
    csv_spec = OutputSpec("table", "CSV file (legacy)", "table.csv")
    parsed = parse([csv_spec], {"table.csv": b"a,b\n1,2\n"})
    assert parsed.outputs[0]["file"]["uri"] == PREFIX + "table.csv"
    assert parse([csv_spec], {}).error_message == "Output file 'table.csv' was not produced"
    pdf = OutputSpec("report", "PDF file", "report.pdf")
    parsed = parse([pdf], {"report.pdf": b"<html>not a pdf</html>"})
    assert parsed.error_message == (
        "The output file 'report.pdf' is not valid. The file is not a valid PDF file: it does not start with '%PDF-'")
    assert parsed.detailed_error_message["report"].startswith("'report.pdf' (PDF file): ")


def test_file_output_extension_rule():
    odd = OutputSpec("table", "CSV file (legacy)", "table.txt")
    parsed = parse([odd], {"table.txt": b"a,b\n"})
    assert parsed.error_message.startswith("The output file 'table.txt' is not valid. File of type .txt is not supported.")


def test_rp_is_rendered_with_repr():
    spec = OutputSpec("q", "Float", "it's.json")
    assert parse([spec], {}).error_message == "Output file \"it's.json\" was not produced"


def mha(width: int, height: int, voxels: bytes, element: str = "MET_UCHAR") -> bytes:
    header = (
        "ObjectType = Image\nNDims = 2\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"DimSize = {width} {height}\nElementSpacing = 1 1\nOffset = 0 0\nElementNumberOfChannels = 1\n"
        f"ElementType = {element}\nElementDataFile = LOCAL\n"
    )
    return header.encode() + voxels


IMAGE = OutputSpec("mask", "Segmentation", "images/mask",
                   overlay_segments=[{"voxelValue": 1, "name": "lesion", "visible": True}])


@pytest.fixture()
def fake_image_check(monkeypatch):
    calls = []

    def check(kind, paths, *, overlay_segments=None, job_output=False):
        calls.append((kind.code, [p.name for p in paths], overlay_segments, job_output, [p.read_bytes()[:10] for p in paths]))
        if any(b"BAD" in p.read_bytes() for p in paths):
            raise kinds.ValueValidationError("The valid voxel values for this segmentation are: {0, 1}. "
                                             "This segmentation is invalid as it contains the voxel values: {2}.")

    monkeypatch.setattr(kinds, "check_image_content", check, raising=False)
    return calls


def test_image_output(fake_image_check):
    parsed = parse([IMAGE], {"images/mask/out.mha": b"MHA data", "prob.json": b"1"})
    assert parsed.ok
    assert parsed.outputs[0]["interface"] == "mask"
    assert parsed.outputs[0]["image"]["uri"] == PREFIX + "images/mask/out.mha"
    assert fake_image_check == [("SEG", ["out.mha"], IMAGE.overlay_segments, True, [b"MHA data"])]


def test_mhd_with_its_data_file_is_one_image(fake_image_check):
    parsed = parse([IMAGE], {"images/mask/out.mhd": b"header", "images/mask/out.raw": b"voxels"})
    assert parsed.ok and parsed.outputs[0]["image"]["uri"] == PREFIX + "images/mask/out.mhd"
    assert fake_image_check[0][1] == ["out.mhd", "out.raw"]


def test_image_rules(fake_image_check):
    assert parse([IMAGE], {"prob.json": b"1"}).error_message == "Output directory 'images/mask' is empty"
    many = {f"images/mask/{i}.mha": b"x" for i in range(5)}
    assert parse([IMAGE], many, limits=out.OutputLimits(max_image_files=4)).error_message == (
        "Too many files produced in 'images/mask'")
    parsed = parse([IMAGE], {"images/mask/notes.txt": b"x"})
    assert parsed.error_message == "No output images could be imported from 'images/mask'"
    assert "not an image file" in parsed.detailed_error_message["images/mask/notes.txt"]
    parsed = parse([IMAGE], {"images/mask/a.mha": b"x", "images/mask/b.tif": b"y"})
    assert parsed.error_message == "Only 1 image should be produced in 'images/mask', we found 2"
    parsed = parse([IMAGE], {"images/mask/a.mha": b"BAD"})
    assert parsed.error_message == (
        "The image produced in 'images/mask' is not valid. The valid voxel values for this segmentation are: {0, 1}. "
        "This segmentation is invalid as it contains the voxel values: {2}.")
    parsed = parse([IMAGE], {"images/mask/a.mha": b"x" * 100}, limits=out.OutputLimits(max_image_bytes=10))
    assert parsed.error_message == "The output image was too large to process, please try again with smaller images"


def test_image_content_check_with_the_real_checker():
    good = mha(4, 3, bytes([0, 1] * 6))
    parsed = parse([IMAGE], {"images/mask/out.mha": good})
    assert parsed.ok, parsed
    bad = mha(4, 3, bytes([0, 2] * 6))
    parsed = parse([IMAGE], {"images/mask/out.mha": bad})
    assert parsed.error_message.startswith("The image produced in 'images/mask' is not valid. ")
    truncated = mha(4, 3, bytes(5))
    assert parse([IMAGE], {"images/mask/out.mha": truncated}).error_message.startswith(
        "The image produced in 'images/mask' is not valid. ")


def test_all_or_nothing_and_first_failure_wins():
    csv_spec = OutputSpec("table", "CSV file (legacy)", "table.csv")
    box = OutputSpec("box", "2D bounding box", "box.json")
    parsed = parse([FLOAT, csv_spec, box], {"probability.json": b"0.5", "box.json": b"[]"})
    assert parsed.outputs is None
    assert parsed.error_message == "Output file 'table.csv' was not produced"
    assert set(parsed.detailed_error_message) == {"table", "box"}


def test_spec_from_interface_and_produced_forms():
    iface = {"metadata": {"name": "p"}, "spec": {"kind": "Float", "relativePath": "p.json", "storeInDatabase": False,
                                                  "schema": {"minimum": 0}}}
    spec = OutputSpec.from_interface("p", iface)
    assert spec == OutputSpec("p", "Float", "p.json", store_in_database=False, schema={"minimum": 0})
    produced = [{"relative_path": "p.json", "uri": PREFIX + "p.json", "size": 1, "sha256": "0" * 64}]
    parsed = parse_outputs([spec], produced=produced, read=lambda rp, n: b"1")
    assert parsed.outputs == [{"interface": "p", "file": {"uri": PREFIX + "p.json", "size": 1, "sha256": "0" * 64}}]


def test_group_images():
    images, errors = out.group_images(["a.mhd", "a.raw", "b.TIF", "c.zraw", "d.txt"])
    assert images == [["a.mhd", "a.raw"], ["b.TIF"]]
    assert set(errors) == {"c.zraw", "d.txt"}
