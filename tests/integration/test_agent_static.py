"""The static agent in a root filesystem with no Python and no C library.

Algorithm images can be anything (distroless, scratch plus one Go binary, Alpine with musl),
so the agent that ``prepare`` copies into the pod must not need anything from the image.
We test these aspects: ``testenv/scripts/build_agent.sh`` builds one static ELF executable
(no program interpreter) and a second build is a cache hit; in a chroot that holds only that
binary and a small statically linked helper program (no ``python*``, no ``libc.so*``):
``version`` reports a frozen, static agent; ``prepare`` installs itself and stages an input;
the installed copy runs the helper as an unprivileged user, the helper sees none of the
agent's variables and cannot read the agent's ``/proc/<pid>/environ`` (non-dumpable); the
environments it can read (staticx's and PyInstaller's bootloaders, same uid, dumpable) hold no
secret, and the handoff file is gone; the frozen agent loads nothing after the program
started; and the signed result and the output land in MinIO through the presigned grants.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from component_operator.agent import result as res

from ..conftest import REPO
from .test_agent_process import grants_env, store_for

BUILD = REPO / "testenv" / "scripts" / "build_agent.sh"

HELPER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
extern char **environ;

static int readable(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    fclose(f);
    return 1;
}

int main(int argc, char **argv) {
    int leaked = 0;
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "COMPONENT_OPERATOR_", 19) || !strncmp(*e, "GRAND_CHALLENGE_", 16)) leaked++;
    char parent[64];
    snprintf(parent, sizeof parent, "/proc/%d/environ", (int)getppid());
    printf("uid=%d leaked=%d\n", (int)getuid(), leaked);
    printf("own environ readable=%d parent environ readable=%d\n", readable("/proc/self/environ"), readable(parent));
    /* Every environment this uid can read (the bootloaders above the agent included). */
    int readable_environs = 0, secret_environs = 0;
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    while (proc && (entry = readdir(proc))) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        char path[300], buf[65536];
        snprintf(path, sizeof path, "/proc/%s/environ", entry->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        readable_environs++;
        for (size_t i = 0; i < n; i++) if (!buf[i]) buf[i] = '\n';
        buf[n] = 0;
        if (strstr(buf, "COMPONENT_OPERATOR_SIGNING_KEY_HEX=") || strstr(buf, "COMPONENT_OPERATOR_UPLOAD=")
            || strstr(buf, "X-Amz-Signature") || strstr(buf, "x-amz-signature")) secret_environs++;
    }
    if (proc) closedir(proc);
    printf("readable environs>1=%d secret environs=%d handoff readable=%d\n", readable_environs > 1, secret_environs,
           readable("/tmp/.component-operator/handoff.json"));
    fflush(stdout);
    fprintf(stderr, "a line on stderr\n");
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) { perror(argv[1]); return 3; }
        fputs("{\"answer\": 42}", f);
        fclose(f);
    }
    return argc > 2 ? atoi(argv[2]) : 0;
}
"""


def build_agent() -> Path:
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def static_agent() -> Path:
    path = build_agent()
    print(f"static agent: {path} ({path.stat().st_size} bytes)")
    return path


