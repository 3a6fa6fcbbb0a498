"""The real node's preflight names every reason a machine cannot run it, one per line.

`realnode_preflight` (testenv/scripts/realnode.sh) is run in a bash with a PATH that holds only
the basic tools it uses, so the container runtime is "missing" whatever this machine has.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import REPO

REALNODE = REPO / "testenv" / "scripts" / "realnode.sh"
BASIC_TOOLS = ["bash", "id", "uname", "stat", "awk", "grep", "ss", "ip", "cat", "head", "sed"]


def preflight(tmp_path: Path, *, uid: int | None = None, cni_dir: Path | None = None) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in BASIC_TOOLS:
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    script = f'source "{REALNODE}"; CNI_BIN_DIR="{cni_dir or tmp_path / "cni"}"; NODE_RUN="{tmp_path}/run"; realnode_preflight'
    command = ["bash", "-c", script]
    if uid is not None:
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
    proc = subprocess.run(command, env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30,
                          executable=shutil.which(command[0]))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_missing_runtime_and_plugins_are_named(tmp_path):
    reasons = preflight(tmp_path)
    for program in ("containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables"):
        assert f"'{program}' is not installed (Debian: apt-get install containerd runc containernetworking-plugins iptables conntrack)" in reasons
    for plugin in ("bridge", "host-local", "loopback"):
        assert f"CNI plugin {tmp_path}/cni/{plugin} is missing (Debian: apt-get install containernetworking-plugins)" in reasons


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_not_root_is_named(tmp_path):
    tmp_path.chmod(0o755)
    reasons = preflight(tmp_path, uid=65534)
    assert reasons[0].startswith("not root: the kubelet and containerd need root")


def test_every_line_is_a_reason_a_person_can_act_on(tmp_path):
    for line in preflight(tmp_path):
        assert line.strip() and not line.startswith(("+", "bash:")), line
