"""The data plane on the control plane: a job's pod lands on a kwok node; the agent runs as a
local process with the pod's own environment (its Secret, its invocation ConfigMap); kwok then
completes the pod, and the operator verifies the signed result and validates every output.

The Secret holds no object-store credential, only the attempt's presigned grants; an output
replaced after the agent signed its digest fails the job with ``OutputDigestMismatch``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client

from component_operator import GROUP, VERSION

from .conftest import OperatorProcess, ensure_interfaces, wait_until
from .test_jobs import BBOX, get_job, wait_phase

ALGORITHM = r'''
"""A grand-challenge-style algorithm: reads /input/inputs.json, writes JSON, CSV and an image."""
import json, os, struct, sys
inp, out = os.environ["ALGO_INPUT"], os.environ["ALGO_OUTPUT"]
mode = os.environ.get("ALGO_MODE", "good")
inputs = json.load(open(os.path.join(inp, "inputs.json")))
box = json.load(open(os.path.join(inp, "dp-bbox.json")))
print("inputs:", [i["interface"]["slug"] for i in inputs])
print("signing key visible:", "COMPONENT_OPERATOR_SIGNING_KEY_HEX" in os.environ)
print("warning: this goes to stderr", file=sys.stderr)
if mode != "missing":
    value = "high" if mode == "invalid" else 0.25 * len(box["corners"])
    json.dump(value, open(os.path.join(out, "dp-prob.json"), "w"))
with open(os.path.join(out, "dp-metrics.csv"), "w") as f:
    f.write("metric,value\ndice,0.9\n")
os.makedirs(os.path.join(out, "images", "dp-heat"), exist_ok=True)
with open(os.path.join(out, "images", "dp-heat", "heat.mha"), "wb") as f:
    f.write(b"ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n")
    f.write(bytes([0, 1, 2, 3]))
'''

INTERFACES = {
    "dp-bbox": {"kind": "2D bounding box", "relativePath": "dp-bbox.json", "title": "DP box"},
    "dp-prob": {"kind": "Float", "relativePath": "dp-prob.json", "title": "DP probability", "schema": {"maximum": 1}},
    "dp-metrics": {"kind": "CSV file (legacy)", "relativePath": "dp-metrics.csv", "storeInDatabase": False},
    "dp-heat": {"kind": "Heat Map", "relativePath": "images/dp-heat", "storeInDatabase": False},
}


@pytest.fixture(scope="module")
def dataplane_operator(testenv, custom, operator_process, tmp_path_factory):
    """Swap the session's operator for one with the data plane on, then swap back."""
    ensure_interfaces(custom, INTERFACES)
    workdir = tmp_path_factory.mktemp("dataplane-operator")
    config = workdir / "config.yaml"
    config.write_text(
        'podAnnotationPrefixes: ["sim.testenv/"]\nresyncSeconds: 3\n'
        f'objectStorage: {{endpoint: "{testenv.env["TESTENV_S3_ENDPOINT"]}", bucket: it-component-jobs}}\n'
    )
    args = [a for a in operator_process.extra_args]
    args[args.index("--config") + 1] = str(config)
    operator_process.kill()
    op = OperatorProcess(testenv, workdir / "operator.log", args)
    os.environ["COMPONENT_OPERATOR_S3_ACCESS_KEY"] = testenv.env["TESTENV_S3_ACCESS_KEY"]
    os.environ["COMPONENT_OPERATOR_S3_SECRET_KEY"] = testenv.env["TESTENV_S3_SECRET_KEY"]
    op.start()
    yield op
    op.stop()
    operator_process.start()


def _resolve_env(core, namespace: str, container) -> dict[str, str]:
    env = {}
    for item in container.env or []:
        if item.value_from is not None:
            ref = item.value_from.secret_key_ref
            secret = core.read_namespaced_secret(ref.name, namespace)
            env[item.name] = base64.b64decode(secret.data[ref.key]).decode()
        else:
            env[item.name] = item.value or ""
    return env


