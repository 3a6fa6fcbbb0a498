"""Content checks for values of the image kinds (Image, Segmentation, Heat Map, Displacement field, DICOM Image Set).

grand-challenge imports every image value with panimg before it accepts it: the files of an
upload (or of a job's output directory) must yield exactly one image, and the interface
kind then adds its own rules (§1.5). This module gives the operator the same verdicts,
with grand-challenge's messages, before an input is staged or an output is accepted:

* which files make up an image: an ``.mha``; an ``.mhd`` with the ``.raw``/``.zraw`` its
  ``ElementDataFile`` names (which must lie next to it); a ``.tif``/``.tiff``; for inputs
  also ``.nii``/``.nii.gz``, ``.nrrd`` and DICOM (``.dcm`` or any file with the DICOM
  preamble; one series is one image). Job outputs may only be MHA/MHD or TIFF, as
  grand-challenge only runs its MHD and TIFF builders on them;
* exactly one image (``Image imports should result in a single image``);
* DICOM Image Set must be DICOM, every other image kind must not be;
* Segmentation: the voxel values against the interface's overlay segments;
* Displacement field: a 4-D scalar image whose first (NumPy) axis has 3 entries.

Segments are computed as panimg computes them, because grand-challenge's voxel check uses
them: only single-channel ``int8``/``uint8`` images have segments; a 2-D/3-D image's
segments are its distinct voxel values, a 4-D image's are ``{1..n}`` for its ``n <= 64``
volumes when every voxel is 0 or 1 (one binary mask per volume); a TIFF's come from its
``MinSampleValue``/``MaxSampleValue`` tags (``{min..max}`` when fewer than 64 values).

Libraries: SimpleITK reads MetaImage, NIfTI and NRRD (as panimg does); tifffile reads TIFF
tags without decoding pixels (whole-slide images can be gigapixels, and SimpleITK exposes
neither the min/max sample tags nor the resolution tags panimg relies on); pydicom reads
DICOM headers (pixel data is left to the importer; it may need codecs we do not ship).
They are imported on first use, so importing the ``kinds`` package stays cheap.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .catalog import Kind, resolve_kind
from .errors import ImageContentError

if TYPE_CHECKING:  # pragma: no cover
    import numpy

#: panimg's ``MAXIMUM_SEGMENTS_LENGTH``: more volumes (4-D) or a wider TIFF tag range means no segments.
MAXIMUM_SEGMENTS_LENGTH = 64

OUTPUT_IMAGE_SUFFIXES = (".mha", ".mhd", ".tif", ".tiff")
INPUT_ONLY_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".dcm")
METAIMAGE_DATA_SUFFIXES = (".raw", ".zraw")
# Upload clutter grand-challenge drops when it unpacks an upload.
IGNORED_NAMES = frozenset({".DS_Store", "desktop.ini"})
IGNORED_DIRECTORIES = frozenset({"__MACOSX"})

SEGMENTS_UNKNOWN = (
    "Image segments could not be determined, ensure the voxel values are integers and that it contains no more "
    f"than {MAXIMUM_SEGMENTS_LENGTH} segments. Ensure the image has the minimum and maximum voxel values set as "
    "tags if the image is a TIFF file."
)
SINGLE_IMAGE = "Image imports should result in a single image"
MUST_BE_DICOM = "Image must be DICOM"
MAY_NOT_BE_DICOM = "Image may not be DICOM"
DSPF_NOT_4D = "Deformation and displacement must be 4D images."
DSPF_HAS_COLOR = "Deformation and displacement fields cannot have a color component."
DSPF_NOT_VECTOR = "Deformation and displacement field's 4th dimension must be a 3-component vector."

# Colour components per grand-challenge colour space (``Image.COLOR_SPACE_COMPONENTS``).
_COLOR_SPACE_COMPONENTS = {"GRAY": 1, "RGB": 3, "RGBA": 4, "YCBCR": 4}
# panimg's ``ITK_COLOR_SPACE_MAP``: other component counts are refused.
_ITK_COLOR_SPACES = {1: "GRAY", 3: "RGB", 4: "RGBA"}
# panimg's TIFF colour spaces, by PhotometricInterpretation name.
_TIFF_COLOR_SPACES = {"MINISBLACK": "GRAY", "RGB": "RGB", "YCBCR": "YCBCR"}
_DICOM_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


@dataclass(frozen=True)
class ImageInfo:
    """What was found: the one image a value's files make up.

    ``shape`` is in NumPy order ``[t, z, y, x, (c)]`` (``c`` only for multi-component
    pixels; a TIFF reports its full-resolution level), ``pixel_type`` the NumPy name of one
    component (``uint8``, ``float32``), ``format`` one of ``mha mhd tiff nifti nrrd dicom``,
    ``files`` the files making up the image (header first), ``segments`` panimg's segments
    (``None``: not a segmentation-like image), ``skipped`` one line per given file that is
    not part of the image, with the reason.
    """

    format: str
    files: tuple[Path, ...]
    shape: tuple[int, ...]
    pixel_type: str
    components: int
    color_space: str
    segments: frozenset[int] | None
    skipped: tuple[str, ...] = ()
    # grand-challenge's ``Image.shape`` (what its displacement field rules look at): a TIFF
    # gains a depth of 1, a 4-D image with segments loses its time axis, and colour spaces
    # count their components as grand-challenge does.
    grand_challenge_shape: tuple[int, ...] = field(default=(), repr=False)

    @property
    def is_dicom(self) -> bool:
        return self.format == "dicom"

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(path.name for path in self.files)


def check_image_content(
    kind: str | Kind,
    paths: Sequence[Path | str] | Path | str,
    *,
    overlay_segments: Sequence[Mapping[str, Any]] | None = None,
    job_output: bool = False,
) -> ImageInfo:
    """Raise ``ImageContentError`` unless the files make up one image that fits the kind.

    ``paths`` are the value's files; a directory stands for every file below it (a DICOM
    series, an ``.mhd`` with its ``.raw``). ``overlay_segments`` are the interface's, as CRD
    dicts (``voxelValue``, or grand-challenge's ``voxel_value``); as in grand-challenge the
    voxel values of a Segmentation are only checked when there are some. ``job_output``
    accepts only the formats grand-challenge imports from job outputs.

    A path that does not exist raises ``FileNotFoundError``, an unreadable one ``OSError``
    and malformed overlay segments ``ValueError``: problems of the call, not verdicts.
    """
    kind = resolve_kind(kind)
    if not kind.is_image:
        raise ValueError(f"{kind.label} is not an image kind")
    allowed_values = overlay_voxel_values(overlay_segments) if overlay_segments else None
    files = _expand(paths)
    images, skipped = _read_images(files, job_output=job_output)
    if not images:
        message = _nothing_readable(files, skipped)  # names the files itself
        raise ImageContentError(message, files=[p.name for p in files], detail=message)
    if len(images) > 1:
        found = "; ".join(f"{', '.join(image.file_names)} ({image.format})" for image in images)
        raise ImageContentError(
            SINGLE_IMAGE,
            files=[name for image in images for name in image.file_names],
            detail=f"{SINGLE_IMAGE}: the files make up {len(images)} images: {found}",
        )
    image = replace(images[0], skipped=tuple(skipped))
    names = ", ".join(image.file_names)
    if kind.code == "DCMIS" and not image.is_dicom:
        why = f"a DICOM Image Set; this is {image.format}"
        raise ImageContentError(MUST_BE_DICOM, files=image.file_names, detail=f"{names}: {MUST_BE_DICOM} ({why})")
    if kind.code != "DCMIS" and image.is_dicom:
        why = f"only a DICOM Image Set may be DICOM; {kind.label} takes MHA, MHD or TIFF"
        raise ImageContentError(MAY_NOT_BE_DICOM, files=image.file_names, detail=f"{names}: {MAY_NOT_BE_DICOM} ({why})")
    if kind.code == "SEG" and allowed_values is not None:
        _check_voxel_values(image, allowed_values)
    if kind.code == "DSPF":
        _check_displacement_field(image)
    return image


def overlay_voxel_values(segments: Sequence[Mapping[str, Any]]) -> list[int]:
    """The declared voxel values, in order; ``ValueError`` naming the segment if one has none."""
    if isinstance(segments, (str, bytes)) or not isinstance(segments, Sequence):
        raise ValueError(f"overlay segments must be a list of objects, got {type(segments).__name__}")
    values = []
    for index, segment in enumerate(segments):
        value = segment.get("voxelValue", segment.get("voxel_value")) if isinstance(segment, Mapping) else None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"overlay segment [{index}] has no integer voxelValue (got {segment!r})")
        values.append(value)
    return values


def is_image_file(path: Path | str) -> bool:
    """Whether the file's name (or, for DICOM without ``.dcm``, its preamble) is an image format's."""
    path = Path(path)
    known = OUTPUT_IMAGE_SUFFIXES + INPUT_ONLY_IMAGE_SUFFIXES + METAIMAGE_DATA_SUFFIXES
    return _suffix(path) in known or _has_dicom_preamble(path)


# ---------------------------------------------------------------------------------------
# Kind rules
# ---------------------------------------------------------------------------------------


def _check_voxel_values(image: ImageInfo, declared: list[int]) -> None:
    names = ", ".join(image.file_names)
    if image.segments is None:
        why = (
            "its MinSampleValue/MaxSampleValue tags are missing or span 64 values or more"
            if image.format == "tiff"
            else f"it is {image.pixel_type} with {image.components} component(s) and shape {list(image.shape)}"
        )
        raise ImageContentError(SEGMENTS_UNKNOWN, files=image.file_names, detail=f"{names}: {SEGMENTS_UNKNOWN} ({why})")
    # Built as grand-challenge builds them, so that the set reprs print in the same order.
    allowed = {value for value in declared} | {0}
    invalid = set(sorted(image.segments)) - allowed
    if invalid:
        message = (
            f"The valid voxel values for this segmentation are: {allowed}. "
            f"This segmentation is invalid as it contains the voxel values: {invalid}."
        )
        raise ImageContentError(
            message,
            files=image.file_names,
            detail=f"{names}: {message} (the overlay segments declare {sorted(declared)}, 0 is the background)",
        )


def _check_displacement_field(image: ImageInfo) -> None:
    shape = list(image.grand_challenge_shape)
    color = _COLOR_SPACE_COMPONENTS[image.color_space]
    names = ", ".join(image.file_names)
    order = "NumPy order [t, z, y, x, (c)]"
    if len(shape) != 4:
        message = DSPF_NOT_4D
    elif color > 1:
        message = DSPF_HAS_COLOR
    elif shape[0] != 3:
        message = DSPF_NOT_VECTOR
    else:
        return
    raise ImageContentError(
        message, files=image.file_names, detail=f"{names}: {message} (shape {shape} in {order}, {image.components} component(s))"
    )


# ---------------------------------------------------------------------------------------
# Finding the images among the files
# ---------------------------------------------------------------------------------------


class _Unreadable(Exception):
    """One file that is not (part of) a readable image; the text is the reason."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            stream.seek(128)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def _expand(paths: Sequence[Path | str] | Path | str) -> list[Path]:
    """The given files, with directories replaced by the files below them (sorted, no duplicates)."""
    given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: dict[Path, None] = {}
    for item in map(Path, given):
        if item.is_dir():
            for root, directories, names in os.walk(item):
                directories[:] = sorted(d for d in directories if d not in IGNORED_DIRECTORIES)
                for name in sorted(names):
                    if name not in IGNORED_NAMES:
                        files.setdefault(Path(root) / name, None)
        elif item.exists():
            files.setdefault(item, None)
        else:
            raise FileNotFoundError(f"no such file or directory: {item}")
    return list(files)


def _read_images(files: list[Path], *, job_output: bool) -> tuple[list[ImageInfo], list[str]]:
    images: list[ImageInfo] = []
    skipped: dict[Path, str] = {}
    consumed: set[Path] = set()
    dicom_files: list[Path] = []
    for path in files:
        suffix = _suffix(path)
        if suffix in METAIMAGE_DATA_SUFFIXES:
            continue  # claimed by its .mhd below, or reported as left over at the end
        if job_output and suffix in INPUT_ONLY_IMAGE_SUFFIXES:
            skipped[path] = f"{suffix} is not accepted for job outputs (only .mha, .mhd with .raw/.zraw, .tif/.tiff)"
            continue
        reader = _READERS.get(suffix)
        if reader is None:
            if not job_output and (suffix == ".dcm" or _has_dicom_preamble(path)):
                dicom_files.append(path)
            else:
                skipped[path] = f"not an image file (accepted: {', '.join(_accepted(job_output))})"
            continue
        try:
            image = reader(path)
        except _Unreadable as err:
            skipped[path] = str(err)
            continue
        images.append(image)
        consumed.update(image.files)
    if dicom_files:
        dicom_images, dicom_skipped = _read_dicom_series(dicom_files)
        images += dicom_images
        skipped.update(dicom_skipped)
    for path in files:
        if _suffix(path) in METAIMAGE_DATA_SUFFIXES and path not in consumed:
            skipped[path] = "a MetaImage data file that no .mhd header names as its ElementDataFile"
    return images, [f"{path.name}: {reason}" for path, reason in skipped.items()]


def _accepted(job_output: bool) -> list[str]:
    formats = [".mha", ".mhd (+ .raw/.zraw)", ".tif", ".tiff"]
    return formats if job_output else formats + [".nii", ".nii.gz", ".nrrd", "DICOM (.dcm)"]


def _nothing_readable(files: list[Path], skipped: list[str]) -> str:
    if not files:
        return "No image could be read: no files were given"
    return f"No image could be read from {', '.join(p.name for p in files)}: {'; '.join(skipped)}"


# ---------------------------------------------------------------------------------------
# MetaImage, NIfTI, NRRD (SimpleITK)
# ---------------------------------------------------------------------------------------

_HEADER_LINE_LIMIT = 10000  # panimg's guards against hostile headers
_HEADER_LINE_LENGTH = 10000
# Bytes per element of the MetaIO element types whose size is fixed on every platform.
_METAIO_ELEMENT_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}  # fmt: skip


