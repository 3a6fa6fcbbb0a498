#!/usr/bin/env python3
"""Builds, pushes and imports the testenv's own OCI images, without Docker.

The real node (containerd + kubelet) must never pull from the internet, so every image it
runs is built here from this repository's sources: the sandbox image (pause), the operator's
image carrying the static agent, and small algorithms that succeed (gc-algorithm), run out of
memory, sleep, fail, or run as root. Each image is one layer holding one static executable
(no shell, no libc, numeric user), so it runs with a read-only root filesystem.

    python testenv/images/build.py build  [--registry HOST]   JSON on stdout (below)
    python testenv/images/build.py push   [--registry HOST]   crane push, all but pause
    python testenv/images/build.py import --address SOCK [--ctr ctr] [--registry HOST]

``build`` prints ``{"registry", "images": [{"name", "ref", "tag_ref", "digest_ref",
"repository", "tag", "digest", "size", "pushed", "tar", "layout"}]}``: ``ref`` and
``tag_ref`` are the tag reference (``127.0.0.1:5000/testenv/gc-algorithm:1``), ``digest_ref``
names the same manifest by digest (``<repository>@sha256:...``), ``tar`` is the OCI layout
archive for ``ctr images import`` and ``layout`` the layout directory ``crane push`` reads.
``import`` runs ``ctr images import --platform linux/amd64`` on each archive (index.json
names the image with ``io.containerd.image.name``) and then ``ctr images tag --force`` to
give it its digest reference too, the names a pull would have created, so that a pod
referencing ``<repository>@sha256:...`` finds it without pulling.

Everything is cached under ``$COMPONENT_OPERATOR_CACHE/images`` (default
``~/.cache/component-operator/images``): C programs by a hash of their source, the compiler
flags and the compiler's version; frozen Python programs by ``build_agent.sh``; the images by
a hash of the binaries, this file, oci.py and the registry. A warm ``build`` writes nothing.
Logs go to stderr.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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


class BuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, capture: bool = True, timeout: float = 1800) -> str:
    """Run ``cmd``; its stderr goes to ours unless captured; raise BuildError when it fails."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE if capture else None, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(map(str, cmd))} exited {proc.returncode}: {(proc.stderr or '')[-3000:]}")
    return proc.stdout


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


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


# --- the images -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """One image: a binary at ``path``, which is the entrypoint."""

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
        return f"{LOCAL_REGISTRY if self.local else registry}/testenv/{self.name}"


def definitions() -> list[Definition]:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return [
        Definition("pause", "1", "pause", "the pod sandbox program", path="/pause", user="65535:65535", local=True),
        Definition("component-operator", version, "component-operator-agent",
                   "component-operator's static data-plane agent", user="65532:65532",
                   labels={"org.opencontainers.image.title": "component-operator",
                           "org.opencontainers.image.licenses": "Apache-2.0"}),
        Definition("gc-algorithm", "1", "gc-algorithm", "a grand-challenge-style algorithm (inputs.json in, JSON/CSV/MHA out)"),
        Definition("memory-hog", "1", "memory-hog", "allocates memory until it is OOM-killed"),
        Definition("sleeper", "1", "sleeper", "sleeps (argument: seconds), exits 143 on SIGTERM", cmd=["3600"]),
        Definition("fail", "1", "fail", "prints an error on stderr and exits 3"),
        Definition("hello", "1", "sleeper", "the smallest algorithm: the sleeper for 0 seconds", cmd=["0"]),
        Definition("runs-as-root", "1", "sleeper", "the sleeper as user 0 (the operator must refuse it)", user="0:0", cmd=["3600"]),
    ]  # fmt: skip


