"""Fixtures of the end-to-end tier: real ComponentJobs on the testenv's real node.

The testenv's `up` starts a kubelet with containerd next to the kwok nodes (testenv/scripts/
realnode.sh) and imports the project's own images (testenv/images/). Here the session's
operator is swapped for one with the data plane on, whose pods go to the real node (a node
selector and a toleration from its configuration), talk to MinIO through the CNI bridge and
carry the static agent from the operator's own image.

When the real node cannot run on this machine, the tier is skipped with the preflight's words,
unless the run requires it (``TESTENV_REAL_NODE=require`` or ``CI`` set, as in ``.ci/run``):
then it fails, because a skipped end-to-end tier would hide a broken real node.

The images the testenv imported when it started may be older than this checkout's agent: the
data-plane operator therefore uses an agent image made here from the current sources
(``current_agent_image``: ``build_agent.sh``, cached by source hash, one layer, imported into
the node's containerd), so operator and agent always speak the same contract. Test-only
images (the hostile ``key-hunter``) are built, pushed and imported the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from component_operator import GROUP, VERSION

from ..support.cluster import OperatorProcess, ensure_interfaces, wait_until

E2E_BUCKET = "e2e-component-jobs"

INTERFACES = {
    "e2e-threshold": {"kind": "Float", "relativePath": "threshold.json", "title": "Threshold"},
    "e2e-lesion-box": {"kind": "2D bounding box", "relativePath": "lesion-box.json", "title": "Lesion box"},
    "e2e-results": {"kind": "Anything", "relativePath": "results.json", "title": "Results"},
    "e2e-metrics": {"kind": "CSV file (legacy)", "relativePath": "metrics.csv", "storeInDatabase": False},
    "e2e-probability-map": {"kind": "Heat Map", "relativePath": "images/probability-map", "storeInDatabase": False},
    "e2e-note": {"kind": "String", "relativePath": "note.json", "title": "Note"},
    "e2e-table": {"kind": "CSV file (legacy)", "relativePath": "table.csv", "storeInDatabase": False},
}


def _required() -> bool:
    return os.environ.get("TESTENV_REAL_NODE") == "require" or bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def real_node(testenv) -> str:
    """The real node's name, once it is Ready."""
    state_file = Path(testenv.env.get("TESTENV_NODE_STATE", "/nonexistent"))
    state = state_file.read_text().strip() if state_file.exists() else f"unknown ({state_file} does not exist)"
    if state != "running":
        message = f"the testenv's real node is not running: {state}"
        if _required():
            pytest.fail(message + "\n(required: TESTENV_REAL_NODE=require or CI is set)", pytrace=False)
        pytest.skip(message)
    name = testenv.env["TESTENV_NODE_NAME"]
    testenv.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
    return name


@pytest.fixture(scope="session")
def node_images(testenv, real_node) -> dict[str, dict]:
    """The project's images as `testenv/images/build.py build` described them, by short name."""
    entries = json.loads(Path(testenv.env["TESTENV_NODE_IMAGES"]).read_text())
    if isinstance(entries, dict):
        entries = entries.get("images", list(entries.values()))
    return {entry["name"].split("/")[-1].split(":")[0]: entry for entry in entries}


def _node_images(testenv, workdir: Path, images: list[tuple[str, str, Path, str, bool]]) -> dict[str, dict]:
    """Build one-binary images (name, tag, binary, entrypoint, local), import them into the real
    node's containerd (and push those that are not local); their build.py entries by name."""
    from testenv.images import build as image_build

    entries = []
    for name, tag, binary, entrypoint, local in images:
        definition = image_build.Definition(name, tag, binary.name, f"e2e: {name}", path=entrypoint,
                                            user="65532:65532" if local else "1000:1000", local=local)
        image = image_build.build_image(definition, binary)
        entries.append(image_build.write_entry(name, tag, image, testenv.env["TESTENV_REGISTRY"], workdir, workdir,
                                               local=local))
    document = {"images": entries}
    previous = os.environ.get("TESTENV_BIN")
    os.environ["TESTENV_BIN"] = testenv.env["TESTENV_BIN"]
    try:
        image_build.push(document)
    finally:
        if previous is None:
            os.environ.pop("TESTENV_BIN", None)
        else:
            os.environ["TESTENV_BIN"] = previous
    image_build.import_images(document, testenv.env["TESTENV_NODE_SOCKET"], shutil.which("ctr") or "ctr")
    return {entry["name"]: entry for entry in entries}