def _parse_metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """The ``key = value`` header up to ``ElementDataFile`` and the offset where it ends."""
    headers: dict[str, str] = {}
    with open(path, "rb") as stream:
        for _ in range(_HEADER_LINE_LIMIT):
            line = stream.readline(_HEADER_LINE_LENGTH)
            if not line:
                break
            if len(line) >= _HEADER_LINE_LENGTH:
                raise _Unreadable("not a MetaImage file: a header line is too long")
            try:
                text = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raise _Unreadable("not a MetaImage file: the header is not UTF-8 text") from None
            if "=" in text:
                key, value = text.split("=", 1)
                headers[key.strip()] = value.strip()
            if "ElementDataFile" in headers:
                return headers, stream.tell()
        else:
            raise _Unreadable("not a MetaImage file: the header has too many lines")
    raise _Unreadable("not a MetaImage file: the header has no ElementDataFile")


def _metaimage_data_file(path: Path, data_file: str) -> Path | None:
    """The data file an ``.mhd`` names (``None`` for ``LOCAL``), which must lie beside or below it."""
    if data_file == "LOCAL":
        return None
    if data_file.startswith("LIST") or "%" in data_file:
        raise _Unreadable(f"ElementDataFile {data_file!r}: multi-file MetaImages are not supported")
    base = path.parent.resolve()
    target = (base / data_file).resolve()
    if base not in target.parents:
        raise _Unreadable(f"ElementDataFile {data_file!r} references a file outside the directory of {path.name}")
    if not target.is_file():
        raise _Unreadable(f"the data file {data_file!r} named by its ElementDataFile is missing")
    # Report the data file as it was given (not resolved), so that callers recognise it.
    return path.parent / data_file


