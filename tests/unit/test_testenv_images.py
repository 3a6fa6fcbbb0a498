"""The testenv's own images (testenv/images/): the OCI writer (layers of files and of whole
directory trees, tree diffs, unpacking), the image definitions (the operator's three-layer
image, its base image, the single-binary images), the top-level Dockerfile's agreement with
them, the grand-challenge-style algorithm run as a plain script, and the C programs compiled
and run.

Nothing here needs root, a cluster, a registry or containerd, and the slow parts of
``build.py build`` (debootstrap, the virtualenv, the frozen/static builds) are not run: the
trees are small temporary ones (the C programs are compiled here with the same flags, which
takes well under a second each).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import resource
import stat
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


def make_tree(root: Path) -> Path:
    """A small root filesystem: modes, a sticky directory, symbolic and hard links, names that
    sort differently by path and by directory walk (``a-b`` before ``a/``)."""
    for d in ("a/sub", "tmp", "usr/bin", "private"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "private").chmod(0o700)
    (root / "a/sub/data").write_bytes(b"data\n")
    (root / "a-b").write_bytes(b"first of the hard links\n")
    os.link(root / "a-b", root / "a/hard")
    (root / "usr/bin/tool").write_bytes(b"#!/bin/sh\n")
    (root / "usr/bin/tool").chmod(0o4755)
    (root / "bin").symlink_to("usr/bin")
    (root / "usr/bin/dangling").symlink_to("/nowhere/at/all")
    return root


def members(layer: oci.Layer) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer.blob.data)) as tar:
        found = tar.getmembers()
    names = [m.name for m in found]
    assert names == sorted(names) and {m.mtime for m in found} == {0} and {m.uname for m in found} | {m.gname for m in found} == {""}
    return {m.name: m for m in found}


def test_tree_layer_keeps_modes_links_and_owners_and_is_deterministic(tmp_path):
    root = make_tree(tmp_path / "root")
    first = oci.write_layer(oci.tree(root), tmp_path / "one.tar.gz")
    os.utime(root / "a/sub/data", (1e9, 1e9))  # times do not count
    second = oci.write_layer(oci.tree(root), tmp_path / "two.tar.gz")
    assert (first.blob.digest, first.diff_id) == (second.blob.digest, second.diff_id)
    assert first.blob.size == (tmp_path / "one.tar.gz").stat().st_size and first.blob.media_type == oci.OCI_LAYER_GZIP
    in_memory = oci.layer(oci.tree(root), level=6)  # the same bytes, streamed or not
    assert in_memory.blob.data == (tmp_path / "one.tar.gz").read_bytes()
    assert oci.sha256(gzip.decompress(in_memory.blob.data)) == first.diff_id
    by_name = members(first)
    assert list(by_name) == ["a", "a-b", "a/hard", "a/sub", "a/sub/data", "bin", "private", "tmp", "usr", "usr/bin",
                             "usr/bin/dangling", "usr/bin/tool"]  # fmt: skip
    assert by_name["a-b"].isfile() and by_name["a/hard"].islnk() and by_name["a/hard"].linkname == "a-b"
    assert by_name["bin"].issym() and by_name["bin"].linkname == "usr/bin"
    assert by_name["usr/bin/dangling"].linkname == "/nowhere/at/all"
    assert by_name["tmp"].mode == 0o1777 and by_name["private"].mode == 0o700 and by_name["usr/bin/tool"].mode == 0o4755
    assert {(m.uid, m.gid) for m in by_name.values()} == {(os.getuid(), os.getgid())}  # numeric, as on disk
    prefixed = {f.name for f in oci.tree(root / "a", prefix="opt/x")}
    assert prefixed == {"opt/x", "opt/x/hard", "opt/x/sub", "opt/x/sub/data"}


def test_tree_refuses_special_files_unless_excluded(tmp_path):
    root = make_tree(tmp_path / "root")
    (root / "dev").mkdir()
    os.mkfifo(root / "dev" / "fifo")
    with pytest.raises(ValueError, match="fifo"):
        oci.tree(root)
    names = {f.name for f in oci.tree(root, exclude=("dev/*",))}
    assert "dev" in names and "dev/fifo" not in names


def test_hard_link_must_follow_its_target():
    with pytest.raises(ValueError, match="hard link"):
        oci.layer([oci.File("b", hardlink="a"), oci.File.dir("a")])  # "a" sorts first, but is not a regular file
    assert members(oci.layer([oci.File("b", hardlink="a"), oci.File("a", b"x")]))["b"].linkname == "a"
    with pytest.raises(ValueError, match="hard link"):
        oci.layer([oci.File("a", hardlink="z"), oci.File("z", b"x")])


def test_diff_layer_holds_changes_and_whiteouts_and_unpacks_to_the_upper_tree(tmp_path):
    lower = make_tree(tmp_path / "lower")
    (lower / "gone/deep").mkdir(parents=True)
    (lower / "gone/deep/file").write_bytes(b"x")
    (lower / "usr/bin/old").write_bytes(b"old")
    (lower / "was-a-dir").mkdir()
    (lower / "was-a-dir/child").write_bytes(b"c")
    upper = tmp_path / "upper"
    shutil.copytree(lower, upper, symlinks=True)
    (upper / "a-b").unlink()
    os.link(upper / "a/hard", upper / "a-b")  # copytree broke the hard link; keep it one
    shutil.rmtree(upper / "gone")
    (upper / "usr/bin/old").unlink()
    (upper / "usr/bin/tool").write_bytes(b"#!/bin/bash")  # same size, other content
    (upper / "a/sub/data").chmod(0o600)
    (upper / "tmp/new").write_bytes(b"new\n")
    shutil.rmtree(upper / "was-a-dir")
    (upper / "was-a-dir").write_bytes(b"now a file")
    files = oci.diff(lower, upper)
    by_name = {f.name: f for f in files}
    assert set(by_name) == {"a", "a/sub", "a/sub/data", "usr", "usr/bin", "usr/bin/tool", "usr/bin/.wh.old", "tmp", "tmp/new",
                            ".wh.gone", "was-a-dir"}  # fmt: skip
    assert by_name["tmp"].directory and by_name["tmp"].mode == 0o1777  # parents as they are above
    assert by_name[".wh.gone"].data == b"" and by_name["a/sub/data"].mode == 0o600

    base = oci.layer(oci.tree(lower))
    change = oci.write_layer(files, tmp_path / "diff.tar.gz")
    image = oci.image(oci.Config(), [base, change])
    oci.write_layout(tmp_path / "layout", image.blobs, [image.descriptor(annotations=oci.ref_annotations(REF))])
    assert os.stat(tmp_path / "layout/blobs/sha256" / change.blob.digest[7:]).st_ino == os.stat(tmp_path / "diff.tar.gz").st_ino
    config = oci.unpack(tmp_path / "layout", tmp_path / "unpacked")
    assert config["rootfs"]["diff_ids"] == [base.diff_id, change.diff_id]

    def listing(root: Path) -> dict:
        found = {}
        for path in sorted(root.rglob("*")):
            st = path.lstat()
            kind = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else "dir"
            found[path.relative_to(root).as_posix()] = (stat.S_IMODE(st.st_mode), kind)
        return found

    assert listing(tmp_path / "unpacked") == listing(upper)
    assert os.stat(tmp_path / "unpacked/a-b").st_ino == os.stat(tmp_path / "unpacked/a/hard").st_ino


def test_per_layer_history():
    layers = [small_layer("one"), small_layer("two")]
    config = json.loads(oci.image(oci.Config(history=["first", "second"]), layers).config.data)
    assert [h["created_by"] for h in config["history"]] == ["first", "second"]
    with pytest.raises(ValueError, match="history"):
        oci.image(oci.Config(history=["only one"]), layers)


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
        assert config["Entrypoint"] == [definition.entrypoint] and len(manifest["layers"]) == 1
        assert is_root_user(config["User"]) == (definition.name == "runs-as-root"), definition.name
        with tarfile.open(tmp_path / "work" / f"{definition.name}.tar") as tar:
            index = json.load(tar.extractfile("index.json"))
        assert index["manifests"][0]["annotations"][oci.CONTAINERD_NAME] == entry["tag_ref"] == entry["ref"]
        assert entry["digest_ref"] == f"{entry['repository']}@{entry['digest']}"
        assert entry["tar"] == str(tmp_path / "out" / f"{definition.name}.tar") and entry["imported"]
    assert set(entries) == {"pause", "gc-algorithm", "memory-hog", "sleeper", "fail", "hello", "runs-as-root"}
    assert entries["pause"]["ref"] == "localhost/testenv/pause:1" and not entries["pause"]["pushed"]
    assert entries["gc-algorithm"]["ref"] == "reg.example:5000/testenv/gc-algorithm:1" and entries["gc-algorithm"]["pushed"]
    users = {d.name: d.user for d in build.definitions()}
    assert (users["pause"], users["sleeper"]) == ("65535:65535", "1000:1000")


def small_layer(name: str) -> oci.Layer:
    return oci.layer([oci.File(f"{name}/file", f"{name}\n".encode())])


def test_operator_image_is_base_venv_agent_and_runs_as_65532(tmp_path):
    agent = tmp_path / "agent"
    agent.write_bytes(b"\x7fELF the agent")
    base, venv = small_layer("base"), small_layer("opt")
    image = build.operator_image("9.8.7", "k3y", base, venv, agent)
    assert [layer.blob.digest for layer in image.layers[:2]] == [base.blob.digest, venv.blob.digest]
    layout = tmp_path / "layout"
    entry = build.write_entry(build.OPERATOR, "9.8.7", image, "reg.example:5000", tmp_path, tmp_path / "out")
    assert entry["ref"] == "reg.example:5000/testenv/component-operator:9.8.7" and entry["pushed"] and entry["imported"]
    layout = tmp_path / build.OPERATOR
    manifest = json.loads(blob(layout, entry["digest"]))
    document = json.loads(blob(layout, manifest["config"]["digest"]))
    config = document["config"]
    assert config["User"] == "65532:65532" and not is_root_user(config["User"])
    assert re.fullmatch(r"\d+:\d+", config["User"])  # numeric: the kubelet can check runAsNonRoot
    assert config["Entrypoint"] == ["/opt/venv/bin/component-operator"] and config["Cmd"] == ["run"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].split(":")[0] == "/opt/venv/bin" and "/usr/bin" in env["PATH"].split(":")
    assert (env["PYTHONUNBUFFERED"], env["PYTHONDONTWRITEBYTECODE"]) == ("1", "1")
    assert config["Labels"]["org.opencontainers.image.version"] == "9.8.7"
    assert len(manifest["layers"]) == len(document["rootfs"]["diff_ids"]) == len(document["history"]) == 3
    assert "venv" in document["history"][1]["created_by"]
    with tarfile.open(fileobj=io.BytesIO(blob(layout, manifest["layers"][2]["digest"]))) as tar:
        member = tar.getmember("usr/local/bin/component-operator-agent")
        assert member.mode == 0o755 and tar.extractfile(member).read() == b"\x7fELF the agent"
        assert [m.name for m in tar.getmembers()] == ["usr", "usr/local", "usr/local/bin", "usr/local/bin/component-operator-agent"]


def test_base_image_shares_the_operator_images_first_layer(tmp_path):
    base, tools = small_layer("base"), small_layer("tools")
    image = build.base_image("k3y", base, tools)
    operator = build.operator_image("1", "k3y", base, small_layer("opt"), Path(__file__))
    assert image.layers[0].blob.digest == operator.layers[0].blob.digest  # pushed once
    entry = build.write_entry(build.BASE, "k3y", image, "reg.example:5000", tmp_path, tmp_path / "out", imported=False)
    assert entry["ref"] == "reg.example:5000/testenv/component-operator-base:k3y" and entry["pushed"] and not entry["imported"]
    config = json.loads(image.config.data)
    assert config["config"]["User"] == "0:0" and config["config"]["Cmd"] == ["/bin/bash"] and len(config["history"]) == 2


def test_import_skips_images_not_meant_for_containerd(monkeypatch):
    calls = []
    monkeypatch.setattr(build, "run", lambda cmd, **kw: calls.append(cmd) or "a:1\na@sha256:1\n")
    document = {"images": [{"tag_ref": "a:1", "digest_ref": "a@sha256:1", "tar": "a.tar", "imported": True},
                           {"tag_ref": "b:1", "digest_ref": "b@sha256:2", "tar": "b.tar", "imported": False}]}
    build.import_images(document, "/run/containerd.sock", "ctr")
    assert [c[6:] for c in calls if "import" in c] == [["import", "--platform", "linux/amd64", "a.tar"]]


def test_apt_mirror_comes_from_the_system_configuration(tmp_path):
    sources = tmp_path / "debian.sources"
    sources.write_text("""Types: deb
