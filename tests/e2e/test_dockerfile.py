"""The top-level Dockerfile, built without Docker: Debian's buildah (chroot isolation, its
storage under the project's cache) builds it from the project's own base image
(``component-operator-base``, made by testenv/images/build.py, read from its OCI archive) with
``scripts/build_dockerfile.sh``. The result must be the operator image build.py makes: the
same user (numeric, not root), entrypoint, cmd and environment, and the operator and the
static agent must run in it. build.py's operator image is also run as user 65532 on a
read-only root filesystem (only /tmp writable), as the pod runs it.

Needs root (buildah, chroot, build.py's debootstrap when its cache is cold). Without root the
module is skipped, unless the run requires the e2e tier (``TESTENV_REAL_NODE=require`` or
``CI``): then it fails, and so does a failed build. Cold, the Dockerfile build takes a few
minutes (the build stage downloads the Python packages and freezes the agent); with buildah's
layer cache, seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from testenv.images import build, oci

from ..conftest import REPO

SCRIPT = REPO / "scripts" / "build_dockerfile.sh"
TAG = "component-operator:e2e-dockerfile"
VERSION = build.project_version()

pytestmark = pytest.mark.timeout(1800)


def _required() -> bool:
    return os.environ.get("TESTENV_REAL_NODE") == "require" or bool(os.environ.get("CI"))


def _fail(message: str, proc: subprocess.CompletedProcess | None = None) -> None:
    detail = f"\nexit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}" if proc else ""
    pytest.fail(message + detail, pytrace=False)


def sh(*cmd: str | Path, env: dict[str, str] | None = None, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        _fail(f"{' '.join(map(str, cmd))} failed", proc)
    return proc


def buildah(*args: str, timeout: float = 120) -> str:
    return sh(SCRIPT, "buildah", *args, timeout=timeout).stdout.strip()


@pytest.fixture(scope="module")
def as_root() -> None:
    if os.geteuid() != 0:
        message = "building the Dockerfile with buildah (and build.py's base image) needs root"
        if _required():
            _fail(message + " (required: TESTENV_REAL_NODE=require or CI is set)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def images(as_root) -> dict[str, dict]:
    """build.py's images by name (cached: `make test` built them before pytest)."""
    proc = sh(sys.executable, REPO / "testenv" / "images" / "build.py", "build", timeout=1500)
    return {entry["name"]: entry for entry in json.loads(proc.stdout)["images"]}


@pytest.fixture(scope="module")
def dockerfile_image(images) -> str:
    """The Dockerfile built with buildah; a failed build fails the tests that need it."""
    proc = sh(SCRIPT, "build", env={"TAG": TAG}, timeout=1700, check=False)
    if proc.returncode != 0:
        _fail(f"{SCRIPT.relative_to(REPO)} could not build the Dockerfile", proc)
    image_id = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"(sha256:)?[0-9a-f]{64}", image_id), proc.stdout
    return image_id


@pytest.fixture(scope="module")
def container(dockerfile_image):
    name = buildah("from", "--pull=never", "--name", f"e2e-dockerfile-{os.getpid()}", TAG)
    yield name
    sh(SCRIPT, "buildah", "rm", name, check=False)


def operator_config(images) -> dict:
    _, config, layers = oci.read_image(images[build.OPERATOR]["layout"])
    assert len(layers) == 3  # base rootfs, venv, agent
    return config["config"]


def test_the_base_image_is_build_pys(images):
    base = images[build.BASE]
    assert base["pushed"] and not base["imported"] and base["ref"].endswith(f"/testenv/{build.BASE}:{base['tag']}")
    assert sh(SCRIPT, "base").stdout.strip() == f"oci-archive:{base['tar']}"
    manifest, _, _ = oci.read_image(base["layout"])
    operator, _, _ = oci.read_image(images[build.OPERATOR]["layout"])
    assert manifest["layers"][0] == operator["layers"][0]  # one root filesystem layer for both