@pytest.fixture(scope="session")
def current_agent_image(testenv, real_node, tmp_path_factory) -> str:
    """An image holding the static agent built from this checkout, imported into the node."""
    from testenv.images import build as image_build

    agent = image_build.frozen()  # build_agent.sh: cached by a hash of the agent's sources
    tag = agent.parent.name  # that hash
    entries = _node_images(testenv, tmp_path_factory.mktemp("agent-image"), [
        ("component-operator-agent", tag, agent, image_build.AGENT, True)])
    return entries["component-operator-agent"]["ref"]


@pytest.fixture(scope="session")
def key_hunter_image(testenv, real_node, tmp_path_factory) -> dict:
    """The hostile algorithm of testenv/images/algorithms/key_hunter.c, pushed and imported."""
    from testenv.images import build as image_build

    binary = image_build.compile_c(image_build.HERE / "algorithms" / "key_hunter.c", "key-hunter")
    tag = binary.parent.name[:12]  # compile_c caches by a hash of source, flags and compiler
    return _node_images(testenv, tmp_path_factory.mktemp("key-hunter-image"), [
        ("key-hunter", tag, binary, "/usr/local/bin/key-hunter", False)])["key-hunter"]


@pytest.fixture(scope="session")
def e2e_operator(testenv, custom, operator_process, node_images, current_agent_image, tmp_path_factory):
    """The session's operator, swapped for a data-plane one that sends job pods to the real node."""
    ensure_interfaces(custom, INTERFACES)
    workdir = tmp_path_factory.mktemp("e2e-operator")
    # The testenv writes the real node's operator configuration; only the bucket is ours, and
    # the agent is this checkout's (the imported operator image may predate it).
    settings = yaml.safe_load(Path(testenv.env["TESTENV_NODE_OPERATOR_CONFIG"]).read_text())
    settings["objectStorage"]["bucket"] = E2E_BUCKET
    assert settings["agentImage"] == node_images["component-operator"]["ref"]
    settings["agentImage"] = current_agent_image
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    args = list(operator_process.extra_args)
    args[args.index("--config") + 1] = str(config)
    operator_process.kill()
    op = OperatorProcess(testenv, workdir / "operator.log", args, env={
        "COMPONENT_OPERATOR_S3_ACCESS_KEY": testenv.env["TESTENV_S3_ACCESS_KEY"],
        "COMPONENT_OPERATOR_S3_SECRET_KEY": testenv.env["TESTENV_S3_SECRET_KEY"],
    })
    op.start()
    yield op
    op.stop()
    print(f"e2e operator log: {op.log_path}")
    operator_process.start()


@pytest.fixture(scope="module")
def restricted_namespace(core):
    """A namespace whose Pod Security admission enforces the "restricted" profile."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    labels["pod-security.kubernetes.io/enforce-version"] = "latest"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    yield name
    core.delete_namespace(name)


def create_image(custom, namespace: str, name: str, ref: str) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentImage", "metadata": {"name": name},
            "spec": {"image": ref, "insecureRegistry": True}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", body)


def image_status(custom, namespace: str, name: str) -> dict:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentimages", name)
    return obj.get("status") or {}


def wait_image(custom, namespace: str, name: str, ready: bool = True, timeout: float = 60) -> dict:
    def check():
        status = image_status(custom, namespace, name)
        cond = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), None)
        if ready:
            return status if cond and cond["status"] == "True" else None
        return status if status.get("importStatus") == "Failed" else None

    return wait_until(check, timeout=timeout, message=f"ComponentImage {name} {'Ready' if ready else 'Failed'}")


@pytest.fixture(scope="module")
def e2e_ns(custom, restricted_namespace, node_images, e2e_operator) -> str:
    """The restricted namespace with a Ready ComponentImage per algorithm image."""
    for name in ("gc-algorithm", "memory-hog", "sleeper", "fail"):
        create_image(custom, restricted_namespace, name, node_images[name]["ref"])
    for name in ("gc-algorithm", "memory-hog", "sleeper", "fail"):
        wait_image(custom, restricted_namespace, name)
    return restricted_namespace
