#!/usr/bin/env python3
"""Builds, pushes and imports the project's OCI images, without Docker.

The real node (containerd + kubelet) must never pull from the internet, so every image it
runs is built here from this repository's sources:

- ``component-operator`` (the project's version as tag): the operator itself. Three layers:
  a Debian root filesystem made here with ``debootstrap --variant=minbase`` (python3,
  python3-venv, ca-certificates), the virtualenv ``/opt/venv`` with the operator installed
  from a wheelhouse built on this host, and the static data-plane agent at
  ``/usr/local/bin/component-operator-agent`` (job pods' init container runs it from this
  image). User 65532:65532, entrypoint ``/opt/venv/bin/component-operator``, cmd ``run``;
  it runs with a read-only root filesystem (only ``/tmp`` needs to be writable).
- ``component-operator-base`` (tag: the root filesystem's key): that root filesystem plus
  what the Dockerfile's build stage needs (binutils, libpython3.11 for PyInstaller and
  staticx), so that the top-level Dockerfile can be built from it
  (``scripts/build_dockerfile.sh``) instead of a registry base image. Pushed, not imported.
- the sandbox image (pause) and small algorithms that succeed (gc-algorithm), run out of
  memory, sleep, fail, or run as root: one layer holding one static executable each (no
  shell, no libc, numeric user).

    python testenv/images/build.py build  [--registry HOST]   JSON on stdout (below)
    python testenv/images/build.py push   [--registry HOST]   crane push, all but pause
    python testenv/images/build.py import --address SOCK [--ctr ctr] [--registry HOST]

``build`` prints ``{"registry", "images": [{"name", "ref", "tag_ref", "digest_ref",
"repository", "tag", "digest", "size", "pushed", "imported", "tar", "layout"}]}``: ``ref``
and ``tag_ref`` are the tag reference (``127.0.0.1:5000/testenv/gc-algorithm:1``),
``digest_ref`` names the same manifest by digest (``<repository>@sha256:...``), ``size`` is
the configuration plus the compressed layers, ``tar`` is the OCI layout archive for ``ctr
images import`` (``oci-archive:<tar>`` for buildah and skopeo) and ``layout`` the layout
directory ``crane push`` reads. ``import`` runs ``ctr images import --platform linux/amd64``
on each archive that is ``imported`` (index.json names the image with
``io.containerd.image.name``) and then ``ctr images tag --force`` to give it its digest
reference too, the names a pull would have created, so that a pod referencing
``<repository>@sha256:...`` finds it without pulling.

Building the root filesystem and the virtualenv needs root (debootstrap, chroot); the
Debian mirror is the one of the system's apt configuration
(``/etc/apt/sources.list.d/debian.sources``, else ``/etc/apt/sources.list``), and
debootstrap is installed with apt-get when missing. The virtualenv's wheelhouse is made on
this host with the project venv's pip (``pip wheel`` of the project, its dependencies pinned
by pyproject.toml and the rest constrained to the versions the project venv has, i.e. those
the tests ran against); the chroot installs from it with ``--no-index``.

Everything is cached under ``$COMPONENT_OPERATOR_CACHE/images`` (default
``~/.cache/component-operator/images``): C programs by a hash of their source, the compiler
flags and the compiler's version; frozen Python programs by ``build_agent.sh``; the root
filesystem by its package lists, the suite, debootstrap's version and ROOTFS_RECIPE (so it
is not refreshed from the archive until one of them changes); layers by what they are made
of; the image sets by a hash of all that, this file, oci.py and the registry. A warm
``build`` writes nothing. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from testenv.images import oci  # noqa: E402

CACHE = Path(os.environ.get("COMPONENT_OPERATOR_CACHE") or Path.home() / ".cache" / "component-operator")
IMAGE_CACHE = CACHE / "images"
BUILD_AGENT = REPO / "testenv" / "scripts" / "build_agent.sh"
DEFAULT_REGISTRY = "127.0.0.1:5000"
LOCAL_REGISTRY = "localhost"  # images that are imported only, never pushed
PLATFORM = "linux/amd64"
CC = ["gcc", "-static", "-Os", "-s", "-Wall", "-Wextra"]
NAMESPACE = "k8s.io"  # containerd's namespace of the CRI plugin
KEEP = 3  # image sets kept in the cache (other checkouts may use older ones)

# The operator image's root filesystem.
SUITE = "bookworm"
ROOTFS_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BUILD_PACKAGES = ("binutils", "libpython3.11")
"""Added in the base image's second layer, for the Dockerfile's build stage: PyInstaller and
staticx run objdump, objcopy and strip, and bundle libpython3.11.so.1.0."""
ROOTFS_RECIPE = "1"  # change when make_rootfs()/clean_rootfs() change what the trees hold
LAYER_RECIPE = "1"  # change when the way layers are cut from the trees changes
VENV_RECIPE = "1"  # change when make_venv() changes
ROOTFS_EXCLUDE = ("dev/*", "proc/*", "sys/*")
"""Left out of the layers (the runtime mounts them): debootstrap's device nodes above all."""
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_PATH = f"{CHROOT_PATH}:{os.environ.get('PATH', '')}"

