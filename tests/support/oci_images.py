"""Build small OCI images from scratch and push them to a registry, without Docker.

The image tests need images that are good, run as root, exist only for arm64, come as a
multi-platform index, or have neither entrypoint nor cmd. Each is a gzip'ed tar layer with
one tiny file, an image configuration, an OCI manifest (and for indexes an OCI index),
written as an OCI image layout directory and pushed with ``crane push`` (the testenv ships
crane). Everything is deterministic: the same arguments give the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


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


@dataclass(frozen=True)
class Pushed:
    """What was pushed: the tag's digest and, per image, manifest and config digests and size."""

    ref: str
    digest: str
    media_type: str
    manifests: dict[str, dict]
    """platform ("linux/amd64") -> {"digest", "config", "size"} (size: layers + config)."""


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(label: str) -> tuple[bytes, bytes]:
    """(gzip'ed tar, uncompressed tar) with /hello.txt and /bin/algorithm."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content, mode in (
            ("hello.txt", f"hello from {label}\n".encode(), 0o644),
            ("bin/algorithm", b"#!/bin/sh\necho algorithm\n", 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(content), mode, 0, 0, 0
            tar.addfile(info, io.BytesIO(content))
    uncompressed = raw.getvalue()
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0) as gz:
        gz.write(uncompressed)
    return compressed.getvalue(), uncompressed


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path: Path):
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = _sha(data)
        (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def image(self, spec: ImageSpec) -> tuple[dict, dict]:
        """Write one image; return (manifest descriptor, info) where info has digest, config, size."""
        layer, uncompressed = _layer(spec.label)
        layer_desc = self.blob(layer, OCI_LAYER)
        inner = {"User": spec.user, "WorkingDir": spec.working_dir, "Labels": {"test.variant": spec.label}, "Env": ["PATH=/bin"]}
        if spec.entrypoint is not None:
            inner["Entrypoint"] = spec.entrypoint
        if spec.cmd is not None:
            inner["Cmd"] = spec.cmd
        config = {
            "architecture": spec.architecture,
            "os": spec.os,
            **({"variant": spec.variant} if spec.variant else {}),
            "created": "2024-01-01T00:00:00Z",
            "config": inner,
            "rootfs": {"type": "layers", "diff_ids": [_sha(uncompressed)]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "tests/support/oci_images.py"}],
        }
        config_desc = self.blob(json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": [layer_desc]}
        platform = {"architecture": spec.architecture, "os": spec.os, **({"variant": spec.variant} if spec.variant else {})}
        desc = self.blob(json.dumps(manifest).encode(), OCI_MANIFEST, platform=platform)
        info = {"digest": desc["digest"], "config": config_desc["digest"], "size": config_desc["size"] + layer_desc["size"]}
        return desc, info

    def finish(self, manifests: list[dict]) -> dict:
        """Write index.json; ``crane push --index`` pushes exactly these bytes as the image index."""
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
        (self.path / "index.json").write_bytes(data)
        return {"mediaType": OCI_INDEX, "digest": _sha(data), "size": len(data)}


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
    layout = Layout(workdir / hashlib.sha256(ref.encode()).hexdigest()[:12])
    manifests, infos = [], {}
    for spec in images:
        desc, info = layout.image(spec)
        manifests.append(desc)
        infos["/".join(p for p in (spec.os, spec.architecture, spec.variant) if p)] = info
    if as_index:
        top = layout.finish(manifests)
        crane("push", "--insecure", "--index", str(layout.path), ref, env=env)
    else:
        top = manifests[0]
        layout.finish([{k: v for k, v in top.items() if k != "platform"}])
        crane("push", "--insecure", str(layout.path), ref, env=env)
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
