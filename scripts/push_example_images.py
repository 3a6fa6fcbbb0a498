"""Push the example algorithm images to the local registry (no Docker: built by tests/support/oci_images).

    python scripts/push_example_images.py REGISTRY
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support import oci_images  # noqa: E402


def main() -> int:
    registry = sys.argv[1]
    workdir = Path(tempfile.mkdtemp(prefix="example-images-"))
    pushed = oci_images.push(
        f"{registry}/examples/lesion-classifier:1.0",
        [oci_images.ImageSpec(label="lesion-classifier", entrypoint=["/bin/algorithm"], cmd=["--score"])],
        workdir / "lesion-classifier",
        env=dict(os.environ),
    )
    root = oci_images.push(
        f"{registry}/examples/runs-as-root:1.0", [oci_images.ImageSpec(label="root-example", user="root")],
        workdir / "root", env=dict(os.environ),
    )
    for p in (pushed, root):
        print(f"pushed {p.ref} ({p.digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