def build_image(definition: Definition, binary: Path) -> oci.Image:
    files = [oci.File(definition.entrypoint, source=binary, mode=0o755), oci.File.dir("tmp", mode=0o1777)]
    labels = {
        "org.opencontainers.image.title": f"testenv/{definition.name}",
        "org.opencontainers.image.description": definition.description,
        "org.opencontainers.image.version": definition.tag,
        "org.opencontainers.image.source": "component-operator testenv/images",
        **definition.labels,
    }
    config = oci.Config(user=definition.user, entrypoint=[definition.entrypoint], cmd=definition.cmd,
                        labels=labels, created_by=f"testenv/images/build.py: {definition.name}")  # fmt: skip
    return oci.image(config, [oci.layer(files)])


@contextmanager
def locked():
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(IMAGE_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a concurrent one then finds the cache
        yield


def build(registry: str) -> dict:
    """Build (or find in the cache) every image; return the document ``build`` prints."""
    bins = binaries()
    key_parts = [registry, file_digest(Path(oci.__file__)), file_digest(Path(__file__))]
    key_parts += [f"{name}={file_digest(path)}" for name, path in sorted(bins.items())]
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:16]
    out = IMAGE_CACHE / key
    document = out / "images.json"
    with locked():
        if document.exists():
            log(f"cached: {out}")
            os.utime(out)
            return json.loads(document.read_text())
        work = IMAGE_CACHE / f".work-{key}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            entries = [write_image(definition, bins[definition.binary], registry, work, out) for definition in definitions()]
            result = {"registry": registry, "images": entries}
            (work / "images.json").write_text(json.dumps(result, indent=2) + "\n")
            shutil.rmtree(out, ignore_errors=True)
            work.rename(out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        prune()
    log(f"built {len(entries)} images in {out}")
    return result


def write_image(definition: Definition, binary: Path, registry: str, work: Path, out: Path) -> dict:
    image = build_image(definition, binary)
    repository = definition.repository(registry)
    ref = f"{repository}:{definition.tag}"
    oci.write_layout(work / definition.name, image.blobs, [image.descriptor(annotations=oci.ref_annotations(ref))])
    oci.write_archive(work / definition.name, work / f"{definition.name}.tar")
    log(f"{ref} {image.digest} ({image.size} bytes)")
    return {
        "name": definition.name,
        "ref": ref,
        "tag_ref": ref,
        "digest_ref": f"{repository}@{image.digest}",
        "repository": repository,
        "tag": definition.tag,
        "digest": image.digest,
        "size": image.size,
        "pushed": not definition.local,
        "tar": str(out / f"{definition.name}.tar"),
        "layout": str(out / definition.name),
    }


def prune() -> None:
    """Keep the KEEP newest image sets and the binaries used recently; drop the rest."""
    sets = sorted((p for p in IMAGE_CACHE.iterdir() if p.is_dir() and (p / "images.json").exists()),
                  key=lambda p: p.stat().st_mtime, reverse=True)  # fmt: skip
    bins = sorted((IMAGE_CACHE / "bin").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[KEEP:] + bins[KEEP * 4:]:
        shutil.rmtree(old, ignore_errors=True)


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
        pushed = run([crane, "push", "--insecure", entry["layout"], entry["ref"]], timeout=300).strip()
        if not pushed.endswith(entry["digest"]):
            raise BuildError(f"crane pushed {entry['ref']} as {pushed!r}, expected digest {entry['digest']}")
        log(f"pushed {entry['ref']} ({entry['digest']})")


def import_images(document: dict, address: str, ctr: str) -> None:
    base = [ctr, "--address", address, "--namespace", NAMESPACE, "images"]
    for entry in document["images"]:
        run([*base, "import", "--platform", PLATFORM, entry["tar"]], timeout=300)
        run([*base, "tag", "--force", entry["tag_ref"], entry["digest_ref"]])
        log(f"imported {entry['tag_ref']} and {entry['digest_ref']}")
    names = set(run([*base, "list", "--quiet"]).split())
    missing = [n for e in document["images"] for n in (e["tag_ref"], e["digest_ref"]) if n not in names]
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
    except (BuildError, OSError, subprocess.TimeoutExpired) as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
