"""The operator installed into the cluster, as users install it: `helm install` of
charts/component-operator with the testenv's values, the operator's own image on the real node.

Through the in-cluster operator a real job succeeds with validated outputs, and the in-cluster
webhook (reached by the API server through its Service and kube-proxy) refuses an invalid job
at `kubectl apply`. Killing the active replica hands over to the other one while a job runs;
`helm upgrade` to a new image tag while a job runs loses nothing; `helm uninstall` leaves the
CRDs and the user's objects; `kubectl apply --server-side -f dist/install.yaml` installs the
same operator from plain manifests.

While this module runs, the session's local operator processes are stopped: two operators
reconciling the same objects would prove nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from component_operator import GROUP, VERSION

from ..support.cluster import REPO, wait_until
from .conftest import create_image, wait_image
from .test_real_node import ALGORITHM_OUTPUTS, BOX, create_job, get_job, job_body, wait_terminal

RELEASE = "co"
RELEASE_NS = "co-system"
CHART = REPO / "charts" / "component-operator"
JOB_LABEL = "components.grand-challenge.org/job"


def run(testenv, *cmd: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env={**os.environ, **testenv.env})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def helm(testenv, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    return run(testenv, f"{testenv.bin_dir}/helm", *args, timeout=timeout, check=check)


def restricted_ns(core, name: str) -> None:
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    except client.exceptions.ApiException as err:
        if err.status != 409:
            raise


def s3_secret(core, testenv, namespace: str) -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name="component-operator-s3"), string_data={
        "accessKey": testenv.env["TESTENV_S3_ACCESS_KEY"], "secretKey": testenv.env["TESTENV_S3_SECRET_KEY"]})
    try:
        core.create_namespaced_secret(namespace, body)
    except client.exceptions.ApiException as err:
        if err.status != 409:
            raise


def adopt_crds(testenv) -> None:
    """The session applied crds/ with kubectl; let the release own them (Helm refuses otherwise)."""
    for crd in testenv.kubectl("get", "crd", "-o", "name").stdout.split():
        if crd.endswith(f".{GROUP}") or crd.endswith(".kopf.dev"):
            testenv.kubectl("label", "--overwrite", crd, "app.kubernetes.io/managed-by=Helm")
            testenv.kubectl("annotate", "--overwrite", crd, f"meta.helm.sh/release-name={RELEASE}",
                            f"meta.helm.sh/release-namespace={RELEASE_NS}")


def operator_pods(core, namespace: str = RELEASE_NS) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=component-operator").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def active_replica(custom, core, namespace: str = RELEASE_NS) -> client.V1Pod:
    """The replica kopf's peering lets work: the live one with the highest priority."""
    def find():
        peering = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", f"{RELEASE}-component-operator")
        peers = peering.get("status") or {}
        pods = {p.metadata.name: p for p in operator_pods(core, namespace)}
        ranked = sorted(((v.get("priority", 0), k) for k, v in peers.items() if isinstance(v, dict)), reverse=True)
        for _, identity in ranked:
            for name, pod in pods.items():
                if identity.startswith(name):
                    return pod
        return None

    return wait_until(find, timeout=60, message="a peering record of a live replica")


def job_pods(core, namespace: str, name: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"{JOB_LABEL}={name}").items


def pod_ref(testenv, ref: str) -> str:
    """An image reference as a pod sees the local registry (through the bridge, not loopback)."""
    return ref.replace(testenv.env["TESTENV_REGISTRY"], testenv.env["TESTENV_POD_REGISTRY"], 1)


def sleeper_for(testenv, node_images, seconds: int) -> str:
    """The sleeper image with another default argument (pushed to the local registry)."""
    base = node_images["sleeper"]["tag_ref"]
    target = f"{base.rsplit(':', 1)[0]}:{seconds}s"
    run(testenv, f"{testenv.bin_dir}/crane", "mutate", base, "--cmd", str(seconds), "-t", target, "--insecure")
    return pod_ref(testenv, target)


@pytest.fixture(scope="module")
def no_local_operator(e2e_operator):
    """Stop the session's local operator for this module (restarted afterwards)."""
    e2e_operator.kill()
    yield
    e2e_operator.start()


@pytest.fixture(scope="module")
def installed(testenv, core, custom, real_node, node_images, no_local_operator):
    values = testenv.env["TESTENV_CHART_VALUES"]
    assert Path(values).is_file(), values
    assert testenv.env["TESTENV_OPERATOR_IMAGE"] == node_images["component-operator"]["tag_ref"]
    restricted_ns(core, RELEASE_NS)
    s3_secret(core, testenv, RELEASE_NS)
    adopt_crds(testenv)
    started = time.monotonic()
    helm(testenv, "install", RELEASE, str(CHART), "-n", RELEASE_NS, "-f", values, "--wait", "--timeout", "5m")
    ready = time.monotonic() - started
    print(f"\nhelm install -> Ready operator: {ready:.1f}s")
    yield {"ready_seconds": ready}
    if helm(testenv, "status", RELEASE, "-n", RELEASE_NS, check=False).returncode == 0:
        helm(testenv, "uninstall", RELEASE, "-n", RELEASE_NS, "--wait", check=False)