def _check_metaimage_data_size(headers: dict[str, str], path: Path, data: Path | None, offset: int) -> None:
    """A truncated raw file would otherwise surface as ITK's "File cannot be read ... Reason: Success"."""
    if headers.get("CompressedData", "False").lower() == "true":
        return
    element = headers.get("ElementType", "").removesuffix("_ARRAY")
    try:
        voxels = math.prod(int(size) for size in headers["DimSize"].split())
        channels = int(headers.get("ElementNumberOfChannels", "1"))
    except (KeyError, ValueError):
        raise _Unreadable("not a valid MetaImage header: DimSize is missing or not a list of integers") from None
    if element not in _METAIO_ELEMENT_BYTES:
        return
    expected = voxels * channels * _METAIO_ELEMENT_BYTES[element]
    actual = (data.stat().st_size if data else path.stat().st_size - offset)
    if actual < expected:
        holder = data.name if data else f"{path.name} (after its header)"
        raise _Unreadable(f"{holder} holds {actual} bytes of voxel data, the header promises {expected}")


def _read_metaimage(path: Path) -> ImageInfo:
    headers, offset = _parse_metaimage_header(path)
    data = _metaimage_data_file(path, headers["ElementDataFile"])
    _check_metaimage_data_size(headers, path, data, offset)
    image = _read_with_simpleitk(path, "MetaImageIO")
    files = (path,) if data is None else (path, data)
    return _simpleitk_info(image, "mha" if _suffix(path) == ".mha" else "mhd", files)