def run_agent_like_the_pod(core, namespace: str, pod_name: str, workdir: Path, mode: str = "good") -> dict:
    """Run `agent prepare` and `agent run` locally with the environment the pod would give them."""
    pod = core.read_namespaced_pod(pod_name, namespace)
    (init,) = pod.spec.init_containers
    algo = pod.spec.containers[0]
    invocation_cm = next(v.config_map.name for v in pod.spec.volumes if v.name == "invocation")
    invocation = core.read_namespaced_config_map(invocation_cm, namespace).data["invocation.json"]
    roots = {name: workdir / name for name in ("input", "output", "agent", "model", "gt")}
    for path in roots.values():
        path.mkdir(parents=True, exist_ok=True)
    (workdir / "invocation.json").write_text(invocation)
    local = {
        "COMPONENT_OPERATOR_INVOCATION_FILE": str(workdir / "invocation.json"),
        "COMPONENT_OPERATOR_HANDOFF_FILE": str(workdir / "tmp" / "handoff.json"),
        "COMPONENT_OPERATOR_INPUT_ROOT": str(roots["input"]),
        "COMPONENT_OPERATOR_OUTPUT_ROOT": str(roots["output"]),
        "COMPONENT_OPERATOR_AGENT_DIR": str(roots["agent"]),
        "COMPONENT_OPERATOR_MODEL_ROOT": str(roots["model"]),
        "COMPONENT_OPERATOR_GROUND_TRUTH_ROOT": str(roots["gt"]),
    }
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    agent = [sys.executable, "-m", "component_operator.cli", "agent"]
    prepare = subprocess.run([*agent, "prepare"], env={**base, **_resolve_env(core, namespace, init), **local},
                             capture_output=True, text=True, timeout=120)
    assert prepare.returncode == 0, prepare.stderr
    (workdir / "algorithm.py").write_text(ALGORITHM)
    algo_env = {**base, **_resolve_env(core, namespace, algo), **local,
                "ALGO_INPUT": str(roots["input"]), "ALGO_OUTPUT": str(roots["output"]), "ALGO_MODE": mode}
    # The pod's command is `<agent> run -- <image program>`; locally the program is our script.
    assert algo.command[:3] == ["/agent/agent", "run", "--"]
    run = subprocess.run([*agent, "run", "--", sys.executable, str(workdir / "algorithm.py")], env=algo_env,
                         capture_output=True, text=True, timeout=120)
    return {"returncode": run.returncode, "stdout": run.stdout, "stderr": run.stderr}


def _job(name: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentJob",
        "metadata": {"name": name, "annotations": {"sim.testenv/outcome": "hang"}},
        "spec": {
            "image": "algo",
            "inputs": [{"interface": "dp-bbox", "value": BBOX}],
            "outputs": ["dp-prob", "dp-metrics", "dp-heat"],
            "requiresMemoryGB": 2,
        },
    }


def _start(custom, core, ns: str, name: str) -> str:
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs", _job(name))
    wait_phase(custom, ns, name, "Executing")
    return get_job(custom, ns, name)["status"]["podName"]


def _complete_pod(core, ns: str, pod_name: str) -> None:
    core.patch_namespaced_pod(pod_name, ns, {"metadata": {"annotations": {"sim.testenv/outcome": "succeed",
                                                                          "sim.testenv/after": "0s"}}})


@pytest.fixture()
def dp_ns(namespace, ready_image, dataplane_operator):
    ready_image(namespace, "algo")
    return namespace


def test_agent_outputs_are_verified_and_land_in_status(custom, core, dp_ns, tmp_path):
    pod_name = _start(custom, core, dp_ns, "dp-good")
    run = run_agent_like_the_pod(core, dp_ns, pod_name, tmp_path)
    assert run["returncode"] == 0, run["stderr"]
    lines = [json.loads(line) for line in run["stdout"].splitlines() if line.strip()]
    assert {"log": "signing key visible: False", "source": "stdout", "internal": False} .items() <= next(
        line for line in lines if line["log"].startswith("signing key")).items()
    _complete_pod(core, dp_ns, pod_name)
    status = wait_phase(custom, dp_ns, "dp-good", ("Succeeded", "Failed"), timeout=60)
    assert status["phase"] == "Succeeded", status.get("errorMessage")
    outputs = {o["interface"]: o for o in status["outputs"]}
    assert outputs["dp-prob"]["value"] == 1.0
    assert outputs["dp-metrics"]["file"]["size"] == len("metric,value\ndice,0.9\n")
    assert outputs["dp-metrics"]["file"]["uri"].startswith("s3://it-component-jobs/")
    assert len(outputs["dp-heat"]["image"]["sha256"]) == 64
    assert status["runtimeMetrics"]["agentVersion"]
    assert next(c for c in status["conditions"] if c["type"] == "OutputsValid")["status"] == "True"


def test_missing_output_fails(custom, core, dp_ns, tmp_path):
    pod_name = _start(custom, core, dp_ns, "dp-missing")
    run_agent_like_the_pod(core, dp_ns, pod_name, tmp_path, mode="missing")
    _complete_pod(core, dp_ns, pod_name)
    status = wait_phase(custom, dp_ns, "dp-missing", ("Succeeded", "Failed"), timeout=60)
    assert (status["phase"], status["reason"]) == ("Failed", "OutputMissing")
    assert status["errorMessage"] == "Output file 'dp-prob.json' was not produced"


def test_invalid_output_value_fails(custom, core, dp_ns, tmp_path):
    pod_name = _start(custom, core, dp_ns, "dp-invalid")
    run_agent_like_the_pod(core, dp_ns, pod_name, tmp_path, mode="invalid")
    _complete_pod(core, dp_ns, pod_name)
    status = wait_phase(custom, dp_ns, "dp-invalid", ("Succeeded", "Failed"), timeout=60)
    assert (status["phase"], status["reason"]) == ("Failed", "OutputInvalid")
    assert status["errorMessage"].startswith("The output file 'dp-prob.json' is not valid. JSON does not fulfill schema")