# http://snapshot.example/archive
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
""")
    assert build.apt_mirror((sources,)) == ("http://mirror.example/debian", "/usr/share/keyrings/debian-archive-keyring.gpg")
    listing = tmp_path / "sources.list"
    listing.write_text("# a comment\ndeb [arch=amd64 signed-by=/k.gpg] http://other.example/debian bookworm main contrib\n")
    assert build.apt_mirror((tmp_path / "missing.sources", listing)) == ("http://other.example/debian", "/k.gpg")
    with pytest.raises(build.BuildError, match="no Debian mirror"):
        build.apt_mirror((sources,), suite="trixie")


def test_clean_rootfs_keeps_copyrights_and_drops_lists_logs_docs(tmp_path):
    files = ["var/lib/apt/lists/deb.example_Packages", "var/log/dpkg.log", "var/log/apt/history.log", "etc/passwd-",
             "usr/share/doc/bash/copyright", "usr/share/doc/bash/README.gz", "usr/share/man/man1/bash.1.gz",
             "usr/share/locale/de/LC_MESSAGES/bash.mo", "etc/hostname", "etc/resolv.conf", "etc/passwd", "usr/bin/bash"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "tmp").mkdir()
    build.clean_rootfs(tmp_path)
    left = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {"usr/share/doc/bash/copyright", "etc/passwd", "usr/bin/bash", "etc/resolv.conf", "etc/hosts"}
    assert (tmp_path / "etc/resolv.conf").read_text() == "" and stat.S_IMODE((tmp_path / "tmp").stat().st_mode) == 0o1777


def test_project_sources_are_what_the_wheel_is_built_from():
    sources = [p.relative_to(REPO).as_posix() for p in build.project_sources()]
    assert sources[:2] == ["pyproject.toml", "README.md"] and "operator/component_operator/cli.py" in sources
    assert not [s for s in sources if "__pycache__" in s or ".egg-info" in s]


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the top-level Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    return [(m[1].upper(), m[2].strip()) for m in re.finditer(r"^(?!#)(\w+)\s+(.*)$", text, re.MULTILINE)]


def test_dockerfile_builds_the_same_image_as_build_py():
    instructions = dockerfile()
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM"):]
    assert ("ARG", "BASE_IMAGE=debian:bookworm-slim") in instructions[:1]
    assert [args for op, args in instructions if op == "FROM"] == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    assert ("USER", build.OPERATOR_USER) in final
    assert ("ENTRYPOINT", json.dumps(build.OPERATOR_ENTRYPOINT)) in final and ("CMD", json.dumps(build.OPERATOR_CMD)) in final
    env = " ".join(args for op, args in final if op == "ENV").split()
    assert env == build.OPERATOR_ENV
    assert ("ARG", f"VERSION={build.project_version()}") in final
    copies = [args for op, args in final if op == "COPY"]
    assert copies == [f"--from=build {build.VENV} {build.VENV}", f"--from=build /out/component-operator-agent {build.AGENT}"]
    # the agent is built by the same script as the testenv's (its pins are pyproject's agent-build extra)
    assert any("testenv/scripts/build_agent.sh" in args for op, args in instructions if op == "RUN")


def test_dockerignore_keeps_the_context_small():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", "dist", "**/__pycache__", ".pytest_cache"} <= set(ignored)
    assert not {"operator", "pyproject.toml", "README.md", "testenv"} & set(ignored)


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