def _reader_for(image_io: str, format_name: str):
    def read(path: Path) -> ImageInfo:
        return _simpleitk_info(_read_with_simpleitk(path, image_io), format_name, (path,))

    return read


def _read_with_simpleitk(path: Path, image_io: str):
    import SimpleITK

    reader = SimpleITK.ImageFileReader()
    reader.SetImageIO(image_io)
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise _Unreadable(f"SimpleITK could not read the header: {_itk_reason(err)}") from None
    # panimg's limits, checked on the header before the voxels are loaded.
    if reader.GetNumberOfComponents() > 4:
        raise _Unreadable(
            "Images with more than 4 channels not supported. For 4D data please use the 4th dimension instead."
        )
    if reader.GetNumberOfComponents() not in _ITK_COLOR_SPACES:
        raise _Unreadable(f"Unknown color space for MetaIO image: {reader.GetNumberOfComponents()} components per pixel")
    if reader.GetDimension() not in (2, 3, 4):
        raise _Unreadable(f"only 2-D, 3-D and 4-D images are supported, this one is {reader.GetDimension()}-D")
    try:
        return reader.Execute()
    except RuntimeError as err:
        raise _Unreadable(f"SimpleITK could not read the voxel data: {_itk_reason(err)}") from None


def _itk_reason(err: RuntimeError) -> str:
    """The ``ITK ERROR`` line of a SimpleITK exception, without the object address."""
    text = str(err)
    match = re.search(r"ITK ERROR: (?:\w+\(0x[0-9a-f]+\): )?(.*)", text)
    reason = match.group(1) if match else text.strip().splitlines()[-1] if text.strip() else "unknown error"
    return reason.strip()


