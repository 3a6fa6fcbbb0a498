"""File-kind content checks (§1.4) on small files generated here."""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import zipfile
import zlib

import pytest

from component_operator import kinds

ALLOWED = ".json, .zip, .csv, .png, .jpg, .jpeg, .pdf, .sqreg, .obj, .mp4, .newick, .biom"


def png_bytes(width=2, height=2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = b"".join(b"\x00" + bytes(range(width)) for _ in range(height))
    return kinds.files.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def jpeg_bytes() -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + b"\xff\xd9"


def mp4_bytes() -> bytes:
    ftyp = b"ftyp" + b"isom" + struct.pack(">I", 512) + b"isomiso2mp41"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", 8) + b"free"


def zip_bytes(members=None, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in (members or {"a.txt": b"hello", "dir/b.csv": b"x,y\n1,2\n"}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def sqlite_file(path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("create table registration (id integer primary key, matrix text)")
        connection.execute("insert into registration (matrix) values ('identity')")
    connection.close()


def refused(kind, source) -> str:
    with pytest.raises(kinds.FileContentError) as info:
        kinds.check_file_content(kind, source)
    assert str(info.value) == info.value.message
    return info.value.message


VALID = [
    ("PDF file", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"),
    ("Thumbnail png", png_bytes()),
    ("Thumbnail jpg", jpeg_bytes()),
    ("MP4 file", mp4_bytes()),
    ("ZIP file (legacy)", zip_bytes()),
    ("ZIP file (legacy)", zip_bytes({})),
    ("CSV file (legacy)", b"case,score\nA,0.5\n\"B, quoted\",1\n"),
    ("CSV file (legacy)", "\ufeffname,caf\u00e9\n".encode()),
    ("CSV file (legacy)", b""),
    ("OBJ file", b"# a triangle\nmtllib t.mtl\no tri\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nusemtl m\ns off\nf 1//1 2//1 3//1\n"),
    ("OBJ file", b"v 0 0 \\\n 0\n\n   \n"),
    ("BIOM format", kinds.files.HDF5_SIGNATURE + b"\x00" * 64),
    ("BIOM format", b"\x00" * 512 + kinds.files.HDF5_SIGNATURE + b"\x00" * 64),  # after a user block
    ("SQREG file", b"SQLite format 3\x00" + b"\x00" * 84),
    ("Newick tree-format file", b"();"),
]


@pytest.mark.parametrize("kind,data", VALID, ids=[f"{k}-{i}" for i, (k, _) in enumerate(VALID)])
def test_valid_files(kind, data, tmp_path):
    kinds.check_file_content(kind, data)
    path = tmp_path / "value.bin"
    path.write_bytes(data)
    kinds.check_file_content(kind, path)
    kinds.check_file_content(kinds.resolve_kind(kind).code, str(path))


@pytest.mark.parametrize(
    "kind,data,message",
    [
        ("PDF file", b"%PDF", "The file is not a valid PDF file: it does not start with '%PDF-'"),
        ("PDF file", png_bytes(), "The file is not a valid PDF file: it does not start with '%PDF-'"),
        ("Thumbnail png", jpeg_bytes(), "The file is not a valid PNG image: it does not start with the PNG signature"),
        ("Thumbnail jpg", png_bytes(), "The file is not a valid JPEG image: it does not start with a JPEG start-of-image marker"),
        ("MP4 file", b"\x00\x00\x00\x18moov" + b"\x00" * 16, "The file is not a valid MP4 file: it does not start with an 'ftyp' box"),
        ("MP4 file", b"", "The file is not a valid MP4 file: it does not start with an 'ftyp' box"),
        ("ZIP file (legacy)", b"PK\x03\x04 not really", "The file is not a valid ZIP file"),
        ("SQREG file", b"SQLite format 2\x00", "The file is not a valid SQREG (SQLite) file: it does not start with 'SQLite format 3'"),
        ("BIOM format", json.dumps({"id": "biom 1.0 json"}).encode(), "Only BIOM in valid HDF5 binary file format are supported"),
        ("BIOM format", b"", "Only BIOM in valid HDF5 binary file format are supported"),
    ],
)  # fmt: skip
def test_invalid_files(kind, data, message):
    assert refused(kind, data) == message


def test_damaged_zip_member_is_found():
    data = bytearray(zip_bytes({"a.txt": b"hello world"}, compression=zipfile.ZIP_STORED))
    data[data.index(b"hello world")] ^= 0xFF
    assert refused("ZIP", bytes(data)) == "The ZIP file is damaged: member 'a.txt' fails its CRC check"


def test_sqlite_database_file(tmp_path):
    path = tmp_path / "registration.sqreg"
    sqlite_file(path)
    kinds.check_file_content("SQREG file", path)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"caf\xe9,1\n", "The CSV file is not UTF-8 text: invalid continuation byte at byte 3"),
        (b'a,"b"c\n', "The CSV file could not be parsed: ',' expected after '\"'"),
        (b'a,"unterminated\n', "The CSV file could not be parsed: unexpected end of data"),
        (b"a,b\nc\x00d\n", "The CSV file is not text (NUL byte on line 2)"),
    ],
)
def test_invalid_csv(data, message):
    assert refused("CSV", data) == message


@pytest.mark.parametrize(
    "data,message",
    [
        (b"v 0 0 0\nfoo 1 2\n", "The OBJ file has an unknown statement 'foo' on line 2"),
        (b"\x00\x01\x02", "The OBJ file is not text (NUL byte on line 1)"),
        (b"v 0 0 0\n\xff\xfe\n", "The OBJ file is not UTF-8 text: invalid start byte"),
        (b"{\"vertices\": []}\n", "The OBJ file has an unknown statement '{\"vertices\":' on line 1"),
    ],
)
def test_invalid_obj(data, message):
    assert refused("OBJ", data) == message


# ---------------------------------------------------------------------------------------
# Newick
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,trees",
    [
        ("();", 1),
        ("()", 1),
        (";", 1),
        ("A;", 1),
        ("(A,B,(C,D)E)F;", 1),
        ("((A:0.1,B:0.2):0.3,C:1e-3)root:0;", 1),
        ("(A,B);\n(C,D);\n", 2),
        ("(A,B);(C,D)", 2),
        ("('quoted label',B);", 1),
        ("('it''s',B);", 1),
        ("[a comment](A[inline],B)[&&NHX:x=1];", 1),
        ("  (\n A ,\n B\n ) ;  \n", 1),
        ("(,);", 1),
        ("", 0),
        ("   \n\t", 0),
    ],
)
def test_newick_parser_counts_trees(text, trees):
    assert kinds.parse_newick(text) == trees


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "No Newick tree found"),
        ("  \n", "No Newick tree found"),
        ("[only a comment]", "No Newick tree found"),
        ("((A,B),C;", "Invalid Newick tree format: 1 opening parenthesis not closed at character 9"),
        ("((A,B),C", "Invalid Newick tree format: 1 opening parenthesis not closed at the end of the text"),
        ("(((A", "Invalid Newick tree format: 3 opening parentheses not closed at the end of the text"),
        ("(A,B));", "Invalid Newick tree format: unexpected ')' at character 6: no matching '('"),
        ("(A)(B);", "Invalid Newick tree format: unexpected '(' at character 4: a subtree must follow '(' or ','"),
        ("(A,B)C:x;", "Invalid Newick tree format: branch length must be a number at character 8"),
        ("(A:1:2);", "Invalid Newick tree format: second branch length at character 5"),
        ("(A B);", "Invalid Newick tree format: unexpected label at character 4"),
        ("A,B;", "Invalid Newick tree format: ',' outside of parentheses at character 2"),
        ("(A:", "Invalid Newick tree format: branch length missing at the end of the text"),
        ("('open,B);", "Invalid Newick tree format: unterminated quoted label starting at character 2"),
        ("(A,B)[x;", "Invalid Newick tree format: unterminated comment starting at character 6"),
        (b"(\xff);", "Invalid Newick tree format: the file is not UTF-8 text"),
    ],
)
def test_newick_messages(text, message):
    data = text if isinstance(text, bytes) else text.encode()
    assert refused("Newick tree-format file", data) == message


