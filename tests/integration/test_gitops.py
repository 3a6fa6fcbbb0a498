"""GitOps safety: what a GitOps tool applied stays exactly what it applied.

The examples are applied server-side (as Argo CD with ServerSideApply=true and Flux do), the
operator reconciles them, and a server-side dry-run re-apply of the same files (`kubectl diff
--server-side`) shows no difference: the operator writes status only, never spec or metadata of
a user's object (kopf's own bookkeeping lives in status.kopf). A ComponentBatch in Git is compared like the rest; the jobs it
creates are not in Git and are not compared. The Argo CD health checks (gitops/argocd/) are then
run by a real Lua interpreter on the statuses the operator wrote.
"""

from __future__ import annotations

import copy
import json

import yaml

from component_operator import GROUP, VERSION

from ..support.argocd_health import health
from ..support.cluster import REPO, load_yaml_docs, wait_until

EXAMPLES = ["interfaces.yaml", "image.yaml", "job.yaml", "gpu-job.yaml", "simulated-outcomes.yaml", "batch.yaml"]
PLURALS = {"ComponentInterface": "componentinterfaces", "ComponentImage": "componentimages", "ComponentJob": "componentjobs",
           "ComponentBatch": "componentbatches"}


def _documents(namespace: str) -> list[dict]:
    docs = []
    for name in EXAMPLES:
        for doc in load_yaml_docs(REPO / "examples" / name):
            doc = copy.deepcopy(doc)
            if doc["kind"] != "ComponentInterface":
                doc["metadata"]["namespace"] = namespace
            docs.append(doc)
    return docs


def _live(custom, doc: dict) -> dict:
    plural = PLURALS[doc["kind"]]
    if doc["kind"] == "ComponentInterface":
        return custom.get_cluster_custom_object(GROUP, VERSION, plural, doc["metadata"]["name"])
    return custom.get_namespaced_custom_object(GROUP, VERSION, doc["metadata"]["namespace"], plural, doc["metadata"]["name"])


def _reconciled(obj: dict) -> bool:
    status = obj.get("status") or {}
    if obj["kind"] == "ComponentJob":
        return bool(status.get("phase"))
    return bool(status.get("conditions"))


def _condition_true(obj: dict, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def _batch_ended(obj: dict) -> bool:
    return _condition_true(obj, "Complete") or _condition_true(obj, "Failed")


def _assert_labels(doc: dict, live: dict) -> None:
    """The applied labels, untouched, and no more."""
    assert dict(live["metadata"].get("labels") or {}) == (doc["metadata"].get("labels") or {}), \
        (doc["metadata"]["name"], live["metadata"])


def _assert_managed_fields(doc: dict, live: dict) -> None:
    """Only the GitOps manager owns anything outside status."""
    for entry in live["metadata"].get("managedFields") or []:
        if entry["manager"] == "gitops" or entry.get("subresource") == "status":
            continue
        raise AssertionError(f"{doc['kind']} {doc['metadata']['name']}: " + json.dumps(entry)[:2000])


def test_operator_never_writes_what_gitops_applied(testenv, custom, namespace, operator_process, tmp_path):
    docs = _documents(namespace)
    manifest = tmp_path / "examples.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    # Other tests may have made the shared interfaces: take them over, as a GitOps tool would.
    testenv.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=gitops", "-f", str(manifest))
    for doc in docs:
        wait_until(lambda doc=doc: _reconciled(_live(custom, doc)), timeout=90,
                   message=f"{doc['kind']} {doc['metadata']['name']} to be reconciled")
    # Let jobs move on (their status changes several times) before comparing.
    wait_until(lambda: all((_live(custom, d).get("status") or {}).get("phase") in ("Succeeded", "Failed", "Cancelled")
                           for d in docs if d["kind"] == "ComponentJob"), timeout=120, message="the example jobs to end")
    # A batch ends like a job: Complete (every item settled) or Failed.
    wait_until(lambda: all(_batch_ended(_live(custom, d)) for d in docs if d["kind"] == "ComponentBatch"),
               timeout=180, message="the example batches to be Complete or Failed")

    for doc in docs:
        live = _live(custom, doc)
        meta = live["metadata"]
        applied = doc["metadata"]
        assert (meta.get("annotations") or {}) == (applied.get("annotations") or {}), (doc["metadata"]["name"], meta)
        _assert_labels(doc, live)
        assert not meta.get("finalizers"), meta
        assert meta.get("generation") == 1, f"{doc['metadata']['name']}: spec was written after creation"
        _assert_managed_fields(doc, live)

    diff = testenv.kubectl("diff", "--server-side", "--field-manager=gitops", "-f", str(manifest), check=False)
    assert diff.returncode == 0, f"a re-apply would change something:\n{diff.stdout[-4000:]}{diff.stderr[-2000:]}"

    # Argo CD's view of the same objects: its Lua health checks on the statuses the operator wrote.
    expected_job = {"Succeeded": "Healthy", "Failed": "Degraded", "Cancelled": "Degraded"}
    for doc in docs:
        live = _live(custom, doc)
        verdict = health(live)
        status = live.get("status") or {}
        if doc["kind"] == "ComponentJob":
            assert verdict["status"] == expected_job[status["phase"]], (doc["metadata"]["name"], status, verdict)
        elif doc["kind"] == "ComponentBatch":
            # Complete is Healthy even with failed items (they are reported); Failed is Degraded.
            want = "Degraded" if _condition_true(live, "Failed") else "Healthy"
            assert verdict["status"] == want, (doc["metadata"]["name"], status, verdict)
        else:
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            assert verdict["status"] in ({"Healthy"} if ready["status"] == "True" else {"Degraded", "Progressing"}), verdict
        assert verdict["message"], verdict