def _simpleitk_info(image, format_name: str, files: tuple[Path, ...]) -> ImageInfo:
    import numpy as np
    import SimpleITK

    components = image.GetNumberOfComponentsPerPixel()
    array = SimpleITK.GetArrayViewFromImage(image)
    shape = tuple(int(n) for n in array.shape)
    segments = None
    if components == 1 and image.GetPixelID() in (SimpleITK.sitkInt8, SimpleITK.sitkUInt8):
        segments = _segments(array, dimension=image.GetDimension())
    # panimg: a 4-D image with segments is a stack of masks, not a time series.
    spatial = shape[: image.GetDimension()]
    if image.GetDimension() == 4 and segments is not None:
        spatial = spatial[1:]
    color = components if components > 1 else None
    return ImageInfo(
        format=format_name,
        files=files,
        shape=shape,
        pixel_type=np.dtype(array.dtype).name,
        components=components,
        color_space=_ITK_COLOR_SPACES[components],
        segments=segments,
        grand_challenge_shape=tuple(spatial) + ((color,) if color else ()),
    )


def _segments(array: numpy.ndarray, *, dimension: int) -> frozenset[int] | None:
    """panimg's ``SimpleITKImage.segments`` for a single-channel 8-bit voxel array."""
    import numpy as np

    # One counting pass over the bytes: int8 values are read through their uint8 bit pattern.
    counts = np.bincount(np.ascontiguousarray(array).view(np.uint8).ravel(), minlength=256)
    present = [int(v) for v in np.flatnonzero(counts)]
    if array.dtype == np.int8:
        present = [v - 256 if v > 127 else v for v in present]
    if dimension == 4:
        volumes = int(array.shape[0])
        if volumes > MAXIMUM_SEGMENTS_LENGTH or not set(present) <= {0, 1}:
            return None
        return frozenset(range(1, volumes + 1))
    return frozenset(present)