def elf_interpreter(path: Path) -> bool:
    """Whether the ELF executable asks for a program interpreter (PT_INTERP): dynamic ones do."""
    with open(path, "rb") as f:
        header = f.read(64)
        assert header[:4] == b"\x7fELF" and header[4] == 2, "not a 64-bit ELF file"
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        for index in range(phnum):
            f.seek(phoff + index * phentsize)
            p_type, = struct.unpack("<I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return True
    return False


@pytest.fixture()
def rootfs(tmp_path, static_agent):
    """A root filesystem with the agent, a static helper, /tmp, /dev/null and /proc: nothing else."""
    root = tmp_path / "rootfs"
    for name in ("agent", "bin", "tmp", "dev", "proc", "input", "output", "shared"):
        (root / name).mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(root / "tmp", 0o1777)
    for name in ("output", "input", "shared"):  # both containers run as the image's user
        os.chmod(root / name, 0o777)
    shutil.copy2(static_agent, root / "agent" / "component-operator-agent")
    (tmp_path / "helper.c").write_text(HELPER_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(root / "bin" / "helper"), str(tmp_path / "helper.c")], check=True)
    os.mknod(root / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(root / "dev" / "null", 0o666)
    # Python or a C library anywhere in it would make the test meaningless.
    names = [p.name for p in root.rglob("*")]
    assert not [n for n in names if n.startswith(("python", "libc.so", "ld-linux", "libpython"))]
    assert not elf_interpreter(root / "bin" / "helper")
    # staticx reads /proc/self/exe; every container has /proc.
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def chroot(root: Path, *argv: str, env: dict | None = None, user: str | None = None) -> subprocess.CompletedProcess:
    command = ["/usr/sbin/chroot"] + ([f"--userspec={user}"] if user else []) + [str(root), *argv]
    return subprocess.run(command, env=env or {"PATH": "/bin"}, capture_output=True, text=True, timeout=300)


def test_build_is_static_and_cached(static_agent):
    assert not elf_interpreter(static_agent), "the agent must not need a program interpreter (ld-linux)"
    size = static_agent.stat().st_size
    assert 5 * 1024**2 < size < 80 * 1024**2, size
    again = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and Path(again.stdout.strip().splitlines()[-1]) == static_agent
    assert "building" not in again.stderr  # a cache hit builds nothing


def test_version_without_python_or_libc(rootfs):
    proc = chroot(rootfs, "/agent/component-operator-agent", "version")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["frozen"] is True and info["static"] is True and info["agent_version"] == "0.1.0"


def test_prepare_and_run_without_python_or_libc(rootfs, testenv):
    store = store_for(testenv)
    bucket = f"static-{uuid.uuid4().hex[:12]}"
    store.ensure_bucket(bucket)
    try:
        job_id = f"ns/static/{uuid.uuid4()}/0"
        key = secrets.token_bytes(32)
        result_uri = f"s3://{bucket}/jobs/{job_id}/result.json"
        store.put_bytes(f"s3://{bucket}/inputs/table.csv", b"a,b\n")
        invocation = {
            "jobId": job_id,
            "inputs": [{"interface": "threshold", "relativePath": "threshold.json", "superKind": "Value",
                        "kind": "FLT", "value": 0.25},
                       {"interface": "table", "relativePath": "table.csv", "superKind": "File", "kind": "CSV",
                        "source": f"s3://{bucket}/inputs/table.csv"}],
            "inputsJson": [{"interface": {"slug": "threshold"}, "value": None}, {"interface": {"slug": "table"}, "value": None}],
            "inputsJsonValueFrom": ["threshold", None],
            "outputs": [], "outputPrefix": f"s3://{bucket}/jobs/{job_id}/output/", "resultUri": result_uri,
            "timeLimitSeconds": 60,
        }
        (rootfs / "invocation.json").write_text(json.dumps(invocation))
        env = {
            "PATH": "/bin",
            "COMPONENT_OPERATOR_INVOCATION_FILE": "/invocation.json",
            "COMPONENT_OPERATOR_AGENT_DIR": "/shared",
        }
        grants = grants_env(testenv.env, bucket, job_id, invocation, key)
        prepared = chroot(rootfs, "/agent/component-operator-agent", "prepare", env={**env, **grants},
                          user="65534:65534")
        assert prepared.returncode == 0, prepared.stderr
        assert (rootfs / "input" / "table.csv").read_bytes() == b"a,b\n"
        handoff = rootfs / "tmp" / ".component-operator" / "handoff.json"
        assert handoff.stat().st_uid == 65534 and stat.S_IMODE(handoff.stat().st_mode) == 0o600
        installed = rootfs / "shared" / "agent"
        assert stat.S_IMODE(installed.stat().st_mode) == 0o555
        assert installed.read_bytes() == (rootfs / "agent" / "component-operator-agent").read_bytes()
        assert (rootfs / "input" / "threshold.json").read_text() == "0.25"
        assert json.loads((rootfs / "input" / "inputs.json").read_text())[0]["value"] == 0.25

        # The algorithm container: the installed agent, as an unprivileged user.
        ran = chroot(rootfs, "/shared/agent", "run", "--", "/bin/helper", "/output/answer.json", env=env,
                     user="65534:65534")
        assert ran.returncode == 0, ran.stderr
        lines = [json.loads(line) for line in (ran.stdout + ran.stderr).splitlines()]
        program = [r["log"] for r in lines if not r["internal"]]
        assert "uid=65534 leaked=0" in program
        # Same uid, yet the agent's environment is out of reach; the bootloaders' are not, but
        # hold nothing secret, and the handoff file was deleted before the program started.
        assert "own environ readable=1 parent environ readable=0" in program
        assert "readable environs>1=1 secret environs=0 handoff readable=0" in program
        assert not handoff.exists()
        assert "a line on stderr" in program
        assert not any("non-dumpable" in r["log"] or "refused to import" in r["log"] for r in lines)

        result = res.fetch_and_verify(store, result_uri, key, job_id)
        assert result.return_code == 0 and [o.relative_path for o in result.outputs] == ["answer.json"]
        stored = store.get_bytes(result.outputs[0].uri, max_bytes=1000)
        assert stored == b'{"answer": 42}' and hashlib.sha256(stored).hexdigest() == result.outputs[0].sha256

        assert chroot(rootfs, "/shared/agent", "prepare", env={**env, **grants}, user="65534:65534").returncode == 0
        failing = chroot(rootfs, "/shared/agent", "run", "--", "/bin/helper", "/output/again.json", "137", env=env,
                         user="65534:65534")
        assert failing.returncode == 137  # the program's exit code, unchanged
        assert res.fetch_and_verify(store, result_uri, key, job_id).return_code == 137
    finally:
        store.remove_bucket(bucket, force=True)
