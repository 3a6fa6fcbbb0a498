"""Build small OCI images from scratch and push them to a registry, without Docker.

The image tests need images that are good, run as root, exist only for arm64, come as a
multi-platform index, or have neither entrypoint nor cmd. Each is a gzip'ed tar layer with
two tiny files, an image configuration, an OCI manifest (and for indexes an OCI index),
written by testenv/images/oci.py as an OCI image layout directory and pushed with
``crane push`` (the testenv ships crane). Everything is deterministic: the same arguments
give the same digests.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testenv.images import oci


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

    def build(self) -> oci.Image:
        layer = oci.layer([
            oci.File("hello.txt", f"hello from {self.label}\n".encode()),
            oci.File("bin/algorithm", b"#!/bin/sh\necho algorithm\n", mode=0o755),
        ])  # fmt: skip
        config = oci.Config(
            user=self.user, entrypoint=self.entrypoint, cmd=self.cmd, env=["PATH=/bin"], working_dir=self.working_dir,
            labels={"test.variant": self.label}, architecture=self.architecture, os=self.os, variant=self.variant,
            created="2024-01-01T00:00:00Z", created_by="tests/support/oci_images.py",
        )  # fmt: skip
        return oci.image(config, [layer])


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
}


def push_variant(registry: str, variant: str, workdir: Path, *, repository: str | None = None, tag: str = "v1",
                 label: str | None = None, env: dict[str, str] | None = None) -> Pushed:  # fmt: skip
    """Push one of VARIANTS to ``registry/tests/<variant>:<tag>`` (``label`` makes it unique)."""
    specs = VARIANTS[variant]
    if label:
        specs = [ImageSpec(**{**spec.__dict__, "label": f"{spec.label}-{label}"}) for spec in specs]
    ref = f"{registry}/{repository or f'tests/{variant}'}:{tag}"
    return push(ref, specs, workdir, as_index=variant.endswith("index") or len(specs) > 1, env=env)