# ---------------------------------------------------------------------------------------
# TIFF (tifffile: tags only, as panimg)
# ---------------------------------------------------------------------------------------


def _read_tiff(path: Path) -> ImageInfo:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            pages = tiff.pages
            if not len(pages):
                raise _Unreadable("not a valid TIFF: it has no pages")
            page = pages[0]
            tags = page.tags
            info = _tiff_info(path, tags, byteorder=tiff.byteorder, shape=page.shape, dtype=page.dtype)
    except _Unreadable:
        raise
    except Exception as err:  # tifffile raises TiffFileError, ValueError, struct.error ... on damaged files
        raise _Unreadable(f"tifffile could not read it: {err}") from None
    return info


def _tag(tags, name: str) -> Any:
    tag = tags.get(name)
    return None if tag is None else tag.value


def _tiff_info(path: Path, tags, *, byteorder: str, shape, dtype) -> ImageInfo:
    width, height = _tag(tags, "ImageWidth"), _tag(tags, "ImageLength")
    photometric = _tag(tags, "PhotometricInterpretation")
    photometric_name = getattr(photometric, "name", str(photometric)).upper()
    # panimg's validation of a TIFF, in its order (without its OpenSlide fallback for spacing).
    if not width:
        raise _Unreadable("Not a valid tif: Image width could not be determined")
    if not height:
        raise _Unreadable("Not a valid tif: Image height could not be determined")
    for axis, tag_name in (("width", "XResolution"), ("height", "YResolution")):
        if tag_name not in tags:
            raise _Unreadable(f"Not a valid tif: Voxel {axis} could not be determined (no {tag_name} tag)")
        _tiff_spacing_mm(tags, tag_name)
    color_space = _TIFF_COLOR_SPACES.get(photometric_name)
    if color_space is None:
        raise _Unreadable(f"Not a valid tif: Color space could not be determined (PhotometricInterpretation {photometric_name})")
    samples = int(_tag(tags, "SamplesPerPixel") or 1)
    minimum, maximum = _tiff_sample_range(tags, samples, byteorder)
    segments = None
    if minimum is not None and maximum is not None and maximum - minimum < MAXIMUM_SEGMENTS_LENGTH:
        segments = frozenset(range(minimum, maximum + 1))
    color = _COLOR_SPACE_COMPONENTS[color_space]
    return ImageInfo(
        format="tiff",
        files=(path,),
        shape=tuple(int(n) for n in shape),
        pixel_type=str(dtype),
        components=samples,
        color_space=color_space,
        segments=segments,
        # grand-challenge stores TIFFs with depth 1.
        grand_challenge_shape=(1, int(height), int(width)) + ((color,) if color > 1 else ()),
    )


def _tiff_spacing_mm(tags, tag_name: str) -> float:
    unit = _tag(tags, "ResolutionUnit")
    unit_name = getattr(unit, "name", str(unit)).upper()
    resolution = _tag(tags, tag_name)
    try:
        pixels_per_unit = resolution[0] / resolution[1]
        if unit_name == "INCH":
            return 25.4 / pixels_per_unit
        if unit_name == "CENTIMETER":
            return 10 / pixels_per_unit
    except (ZeroDivisionError, TypeError, IndexError):
        raise _Unreadable(f"Invalid resolution in tiff file ({tag_name} {resolution!r})") from None
    raise _Unreadable(f"Invalid resolution unit {unit_name} in tiff file")


