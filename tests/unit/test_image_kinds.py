"""Image-kind content checks: one image per value, DICOM rules, segments, displacement fields.

Every image is generated in ``tmp_path`` (SimpleITK, tifffile, pydicom), so the tests need
no fixtures on disk and show the exact grand-challenge messages they expect.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK
import tifffile
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from component_operator import kinds
from component_operator.kinds import ImageContentError, check_image_content
from component_operator.kinds.images import (
    DSPF_HAS_COLOR,
    DSPF_NOT_4D,
    DSPF_NOT_VECTOR,
    MAY_NOT_BE_DICOM,
    MUST_BE_DICOM,
    SEGMENTS_UNKNOWN,
    SINGLE_IMAGE,
)
from component_operator.validate_cli import main

SEGMENTS_UNKNOWN_TEXT = (
    "Image segments could not be determined, ensure the voxel values are integers and that it contains no more than 64 "
    "segments. Ensure the image has the minimum and maximum voxel values set as tags if the image is a TIFF file."
)


def overlay(*values: int) -> list[dict]:
    return [{"voxelValue": v, "name": f"s{v}", "visible": True} for v in values]


def write_sitk(path: Path, array: np.ndarray, *, vector: bool = False, compress: bool = False) -> Path:
    SimpleITK.WriteImage(SimpleITK.GetImageFromArray(array, isVector=vector), str(path), useCompression=compress)
    return path


def segmentation(values=(0, 1, 2), dtype=np.uint8, shape=(4, 5, 6)) -> np.ndarray:
    array = np.zeros(shape, dtype=dtype)
    array.flat[: len(values)] = values
    return array


def write_tiff(path: Path, array: np.ndarray, *, min_max: tuple[int, int] | None = None, tag_type: str = "B", **kw) -> Path:
    kw.setdefault("resolution", (10, 10))
    kw.setdefault("resolutionunit", "CENTIMETER")
    extratags = []
    if min_max is not None:
        extratags = [(280, tag_type, 1, min_max[0], True), (281, tag_type, 1, min_max[1], True)]
    tifffile.imwrite(path, array, extratags=extratags, **kw)
    return path


def write_dicom(path: Path, *, study: str, series: str, instance: int = 1, rows: int = 4, columns: int = 4) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = CTImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = study
    dataset.SeriesInstanceUID = series
    dataset.Modality = "CT"
    dataset.InstanceNumber = instance
    dataset.Rows, dataset.Columns = rows, columns
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation = 0
    dataset.PixelData = np.arange(rows * columns, dtype=np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def dicom_series(directory: Path, slices: int = 2) -> Path:
    directory.mkdir()
    study, series = generate_uid(), generate_uid()
    for index in range(slices):
        # No .dcm suffix on purpose for one of them: DICOM is recognised by its preamble.
        name = f"slice{index}.dcm" if index else "slice0"
        write_dicom(directory / name, study=study, series=series, instance=index + 1)
    return directory


def error(kind, paths, **kw) -> ImageContentError:
    with pytest.raises(ImageContentError) as caught:
        check_image_content(kind, paths, **kw)
    return caught.value


# ---------------------------------------------------------------------------------------
# Readable single images
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Image", "Heat Map", "IMG", "HMAP"])
def test_valid_mha_for_image_and_heat_map(kind, tmp_path):
    path = write_sitk(tmp_path / "map.mha", np.random.default_rng(0).random((3, 4, 5), dtype=np.float32))
    info = check_image_content(kind, path)
    assert (info.format, info.shape, info.pixel_type, info.components, info.color_space) == ("mha", (3, 4, 5), "float32", 1, "GRAY")
    assert info.files == (path,) and info.file_names == ("map.mha",)
    assert info.segments is None and not info.is_dicom and info.skipped == ()


@pytest.mark.parametrize("compress,data_suffix", [(False, ".raw"), (True, ".zraw")])
def test_mhd_with_its_data_file_counts_as_one_image(compress, data_suffix, tmp_path):
    header = write_sitk(tmp_path / "scan.mhd", segmentation(), compress=compress)
    data = tmp_path / f"scan{data_suffix}"
    assert data.is_file()
    for given in (header, tmp_path, [header, data]):
        info = check_image_content("Image", given)
        assert info.format == "mhd" and info.files == (header, data) and info.shape == (4, 5, 6)


def test_rgb_image_reports_its_components(tmp_path):
    path = write_sitk(tmp_path / "photo.mha", np.zeros((4, 5, 3), dtype=np.uint8), vector=True)
    info = check_image_content("Image", path)
    assert (info.shape, info.components, info.color_space, info.segments) == ((4, 5, 3), 3, "RGB", None)


def test_nifti_and_nrrd_are_inputs_but_not_job_outputs(tmp_path):
    for name, format_name in (("t1.nii", "nifti"), ("t1.nii.gz", "nifti"), ("t1.nrrd", "nrrd")):
        path = write_sitk(tmp_path / name, np.ones((2, 3, 4), dtype=np.int16))
        assert check_image_content("Image", path).format == format_name
        err = error("Image", path, job_output=True)
        assert err.message.startswith(f"No image could be read from {name}: {name}: ")
        assert "is not accepted for job outputs (only .mha, .mhd with .raw/.zraw, .tif/.tiff)" in err.message


def test_two_images_are_refused(tmp_path):
    write_sitk(tmp_path / "a.mha", segmentation())
    write_sitk(tmp_path / "b.mhd", segmentation())
    err = error("Image", tmp_path)
    assert err.message == SINGLE_IMAGE == "Image imports should result in a single image"
    assert err.detail == f"{SINGLE_IMAGE}: the files make up 2 images: a.mha (mha); b.mhd, b.raw (mhd)"
    assert err.files == ("a.mha", "b.mhd", "b.raw")


def test_files_that_are_not_part_of_the_image_are_reported_not_refused(tmp_path):
    write_sitk(tmp_path / "a.mha", segmentation())
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / ".DS_Store").write_bytes(b"\0")  # upload clutter is dropped silently
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "a.mha").write_bytes(b"junk")
    info = check_image_content("Image", tmp_path)
    assert info.file_names == ("a.mha",)
    assert info.skipped == ("notes.txt: not an image file (accepted: .mha, .mhd (+ .raw/.zraw), .tif, .tiff, .nii, .nii.gz, .nrrd, DICOM (.dcm))",)


# ---------------------------------------------------------------------------------------
# Unreadable files
# ---------------------------------------------------------------------------------------


def test_unreadable_files_are_named_with_the_reader_error(tmp_path):
    junk = tmp_path / "junk.mha"
    junk.write_text("hello\n")
    err = error("Image", junk)
    assert err.message == "No image could be read from junk.mha: junk.mha: not a MetaImage file: the header has no ElementDataFile"
    assert err.files == ("junk.mha",)


def test_truncated_raw_data(tmp_path):
    header = write_sitk(tmp_path / "scan.mhd", segmentation())
    with open(tmp_path / "scan.raw", "r+b") as raw:
        raw.truncate(10)
    err = error("Image", header)
    assert err.message == "No image could be read from scan.mhd: scan.mhd: scan.raw holds 10 bytes of voxel data, the header promises 120"


def test_truncated_mha(tmp_path):
    path = write_sitk(tmp_path / "scan.mha", segmentation())
    path.write_bytes(path.read_bytes()[:-20])
    assert "scan.mha (after its header) holds 100 bytes of voxel data, the header promises 120" in error("Image", path).message


def test_mhd_data_file_missing_or_outside_its_directory(tmp_path):
    header = write_sitk(tmp_path / "scan.mhd", segmentation())
    (tmp_path / "scan.raw").unlink()
    assert "the data file 'scan.raw' named by its ElementDataFile is missing" in error("Image", header).message
    sneaky = tmp_path / "sub" / "sneaky.mhd"
    sneaky.parent.mkdir()
    sneaky.write_text(header.read_text().replace("ElementDataFile = scan.raw", "ElementDataFile = ../other.raw"))
    (tmp_path / "other.raw").write_bytes(bytes(120))
    assert "ElementDataFile '../other.raw' references a file outside the directory of sneaky.mhd" in error("Image", sneaky).message


def test_data_file_without_header(tmp_path):
    raw = tmp_path / "orphan.raw"
    raw.write_bytes(bytes(8))
    err = error("Image", raw)
    assert err.message == "No image could be read from orphan.raw: orphan.raw: a MetaImage data file that no .mhd header names as its ElementDataFile"


def test_too_many_channels(tmp_path):
    path = write_sitk(tmp_path / "many.mha", np.zeros((4, 5, 2), dtype=np.uint8), vector=True)
    assert "Unknown color space for MetaIO image: 2 components per pixel" in error("Image", path).message


def test_missing_path_is_not_a_verdict(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_image_content("Image", tmp_path / "missing.mha")


def test_not_an_image_kind():
    with pytest.raises(ValueError, match="PDF file is not an image kind"):
        check_image_content("PDF", "x.pdf")


# ---------------------------------------------------------------------------------------
# DICOM
# ---------------------------------------------------------------------------------------


def test_dicom_series_is_one_image_for_dicom_image_set(tmp_path):
    series = dicom_series(tmp_path / "series", slices=3)
    info = check_image_content("DICOM Image Set", series)
    assert info.is_dicom and info.format == "dicom"
    assert (info.shape, info.pixel_type, info.components) == ((3, 4, 4), "uint16", 1)
    assert sorted(info.file_names) == ["slice0", "slice1.dcm", "slice2.dcm"]


def test_two_dicom_series_are_two_images(tmp_path):
    directory = tmp_path / "two"
    directory.mkdir()
    write_dicom(directory / "a.dcm", study="1.2.3", series="1.2.3.1")
    write_dicom(directory / "b.dcm", study="1.2.3", series="1.2.3.2")
    assert error("DCMIS", directory).message == SINGLE_IMAGE


@pytest.mark.parametrize("kind", ["Image", "Segmentation", "Heat Map", "Displacement field"])
def test_dicom_is_refused_for_other_image_kinds(kind, tmp_path):
    err = error(kind, dicom_series(tmp_path / "series"), overlay_segments=overlay(1))
    assert err.message == MAY_NOT_BE_DICOM == "Image may not be DICOM"


def test_dicom_image_set_must_be_dicom(tmp_path):
    err = error("DCMIS", write_sitk(tmp_path / "scan.mha", segmentation()))
    assert err.message == MUST_BE_DICOM == "Image must be DICOM"
    assert err.detail == "scan.mha: Image must be DICOM (a DICOM Image Set; this is mha)"


def test_broken_dicom(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"not dicom at all")
    assert error("DCMIS", path).message.startswith("No image could be read from broken.dcm: broken.dcm: not a DICOM file: ")


# ---------------------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------------------


def test_segmentation_voxel_values_against_overlay_segments(tmp_path):
    path = write_sitk(tmp_path / "seg.mha", segmentation((0, 1, 2)))
    info = check_image_content("Segmentation", path, overlay_segments=overlay(1, 2))
    assert info.segments == frozenset({0, 1, 2})
    err = error("SEG", path, overlay_segments=overlay(1))
    assert err.message == (
        "The valid voxel values for this segmentation are: {0, 1}. "
        "This segmentation is invalid as it contains the voxel values: {2}."
    )
    assert err.detail == f"seg.mha: {err.message} (the overlay segments declare [1], 0 is the background)"


def test_grand_challenge_spelling_of_voxel_value_is_accepted(tmp_path):
    path = write_sitk(tmp_path / "seg.mha", segmentation((0, 1, 2, 3)))
    segments = [{"voxel_value": v, "name": "s", "visible": True} for v in (1, 2)]
    assert error("SEG", path, overlay_segments=segments).message.endswith("contains the voxel values: {3}.")


def test_segmentation_without_overlay_segments_is_not_voxel_checked(tmp_path):
    # grand-challenge's _validate_voxel_values returns early when there are no overlay segments.
    path = write_sitk(tmp_path / "seg.mha", np.zeros((2, 3), dtype=np.float32))
    assert check_image_content("SEG", path).segments is None
    assert check_image_content("SEG", path, overlay_segments=[]).segments is None


@pytest.mark.parametrize(
    "array",
    [
        pytest.param(segmentation((0, 1), dtype=np.float32), id="float"),
        pytest.param(segmentation((0, 1), dtype=np.uint16), id="uint16"),
        pytest.param(np.zeros((4, 5, 3), dtype=np.uint8), id="rgb"),
    ],
)
def test_segments_could_not_be_determined(array, tmp_path):
    path = write_sitk(tmp_path / "seg.mha", array, vector=array.ndim == 3 and array.shape[-1] == 3)
    err = error("SEG", path, overlay_segments=overlay(1))
    assert err.message == SEGMENTS_UNKNOWN == SEGMENTS_UNKNOWN_TEXT
    assert err.detail.startswith(f"seg.mha: {SEGMENTS_UNKNOWN_TEXT} (it is ")


def test_int8_segments_include_negative_values(tmp_path):
    path = write_sitk(tmp_path / "seg.mha", segmentation((-1, 0, 1), dtype=np.int8))
    assert check_image_content("Image", path).segments == frozenset({-1, 0, 1})
    assert error("SEG", path, overlay_segments=overlay(1)).message.endswith("contains the voxel values: {-1}.")


def test_four_dimensional_binary_masks_are_one_segment_per_volume(tmp_path):
    masks = np.zeros((3, 2, 4, 5), dtype=np.uint8)
    masks[1, 0, 0, 0] = 1
    path = write_sitk(tmp_path / "masks.mha", masks)
    info = check_image_content("SEG", path, overlay_segments=overlay(1, 2, 3))
    assert info.segments == frozenset({1, 2, 3}) and info.shape == (3, 2, 4, 5)
    assert error("SEG", path, overlay_segments=overlay(1, 2)).message.endswith("contains the voxel values: {3}.")


def test_four_dimensional_non_binary_or_too_many_volumes_have_no_segments(tmp_path):
    not_binary = np.zeros((3, 2, 2, 2), dtype=np.uint8)
    not_binary[0, 0, 0, 0] = 2
    too_many = np.zeros((65, 1, 2, 2), dtype=np.uint8)
    for name, array in (("not_binary.mha", not_binary), ("too_many.mha", too_many)):
        path = write_sitk(tmp_path / name, array)
        assert check_image_content("Image", path).segments is None
        assert error("SEG", path, overlay_segments=overlay(1)).message == SEGMENTS_UNKNOWN


def test_sets_print_as_python_prints_them(tmp_path):
    # grand-challenge formats Python sets, which are not sorted: {7, 9} prints as {9, 7}.
    path = write_sitk(tmp_path / "seg.mha", segmentation((0, 1, 2, 3, 7, 9)))
    err = error("SEG", path, overlay_segments=overlay(3, 2, 1))
    assert err.message == (
        "The valid voxel values for this segmentation are: {0, 1, 2, 3}. "
        "This segmentation is invalid as it contains the voxel values: {9, 7}."
    )


@pytest.mark.parametrize("segments", [{"voxelValue": 1}, [{"name": "x"}], [{"voxelValue": True}], "1"])
def test_malformed_overlay_segments_are_a_caller_error(segments, tmp_path):
    path = write_sitk(tmp_path / "seg.mha", segmentation())
    with pytest.raises(ValueError) as caught:
        check_image_content("SEG", path, overlay_segments=segments)
    assert not isinstance(caught.value, ImageContentError)


# ---------------------------------------------------------------------------------------
# Displacement field
# ---------------------------------------------------------------------------------------


def test_displacement_field_valid(tmp_path):
    path = write_sitk(tmp_path / "field.mha", np.zeros((3, 2, 4, 5), dtype=np.float32))
    assert check_image_content("Displacement field", path).shape == (3, 2, 4, 5)


@pytest.mark.parametrize(
    "array,vector,message",
    [
        pytest.param(np.zeros((2, 4, 5), dtype=np.float32), False, DSPF_NOT_4D, id="3d"),
        pytest.param(np.zeros((3, 2, 4, 5, 3), dtype=np.float32), True, DSPF_NOT_4D, id="4d-with-vector-pixels"),
        pytest.param(np.zeros((2, 4, 5, 3), dtype=np.float32), True, DSPF_HAS_COLOR, id="3d-with-vector-pixels"),
        pytest.param(np.zeros((2, 2, 4, 5), dtype=np.float32), False, DSPF_NOT_VECTOR, id="2-components"),
        # panimg sees a 4-D 0/1 uint8 image as a stack of masks without a time axis (grand-challenge quirk).
        pytest.param(np.zeros((3, 2, 4, 5), dtype=np.uint8), False, DSPF_NOT_4D, id="4d-binary-uint8"),
    ],
)
def test_displacement_field_shape_rules(array, vector, message, tmp_path):
    path = write_sitk(tmp_path / "field.mha", array, vector=vector)
    err = error("DSPF", path)
    assert err.message == message
    assert err.detail.startswith(f"field.mha: {message} (shape [")


def test_displacement_field_messages_are_grand_challenges():
    assert DSPF_NOT_4D == "Deformation and displacement must be 4D images."
    assert DSPF_HAS_COLOR == "Deformation and displacement fields cannot have a color component."
    assert DSPF_NOT_VECTOR == "Deformation and displacement field's 4th dimension must be a 3-component vector."


# ---------------------------------------------------------------------------------------
# TIFF
# ---------------------------------------------------------------------------------------


def test_tiff_written_by_simpleitk(tmp_path):
    path = write_sitk(tmp_path / "slide.tif", segmentation((0, 1), shape=(4, 5)))
    info = check_image_content("Image", path, job_output=True)
    assert (info.format, info.shape, info.pixel_type, info.segments) == ("tiff", (4, 5), "uint8", None)
    # SimpleITK writes no min/max sample value tags, so a TIFF segmentation has no segments.
    assert error("SEG", path, overlay_segments=overlay(1)).message == SEGMENTS_UNKNOWN


def test_tiff_segments_from_min_max_tags(tmp_path):
    path = write_tiff(tmp_path / "mask.tiff", segmentation((0, 1, 2), shape=(4, 5)), min_max=(0, 2))
    assert check_image_content("SEG", path, overlay_segments=overlay(1, 2)).segments == frozenset({0, 1, 2})
    assert error("SEG", path, overlay_segments=overlay(1)).message.endswith("contains the voxel values: {2}.")


def test_tiff_min_of_zero_as_an_integer_tag_counts(tmp_path):
    # panimg reads ``tags[Min] or tags[SMin]``, which drops a SHORT MinSampleValue of 0; we keep it.
    path = write_tiff(tmp_path / "mask.tif", segmentation((0, 1), shape=(4, 5)), min_max=(0, 1), tag_type="H")
    assert check_image_content("SEG", path, overlay_segments=overlay(1)).segments == frozenset({0, 1})


def test_tiff_tag_range_of_64_or_more_has_no_segments(tmp_path):
    path = write_tiff(tmp_path / "wide.tif", np.zeros((4, 5), dtype=np.uint8), min_max=(0, 64))
    assert check_image_content("Image", path).segments is None
    narrow = write_tiff(tmp_path / "narrow.tif", np.zeros((4, 5), dtype=np.uint8), min_max=(0, 63))
    assert check_image_content("Image", narrow).segments == frozenset(range(64))


def test_rgb_tiff_has_no_segments_and_is_a_color_image(tmp_path):
    path = write_tiff(tmp_path / "rgb.tif", np.zeros((4, 5, 3), dtype=np.uint8), photometric="rgb")
    info = check_image_content("Image", path)
    assert (info.shape, info.components, info.color_space, info.segments) == ((4, 5, 3), 3, "RGB", None)
    # grand-challenge stores TIFFs with depth 1: [1, y, x, 3] is 4-D with a colour component.
    assert error("DSPF", path).message == DSPF_HAS_COLOR
    gray = write_tiff(tmp_path / "gray.tif", np.zeros((4, 5), dtype=np.float32))
    assert error("DSPF", gray).message == DSPF_NOT_4D


def write_tiff_without_resolution(path: Path, width: int = 5, height: int = 4) -> Path:
    """A minimal 8-bit grey TIFF by hand: tifffile and SimpleITK always write resolution tags."""
    entries = [(256, 3, width), (257, 3, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1),
               (278, 3, height), (279, 4, width * height)]  # fmt: skip
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack("<H", len(entries))
    for tag, type_, value in entries:
        value = data_offset if tag == 273 else value
        ifd += struct.pack("<HHI", tag, type_, 1) + (struct.pack("<HH", value, 0) if type_ == 3 else struct.pack("<I", value))
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(width * height))
    return path


def test_tiff_without_resolution_is_refused_as_panimg_does(tmp_path):
    path = write_tiff_without_resolution(tmp_path / "plain.tif")
    assert tifffile.imread(path).shape == (4, 5)
    assert "Not a valid tif: Voxel width could not be determined (no XResolution tag)" in error("Image", path).message
    # tifffile's default: XResolution 1/1 with ResolutionUnit NONE.
    no_unit = tmp_path / "no_unit.tif"
    tifffile.imwrite(no_unit, np.zeros((4, 5), dtype=np.uint8))
    assert "Invalid resolution unit NONE in tiff file" in error("Image", no_unit).message


def test_not_a_tiff(tmp_path):
    path = tmp_path / "fake.tif"
    path.write_bytes(b"GIF89a")
    assert error("Image", path).message.startswith("No image could be read from fake.tif: fake.tif: tifffile could not read it: ")


# ---------------------------------------------------------------------------------------
# Helpers exported with the check
# ---------------------------------------------------------------------------------------


def test_is_image_file(tmp_path):
    series = dicom_series(tmp_path / "series")
    assert kinds.is_image_file(series / "slice0")  # DICOM by its preamble
    for name in ("a.mha", "a.MHD", "a.raw", "a.zraw", "a.tif", "a.tiff", "a.nii", "a.nii.gz", "a.nrrd", "a.dcm"):
        assert kinds.is_image_file(tmp_path / name), name
    assert not kinds.is_image_file(tmp_path / "value.json")


def test_overlay_voxel_values():
    assert kinds.overlay_voxel_values(overlay(2, 1)) == [2, 1]
    assert kinds.overlay_voxel_values([{"voxel_value": 3.0}]) == [3]
    with pytest.raises(ValueError, match=r"overlay segment \[0\] has no integer voxelValue"):
        kinds.overlay_voxel_values([{"voxelValue": "1"}])


# ---------------------------------------------------------------------------------------
# component-operator validate value (image kinds)
# ---------------------------------------------------------------------------------------


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_valid_images(tmp_path, capsys):
    heat_map = write_sitk(tmp_path / "x.mha", np.zeros((2, 3), dtype=np.float32))
    assert run(capsys, "value", "--kind", "Heat Map", heat_map) == (0, "valid Heat Map: x.mha (mha, float32, shape [2, 3])\n", "")
    scan = write_sitk(tmp_path / "scan.mhd", np.zeros((2, 3), dtype=np.int16))
    code, out, err = run(capsys, "value", "--kind", "Image", scan)
    assert (code, out, err) == (0, "valid Image: scan.mhd + scan.raw (mhd, int16, shape [2, 3])\n", "")
    code, out, _ = run(capsys, "value", "--kind", "DCMIS", dicom_series(tmp_path / "series", slices=4))
    assert code == 0 and out.startswith("valid DICOM Image Set: ") and "(4 files)" in out and "(dicom, uint16, shape [4, 4, 4])" in out


def test_cli_segmentation_with_segments_file(tmp_path, capsys):
    seg = write_sitk(tmp_path / "seg.mha", segmentation((0, 1, 2)))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(overlay(1, 2)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(overlay(1)))
    code, out, err = run(capsys, "value", "--kind", "Segmentation", seg, "--segments", good)
    assert (code, out, err) == (0, "valid Segmentation: seg.mha (mha, uint8, shape [4, 5, 6], segments [0, 1, 2])\n", "")
    code, out, err = run(capsys, "value", "--kind", "Segmentation", seg, "--segments", bad)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{seg}: invalid Segmentation",
        "  seg.mha: The valid voxel values for this segmentation are: {0, 1}. This segmentation is invalid as it "
        "contains the voxel values: {2}. (the overlay segments declare [1], 0 is the background)",
        "  grand-challenge: The valid voxel values for this segmentation are: {0, 1}. This segmentation is invalid "
        "as it contains the voxel values: {2}.",
    ]
    code, out, _ = run(capsys, "value", "--kind", "SEG", seg)
    assert code == 0 and "voxel values not checked: no overlay segments given (--segments)" in out


def test_cli_invalid_images_exit_1(tmp_path, capsys):
    code, _, err = run(capsys, "value", "--kind", "Image", dicom_series(tmp_path / "series"))
    assert code == 1 and "grand-challenge: Image may not be DICOM" in err
    field = write_sitk(tmp_path / "field.mha", np.zeros((2, 4, 5), dtype=np.float32))
    code, _, err = run(capsys, "value", "--kind", "Displacement field", field)
    assert code == 1 and "grand-challenge: Deformation and displacement must be 4D images." in err
    junk = tmp_path / "junk.mha"
    junk.write_bytes(b"\xff\xfe")
    code, _, err = run(capsys, "value", "--kind", "Image", junk)
    assert code == 1 and "No image could be read from junk.mha: junk.mha: not a MetaImage file" in err


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    seg = write_sitk(tmp_path / "seg.mha", segmentation())
    value = tmp_path / "value.json"
    value.write_text("1")
    not_a_list = tmp_path / "segments.json"
    not_a_list.write_text(json.dumps({"voxelValue": 1}))
    cases = [
        (["value", "--kind", "Image", tmp_path / "missing.mha"], "no such file or directory"),
        (["value", "--kind", "Image", value], "is not an image file: Image is an image kind"),
        (["value", "--kind", "Image", "-"], "cannot be read from standard input"),
        (["value", "--kind", "Heat Map", "--segments", not_a_list, seg], "--segments is only for Segmentation values"),
        (["value", "--kind", "SEG", "--segments", not_a_list, seg], "overlay segments must be a list of objects"),
        (["value", "--kind", "SEG", "--segments", tmp_path / "missing.json", seg], "no such file"),
    ]
    for argv, needle in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and needle in err, (argv, err)