def test_dockerfile_image_has_the_operator_images_user_entrypoint_and_cmd(dockerfile_image, images):
    inspected = json.loads(buildah("inspect", "--type", "image", TAG))
    config = inspected["OCIv1"]["config"]
    expected = operator_config(images)
    assert re.fullmatch(r"[1-9]\d*:\d+", config["User"]), config["User"]  # numeric, not root
    for key in ("User", "Entrypoint", "Cmd", "WorkingDir"):
        assert config.get(key) == expected.get(key), key
    assert sorted(config["Env"]) == sorted(expected["Env"])
    assert config["Labels"]["org.opencontainers.image.version"] == VERSION == expected["Labels"]["org.opencontainers.image.version"]
    assert (expected["User"], expected["Entrypoint"], expected["Cmd"]) == ("65532:65532", ["/opt/venv/bin/component-operator"], ["run"])


def test_operator_and_agent_run_in_the_dockerfile_image(container):
    def inside(*cmd: str) -> str:
        return buildah("run", "--isolation", "chroot", container, "--", *cmd, timeout=300)

    assert inside("id", "-u") == "65532"  # the image's user
    assert inside("component-operator", "--version") == f"component-operator {VERSION}"
    assert "--standalone" in inside("/opt/venv/bin/component-operator", "run", "--help")
    agent = json.loads(inside("/usr/local/bin/component-operator-agent", "version"))
    assert agent["agent_version"] == VERSION and agent["static"]
    assert inside("sh", "-c", "test ! -e /opt/venv/bin/pip && echo no-pip") == "no-pip"


def test_build_py_operator_image_runs_read_only_as_65532(images):
    """Unpacked, bind-mounted read-only, with a tmpfs on /tmp and /proc (the agent reads
    /proc/self/exe), as the pod's container runs it."""
    config = operator_config(images)
    env = dict(item.split("=", 1) for item in config["Env"])
    scratch = Path(tempfile.mkdtemp(prefix="operator-rootfs-", dir=os.environ.get("TMPDIR", "/tmp")))
    rootfs, root = scratch / "unpacked", scratch / "root"
    root.mkdir()
    try:
        with ExitStack() as mounts:
            oci.unpack(images[build.OPERATOR]["layout"], rootfs)
            for cmd, target in ((["mount", "--bind", rootfs, root], root),
                                (["mount", "-o", "remount,bind,ro", root], None),
                                (["mount", "-t", "tmpfs", "-o", "mode=1777,size=64m", "tmpfs", root / "tmp"], root / "tmp"),
                                (["mount", "-t", "proc", "proc", root / "proc"], root / "proc")):  # fmt: skip
                sh(*cmd)
                if target is not None:
                    mounts.callback(subprocess.run, ["umount", "--lazy", str(target)], check=False)

            def inside(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
                proc = subprocess.run(["chroot", f"--userspec={config['User']}", str(root), *cmd], capture_output=True,
                                      text=True, timeout=120, env=env)  # fmt: skip
                if check and proc.returncode != 0:
                    _fail(f"{' '.join(cmd)} in the operator image", proc)
                return proc

            assert inside(*config["Entrypoint"], "--version").stdout.strip() == f"component-operator {VERSION}"
            assert "--webhook" in inside(*config["Entrypoint"], *config["Cmd"], "--help").stdout
            assert json.loads(inside(build.AGENT, "version").stdout)["agent_version"] == VERSION
            assert inside("id", "-u").stdout.strip() == "65532"
            assert "Read-only file system" in inside("touch", "/opt/venv/x", check=False).stderr
            assert inside("touch", "/tmp/writable").returncode == 0
            # the bytecode is used as it is: nothing to compile, nothing written
            imported = inside("/opt/venv/bin/python", "-c", "import component_operator.cli, kopf, kubernetes; print('ok')")
            assert imported.stdout.strip() == "ok"
    finally:
        if not any(os.path.ismount(path) for path in (root, root / "tmp", root / "proc")):  # never delete through a mount
            shutil.rmtree(scratch, ignore_errors=True)