def _tiff_sample_range(tags, samples: int, byteorder: str) -> tuple[int | None, int | None]:
    """panimg's min/max voxel values: single-sample unsigned/signed integer TIFFs only."""
    sample_format = _tag(tags, "SampleFormat")
    sample_format = None if sample_format is None else int(sample_format)
    if samples != 1 or sample_format not in (None, 1, 2):
        return None, None
    signed = sample_format == 2
    order = {"<": "little", ">": "big"}.get(byteorder, "big")

    def value(first: str, second: str) -> int | None:
        # Unlike panimg (``tags[first] or tags[second]``), a tag holding 0 counts as set.
        raw = _tag(tags, first)
        if raw is None:
            raw = _tag(tags, second)
        if isinstance(raw, bytes):
            return int.from_bytes(raw, byteorder=order, signed=signed)
        if isinstance(raw, (tuple, list)):
            raw = raw[0] if raw else None
        return None if raw is None else int(raw)

    return value("MinSampleValue", "SMinSampleValue"), value("MaxSampleValue", "SMaxSampleValue")


# ---------------------------------------------------------------------------------------
# DICOM (pydicom: headers only)
# ---------------------------------------------------------------------------------------


def _read_dicom_series(files: list[Path]) -> tuple[list[ImageInfo], dict[Path, str]]:
    """One image per series, grouped as panimg groups them (study, stack or series, SOP class)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    skipped: dict[Path, str] = {}
    series: dict[tuple[str, str, str], list[tuple[Path, Any]]] = {}
    for path in files:
        try:
            # Large values (the pixel data) are left on disk; only their presence is checked.
            dataset = pydicom.dcmread(path, defer_size=1024)
        except InvalidDicomError as err:
            # pydicom's text ends with advice for its own callers ("Use force=True ..."), not for users.
            skipped[path] = f"not a DICOM file: {str(err).split(' Use force=True')[0]}"
            continue
        except Exception as err:  # pydicom raises many types on damaged files
            skipped[path] = f"pydicom could not read it: {err}"
            continue
        missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "Rows", "Columns") if k not in dataset]
        if missing:
            skipped[path] = f"a DICOM file without {', '.join(missing)}"
            continue
        if not any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            skipped[path] = "a DICOM file without pixel data"
            continue
        key = (str(dataset.StudyInstanceUID), str(dataset.get("StackID", dataset.SeriesInstanceUID)), str(dataset.SOPClassUID))
        series.setdefault(key, []).append((path, dataset))
    images = []
    for members in series.values():
        paths = tuple(path for path, _ in members)
        first = members[0][1]
        if str(first.SOPClassUID) == _DICOM_WSI_SOP_CLASS:
            for path in paths:
                skipped[path] = "DICOM whole-slide images are converted to TIFF by grand-challenge and are not supported here"
            continue
        images.append(_dicom_info(paths, [dataset for _, dataset in members]))
    return images, skipped


def _dicom_info(paths: tuple[Path, ...], datasets: list[Any]) -> ImageInfo:
    first = datasets[0]
    frames_per_file = int(first.get("NumberOfFrames", 1) or 1)
    time_points = {int(d.TemporalPositionIndex) for d in datasets if d.get("TemporalPositionIndex") is not None}
    slices = len(datasets) * frames_per_file
    shape: list[int] = []
    if len(time_points) > 1:
        shape.append(len(time_points))
        slices //= len(time_points)
    if slices > 1 or shape:
        shape.append(slices)
    samples = int(first.get("SamplesPerPixel", 1) or 1)
    shape += [int(first.Rows), int(first.Columns)] + ([samples] if samples > 1 else [])
    if "FloatPixelData" in first:
        pixel_type = "float32"
    elif "DoubleFloatPixelData" in first:
        pixel_type = "float64"
    else:
        signed = int(first.get("PixelRepresentation", 0) or 0) == 1
        pixel_type = f"{'int' if signed else 'uint'}{int(first.get('BitsAllocated', 0) or 0)}"
    return ImageInfo(
        format="dicom",
        files=paths,
        shape=tuple(shape),
        pixel_type=pixel_type,
        components=samples,
        color_space=_ITK_COLOR_SPACES.get(samples, "RGB"),
        segments=None,
        grand_challenge_shape=tuple(shape),
    )


_READERS = {
    ".mha": _read_metaimage,
    ".mhd": _read_metaimage,
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    ".nii": _reader_for("NiftiImageIO", "nifti"),
    ".nii.gz": _reader_for("NiftiImageIO", "nifti"),
    ".nrrd": _reader_for("NrrdImageIO", "nrrd"),
}