def test_unsigned_result_fails(custom, core, testenv, dp_ns, tmp_path):
    """A result written without the job's key (as an algorithm could try) is refused."""
    from component_operator.adapters.s3 import ObjectStore, S3Settings

    pod_name = _start(custom, core, dp_ns, "dp-unsigned")
    job = get_job(custom, dp_ns, "dp-unsigned")
    uid, attempt = job["metadata"]["uid"], job["status"]["attempt"]
    forged = {"pk": f"{dp_ns}/dp-unsigned/{uid}/{attempt}", "return_code": 0, "timed_out": False,
              "exec_duration_seconds": 1.0, "invoke_duration_seconds": None, "started_at": "2026-01-01T00:00:00Z",
              "finished_at": "2026-01-01T00:00:01Z", "peak_memory_bytes": None, "outputs": [], "agent_version": "0.1.0"}
    store = ObjectStore(S3Settings(endpoint=testenv.env["TESTENV_S3_ENDPOINT"], access_key=testenv.env["TESTENV_S3_ACCESS_KEY"],
                                   secret_key=testenv.env["TESTENV_S3_SECRET_KEY"]))
    store.put_bytes(f"s3://it-component-jobs/jobs/{dp_ns}/dp-unsigned/{uid}/{attempt}/result.json", json.dumps(forged).encode())
    _complete_pod(core, dp_ns, pod_name)
    status = wait_phase(custom, dp_ns, "dp-unsigned", ("Succeeded", "Failed"), timeout=60)
    assert (status["phase"], status["reason"]) == ("Failed", "ResultTampered")
    assert status["errorMessage"] == "The invocation response object has been tampered with"


def test_no_result_at_all_fails(custom, core, dp_ns):
    pod_name = _start(custom, core, dp_ns, "dp-noresult")
    _complete_pod(core, dp_ns, pod_name)
    status = wait_phase(custom, dp_ns, "dp-noresult", ("Succeeded", "Failed"), timeout=60)
    assert (status["phase"], status["reason"], status["errorMessage"]) == ("Failed", "ResultMissing", "An unexpected error occurred")
    assert "did not return a result" in status["detailedErrorMessage"]["result"]


def test_an_output_replaced_after_signing_fails_the_job(custom, core, testenv, dp_ns, tmp_path):
    from component_operator.adapters.s3 import ObjectStore, S3Settings

    pod_name = _start(custom, core, dp_ns, "dp-swapped")
    run = run_agent_like_the_pod(core, dp_ns, pod_name, tmp_path)
    assert run["returncode"] == 0, run["stderr"]
    job = get_job(custom, dp_ns, "dp-swapped")
    uid, attempt = job["metadata"]["uid"], job["status"]["attempt"]
    store = ObjectStore(S3Settings(endpoint=testenv.env["TESTENV_S3_ENDPOINT"], access_key=testenv.env["TESTENV_S3_ACCESS_KEY"],
                                   secret_key=testenv.env["TESTENV_S3_SECRET_KEY"]))
    uri = f"s3://it-component-jobs/jobs/{dp_ns}/dp-swapped/{uid}/{attempt}/output/dp-metrics.csv"
    original = store.get_bytes(uri, max_bytes=1000)
    store.put_bytes(uri, b"metric,value\ndice,1.0\n")  # as valid as before, but not what was signed
    _complete_pod(core, dp_ns, pod_name)
    status = wait_phase(custom, dp_ns, "dp-swapped", ("Succeeded", "Failed"), timeout=60)
    assert (status["phase"], status["reason"]) == ("Failed", "OutputDigestMismatch"), status
    expected = hashlib.sha256(original).hexdigest()
    actual = hashlib.sha256(b"metric,value\ndice,1.0\n").hexdigest()
    assert status["errorMessage"] == (
        f"Output 'dp-metrics' does not match the signed result: 'dp-metrics.csv' should be {len(original)} bytes with "
        f"sha256 {expected}, the stored object is 22 bytes with sha256 {actual}")
    assert status["detailedErrorMessage"]["dp-metrics"] == status["errorMessage"]


def test_pod_has_network_policy_and_secret(custom, core, api_client, dp_ns):
    pod_name = _start(custom, core, dp_ns, "dp-wiring")
    net = client.NetworkingV1Api(api_client)
    policy = net.read_namespaced_network_policy("dp-wiring-network", dp_ns)
    assert policy.spec.ingress in (None, []) and "Egress" in policy.spec.policy_types
    secret = core.read_namespaced_secret("dp-wiring-0-agent", dp_ns)
    assert len(base64.b64decode(secret.data["signingKey"])) == 64  # hex of 32 random bytes
    # No credential: the upload policy for the attempt's prefix (the job has no input objects).
    assert set(secret.data) == {"signingKey", "upload", "expiresAt"}
    contents = b"".join(base64.b64decode(v) for v in secret.data.values())
    assert os.environ["COMPONENT_OPERATOR_S3_SECRET_KEY"].encode() not in contents
    upload = json.loads(base64.b64decode(secret.data["upload"]))
    assert upload["keyPrefix"].startswith(f"jobs/{dp_ns}/dp-wiring/") and upload["keyPrefix"].endswith("/0/")
    assert secret.metadata.owner_references[0].kind == "ComponentJob"
    pod = core.read_namespaced_pod(pod_name, dp_ns)
    assert pod.spec.init_containers[0].name == "prepare"