@pytest.fixture(scope="module")
def cluster_ns(testenv, custom, core, installed, node_images):
    name = f"e2e-ic-{uuid.uuid4().hex[:6]}"
    restricted_ns(core, name)
    for image in ("gc-algorithm", "fail"):
        create_image(custom, name, image, pod_ref(testenv, node_images[image]["ref"]))
    for image in ("gc-algorithm", "fail"):
        wait_image(custom, name, image)
    yield name
    core.delete_namespace(name)


def test_operator_runs_in_the_cluster_on_the_real_node(core, installed, real_node, node_images):
    pods = operator_pods(core)
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name == real_node
        assert pod.spec.containers[0].image == node_images["component-operator"]["tag_ref"]
        assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
        assert all(c.ready for c in pod.status.container_statuses)
    # The operator reaches the API server through the `kubernetes` Service (in-cluster config).
    env = {e.name for e in pods[0].spec.containers[0].env or []}
    assert "KUBERNETES_SERVICE_HOST" not in env  # injected by the kubelet, not by the chart


def test_real_job_succeeds_through_the_in_cluster_operator(custom, core, cluster_ns):
    body = job_body("ic-segment", "gc-algorithm", outputs=ALGORITHM_OUTPUTS, inputs=[
        {"interface": "e2e-threshold", "value": 0.4}, {"interface": "e2e-lesion-box", "value": BOX}])
    create_job(custom, cluster_ns, body)
    status = wait_terminal(custom, cluster_ns, "ic-segment")["status"]
    assert (status["phase"], status["reason"]) == ("Succeeded", "Succeeded"), json.dumps(status, indent=1)
    outputs = {o["interface"]: o for o in status["outputs"]}
    assert outputs["e2e-results"]["value"]["inputs"]["e2e-lesion-box"] == BOX
    assert len(job_pods(core, cluster_ns, "ic-segment")) == 1


def test_in_cluster_webhook_refuses_an_invalid_job(testenv, cluster_ns):
    bad = job_body("ic-bad-box", "gc-algorithm", inputs=[
        {"interface": "e2e-lesion-box", "value": {**BOX, "corners": BOX["corners"][:3]}}])
    bad["metadata"]["namespace"] = cluster_ns

    def refused():
        proc = testenv.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
        if proc.returncode == 0:  # admitted: the webhook was not reachable yet; try again
            testenv.kubectl("delete", "componentjob", "-n", cluster_ns, "ic-bad-box", "--wait=false", check=False)
            return None
        return proc.stderr

    message = wait_until(refused, timeout=60, interval=2, message="the in-cluster webhook to refuse the job")
    assert "validate-job.components.grand-challenge.org" in message
    assert "spec.inputs[0].value.corners" in message and "expected exactly 4 items, got 3" in message


def test_killing_the_active_replica_hands_over(testenv, custom, core, cluster_ns, installed, node_images):
    create_image(custom, cluster_ns, "sleeps-20s", sleeper_for(testenv, node_images, 20))
    wait_image(custom, cluster_ns, "sleeps-20s")
    create_job(custom, cluster_ns, job_body("ic-during-kill", "sleeps-20s"))
    wait_until(lambda: (get_job(custom, cluster_ns, "ic-during-kill").get("status") or {}).get("phase") == "Executing",
               timeout=120, message="the job to execute")
    active = active_replica(custom, core)
    container_id = active.status.container_statuses[0].container_id.split("://", 1)[1]
    # SIGKILL from the node: no goodbye in the peering object, the standby must notice the silence.
    killed = time.monotonic()
    run(testenv, "ctr", "--address", testenv.env["TESTENV_NODE_SOCKET"], "--namespace", "k8s.io",
        "tasks", "kill", "--signal", "SIGKILL", container_id)
    create_job(custom, cluster_ns, job_body("ic-after-kill", "fail"))
    wait_until(lambda: (get_job(custom, cluster_ns, "ic-after-kill").get("status") or {}).get("phase"),
               timeout=120, interval=0.2, message="a job created after the kill to be handled")
    handover = time.monotonic() - killed
    print(f"\nhand-over after SIGKILL of the active replica {active.metadata.name}: {handover:.1f}s")
    status = wait_terminal(custom, cluster_ns, "ic-during-kill", timeout=180)["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert len(job_pods(core, cluster_ns, "ic-during-kill")) == 1
    assert status.get("attempt", 0) == 0
    assert wait_terminal(custom, cluster_ns, "ic-after-kill")["status"]["reason"] == "NonZeroExitCode"


def test_helm_upgrade_to_a_new_tag_while_a_job_runs(testenv, custom, core, cluster_ns, installed, node_images):
    image = node_images["component-operator"]["tag_ref"]
    new_tag = "0.1.0-upgrade"
    new_ref = f"{image.rsplit(':', 1)[0]}:{new_tag}"
    run(testenv, f"{testenv.bin_dir}/crane", "tag", image, new_tag, "--insecure")
    create_job(custom, cluster_ns, job_body("ic-during-upgrade", "sleeps-20s"))
    wait_until(lambda: (get_job(custom, cluster_ns, "ic-during-upgrade").get("status") or {}).get("phase") == "Executing",
               timeout=120, message="the job to execute")
    helm(testenv, "upgrade", RELEASE, str(CHART), "-n", RELEASE_NS, "--reuse-values", "--set", f"image.tag={new_tag}",
         "--wait", "--timeout", "5m")
    assert {p.spec.containers[0].image for p in operator_pods(core)} == {new_ref}
    status = wait_terminal(custom, cluster_ns, "ic-during-upgrade", timeout=180)["status"]
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert len(job_pods(core, cluster_ns, "ic-during-upgrade")) == 1


def test_operator_is_never_forbidden_and_holds_no_wildcards(testenv, core, installed):
    """The chart's RBAC against what the operator really asked for (the API server's audit log)."""
    account = operator_pods(core)[0].spec.service_account_name
    user = f"system:serviceaccount:{RELEASE_NS}:{account}"
    can = testenv.kubectl("auth", "can-i", "--list", f"--as={user}").stdout
    print(f"\nkubectl auth can-i --list --as={user}\n{can}")
    for line in can.splitlines()[1:]:
        resource, _, verbs = line.partition("[")
        assert resource.strip() != "*.*" and "[*]" not in line, line
    calls, denied = set(), []
    for line in Path(testenv.env["TESTENV_AUDIT_LOG"]).read_text().splitlines():
        event = json.loads(line)
        if (event.get("user") or {}).get("username") != user:
            continue
        ref = event.get("objectRef") or {}
        key = (ref.get("apiGroup", ""), ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else ""),
               event["verb"])
        calls.add(key)
        if (event.get("responseStatus") or {}).get("code") == 403:
            denied.append((key, (event.get("responseStatus") or {}).get("message")))
    print("API calls made by the operator:", *sorted(calls), sep="\n  ")
    assert calls, "no audit events for the operator's ServiceAccount"
    assert not denied, denied