# The operator image (the Dockerfile at the top of the repository builds the same).
OPERATOR = "component-operator"
BASE = "component-operator-base"
VENV = "/opt/venv"
AGENT = "/usr/local/bin/component-operator-agent"
OPERATOR_USER = "65532:65532"
OPERATOR_ENTRYPOINT = [f"{VENV}/bin/component-operator"]
OPERATOR_CMD = ["run"]
OPERATOR_ENV = [f"PATH={VENV}/bin:{CHROOT_PATH}", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"]
NONROOT = ("nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin\n", "nonroot:x:65532:\n")
"""/etc/passwd and /etc/group lines naming the operator's user (as distroless images do)."""


class BuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def run(cmd: list, *, capture: bool = True, timeout: float = 1800, env: dict[str, str] | None = None) -> str:
    """Run ``cmd``; its stderr goes to ours unless captured; raise BuildError when it fails."""
    try:
        proc = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE if capture else None,
                              text=True, timeout=timeout, env=env)  # fmt: skip
    except FileNotFoundError as exc:
        raise BuildError(f"{cmd[0]}: not found ({exc})") from exc
    if proc.returncode != 0:
        output = (proc.stderr or "") + (proc.stdout or "" if capture else "")
        raise BuildError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {output[-3000:]}")
    return proc.stdout


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def short_hash(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def is_root() -> bool:
    return os.geteuid() == 0


def require_root(what: str) -> None:
    if not is_root():
        raise BuildError(f"{what} needs root (debootstrap, chroot): run `{Path(sys.argv[0]).name} build` as root "
                         f"(e.g. with sudo); a warm cache ({IMAGE_CACHE}) needs no root")  # fmt: skip


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


# --- the binaries -----------------------------------------------------------------------------


def compile_c(source: Path, name: str) -> Path:
    """A static executable from one C file, cached by source, flags and compiler version."""
    if shutil.which(CC[0]) is None:
        raise BuildError(f"{CC[0]} is needed to build the test images' programs (install gcc and the static libc)")
    version = run([CC[0], "--version"]).splitlines()[0]
    key = hashlib.sha256(b"\0".join([source.read_bytes(), " ".join(CC).encode(), version.encode()])).hexdigest()[:16]
    out = IMAGE_CACHE / "bin" / key / name
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{name}.tmp{os.getpid()}")
        log(f"compiling {source.relative_to(REPO)} -> {out}")
        run([*CC, "-o", str(tmp), str(source)])
        tmp.replace(out)
    os.utime(out.parent)  # recently used: kept by prune()
    return out


def frozen(*args: str) -> Path:
    """build_agent.sh's output (it logs to our stderr; its last stdout line is the binary)."""
    lines = run([str(BUILD_AGENT), *args], capture=False).strip().splitlines()
    if not lines or not Path(lines[-1]).is_file():
        raise BuildError(f"{BUILD_AGENT.name} {' '.join(args)} printed no binary path")
    return Path(lines[-1])


def binaries() -> dict[str, Path]:
    algorithms = HERE / "algorithms"
    return {
        "pause": compile_c(HERE / "pause" / "pause.c", "pause"),
        "memory-hog": compile_c(algorithms / "memory_hog.c", "memory-hog"),
        "sleeper": compile_c(algorithms / "sleeper.c", "sleeper"),
        "fail": compile_c(algorithms / "fail.c", "fail"),
        "gc-algorithm": frozen("--freeze", "gc-algorithm", str(algorithms / "gc_algorithm.py")),
        "component-operator-agent": frozen(),
    }


# --- Debian: the mirror, packages on the host, debootstrap ------------------------------------


def _deb822(text: str) -> list[dict[str, str]]:
    """The stanzas of a deb822 file (``Key: value``, continuation lines indented, # comments)."""
    stanzas, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas


def apt_mirror(sources: tuple[Path, ...] = APT_SOURCES, suite: str = SUITE) -> tuple[str, str | None]:
    """The Debian mirror the system's apt uses for ``suite`` (and the keyring it checks it with,
    when it is a file): the first ``URIs`` of the deb822 stanza with ``Types: deb`` whose
    ``Suites`` list ``suite`` and whose ``Components`` have main, else the matching one-line
    ``deb`` entry of a sources.list."""
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".sources":
            for stanza in _deb822(text):
                if stanza.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" in stanza.get("types", "").split() and suite in stanza.get("suites", "").split() \
                        and "main" in stanza.get("components", "").split() and stanza.get("uris"):
                    keyring = stanza.get("signed-by", "")
                    return stanza["uris"].split()[0], keyring if keyring.startswith("/") and "\n" not in keyring else None
        else:
            for line in text.splitlines():
                match = re.match(r"\s*deb\s+(?:\[(?P<options>[^]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)\s+(?P<components>.*)", line)
                if match and match["suite"] == suite and "main" in match["components"].split():
                    keyring = re.search(r"signed-by=(\S+)", match["options"] or "")
                    return match["uri"], keyring.group(1) if keyring else None
    raise BuildError(f"no Debian mirror for {suite} (main) in {' or '.join(map(str, sources))}")


def apt_install(*packages: str) -> None:
    """Install Debian packages on this host (root), updating the package lists if needed."""
    require_root(f"installing {', '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": HOST_PATH}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    log(f"apt-get install {' '.join(packages)}")
    try:
        run(cmd, env=env, timeout=900)
    except BuildError:
        run(["apt-get", "update", "-q"], env=env, timeout=900)
        run(cmd, env=env, timeout=900)


def host_tool(name: str, package: str) -> str:
    found = shutil.which(name, path=HOST_PATH)
    if not found:
        apt_install(package)
        found = shutil.which(name, path=HOST_PATH)
    if not found:
        raise BuildError(f"{name} not found after installing {package}")
    return found


def debootstrap_version() -> str:
    return run([host_tool("debootstrap", "debootstrap"), "--version"]).strip()


def debootstrap(target: Path, packages: tuple[str, ...], mirror: str, keyring: str | None, *, download_only: bool = False) -> None:
    debs = IMAGE_CACHE / "debs"  # debootstrap's package cache: a second run downloads nothing again
    debs.mkdir(parents=True, exist_ok=True)
    cmd = [host_tool("debootstrap", "debootstrap"), "--variant=minbase", "--components=main", f"--include={','.join(packages)}",
           f"--cache-dir={debs}", *([f"--keyring={keyring}"] if keyring else []), *(["--download-only"] if download_only else []),
           SUITE, str(target), mirror]  # fmt: skip
    env = {**os.environ, "PATH": HOST_PATH, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(cmd, env=env, timeout=1800)
    except BuildError as exc:
        detail = target / "debootstrap" / "debootstrap.log"
        tail = "\n".join(detail.read_text(errors="replace").splitlines()[-30:]) if detail.exists() else ""
        raise BuildError(f"{exc}\n{detail}:\n{tail}") from None


def chroot(root: Path, *cmd: str, user: str | None = None, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    """Run ``cmd`` in the tree ``root`` (no mounts: no /proc, no network needed), clean environment."""
    base = {"PATH": CHROOT_PATH, "HOME": "/root", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}  # fmt: skip
    userspec = [f"--userspec={user}"] if user else []
    return run([shutil.which("chroot", path=HOST_PATH) or "chroot", *userspec, str(root), *cmd], env={**base, **(env or {})}, timeout=timeout)


# --- the root filesystem ----------------------------------------------------------------------


def rootfs_key() -> str:
    """The root filesystem's cache key: suite, package lists, the recipe, debootstrap's version."""
    return short_hash(f"recipe={ROOTFS_RECIPE}", f"suite={SUITE}", "packages=" + ",".join(ROOTFS_PACKAGES),
                      "build=" + ",".join(BUILD_PACKAGES), debootstrap_version())  # fmt: skip


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def clean_rootfs(root: Path) -> None:
    """Drop what a read-only image has no use for: package lists and archives, logs, backups,
    documentation (but the copyright files), manual pages, translations; host files that
    debootstrap copied in (resolv.conf, hostname, hosts)."""
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/apt/archives/partial/*", "var/log/*.log", "var/log/apt/*", "var/cache/debconf/*-old",
                    "var/lib/dpkg/*-old", "etc/*-", "var/cache/ldconfig/aux-cache", "usr/share/man/*",
                    "usr/share/info/*", "usr/share/locale/*", "usr/share/lintian/*", "tmp/*", "var/tmp/*",
                    "root/.cache", "etc/hostname"):  # fmt: skip
        for path in root.glob(pattern):
            _remove(path)
    for doc in (root / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            for path in doc.iterdir():
                if path.name != "copyright":
                    _remove(path)
    for path in root.rglob("__pycache__"):
        if not any(path.iterdir()):
            path.rmdir()
    # written anew, never through a link (which would point into this host)
    for name, content in (("etc/resolv.conf", ""), ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")):
        (root / name).unlink(missing_ok=True)
        (root / name).write_text(content)
    if (root / "tmp").is_symlink() or not (root / "tmp").is_dir():
        raise BuildError(f"{root}/tmp is not a directory")
    (root / "tmp").chmod(0o1777)


def make_rootfs(key: str) -> Path:
    """The two trees of the root filesystem (cached): ``runtime`` (minbase + ROOTFS_PACKAGES)
    and ``build`` (the same plus BUILD_PACKAGES, installed with dpkg into a copy)."""
    out = IMAGE_CACHE / "rootfs" / key
    if (out / ".ready").exists():
        os.utime(out)
        return out
    require_root("building the operator image's root filesystem")
    mirror, keyring = apt_mirror()
    work = IMAGE_CACHE / "rootfs" / f".work-{key}-{os.getpid()}"
    _remove(work)
    work.mkdir(parents=True)
    started = time.monotonic()
    try:
        runtime, build_tree, download = work / "runtime", work / "build", work / "download"
        log(f"debootstrap --variant=minbase {SUITE} with {', '.join(ROOTFS_PACKAGES)} from {mirror} (a few minutes) ...")
        debootstrap(runtime, ROOTFS_PACKAGES, mirror, keyring)
        for name, line in zip(("etc/passwd", "etc/group"), NONROOT):
            if (runtime / name).is_symlink() or not (runtime / name).is_file():
                raise BuildError(f"{runtime / name} is not a regular file")
            with open(runtime / name, "a") as f:
                f.write(line)
        # Debian compiles the standard library to time-stamped .pyc files; the layers' times are
        # fixed, which would make them stale. Hash-based ones, unchecked, stay valid.
        python_dirs = [d for d in ("/usr/lib/python3.11", "/usr/lib/python3/dist-packages") if (runtime / d.lstrip("/")).is_dir()]
        chroot(runtime, "python3", "-m", "compileall", "-q", "-f", "--invalidation-mode", "unchecked-hash", *python_dirs)
        clean_rootfs(runtime)
        installed = set(chroot(runtime, "dpkg-query", "-W", "-f", "${Package}\\n").split())

        log(f"adding {', '.join(BUILD_PACKAGES)} for the base image ...")
        run(["cp", "-a", "--reflink=auto", runtime, build_tree])
        debootstrap(download, ROOTFS_PACKAGES + BUILD_PACKAGES, mirror, keyring, download_only=True)
        staged = build_tree / "tmp" / "debs"
        staged.mkdir()
        for line in (download / "debootstrap" / "debpaths").read_text().splitlines():
            package, deb = line.split()
            if package not in installed:
                shutil.copy(download / deb.lstrip("/"), staged)
        chroot(build_tree, "sh", "-c", "dpkg -i /tmp/debs/*.deb")
        clean_rootfs(build_tree)
        used = {Path(line.split()[1]).name for line in (download / "debootstrap" / "debpaths").read_text().splitlines()}
        for deb in (IMAGE_CACHE / "debs").glob("*.deb"):
            if deb.name not in used:
                deb.unlink()  # superseded versions
        shutil.rmtree(download)

        packages = chroot(runtime, "dpkg-query", "-W", "-f", "${Package}=${Version}\\n").split()
        info = {"suite": SUITE, "mirror": mirror, "debootstrap": debootstrap_version(), "packages": packages,
                "build_packages": sorted(set(chroot(build_tree, "dpkg-query", "-W", "-f", "${Package}=${Version}\\n").split()) - set(packages))}  # fmt: skip
        (work / "rootfs.json").write_text(json.dumps(info, indent=2) + "\n")
        (work / ".ready").touch()
        _remove(out)
        work.rename(out)
    finally:
        _remove(work)
    log(f"root filesystem {out} ({len(packages)} packages) in {time.monotonic() - started:.0f}s")
    return out


# --- the virtualenv ---------------------------------------------------------------------------


def venv_python() -> Path:
    """The project venv's interpreter (its pip builds the wheelhouse), else this one."""
    candidate = REPO / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


PROJECT_FILES = ("pyproject.toml", "README.md")


def project_sources() -> list[Path]:
    """What the operator's wheel is built from."""
    sources = [REPO / name for name in PROJECT_FILES]
    sources += sorted(p for p in (REPO / "operator").rglob("*") if p.is_file() and "__pycache__" not in p.parts
                      and not any(part.endswith(".egg-info") for part in p.parts))  # fmt: skip
    return sources


def constraints() -> list[str]:
    """``name==version`` of every distribution in the project venv but the project itself and
    the packaging tools: the versions the tests ran against, for the dependencies that
    pyproject.toml does not pin."""
    script = ("from importlib import metadata\n"
              "for d in metadata.distributions():\n"
              "    print(f\"{d.metadata['Name']}=={d.version}\")\n")  # fmt: skip
    skip = {"component-operator", "pip", "setuptools", "wheel"}
    lines = run([venv_python(), "-c", script]).split()
    return sorted({line for line in lines if re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() not in skip})


def venv_key(base_key: str) -> str:
    parts = [f"recipe={VENV_RECIPE}", f"rootfs={base_key}", *constraints()]
    parts += [f"{p.relative_to(REPO)}={file_digest(p)}" for p in project_sources()]
    return short_hash(*parts)


def build_wheelhouse(wheelhouse: Path, work: Path) -> None:
    """The operator's wheel and its dependencies' wheels, made on this host (its pip config,
    network and cache) from a copy of the sources (the build leaves nothing in the checkout)."""
    src = work / "src"
    for path in project_sources():
        target = src / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (work / "constraints.txt").write_text("\n".join(constraints()) + "\n")
    log(f"pip wheel {REPO.name} and its dependencies into {wheelhouse} ...")
    run([venv_python(), "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", wheelhouse,
         "--constraint", work / "constraints.txt", src], timeout=1800)  # fmt: skip


def make_venv(base: Path, out: Path) -> oci.Layer:
    """The virtualenv layer: /opt/venv made in a copy of the runtime tree, the operator
    installed from the wheelhouse without network, pip and setuptools removed, the bytecode
    compiled (hash-based, unchecked: valid whatever the layer's times; the root stays
    read-only at run time)."""
    require_root("building the operator's virtualenv")
    work = out.parent / "venv"
    root = work / "rootfs"
    work.mkdir()
    run(["cp", "-a", "--reflink=auto", base / "runtime", root])
    build_wheelhouse(root / "wheelhouse", work)
    version = project_version()
    log(f"installing component-operator {version} into {VENV} (chroot, --no-index) ...")
    chroot(root, "python3", "-m", "venv", VENV)
    chroot(root, f"{VENV}/bin/pip", "install", "--quiet", "--no-index", "--find-links", "/wheelhouse", "--no-cache-dir",
           "--no-compile", "--disable-pip-version-check", f"component-operator=={version}")  # fmt: skip
    chroot(root, f"{VENV}/bin/python", "-m", "pip", "uninstall", "--quiet", "--yes", "--no-cache-dir", "pip", "setuptools")
    for path in [*(root / VENV.lstrip("/")).rglob("__pycache__"), root / "wheelhouse", root / "root" / ".cache"]:
        _remove(path)
    chroot(root, f"{VENV}/bin/python", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", f"{VENV}/lib")
    smoke = chroot(root, f"{VENV}/bin/component-operator", "--version", user=OPERATOR_USER).strip()
    if smoke != f"component-operator {version}":
        raise BuildError(f"{VENV}/bin/component-operator --version printed {smoke!r}")
    layer = oci.write_layer(oci.tree(root / "opt", prefix="opt"), out)
    shutil.rmtree(work)
    return layer


# --- layers -----------------------------------------------------------------------------------


def cached_layer(key: str, what: str, make: Callable[[Path], oci.Layer]) -> oci.Layer:
    """The layer cached as ``layers/<key>``, made by ``make(path)`` (which writes the blob to
    ``path`` and may use the directory around it) when missing."""
    layers = IMAGE_CACHE / "layers"
    out = layers / key
    if (out / "layer.json").exists():
        info = json.loads((out / "layer.json").read_text())
        os.utime(out)
        return oci.Layer(oci.FileBlob(info["mediaType"], out / "blob", info["digest"], info["size"]), info["diffId"])
    work = layers / f".work-{key}-{os.getpid()}"
    _remove(work)
    work.mkdir(parents=True)
    started = time.monotonic()
    try:
        layer = make(work / "blob")
        info = {"what": what, "mediaType": layer.blob.media_type, "digest": layer.blob.digest, "size": layer.blob.size,
                "diffId": layer.diff_id}  # fmt: skip
        (work / "layer.json").write_text(json.dumps(info, indent=2) + "\n")
        for extra in work.iterdir():
            if extra.name not in ("blob", "layer.json"):
                _remove(extra)
        _remove(out)
        work.rename(out)
    finally:
        _remove(work)
    log(f"layer {what}: {layer.blob.size} bytes gzip'ed ({layer.blob.digest[:19]}) in {time.monotonic() - started:.0f}s")
    return oci.Layer(oci.FileBlob(layer.blob.media_type, out / "blob", layer.blob.digest, layer.blob.size), layer.diff_id)


@dataclass
class Layers:
    """The operator image's and the base image's layers, with the keys that name them."""

    rootfs_key: str
    venv_key: str
    base: oci.Layer | None = None
    build: oci.Layer | None = None
    venv: oci.Layer | None = None

    def make(self) -> "Layers":
        recipe = f"{LAYER_RECIPE} {ROOTFS_EXCLUDE} {file_digest(Path(oci.__file__))}"
        rootfs: list[Path] = []

        def tree() -> Path:  # only when a layer is missing
            if not rootfs:
                rootfs.append(make_rootfs(self.rootfs_key))
            return rootfs[0]

        self.base = cached_layer(short_hash("base", self.rootfs_key, recipe), f"{BASE} rootfs",
                                 lambda out: oci.write_layer(oci.tree(tree() / "runtime", exclude=ROOTFS_EXCLUDE), out))
        self.build = cached_layer(short_hash("build", self.rootfs_key, recipe), f"{BASE} build tools",
                                  lambda out: oci.write_layer(oci.diff(tree() / "runtime", tree() / "build", exclude=ROOTFS_EXCLUDE), out))
        self.venv = cached_layer(short_hash("venv", self.venv_key, recipe), f"{OPERATOR} venv", lambda out: make_venv(tree(), out))
        return self  # fmt: skip


# --- the images -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """One single-binary image: a binary at ``path``, which is the entrypoint."""

    name: str
    tag: str
    binary: str
    description: str
    path: str = ""
    user: str = "1000:1000"
    cmd: list[str] | None = None
    local: bool = False
    """Named under localhost/ and never pushed (the sandbox image)."""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def entrypoint(self) -> str:
        return self.path or f"/usr/local/bin/{self.binary}"

    def repository(self, registry: str) -> str:
        return repository(self.name, registry, self.local)


def repository(name: str, registry: str, local: bool = False) -> str:
    return f"{LOCAL_REGISTRY if local else registry}/testenv/{name}"


def definitions() -> list[Definition]:
    """The single-binary images (the operator's and the base image are made by operator_image()
    and base_image())."""
    return [
        Definition("pause", "1", "pause", "the pod sandbox program", path="/pause", user="65535:65535", local=True),
        Definition("gc-algorithm", "1", "gc-algorithm", "a grand-challenge-style algorithm (inputs.json in, JSON/CSV/MHA out)"),
        Definition("memory-hog", "1", "memory-hog", "allocates memory until it is OOM-killed"),
        Definition("sleeper", "1", "sleeper", "sleeps (argument: seconds), exits 143 on SIGTERM", cmd=["3600"]),
        Definition("fail", "1", "fail", "prints an error on stderr and exits 3"),
        Definition("hello", "1", "sleeper", "the smallest algorithm: the sleeper for 0 seconds", cmd=["0"]),
        Definition("runs-as-root", "1", "sleeper", "the sleeper as user 0 (the operator must refuse it)", user="0:0", cmd=["3600"]),
    ]  # fmt: skip


def labels(name: str, description: str, version: str, **extra: str) -> dict[str, str]:
    return {
        "org.opencontainers.image.title": f"testenv/{name}",
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": "component-operator testenv/images",
        **extra,
    }


def build_image(definition: Definition, binary: Path) -> oci.Image:
    files = [oci.File(definition.entrypoint, source=binary, mode=0o755), oci.File.dir("tmp", mode=0o1777)]
    config = oci.Config(user=definition.user, entrypoint=[definition.entrypoint], cmd=definition.cmd,
                        labels=labels(definition.name, definition.description, definition.tag, **definition.labels),
                        created_by=f"testenv/images/build.py: {definition.name}")  # fmt: skip
    return oci.image(config, [oci.layer(files)])


def operator_config(version: str, rootfs_key: str) -> oci.Config:
    return oci.Config(
        user=OPERATOR_USER, entrypoint=OPERATOR_ENTRYPOINT, cmd=OPERATOR_CMD, env=OPERATOR_ENV,
        labels=labels(OPERATOR, "component-operator: the Kubernetes operator (kopf) and its static data-plane agent",
                      version, **{"org.opencontainers.image.title": "component-operator",
                                  "org.opencontainers.image.licenses": "Apache-2.0",
                                  "org.opencontainers.image.base.name": f"testenv/{BASE}:{rootfs_key}"}),
        history=[f"debootstrap --variant=minbase {SUITE} + {' '.join(ROOTFS_PACKAGES)}",
                 f"python3 -m venv {VENV} && pip install --no-index component-operator=={version}",
                 f"component-operator-agent (build_agent.sh) at {AGENT}"],
    )  # fmt: skip


def operator_image(version: str, rootfs_key: str, base: oci.Layer, venv: oci.Layer, agent: Path) -> oci.Image:
    """The operator: the root filesystem, the virtualenv, the static agent (the last changes
    most often, the first least: a new build re-pushes only what changed)."""
    agent_layer = oci.layer([oci.File(AGENT, source=agent, mode=0o755)])
    return oci.image(operator_config(version, rootfs_key), [base, venv, agent_layer])


def base_image(rootfs_key: str, base: oci.Layer, build: oci.Layer) -> oci.Image:
    """The Dockerfile's base: the operator image's root filesystem (the same layer) and the
    build tools; root, a shell."""
    config = oci.Config(
        user="0:0", cmd=["/bin/bash"], env=[f"PATH={CHROOT_PATH}", "LANG=C.UTF-8"],
        labels=labels(BASE, f"Debian {SUITE} minbase with {', '.join(ROOTFS_PACKAGES + BUILD_PACKAGES)} "
                      "(the component-operator Dockerfile's base)", rootfs_key),
        history=[f"debootstrap --variant=minbase {SUITE} + {' '.join(ROOTFS_PACKAGES)}", f"dpkg -i {' '.join(BUILD_PACKAGES)}"],
    )  # fmt: skip
    return oci.image(config, [base, build])


@contextmanager
def locked():
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(IMAGE_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a concurrent one then finds the cache
        yield


def build(registry: str) -> dict:
    """Build (or find in the cache) every image; return the document ``build`` prints."""
    bins = binaries()
    keys = Layers(rootfs_key(), "")
    keys.venv_key = venv_key(keys.rootfs_key)
    key_parts = [registry, file_digest(Path(oci.__file__)), file_digest(Path(__file__)), f"rootfs={keys.rootfs_key}",
                 f"venv={keys.venv_key}"]  # fmt: skip
    key_parts += [f"{name}={file_digest(path)}" for name, path in sorted(bins.items())]
    key = short_hash(*key_parts)
    out = IMAGE_CACHE / key
    document = out / "images.json"
    with locked():
        if document.exists():
            log(f"cached: {out}")
            os.utime(out)
            return json.loads(document.read_text())
        layers = keys.make()
        work = IMAGE_CACHE / f".work-{key}-{os.getpid()}"
        _remove(work)
        work.mkdir()
        try:
            version = project_version()
            singles = {d.name: d for d in definitions()}
            entries = [write_image(singles.pop("pause"), bins["pause"], registry, work, out)]
            operator = operator_image(version, keys.rootfs_key, layers.base, layers.venv, bins["component-operator-agent"])
            entries.append(write_entry(OPERATOR, version, operator, registry, work, out))
            entries.append(write_entry(BASE, keys.rootfs_key, base_image(keys.rootfs_key, layers.base, layers.build),
                                       registry, work, out, imported=False))  # fmt: skip
            entries += [write_image(definition, bins[definition.binary], registry, work, out) for definition in singles.values()]
            result = {"registry": registry, "images": entries}
            (work / "images.json").write_text(json.dumps(result, indent=2) + "\n")
            _remove(out)
            work.rename(out)
        finally:
            _remove(work)
        prune()
    log(f"built {len(entries)} images in {out}")
    return result


def write_image(definition: Definition, binary: Path, registry: str, work: Path, out: Path) -> dict:
    return write_entry(definition.name, definition.tag, build_image(definition, binary), registry, work, out, local=definition.local)


def write_entry(name: str, tag: str, image: oci.Image, registry: str, work: Path, out: Path, *,
                local: bool = False, imported: bool = True) -> dict:  # fmt: skip
    """Write ``image`` as a layout directory and an archive in ``work`` (later renamed ``out``)."""
    repo = repository(name, registry, local)
    ref = f"{repo}:{tag}"
    oci.write_layout(work / name, image.blobs, [image.descriptor(annotations=oci.ref_annotations(ref))])
    oci.write_archive(work / name, work / f"{name}.tar")
    log(f"{ref} {image.digest} ({image.size} bytes)")
    return {
        "name": name,
        "ref": ref,
        "tag_ref": ref,
        "digest_ref": f"{repo}@{image.digest}",
        "repository": repo,
        "tag": tag,
        "digest": image.digest,
        "size": image.size,
        "pushed": not local,
        "imported": imported,
        "tar": str(out / f"{name}.tar"),
        "layout": str(out / name),
    }


def prune() -> None:
    """Keep the KEEP newest image sets, the binaries, layers and root filesystems used
    recently; drop the rest (and what interrupted builds left)."""
    def newest(directory: Path, marker: str | None = None) -> list[Path]:
        if not directory.is_dir():
            return []
        found = [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".") and (marker is None or (p / marker).exists())]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    old = newest(IMAGE_CACHE, "images.json")[KEEP:] + newest(IMAGE_CACHE / "bin")[KEEP * 4:]
    old += newest(IMAGE_CACHE / "layers")[KEEP * 4:] + newest(IMAGE_CACHE / "rootfs")[2:]
    for directory in (IMAGE_CACHE, IMAGE_CACHE / "layers", IMAGE_CACHE / "rootfs"):
        for work in directory.glob(".work-*") if directory.is_dir() else ():
            pid = work.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
                old.append(work)  # its build is gone
    for path in old:
        shutil.rmtree(path, ignore_errors=True)


# --- push and import --------------------------------------------------------------------------


def find_crane() -> str:
    candidates = [Path(os.environ["TESTENV_BIN"]) / "crane"] if os.environ.get("TESTENV_BIN") else []
    candidates.append(CACHE / "bin" / "crane")
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("crane")
    if not found:
        raise BuildError("crane not found ($TESTENV_BIN, ~/.cache/component-operator/bin, PATH): run testenv/scripts/build.sh crane")
    return found


def push(document: dict) -> None:
    crane = find_crane()
    for entry in document["images"]:
        if not entry["pushed"]:
            continue
        pushed = run([crane, "push", "--insecure", entry["layout"], entry["ref"]], timeout=600).strip()
        if not pushed.endswith(entry["digest"]):
            raise BuildError(f"crane pushed {entry['ref']} as {pushed!r}, expected digest {entry['digest']}")
        log(f"pushed {entry['ref']} ({entry['digest']})")


def import_images(document: dict, address: str, ctr: str) -> None:
    base = [ctr, "--address", address, "--namespace", NAMESPACE, "images"]
    entries = [entry for entry in document["images"] if entry.get("imported", True)]
    for entry in entries:
        run([*base, "import", "--platform", PLATFORM, entry["tar"]], timeout=600)
        run([*base, "tag", "--force", entry["tag_ref"], entry["digest_ref"]])
        log(f"imported {entry['tag_ref']} and {entry['digest_ref']}")
    names = set(run([*base, "list", "--quiet"]).split())
    missing = [n for e in entries for n in (e["tag_ref"], e["digest_ref"]) if n not in names]
    if missing:
        raise BuildError(f"not in containerd after the import: {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("build", "build the images (cached); JSON on stdout"),
                       ("push", "build, then push all but pause with crane"),
                       ("import", "build, then import into containerd's k8s.io namespace")):  # fmt: skip
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--registry", default=DEFAULT_REGISTRY, help=f"registry host[:port] (default {DEFAULT_REGISTRY})")
        if name == "import":
            sub.add_argument("--address", required=True, help="containerd's socket")
            sub.add_argument("--ctr", default="ctr", help="the ctr program (default: ctr on PATH)")
    args = parser.parse_args(argv)
    try:
        document = build(args.registry)
        if args.command == "build":
            json.dump(document, sys.stdout, indent=2)
            print()
        elif args.command == "push":
            push(document)
        else:
            import_images(document, args.address, args.ctr)
    except (BuildError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
