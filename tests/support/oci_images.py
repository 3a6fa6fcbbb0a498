"""Build small OCI images from scratch and push them to a registry, without Docker.

The image tests need images that are good, run as root, exist only for arm64, come as a
multi-platform index, or have neither entrypoint nor cmd. Each is a gzip'ed tar layer with
two tiny files (plus, for the USER-name tests, layers with /etc/passwd and /etc/group: a
plain tar base and a gzip'ed layer on top adding the user, as ``useradd`` in a Dockerfile
would), an image configuration, an OCI manifest (and for indexes an OCI index),
written by testenv/images/oci.py as an OCI image layout directory and pushed with
``crane push`` (the testenv ships crane). Everything is deterministic: the same arguments
give the same digests.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testenv.images import oci


@dataclass(frozen=True)
class LayerSpec:
    """A layer on top of the base one: (path, content) entries, content None for a whiteout."""

    files: tuple[tuple[str, bytes | None], ...]
    compress: bool = True

    def build(self) -> oci.Layer:
        dirs = sorted({posixpath.dirname(path) for path, _ in self.files} - {""})
        entries = [oci.File.dir(d) for d in dirs]
        entries += [oci.File.whiteout(path) if content is None else oci.File(path, content) for path, content in self.files]
        return oci.layer(entries, compress=self.compress)


PASSWD = b"root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0:root again:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\nuser:x:999:\n"
USER_LINE = b"user:x:999:999::/home/user:/bin/sh\n"
#: A base layer with /etc/passwd and /etc/group (plain tar), then ``useradd -r user`` (gzip).
USERADD_LAYERS = (
    LayerSpec((("etc/passwd", PASSWD), ("etc/group", GROUP)), compress=False),
    LayerSpec((("etc/passwd", PASSWD + USER_LINE),)),
)


@dataclass(frozen=True)
class ImageSpec:
    """One single-platform image."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    user: str = "1000:1000"
    entrypoint: list[str] | None = field(default_factory=lambda: ["/bin/algorithm"])
    cmd: list[str] | None = None
    working_dir: str = "/opt/algorithm"
    label: str = "test"
    """Goes into the config's labels and the layer: different labels give different digests."""
    extra_layers: tuple[LayerSpec, ...] = ()
    """Layers on top of the base layer, bottom first."""

    def build(self) -> oci.Image:
        layer = oci.layer([
            oci.File("hello.txt", f"hello from {self.label}\n".encode()),
            oci.File("bin/algorithm", b"#!/bin/sh\necho algorithm\n", mode=0o755),
        ])  # fmt: skip
        layers = [layer, *(extra.build() for extra in self.extra_layers)]
        config = oci.Config(
            user=self.user, entrypoint=self.entrypoint, cmd=self.cmd, env=["PATH=/bin"], working_dir=self.working_dir,
            labels={"test.variant": self.label}, architecture=self.architecture, os=self.os, variant=self.variant,
            created="2024-01-01T00:00:00Z", created_by="tests/support/oci_images.py",
        )  # fmt: skip
        return oci.image(config, layers)


@dataclass(frozen=True)
class Pushed:
    """What was pushed: the tag's digest and, per image, manifest and config digests and size."""

    ref: str
    digest: str
    media_type: str
    manifests: dict[str, dict]
    """platform ("linux/amd64") -> {"digest", "config", "size"} (size: layers + config)."""


def crane(*args: str, env: dict[str, str] | None = None) -> str:
    env = {**os.environ, **(env or {})}
    binary = Path(env.get("TESTENV_BIN", "")) / "crane"
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"crane {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def push(ref: str, images: list[ImageSpec], workdir: Path, *, as_index: bool | None = None, env: dict[str, str] | None = None) -> Pushed:
    """Build ``images`` (one image, or an index when several or ``as_index``) and push to ``ref``."""
    as_index = len(images) > 1 if as_index is None else as_index
    layout = workdir / hashlib.sha256(ref.encode()).hexdigest()[:12]
    built = [(spec, spec.build()) for spec in images]
    blobs = [blob for _, image in built for blob in image.blobs]
    infos = {
        "/".join(p for p in (spec.os, spec.architecture, spec.variant) if p):
            {"digest": image.digest, "config": image.config.digest, "size": image.size}
        for spec, image in built
    }  # fmt: skip
    if as_index:
        top = oci.write_layout(layout, blobs, [image.descriptor() for _, image in built]).descriptor()
        crane("push", "--insecure", "--index", str(layout), ref, env=env)
    else:
        image = built[0][1]
        oci.write_layout(layout, blobs, [image.descriptor(platform=False)])
        top = image.manifest.descriptor()
        crane("push", "--insecure", str(layout), ref, env=env)
    return Pushed(ref=ref, digest=top["digest"], media_type=top["mediaType"], manifests=infos)


#: The variants the image tests use.
VARIANTS: dict[str, list[ImageSpec]] = {
    "good": [ImageSpec(label="good")],
    "root": [ImageSpec(label="root", user="root")],
    "arm64": [ImageSpec(label="arm64", architecture="arm64", variant="v8")],
    "arm64-index": [ImageSpec(label="arm64-index", architecture="arm64", variant="v8")],
    "multi": [ImageSpec(label="multi", architecture="arm64", variant="v8"), ImageSpec(label="multi")],
    "noentry": [ImageSpec(label="noentry", entrypoint=None, cmd=None)],
    # USER names, resolved from /etc/passwd in the layers (grand-challenge's template: useradd -r user)
    "named-user": [ImageSpec(label="named-user", user="user", extra_layers=USERADD_LAYERS)],
    "unknown-user": [ImageSpec(label="unknown-user", user="nobody-here", extra_layers=USERADD_LAYERS)],
    "toor-user": [ImageSpec(label="toor-user", user="toor", extra_layers=USERADD_LAYERS)],
}


def push_variant(registry: str, variant: str, workdir: Path, *, repository: str | None = None, tag: str = "v1",
                 label: str | None = None, env: dict[str, str] | None = None) -> Pushed:  # fmt: skip
    """Push one of VARIANTS to ``registry/tests/<variant>:<tag>`` (``label`` makes it unique)."""
    specs = VARIANTS[variant]
    if label:
        specs = [ImageSpec(**{**spec.__dict__, "label": f"{spec.label}-{label}"}) for spec in specs]
    ref = f"{registry}/{repository or f'tests/{variant}'}:{tag}"
    return push(ref, specs, workdir, as_index=variant.endswith("index") or len(specs) > 1, env=env)
