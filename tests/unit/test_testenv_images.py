"""The testenv's own images (testenv/images/): the OCI writer, the image definitions, the
grand-challenge-style algorithm run as a plain script, and the C programs compiled and run.

Nothing here needs a cluster, a registry or containerd, and the slow frozen/static builds of
``build.py build`` are not run (the C programs are compiled here with the same flags, which
takes well under a second each).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import SimpleITK

from component_operator.planning.images import is_root_user
from testenv.images import build, oci

from ..conftest import REPO
from ..support import oci_images

IMAGES = REPO / "testenv" / "images"
REF = "127.0.0.1:5000/testenv/example:1"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def example(label: str = "a", tmp_path: Path | None = None) -> oci.Image:
    files = [oci.File("usr/local/bin/app", f"#!app {label}\n".encode(), mode=0o755), oci.File.dir("tmp", mode=0o1777)]
    if tmp_path is not None:
        (tmp_path / "host-file").write_bytes(b"from the host\n")
        files.append(oci.File("/etc/from-host", source=tmp_path / "host-file", uid=1000, gid=1000))
    config = oci.Config(user="1000:1000", entrypoint=["/usr/local/bin/app"], cmd=["--x"], labels={"l": label})
    return oci.image(config, [oci.layer(files)])


def blob(layout: Path, digest: str) -> bytes:
    data = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
    assert sha(data) == digest
    return data


# --- oci.py -----------------------------------------------------------------------------------


def test_same_input_same_digests_other_input_other_digests(tmp_path):
    first, second = example("a", tmp_path), example("a", tmp_path)
    assert first.digest == second.digest and first.blobs == second.blobs
    assert example("b").digest != first.digest
    assert oci.layer([oci.File("x", b"1")], compress=False).blob.media_type == oci.OCI_LAYER
    # the archive of a layout is reproducible too
    for name in ("one", "two"):
        oci.write_layout(tmp_path / name, first.blobs, [first.descriptor(annotations=oci.ref_annotations(REF))])
        oci.write_archive(tmp_path / name, tmp_path / f"{name}.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()


def test_layer_tar_is_sorted_with_parents_and_no_times_or_names(tmp_path):
    layer = example("a", tmp_path).layers[0]
    raw = gzip.decompress(layer.blob.data)
    assert layer.diff_id == sha(raw) and layer.blob.media_type == oci.OCI_LAYER_GZIP
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == ["etc", "etc/from-host", "tmp", "usr", "usr/local", "usr/local/bin", "usr/local/bin/app"]
        assert {m.mtime for m in members} == {0} and {m.uname for m in members} == {""}
        by_name = {m.name: m for m in members}
        assert by_name["tmp"].isdir() and by_name["tmp"].mode == 0o1777
        assert by_name["usr/local"].isdir() and (by_name["usr/local"].mode, by_name["usr/local"].uid) == (0o755, 0)
        assert (by_name["usr/local/bin/app"].mode, by_name["etc/from-host"].uid) == (0o755, 1000)
        assert tar.extractfile("etc/from-host").read() == b"from the host\n"
    with pytest.raises(ValueError):
        oci.layer([oci.File("../escape", b"")])


def test_layout_is_consistent(tmp_path):
    image = example("a")
    layout = tmp_path / "layout"
    top = oci.write_layout(layout, image.blobs, [image.descriptor(annotations=oci.ref_annotations(REF))])
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_bytes())
    assert sha((layout / "index.json").read_bytes()) == top.digest and index["mediaType"] == oci.OCI_INDEX
    (desc,) = index["manifests"]
    assert desc["digest"] == image.digest and desc["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads(blob(layout, desc["digest"]))
    assert len(blob(layout, desc["digest"])) == desc["size"] and manifest["mediaType"] == desc["mediaType"] == oci.OCI_MANIFEST
    config = json.loads(blob(layout, manifest["config"]["digest"]))
    assert manifest["config"]["mediaType"] == oci.OCI_CONFIG
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"] == {"User": "1000:1000", "Entrypoint": ["/usr/local/bin/app"], "Cmd": ["--x"], "Labels": {"l": "a"},
                                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "WorkingDir": "/"}  # fmt: skip
    diff_ids = [sha(gzip.decompress(blob(layout, layer["digest"]))) for layer in manifest["layers"]]
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    assert len(config["history"]) == len(diff_ids)
    assert image.size == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def test_archive_names_the_image_for_ctr_import(tmp_path):
    image = example("a")
    oci.write_layout(tmp_path / "layout", image.blobs, [image.descriptor(annotations=oci.ref_annotations(REF))])
    archive = oci.write_archive(tmp_path / "layout", tmp_path / "image.tar")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert names[:4] == ["oci-layout", "index.json", "blobs", "blobs/sha256"]
        assert sorted(names[4:]) == sorted(f"blobs/sha256/{b.digest[7:]}" for b in image.blobs)
        index = json.load(tar.extractfile("index.json"))
    assert index["manifests"][0]["annotations"] == {"io.containerd.image.name": REF, "org.opencontainers.image.ref.name": "1"}
    assert oci.ref_annotations("localhost:5000/a/b")[oci.OCI_REF_NAME] == "latest"


# --- build.py ---------------------------------------------------------------------------------


def test_image_definitions(tmp_path):
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x7fELF not really")
    entries = {}
    for definition in build.definitions():
        entry = build.write_image(definition, binary, "reg.example:5000", tmp_path / "work", tmp_path / "out")
        entries[definition.name] = entry
        layout = tmp_path / "work" / definition.name
        manifest = json.loads(blob(layout, entry["digest"]))
        config = json.loads(blob(layout, manifest["config"]["digest"]))["config"]
        assert config["Entrypoint"] == [definition.entrypoint]
        assert is_root_user(config["User"]) == (definition.name == "runs-as-root"), definition.name
        with tarfile.open(tmp_path / "work" / f"{definition.name}.tar") as tar:
            index = json.load(tar.extractfile("index.json"))
        assert index["manifests"][0]["annotations"][oci.CONTAINERD_NAME] == entry["tag_ref"] == entry["ref"]
        assert entry["digest_ref"] == f"{entry['repository']}@{entry['digest']}"
        assert entry["tar"] == str(tmp_path / "out" / f"{definition.name}.tar")
    assert set(entries) == {"pause", "component-operator", "gc-algorithm", "memory-hog", "sleeper", "fail", "hello", "runs-as-root"}
    assert entries["pause"]["ref"] == "localhost/testenv/pause:1" and not entries["pause"]["pushed"]
    assert entries["gc-algorithm"]["ref"] == "reg.example:5000/testenv/gc-algorithm:1" and entries["gc-algorithm"]["pushed"]
    assert entries["component-operator"]["ref"] == "reg.example:5000/testenv/component-operator:0.1.0"
    users = {d.name: d.user for d in build.definitions()}
    assert (users["pause"], users["component-operator"], users["sleeper"]) == ("65535:65535", "65532:65532", "1000:1000")


def test_tests_support_images_use_the_same_writer():
    good, other = oci_images.ImageSpec(label="good").build(), oci_images.ImageSpec(label="other").build()
    assert good.digest == oci_images.ImageSpec(label="good").build().digest != other.digest
    config = json.loads(good.config.data)
    assert config["config"]["Labels"] == {"test.variant": "good"} and config["config"]["Entrypoint"] == ["/bin/algorithm"]
    arm = oci_images.ImageSpec(architecture="arm64", variant="v8").build()
    assert arm.platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}


# --- the algorithm, as a plain Python script --------------------------------------------------


def gc_inputs(root: Path) -> None:
    entries = [
        {"interface": {"slug": "age", "relative_path": "age.json", "super_kind": "Value", "kind": "Integer"}, "value": 7},
        {"interface": {"slug": "box", "relative_path": "sub/box.json", "super_kind": "Value", "kind": "2D bounding box"},
         "value": None},
        {"interface": {"slug": "flag", "relative_path": "flag.json", "super_kind": "Value", "kind": "Bool"}, "value": True},
        {"interface": {"slug": "ct", "relative_path": "images/ct", "super_kind": "Image", "kind": "Image"}, "value": None,
         "image": {"pk": None, "name": "s3://b/ct.mha"}},
    ]  # fmt: skip
    (root / "sub").mkdir(parents=True)
    (root / "inputs.json").write_text(json.dumps(entries))
    (root / "age.json").write_text("7")
    (root / "sub" / "box.json").write_text(json.dumps({"corners": [[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0]], "name": "b"}))


def test_gc_algorithm_reads_inputs_and_writes_json_csv_and_mha(tmp_path):
    gc_inputs(tmp_path / "in")
    proc = subprocess.run([sys.executable, str(IMAGES / "algorithms" / "gc_algorithm.py"), "--input", str(tmp_path / "in"),
                           "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "box: read 2D bounding box" in proc.stdout and proc.stderr.strip() == "gc-algorithm: finished"
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["algorithm"] == "gc-algorithm" and set(result["inputs"]) == {"age", "box", "flag"}
    assert result["inputs"]["age"] == 7 and result["inputs"]["flag"] is True
    assert result["score"] == round(13 / 14, 6)  # |7| + corners' 6 = 13; booleans do not count
    with open(tmp_path / "out" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["input"] for r in rows] == ["age", "box", "flag", "all"] and rows[-1]["numbers"] == "13"
    image = SimpleITK.ReadImage(str(tmp_path / "out" / "images" / "probability-map" / "probability-map.mha"))
    assert image.GetSize() == (8, 8, 1) and image.GetPixelID() == SimpleITK.sitkFloat32
    voxels = SimpleITK.GetArrayFromImage(image)
    assert 0 < voxels.min() <= voxels.max() <= 1


def test_gc_algorithm_without_inputs_fails_with_a_message(tmp_path):
    proc = subprocess.run([sys.executable, str(IMAGES / "algorithms" / "gc_algorithm.py"), "--input", str(tmp_path),
                           "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 1 and "gc-algorithm: error:" in proc.stderr and "inputs.json" in proc.stderr


# --- the C programs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    """The C programs compiled as build.py compiles them (static); fails without gcc."""
    if shutil.which(build.CC[0]) is None:
        pytest.fail(f"{build.CC[0]} is required to test testenv/images' C programs (and to build the images)", pytrace=False)
    out = tmp_path_factory.mktemp("programs")
    sources = {"pause": IMAGES / "pause" / "pause.c", **{p.stem: p for p in (IMAGES / "algorithms").glob("*.c")}}
    for name, source in sources.items():
        proc = subprocess.run([*build.CC, "-o", str(out / name), str(source)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", f"{name}: compiler warnings:\n{proc.stderr}"
    return {name: out / name for name in sources}


def test_pause(programs):
    assert subprocess.run([programs["pause"], "-v"], capture_output=True, text=True).stdout.startswith("testenv-pause ")
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([programs["pause"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert "warning: not running as PID 1" in proc.stderr.readline()  # printed once the handlers are set
        time.sleep(0.1)
        assert proc.poll() is None
        proc.send_signal(sig)
        proc.communicate(timeout=5)
        assert proc.returncode == 0


def test_sleeper(programs):
    done = subprocess.run([programs["sleeper"], "0"], capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout) == (0, "sleeper: sleeping 0 seconds\nsleeper: done\n")
    proc = subprocess.Popen([programs["sleeper"]], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "sleeper: sleeping 3600 seconds\n"  # printed once the handler is set
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=5)
    assert proc.returncode == 143 and "terminated" in out
    assert subprocess.run([programs["sleeper"], "soon"], capture_output=True).returncode == 2


def test_fail(programs):
    default = subprocess.run([programs["fail"]], capture_output=True, text=True, timeout=10)
    assert default.returncode == 3 and default.stdout.startswith("fail: ")
    assert default.stderr.splitlines()[-1] == "error: could not segment: input volume is empty"
    custom = subprocess.run([programs["fail"], "error: no lesions"], capture_output=True, text=True, timeout=10)
    assert (custom.returncode, custom.stderr) == (3, "error: no lesions\n")


def test_memory_hog_touches_memory_until_stopped(programs):
    limit = 128 << 20  # an address-space limit makes malloc fail instead of waiting for the OOM killer

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run([programs["memory_hog"]], capture_output=True, text=True, timeout=30, preexec_fn=limited)
    lines = proc.stdout.splitlines()
    assert lines[1:4] == [f"memory-hog: {n} MiB allocated and touched" for n in (16, 32, 48)]
    assert proc.returncode == 1 and "allocation refused after" in proc.stderr