# ---------------------------------------------------------------------------------------
# JSON as a file, images, file names
# ---------------------------------------------------------------------------------------


def test_json_kind_files_are_decoded_and_validated(tmp_path):
    value = kinds.example_value("MPOI")
    kinds.check_file_content("Multiple points", json.dumps(value).encode())
    path = tmp_path / "points.json"
    path.write_text(json.dumps(value))
    kinds.check_file_content("MPOI", path)
    assert refused("MPOI", b"{bad") == "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    assert refused("MPOI", b"\xff\xfe") == "The file could not be decoded"
    with pytest.raises(kinds.ValueValidationError) as info:
        kinds.check_file_content("MPOI", json.dumps({**value, "points": "x"}).encode())
    assert info.value.message == "JSON does not fulfill schema: instance 'x' is not of type 'array'"
    with pytest.raises(kinds.ValueValidationError):
        kinds.check_file_content("Integer", b"5", schema={"maximum": 3})


def test_image_kinds_are_not_checked_here():
    with pytest.raises(ValueError, match="image kind"):
        kinds.check_file_content("Segmentation", b"")


@pytest.mark.parametrize("name", ["x.json", "X.PDF", "a.b.zip", "dir/thumb.jpg", "t.JPEG", "tree.newick", "t.biom", "r.sqreg"])
def test_allowed_file_names(name):
    kinds.check_file_extension(name)


@pytest.mark.parametrize("name,suffix", [("x.tar.gz", ".tar.gz"), ("x.txt", ".txt"), ("noext", ""), ("x.json.bak", ".json.bak")])
def test_refused_file_names(name, suffix):
    with pytest.raises(kinds.FileContentError) as info:
        kinds.check_file_extension(name)
    assert info.value.message == f"File of type {suffix} is not supported. Allowed types are {ALLOWED}."


def test_json_file_nested_too_deeply_is_refused_not_crashing():
    # The decoder recurses per level; ~1000 levels used to escape as RecursionError.
    with pytest.raises(kinds.FileContentError, match="nested too deeply to decode"):
        kinds.check_file_content("Anything", b"[" * 5000 + b"]" * 5000)
    with pytest.raises(kinds.ValueValidationError, match="nested 100 levels deep.*limit of 64 levels"):
        kinds.check_file_content("Multiple choice", b"[" * 100 + b"]" * 100)
    kinds.check_file_content("Anything", b"[" * 64 + b"]" * 64, schema={"type": "array"})