def test_helm_uninstall_keeps_crds_and_user_objects(testenv, custom, core, cluster_ns, installed):
    before = {j["metadata"]["name"] for j in custom.list_namespaced_custom_object(GROUP, VERSION, cluster_ns, "componentjobs")["items"]}
    assert before
    helm(testenv, "uninstall", RELEASE, "-n", RELEASE_NS, "--wait")
    for plural in ("componentinterfaces", "componentimages", "componentjobs"):
        testenv.kubectl("get", "crd", f"{plural}.{GROUP}")
    after = {j["metadata"]["name"] for j in custom.list_namespaced_custom_object(GROUP, VERSION, cluster_ns, "componentjobs")["items"]}
    assert after == before
    assert custom.list_namespaced_custom_object(GROUP, VERSION, cluster_ns, "componentimages")["items"]
    wait_until(lambda: not operator_pods(core), timeout=120, message="the operator's pods to go")


def test_plain_manifests_install_the_operator(testenv, custom, core, cluster_ns, installed, node_images, real_node):
    """`kubectl apply --server-side -f dist/install.yaml`, then pointed at this machine's image and node."""
    run(testenv, "make", "-C", str(REPO), "dist", timeout=900)
    dist = REPO / "dist" / "install.yaml"
    docs = [d for d in yaml.safe_load_all(dist.read_text()) if d]
    namespace = next(d["metadata"]["name"] for d in docs if d["kind"] == "Namespace")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    testenv.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(dist))
    try:
        # The defaults name a registry image and no object storage; on this machine the image is local.
        patch = {"spec": {"template": {"spec": {
            "nodeSelector": {"testenv/real-node": "true"},
            "tolerations": [{"key": "testenv/real-node", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": deployment["spec"]["template"]["spec"]["containers"][0]["name"],
                            "image": node_images["component-operator"]["tag_ref"]}]}}}}
        testenv.kubectl("patch", "deployment", "-n", namespace, deployment["metadata"]["name"], "--type=strategic",
                        "-p", json.dumps(patch))
        testenv.kubectl("rollout", "status", "deployment", "-n", namespace, deployment["metadata"]["name"], "--timeout=300s")
        bad = job_body("dist-bad-box", "gc-algorithm", inputs=[
            {"interface": "e2e-lesion-box", "value": {**BOX, "corners": BOX["corners"][:3]}}])
        bad["metadata"]["namespace"] = cluster_ns

        def refused():
            proc = testenv.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
            if proc.returncode == 0:
                testenv.kubectl("delete", "componentjob", "-n", cluster_ns, "dist-bad-box", "--wait=false", check=False)
                return None
            return proc.stderr

        assert "expected exactly 4 items, got 3" in wait_until(refused, timeout=90, interval=2,
                                                               message="the dist operator's webhook to refuse a job")
    finally:
        # Everything but the CRDs (deleting those would delete every user's objects).
        keep = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
        testenv.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-",
                        input="\n---\n".join(yaml.safe_dump(d) for d in keep), check=False)
