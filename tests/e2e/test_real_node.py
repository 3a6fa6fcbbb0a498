"""Real ComponentJobs through the operator on the real node, in a namespace enforcing Pod
Security "restricted": the algorithm really receives its inputs, really runs out of memory,
really hits its time limit, really fails with a message, and its outputs really come back.

The time-limit job takes the platform's minimum limit (300 s), so it starts first and is
checked last; everything else runs while it waits.

A hostile algorithm (testenv/images/algorithms/key_hunter.c) reads every environment, every
process memory, every file it can reach inside its pod, and reports every 64-hex-digit string
it found: the job's signing key and the signatures of its presigned grants are not among them,
although it could read PID 1's environment and memory, and it did find the canary it was given.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from component_operator import GROUP, VERSION
from component_operator.adapters.s3 import ObjectStore, S3Settings

from ..support.cluster import wait_until
from .conftest import E2E_BUCKET, create_image, wait_image

BOX = {"version": {"major": 1, "minor": 0}, "type": "2D bounding box", "name": "lesion",
       "corners": [[10, 10, 0], [30, 10, 0], [30, 40, 0], [10, 40, 0]]}
ALGORITHM_OUTPUTS = ["e2e-results", "e2e-metrics", "e2e-probability-map"]
OOM_MESSAGE = "The container was killed as it exceeded its memory limit"


def job_body(name: str, image: str, **spec) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentJob",
        "metadata": {"name": name},
        "spec": {"image": image, "requiresMemoryGB": 1, "timeLimit": 300, **spec},
    }


def create_job(custom, namespace: str, body: dict) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", body)


def get_job(custom, namespace: str, name: str) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", name)


def wait_terminal(custom, namespace: str, name: str, timeout: float = 180) -> dict:
    def done():
        job = get_job(custom, namespace, name)
        return job if (job.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Cancelled") else None

    return wait_until(done, timeout=timeout, interval=0.5, message=f"job {name} to end")


def job_pod(core, namespace: str, name: str) -> client.V1Pod:
    (pod,) = core.list_namespaced_pod(namespace, label_selector=f"components.grand-challenge.org/job={name}").items
    return pod


def seconds(a: str, b: datetime) -> float:
    return (b - datetime.fromisoformat(a.replace("Z", "+00:00"))).total_seconds()


@pytest.fixture(scope="module")
def slow_job(custom, e2e_ns):
    """A sleeper that outlives the 300 s time limit, started before every other test."""
    create_job(custom, e2e_ns, job_body("sleeps-too-long", "sleeper"))
    return "sleeps-too-long"


def test_restricted_profile_is_enforced(core, e2e_ns, slow_job):
    """The namespace really refuses what "restricted" forbids, so the jobs below prove conformance."""
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="c", image="localhost/testenv/pause:1",
            security_context=client.V1SecurityContext(privileged=True))]),
    )
    with pytest.raises(client.exceptions.ApiException) as err:
        core.create_namespaced_pod(e2e_ns, pod)
    assert err.value.status == 403 and "violates PodSecurity" in err.value.body


def test_exec_and_logs_reach_the_real_node(testenv, custom, core, e2e_ns, real_node, slow_job):
    """`kubectl exec` and `kubectl logs` go through the API server to the kubelet."""
    wait_until(lambda: (get_job(custom, e2e_ns, slow_job).get("status") or {}).get("phase") == "Executing",
               timeout=120, message="the sleeper to execute")
    pod = job_pod(core, e2e_ns, slow_job)
    assert pod.spec.node_name == real_node
    version = testenv.kubectl("exec", "-n", e2e_ns, pod.metadata.name, "-c", "algorithm", "--", "/agent/agent", "version")
    info = json.loads(version.stdout)
    assert info["frozen"] is True and info["static"] is True
    logs = wait_until(lambda: testenv.kubectl("logs", "-n", e2e_ns, pod.metadata.name, "-c", "algorithm").stdout
                      or None, timeout=30, message="the sleeper's first log line")
    lines = [json.loads(line) for line in logs.splitlines()]
    assert any(not line["internal"] and line["source"] == "stdout" for line in lines), logs


def test_algorithm_runs_and_its_outputs_come_back(custom, core, e2e_ns, real_node, slow_job):
    body = job_body("segment", "gc-algorithm", outputs=ALGORITHM_OUTPUTS, inputs=[
        {"interface": "e2e-threshold", "value": 0.4},
        {"interface": "e2e-lesion-box", "value": BOX},
    ])
    create_job(custom, e2e_ns, body)
    job = wait_terminal(custom, e2e_ns, "segment")
    status = job["status"]
    assert (status["phase"], status["reason"]) == ("Succeeded", "Succeeded"), json.dumps(status, indent=1)
    outputs = {o["interface"]: o for o in status["outputs"]}
    results = outputs["e2e-results"]["value"]
    # The algorithm echoes what it found under /input: the values arrived intact.
    assert results["algorithm"] == "gc-algorithm"
    assert results["inputs"]["e2e-threshold"] == 0.4 and results["inputs"]["e2e-lesion-box"] == BOX
    assert 0.0 <= results["score"] <= 1.0
    assert outputs["e2e-metrics"]["file"]["size"] > 0 and outputs["e2e-metrics"]["file"]["uri"].startswith("s3://")
    assert len(outputs["e2e-probability-map"]["image"]["sha256"]) == 64
    # The algorithm's own lines, from the kubelet's logs, split into its two streams.
    assert "gc-algorithm" in status["stdout"] and status["stderr"]
    metrics = status["runtimeMetrics"]
    assert metrics["peakMemoryBytes"] > 0 and metrics["instance"]["node"] == real_node
    pod = job_pod(core, e2e_ns, "segment")
    assert pod.spec.node_name == real_node
    algo = pod.status.container_statuses[0].state.terminated
    assert algo.exit_code == 0
    total = (algo.finished_at - pod.status.start_time).total_seconds()
    print(f"\nsegment: created->Succeeded {seconds(job['metadata']['creationTimestamp'], _completed(status)):.2f}s, "
          f"pod {total:.2f}s, algorithm {metrics['runSeconds']:.2f}s, agent overhead {total - metrics['runSeconds']:.2f}s")


def _completed(status: dict) -> datetime:
    return datetime.fromisoformat(status["completedAt"].replace("Z", "+00:00"))


def test_memory_limit_is_a_real_oom_kill(custom, core, e2e_ns, slow_job):
    create_job(custom, e2e_ns, job_body("hog", "memory-hog", requiresMemoryGB=1))
    status = wait_terminal(custom, e2e_ns, "hog")["status"]
    assert (status["phase"], status["reason"], status["errorMessage"]) == ("Failed", "OOMKilled", OOM_MESSAGE)
    terminated = job_pod(core, e2e_ns, "hog").status.container_statuses[0].state.terminated
    # The kernel's OOM killer, as the runtime saw it: not a simulation.
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)
    assert status["runtimeMetrics"]["peakMemoryBytes"] >= 900 * 1024 * 1024


def test_non_zero_exit_reports_the_last_stderr_line(custom, core, e2e_ns, slow_job):
    create_job(custom, e2e_ns, job_body("fails", "fail"))
    status = wait_terminal(custom, e2e_ns, "fails")["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "NonZeroExitCode")
    assert status["errorMessage"] == "error: could not segment: input volume is empty"
    assert status["detailedErrorMessage"]["exitCode"] == "3"
    assert job_pod(core, e2e_ns, "fails").status.container_statuses[0].state.terminated.exit_code == 3


def test_gpu_job_lands_on_the_real_node(custom, core, e2e_ns, real_node, slow_job):
    body = job_body("gpu-segment", "gc-algorithm", requiresGPUType="T4", outputs=ALGORITHM_OUTPUTS,
                    inputs=[{"interface": "e2e-threshold", "value": 0.9}, {"interface": "e2e-lesion-box", "value": BOX}])
    create_job(custom, e2e_ns, body)
    status = wait_terminal(custom, e2e_ns, "gpu-segment")["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    pod = job_pod(core, e2e_ns, "gpu-segment")
    assert pod.spec.node_name == real_node
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert pod.spec.node_selector["nvidia.com/gpu.product"] == "Tesla-T4"
    assert status["runtimeMetrics"]["instance"]["gpu_type"] == "T4"


def test_root_image_is_refused_before_it_runs(custom, core, e2e_ns, node_images, slow_job):
    create_image(custom, e2e_ns, "runs-as-root", node_images["runs-as-root"]["ref"])
    image = wait_image(custom, e2e_ns, "runs-as-root", ready=False)
    assert image["message"].startswith("The container runs as root.")
    create_job(custom, e2e_ns, job_body("as-root", "runs-as-root"))
    status = wait_terminal(custom, e2e_ns, "as-root", timeout=60)["status"]
    assert status["phase"] == "Failed" and "runs-as-root" in status["errorMessage"]
    assert core.list_namespaced_pod(e2e_ns, label_selector="components.grand-challenge.org/job=as-root").items == []


def test_the_algorithm_cannot_find_the_signing_key_or_the_grants(testenv, custom, core, e2e_ns, key_hunter_image,
                                                                 slow_job):
    store = ObjectStore(S3Settings(testenv.env["TESTENV_S3_ENDPOINT"], access_key=testenv.env["TESTENV_S3_ACCESS_KEY"],
                                   secret_key=testenv.env["TESTENV_S3_SECRET_KEY"]))
    table = f"s3://{E2E_BUCKET}/inputs/{e2e_ns}/table.csv"
    store.put_bytes(table, b"case,value\n1,2\n")
    canary = secrets.token_hex(32)  # a 64-hex-digit string it is allowed to see: the scanner works
    create_image(custom, e2e_ns, "key-hunter", key_hunter_image["ref"])
    wait_image(custom, e2e_ns, "key-hunter")
    create_job(custom, e2e_ns, job_body("hunts-keys", "key-hunter", outputs=["e2e-results", "e2e-metrics"], inputs=[
        {"interface": "e2e-note", "value": canary}, {"interface": "e2e-table", "file": {"uri": table}}]))
    # What there is to find: the key, the GET URL's and the POST policy's signatures.
    secret = wait_until(lambda: _secret(core, e2e_ns, "hunts-keys-0-agent"), timeout=60, message="the agent Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    key = data["signingKey"]
    get_signature = parse_qs(urlsplit(json.loads(data["download-0"])["url"]).query)["X-Amz-Signature"][0]
    post_signature = json.loads(data["upload"])["fields"]["x-amz-signature"]
    assert len({key, get_signature, post_signature}) == 3 and all(len(v) == 64 for v in (key, get_signature, post_signature))

    status = wait_terminal(custom, e2e_ns, "hunts-keys")["status"]
    assert (status["phase"], status["reason"]) == ("Succeeded", "Succeeded"), json.dumps(status, indent=1)
    outputs = {o["interface"]: o for o in status["outputs"]}
    report = outputs["e2e-results"]["value"]
    found = store.get_bytes(outputs["e2e-metrics"]["file"]["uri"], max_bytes=10**7).decode()
    candidates = {line.split(",")[-1]: line.split(",")[0] for line in found.splitlines()[1:]}
    print(f"\nkey-hunter: {report['candidates']} candidate(s); could read {len(report['readable'])} paths, e.g. "
          f"{[p for p in report['readable'] if p.startswith('/proc/1/')]}; denied {report['denied'][:8]}")
    # It really looked: PID 1's environment and memory (staticx's bootloader, same uid) and its
    # own memory were readable, and the canary was found (in /input and in its memory).
    assert {"/proc/1/environ", "/proc/1/mem", "/proc/self/mem"} <= set(report["readable"]), report["readable"][:50]
    assert canary in candidates
    # ... and found neither the key nor a signature of the grants, nor a grant at all.
    assert key not in candidates, f"the signing key was readable at {candidates[key]}"
    assert get_signature not in candidates and post_signature not in candidates, candidates
    assert report["grantMarkers"] == {}, report["grantMarkers"]
    assert not [p for p in report["readable"] if "handoff" in p or "serviceaccount" in p], report["readable"]


def _secret(core, namespace: str, name: str):
    try:
        return core.read_namespaced_secret(name, namespace)
    except client.exceptions.ApiException as err:
        if err.status == 404:
            return None
        raise


def test_time_limit_stops_the_algorithm(custom, core, e2e_ns, slow_job):
    status = wait_terminal(custom, e2e_ns, slow_job, timeout=420)["status"]
    assert (status["phase"], status["reason"], status["errorMessage"]) == ("Failed", "DeadlineExceeded", "Time limit exceeded")
    assert status["detailedErrorMessage"] == {"agent": "the agent stopped the algorithm"}
    assert 300 <= status["runtimeMetrics"]["runSeconds"] < 330
