"""Staging safety in ``agent prepare`` (no object storage needed).

We test these aspects: ZIP extraction as grand-challenge's shim does it (common prefix
stripped, ``__MACOSX``/``.DS_Store``/``desktop.ini`` dropped) and every refusal with its
message (absolute names, ``..``, symbolic links leaving the directory, too many entries, too
many bytes, damaged archives, overwriting); tarballs through the ``data`` filter; the
``maxInputBytes`` budget message; installing the agent; resetting the input directory.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from component_operator.agent import prepare as prep
from component_operator.agent.prepare import MSG_ZIP_EXTRACT, MSG_ZIP_TOO_LARGE, PrepareError


def make_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def extract(tmp_path: Path, members, links=None, *, max_bytes=10**6, max_entries=100) -> tuple[Path, int]:
    src = make_zip(tmp_path / "in.zip", members, links)
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    written = prep.safe_extract_zip(src, dest, max_bytes=max_bytes, max_entries=max_entries)
    return dest, written


def files_below(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def test_common_prefix_and_junk_are_removed(tmp_path):
    dest, written = extract(tmp_path, {
        "study/a.txt": b"a", "study/sub/b.txt": b"bb", "__MACOSX/study/._a.txt": b"x", "study/.DS_Store": b"x",
        "study/desktop.ini": b"x",
    })
    assert files_below(dest) == ["a.txt", "sub/b.txt"]
    assert (dest / "sub/b.txt").read_bytes() == b"bb"
    assert written == 3


def test_a_single_file_loses_its_directory(tmp_path):
    dest, _ = extract(tmp_path, {"deep/dir/only.csv": b"x,y\n"})
    assert files_below(dest) == ["only.csv"]


def test_no_common_prefix(tmp_path):
    dest, _ = extract(tmp_path, {"a/x.txt": b"1", "b/y.txt": b"2"})
    assert files_below(dest) == ["a/x.txt", "b/y.txt"]


@pytest.mark.parametrize(
    "name, why",
    [("../evil.txt", "contains '..'"), ("ok/../../evil.txt", "contains '..'"), ("/etc/evil", "is an absolute path"),
     ("..\\evil.txt", "contains '..'"), ("C:/evil.txt", "is an absolute path")],
)
def test_zip_slip_is_refused_before_anything_is_written(tmp_path, name, why):
    with pytest.raises(PrepareError) as err:
        extract(tmp_path, {"fine.txt": b"1", name: b"evil"})
    assert err.value.message == MSG_ZIP_EXTRACT
    assert f"member {name!r} {why}" in err.value.detail
    assert not (tmp_path / "evil.txt").exists()
    assert files_below(tmp_path / "dest") == []


def test_symbolic_links_leaving_the_directory_are_refused(tmp_path):
    with pytest.raises(PrepareError) as err:
        extract(tmp_path, {"d/a.txt": b"1", "d/b.txt": b"2"}, links={"d/passwd": "../../../etc/passwd"})
    assert err.value.message == MSG_ZIP_EXTRACT
    assert "is a symbolic link to '../../../etc/passwd', outside the archive" in err.value.detail
    with pytest.raises(PrepareError, match="outside the archive"):
        extract(tmp_path, {"a.txt": b"1"}, links={"abs": "/etc/passwd"})


def test_symbolic_links_inside_the_directory_are_kept(tmp_path):
    dest, _ = extract(tmp_path, {"d/a.txt": b"1", "d/sub/b.txt": b"2"}, links={"d/sub/link": "../a.txt"})
    assert os.readlink(dest / "sub/link") == "../a.txt"
    assert (dest / "sub/link").read_bytes() == b"1"


def test_too_many_entries(tmp_path):
    with pytest.raises(PrepareError) as err:
        extract(tmp_path, {f"f{i}.txt": b"" for i in range(6)}, max_entries=5)
    assert err.value.message == MSG_ZIP_TOO_LARGE
    assert "the archive has 6 entries, more than the limit of 5 (maxZipEntries)" in err.value.detail


def test_too_many_bytes(tmp_path):
    with pytest.raises(PrepareError) as err:
        extract(tmp_path, {"zeros.bin": bytes(5000)}, max_bytes=4096)
    assert err.value.message == MSG_ZIP_TOO_LARGE
    assert "unpacks to 5000 bytes, more than the 4096 bytes left" in err.value.detail
    assert files_below(tmp_path / "dest") == []


def test_not_a_zip_and_damaged_zip(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "bad.zip").write_bytes(b"this is not a zip file")
    with pytest.raises(PrepareError) as err:
        prep.safe_extract_zip(tmp_path / "bad.zip", tmp_path / "dest", max_bytes=100, max_entries=10)
    assert err.value.message == MSG_ZIP_EXTRACT and "not a readable ZIP archive" in err.value.detail
    # Flip a byte of the compressed data: the CRC check fails.
    good = make_zip(tmp_path / "good.zip", {"a.txt": b"hello world " * 100})
    data = bytearray(good.read_bytes())
    data[40] ^= 0xFF
    good.write_bytes(bytes(data))
    with pytest.raises(PrepareError) as err:
        prep.safe_extract_zip(good, tmp_path / "dest", max_bytes=10**6, max_entries=10)
    assert err.value.message == MSG_ZIP_EXTRACT


def test_existing_files_are_not_overwritten(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").write_text("staged before")
    src = make_zip(tmp_path / "in.zip", {"a.txt": b"zip"})
    with pytest.raises(PrepareError, match="would overwrite"):
        prep.safe_extract_zip(src, dest, max_bytes=100, max_entries=10)
    assert (dest / "a.txt").read_text() == "staged before"


def test_writing_through_a_symlinked_directory_is_refused(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    src = make_zip(tmp_path / "in.zip", {"sub/x.txt": b"1", "y.txt": b"2"})
    with pytest.raises(PrepareError, match="outside"):
        prep.safe_extract_zip(src, dest, max_bytes=100, max_entries=10)
    assert list(outside.iterdir()) == []


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tarball_is_extracted(tmp_path):
    src = make_tar(tmp_path / "model.tar.gz", {"weights/model.bin": b"w" * 10, "config.json": b"{}"})
    size = prep.safe_extract_tarball(src, tmp_path / "model", max_bytes=100, message=prep.MSG_MODEL)
    assert size == 12
    assert (tmp_path / "model/weights/model.bin").read_bytes() == b"w" * 10


def test_tarball_members_outside_are_refused_by_the_data_filter(tmp_path):
    src = make_tar(tmp_path / "model.tar.gz", {"../escape.txt": b"x"})
    with pytest.raises(PrepareError) as err:
        prep.safe_extract_tarball(src, tmp_path / "model", max_bytes=100, message=prep.MSG_MODEL)
    assert err.value.message == "Could not set up model: Tarfile could not be extracted"
    assert "OutsideDestinationError" in err.value.detail
    assert not (tmp_path / "escape.txt").exists()
    with tarfile.open(tmp_path / "link.tar.gz", "w:gz") as tar:
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(PrepareError, match="AbsoluteLinkError"):
        prep.safe_extract_tarball(tmp_path / "link.tar.gz", tmp_path / "model2", max_bytes=100, message=prep.MSG_MODEL)


def test_tarball_absolute_names_land_inside(tmp_path):
    src = make_tar(tmp_path / "model.tar.gz", {"/abs.txt": b"x"})
    prep.safe_extract_tarball(src, tmp_path / "model", max_bytes=100, message=prep.MSG_MODEL)
    assert (tmp_path / "model" / "abs.txt").read_bytes() == b"x"


def test_tarball_limits_and_damage(tmp_path):
    src = make_tar(tmp_path / "gt.tar.gz", {"a": b"x" * 50})
    with pytest.raises(PrepareError) as err:
        prep.safe_extract_tarball(src, tmp_path / "gt", max_bytes=10, message=prep.MSG_GROUND_TRUTH)
    assert err.value.message == "Could not set up ground truth: Tarfile could not be extracted"
    assert "unpacks to 50 bytes, more than the limit of 10 bytes" in err.value.detail
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(PrepareError, match="Tarfile could not be extracted"):
        prep.safe_extract_tarball(tmp_path / "bad.tar.gz", tmp_path / "gt", max_bytes=10, message=prep.MSG_GROUND_TRUTH)


def test_budget_names_the_total_and_the_largest_input():
    budget = prep.Budget(limit=100)
    budget.charge(60, "input 'a' (s3://b/a)")
    with pytest.raises(PrepareError) as err:
        budget.charge(70, "input 'c' (s3://b/c)", "c")
    assert err.value.message == "The inputs are too large: 130 bytes, more than the limit of 100 bytes"
    assert "the largest is input 'c' (s3://b/c) (70 bytes)" in err.value.detail
    assert err.value.interface == "c"


def test_install_agent_writes_a_wrapper_when_not_frozen(tmp_path):
    path = prep.install_agent(tmp_path / "agent-dir")
    assert path == tmp_path / "agent-dir" / "agent"
    assert stat.S_IMODE(path.stat().st_mode) == 0o555
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n") and "-m component_operator.cli agent" in text
    # Installing twice (a restarted init container) replaces it.
    assert prep.install_agent(tmp_path / "agent-dir") == path


def test_reset_directory(tmp_path):
    root = tmp_path / "input"
    (root / "old/deep").mkdir(parents=True)
    (root / "old/deep/f").write_text("x")
    (root / "link").symlink_to(tmp_path)
    prep.reset_directory(root)
    assert root.is_dir() and list(root.iterdir()) == []
    assert tmp_path.exists()


class FakeStore:
    """download_file over a dict of objects, as ObjectStore does it."""

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects

    def download_file(self, uri, path, *, max_bytes=None, sha256=False):
        import hashlib

        from component_operator.adapters.s3 import ObjectNotFoundError, ObjectTooLargeError

        if uri not in self.objects:
            raise ObjectNotFoundError(f"{uri}: NoSuchKey", uri=uri, code="NoSuchKey")
        data = self.objects[uri]
        if max_bytes is not None and len(data) > max_bytes:
            raise ObjectTooLargeError(uri, len(data), max_bytes)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
        return len(data), hashlib.sha256(data).hexdigest() if sha256 else None


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def run_prepare(tmp_path, inputs, objects, **extra):
    from component_operator.agent.invocation import Invocation, Roots
    from component_operator.agent.logs import AgentLog

    invocation = Invocation.model_validate({
        "jobId": "ns/j/u/0", "inputs": inputs, "inputsJson": [{"x": 1}], "outputPrefix": "s3://outputs/p/",
        "resultUri": "s3://outputs/r.json", "timeLimitSeconds": 10, **extra,
    })
    roots = Roots(input=tmp_path / "input", output=tmp_path / "output", model=tmp_path / "model",
                  ground_truth=tmp_path / "gt", agent_dir=tmp_path / "agent")
    out = io.StringIO()
    used = prep.prepare(invocation, FakeStore(objects), roots, AgentLog("t", stdout=out, stderr=out))
    return roots, used


def test_prepare_stages_every_kind_of_input(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("weights.bin")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"www"))
    objects = {"s3://inputs/t.csv": b"a,b\n", "s3://inputs/img/ct.mha": b"MHA", "s3://inputs/z.zip": zip_bytes(
        {"top/x.txt": b"x", "top/y.txt": b"yy"}), "s3://inputs/model.tar.gz": buffer.getvalue()}
    inputs = [
        {"interface": "v", "relativePath": "v.json", "superKind": "Value", "kind": "JSON", "value": {"a": [1]}},
        {"interface": "t", "relativePath": "t.csv", "prefix": "job-1/output", "superKind": "File", "kind": "CSV",
         "source": "s3://inputs/t.csv"},
        {"interface": "ct", "relativePath": "images/ct", "superKind": "Image", "kind": "IMG",
         "source": "s3://inputs/img/ct.mha"},
        {"interface": "z", "relativePath": "bundle/z.zip", "superKind": "File", "kind": "ZIP",
         "source": "s3://inputs/z.zip", "decompress": True},
    ]
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "stale-from-before").write_text("old")
    roots, used = run_prepare(tmp_path, inputs, objects, model="s3://inputs/model.tar.gz")
    assert files_below(roots.input) == ["bundle/x.txt", "bundle/y.txt", "images/ct/ct.mha", "inputs.json",
                                        "job-1/output/t.csv", "v.json"]
    assert (roots.input / "v.json").read_text() == '{"a": [1]}'
    assert (roots.input / "inputs.json").read_text() == '[{"x": 1}]'
    assert (roots.model / "weights.bin").read_bytes() == b"www"
    assert used == len('{"a": [1]}') + 4 + 3 + 3
    assert [p.name for p in roots.agent_dir.iterdir()] == ["agent"]  # the staging area is gone


def test_prepare_refuses_collisions(tmp_path):
    objects = {"s3://inputs/z.zip": zip_bytes({"v.json": b"from the zip", "other.txt": b"1"})}
    inputs = [
        {"interface": "z", "relativePath": "z.zip", "superKind": "File", "kind": "ZIP", "source": "s3://inputs/z.zip",
         "decompress": True},
        {"interface": "v", "relativePath": "v.json", "superKind": "Value", "kind": "JSON", "value": 1},
    ]
    with pytest.raises(PrepareError) as err:
        run_prepare(tmp_path / "a", inputs, objects)
    assert err.value.message == "Input 'v' could not be staged" and "already exists" in err.value.detail
    objects = {"s3://inputs/z.zip": zip_bytes({"inputs.json": b"[]", "other.txt": b"1"})}
    with pytest.raises(PrepareError, match="inputs.json could not be written"):
        run_prepare(tmp_path / "b", inputs[:1], objects)


def test_prepare_reports_a_missing_input(tmp_path):
    inputs = [{"interface": "t", "relativePath": "t.csv", "superKind": "File", "kind": "CSV",
               "source": "s3://inputs/gone.csv"}]
    with pytest.raises(PrepareError) as err:
        run_prepare(tmp_path, inputs, {})
    assert err.value.message == "Input 't' could not be found in object storage"
    assert err.value.interface == "t"


def test_install_agent_copies_a_shipped_static_binary(tmp_path, monkeypatch):
    shipped = tmp_path / "component-operator-agent"
    shipped.write_bytes(b"\x7fELF static agent")
    monkeypatch.setenv("COMPONENT_OPERATOR_AGENT_BINARY", str(shipped))
    path = prep.install_agent(tmp_path / "agent-dir")
    assert path.read_bytes() == shipped.read_bytes() and stat.S_IMODE(path.stat().st_mode) == 0o555
    monkeypatch.setenv("COMPONENT_OPERATOR_AGENT_BINARY", str(tmp_path / "missing"))
    with pytest.raises(PrepareError, match="The agent could not be installed"):
        prep.install_agent(tmp_path / "agent-dir-2")
