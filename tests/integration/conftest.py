"""Fixtures of the integration tier: test images in the local registry and the interfaces the
job tests share. The control plane, the API clients and the operator process are shared with
the end-to-end tier (tests/support/cluster.py, registered in tests/conftest.py).
"""

from __future__ import annotations

import os

import pytest

from ..support.cluster import (  # noqa: F401 - re-exported for the test modules
    OperatorProcess,
    Testenv,
    dump,
    ensure_interfaces,
    load_yaml_docs,
    wait_until,
)


@pytest.fixture(scope="session")
def push_image(testenv: Testenv, tmp_path_factory):
    """Push a small OCI image built by tests/support/oci_images.py; returns the pushed info."""
    from ..support import oci_images

    workdir = tmp_path_factory.mktemp("images")

    def push(repository: str, tag: str = "v1", **spec) -> "oci_images.Pushed":
        ref = f"{testenv.env['TESTENV_REGISTRY']}/{repository}:{tag}"
        return oci_images.push(ref, [oci_images.ImageSpec(**spec)], workdir / f"{repository.replace('/', '_')}-{tag}",
                               env={**os.environ, **testenv.env})

    return push


@pytest.fixture(scope="session")
def good_image_ref(push_image) -> str:
    pushed = push_image("tests/algo", label="jobs")
    return pushed.ref


@pytest.fixture()
def ready_image(custom, good_image_ref):
    """Create a ComponentImage for the good test image in a namespace and wait until it is Ready."""
    from component_operator import GROUP, VERSION

    def make(namespace: str, name: str) -> dict:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ComponentImage",
            "metadata": {"name": name},
            "spec": {"image": good_image_ref, "insecureRegistry": True},
        }
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", body)

        def ready():
            obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", name)
            conds = (obj.get("status") or {}).get("conditions") or []
            return obj if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) else None

        return wait_until(ready, timeout=60, message=f"ComponentImage {name} Ready")

    return make


@pytest.fixture(scope="session")
def job_interfaces(custom):
    """Cluster-scoped interfaces used by the job tests (it-bbox: 2D bounding box, it-prob: Float)."""
    from component_operator import GROUP, VERSION

    specs = {
        "it-bbox": {"kind": "2D bounding box", "relativePath": "it-bbox.json", "title": "IT bounding box"},
        "it-prob": {"kind": "Float", "relativePath": "it-prob.json"},
    }
    ensure_interfaces(custom, specs)
    yield specs
