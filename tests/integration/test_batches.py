"""ComponentBatches through the real API server, scheduler, garbage collector and kwok nodes, with
the operator as its own process: skipping what already ran, re-running failed items, invalid
items, parallelism, maxItems and maxFailures, deletion (owned jobs go, older ones stay),
`kubectl wait --for=condition=Complete`, and the QuerySetRunner stages as Events."""

from __future__ import annotations

import json
import time

import pytest

from component_operator import GROUP, VERSION
from component_operator.planning import identity

from .conftest import wait_until
from .test_jobs import create as create_job
from .test_jobs import make_job, wait_phase

TERMINAL = {"Succeeded", "Failed", "Cancelled"}


def values(n: int) -> list[float]:
    return [round(0.01 * i, 2) for i in range(n)]


def make_batch(name, items, *, outcome="succeed", after="1s", **spec):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentBatch",
        "metadata": {"name": name, "annotations": {"sim.testenv/outcome": outcome, "sim.testenv/after": after}},
        "spec": {
            "image": "algo",
            "inputs": [{"interface": "it-bbox", "value": _bbox()}],
            "itemInterface": "it-prob",
            "items": [{"value": v} for v in items],
            "requiresMemoryGB": 1,
            "timeLimit": 300,
            **spec,
        },
    }


def _bbox():
    from .test_jobs import BBOX

    return BBOX


def item_job(name, value, outcome="succeed"):
    """A standalone job with exactly the inputs a batch item gets (so: the same inputs digest)."""
    body = make_job(name, outcome=outcome, requiresMemoryGB=1)
    body["spec"]["inputs"] = [{"interface": "it-bbox", "value": _bbox()}, {"interface": "it-prob", "value": value}]
    return body


def create_batch(custom, ns, body):
    return custom.create_namespaced_custom_object(GROUP, VERSION, ns, "componentbatches", body)


def get_batch(custom, ns, name):
    return custom.get_namespaced_custom_object(GROUP, VERSION, ns, "componentbatches", name)


def condition(status, type_):
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def wait_batch(custom, ns, name, type_="Complete", timeout=180):
    def done():
        status = get_batch(custom, ns, name).get("status") or {}
        return status if condition(status, type_).get("status") == "True" else None

    return wait_until(done, timeout=timeout, interval=0.5, message=f"batch {name} {type_}")


def batch_jobs(custom, ns, batch_uid):
    items = custom.list_namespaced_custom_object(
        GROUP, VERSION, ns, "componentjobs", label_selector=f"{identity.BATCH_UID_LABEL}={batch_uid}")["items"]
    return items


def events_of(core, ns, name):
    events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name},involvedObject.kind=ComponentBatch")
    return [e.message for e in sorted(events.items, key=lambda e: e.metadata.creation_timestamp)]


@pytest.fixture()
def ns(namespace, ready_image, job_interfaces):
    ready_image(namespace, "algo")
    return namespace


def test_skips_the_items_that_already_ran(custom, core, ns, operator_process):
    items = values(20)
    for i in range(5):
        create_job(custom, ns, item_job(f"earlier-{i}", items[i]))
    for i in range(5):
        status = wait_phase(custom, ns, f"earlier-{i}", "Succeeded", timeout=120)
        assert len(status["inputsDigest"]) == 64
    create_batch(custom, ns, make_batch("twenty", items, parallelism=4))
    seen_running = []

    def complete():
        status = get_batch(custom, ns, "twenty").get("status") or {}
        live = [j for j in batch_jobs(custom, ns, get_batch(custom, ns, "twenty")["metadata"]["uid"])
                if (j.get("status") or {}).get("phase") not in TERMINAL]
        seen_running.append(len(live))
        return status if condition(status, "Complete").get("status") == "True" else None

    status = wait_until(complete, timeout=240, interval=0.5, message="batch twenty Complete")
    assert status["counts"] == {"found": 20, "total": 20, "existing": 5, "pending": 0, "running": 0,
                                "succeeded": 15, "failed": 0, "invalid": 0, "deferred": 0}
    assert status["progress"] == "20/20"
    assert max(seen_running) <= 4, f"parallelism 4 exceeded: {max(seen_running)}"
    batch = get_batch(custom, ns, "twenty")
    jobs = batch_jobs(custom, ns, batch["metadata"]["uid"])
    assert len(jobs) == 15
    ran = sorted(next(i["value"] for i in j["spec"]["inputs"] if i["interface"] == "it-prob") for j in jobs)
    assert ran == items[5:], "exactly the 15 items that had not run"
    for job in jobs:
        assert job["metadata"]["ownerReferences"][0]["uid"] == batch["metadata"]["uid"]
        assert job["metadata"]["annotations"]["sim.testenv/outcome"] == "succeed"  # carried to the jobs
        assert job["metadata"]["labels"][identity.INPUTS_DIGEST_LABEL] == job["status"]["inputsDigest"][:63]
    messages = events_of(core, ns, "twenty")
    for text in ("20 instances found.", "5 existing runs found.", "15 instances pending execution.",
                 "15 input specifications prepared."):
        assert text in messages, (text, messages)
    assert any(m.startswith("Successfully started 4 jobs") for m in messages), messages
    assert any(m.startswith("Batch complete: 15 succeeded") for m in messages), messages

    # The same dataset again, in a second batch: everything exists, nothing runs.
    create_batch(custom, ns, make_batch("twenty-again", items, parallelism=4))
    again = wait_batch(custom, ns, "twenty-again")
    assert again["counts"]["existing"] == 20 and again["counts"]["succeeded"] == 0
    assert batch_jobs(custom, ns, get_batch(custom, ns, "twenty-again")["metadata"]["uid"]) == []


def test_rerun_failed_reruns_only_the_failed_items(custom, ns, operator_process):
    items = values(6)
    for i in range(3):
        create_job(custom, ns, item_job(f"failed-{i}", items[i], outcome="fail"))
    for i in range(3, 5):
        create_job(custom, ns, item_job(f"good-{i}", items[i]))
    for name in ["failed-0", "failed-1", "failed-2"]:
        wait_phase(custom, ns, name, "Failed", timeout=120)
    for name in ["good-3", "good-4"]:
        wait_phase(custom, ns, name, "Succeeded", timeout=120)

    create_batch(custom, ns, make_batch("six", items, parallelism=6))
    status = wait_batch(custom, ns, "six")
    assert status["counts"]["failed"] == 3 and status["counts"]["existing"] == 2
    assert status["counts"]["succeeded"] == 1
    assert sorted(f["index"] for f in status["failedItems"]) == [0, 1, 2]
    assert {f["job"] for f in status["failedItems"]} == {"failed-0", "failed-1", "failed-2"}
    uid = get_batch(custom, ns, "six")["metadata"]["uid"]
    assert len(batch_jobs(custom, ns, uid)) == 1

    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "componentbatches", "six",
                                          {"spec": {"rerunFailed": True}})
    wait_until(lambda: (get_batch(custom, ns, "six").get("status") or {}).get("observedGeneration") == 2,
               timeout=30, message="generation 2 observed")
    status = wait_batch(custom, ns, "six")
    assert status["counts"]["succeeded"] == 4 and status["counts"]["failed"] == 0
    assert status["counts"]["existing"] == 2
    jobs = batch_jobs(custom, ns, uid)
    rerun = sorted(next(i["value"] for i in j["spec"]["inputs"] if i["interface"] == "it-prob") for j in jobs)
    assert rerun == sorted([items[5], *items[:3]]), "only the failed items ran again"


def test_an_invalid_item_is_reported_and_the_rest_succeed(custom, ns, operator_process):
    body = make_batch("with-a-bad-item", [0.1, 0.2, 0.3, 0.4])
    body["spec"]["items"][2] = {"value": "not a number"}
    create_batch(custom, ns, body)
    status = wait_batch(custom, ns, "with-a-bad-item")
    assert status["counts"]["succeeded"] == 3 and status["counts"]["invalid"] == 1
    (bad,) = status["invalidItems"]
    assert bad["index"] == 2 and bad["item"] == '"not a number"'
    assert "it-prob" in bad["message"] or "IT" in bad["message"] or "number" in bad["message"], bad


def test_max_items_defers_and_max_failures_fails(custom, ns, operator_process):
    create_batch(custom, ns, make_batch("capped", values(6), maxItems=2))
    status = wait_batch(custom, ns, "capped")
    assert status["counts"]["succeeded"] == 2 and status["counts"]["deferred"] == 4

    create_batch(custom, ns, make_batch("failing", values(8), outcome="fail", parallelism=2, maxFailures=1))
    status = wait_batch(custom, ns, "failing", "Failed")
    assert condition(status, "Failed")["reason"] == "TooManyFailures"
    assert condition(status, "Complete")["status"] == "False"
    uid = get_batch(custom, ns, "failing")["metadata"]["uid"]
    time.sleep(3)
    assert len(batch_jobs(custom, ns, uid)) <= 4, "no new jobs once maxFailures is passed"


def test_deleting_a_batch_removes_its_jobs_and_keeps_older_ones(custom, ns, operator_process, testenv):
    items = values(3)
    create_job(custom, ns, item_job("older", items[0]))
    wait_phase(custom, ns, "older", "Succeeded", timeout=120)
    create_batch(custom, ns, make_batch("short-lived", items))
    status = wait_batch(custom, ns, "short-lived")
    assert status["counts"]["existing"] == 1 and status["counts"]["succeeded"] == 2
    uid = get_batch(custom, ns, "short-lived")["metadata"]["uid"]
    assert len(batch_jobs(custom, ns, uid)) == 2
    testenv.kubectl("delete", "-n", ns, "componentbatch", "short-lived", "--wait=true")
    # The garbage collector deletes them (background cascade); it can lag behind a busy cluster.
    wait_until(lambda: batch_jobs(custom, ns, uid) == [], timeout=300, interval=1, message="the batch's jobs deleted")
    assert custom.get_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs", "older")

    create_batch(custom, ns, make_batch("orphaning", values(5)[3:], deletionPolicy="Orphan"))
    wait_batch(custom, ns, "orphaning")
    uid = get_batch(custom, ns, "orphaning")["metadata"]["uid"]
    testenv.kubectl("delete", "-n", ns, "componentbatch", "orphaning", "--wait=true")
    time.sleep(3)
    assert len(batch_jobs(custom, ns, uid)) == 2, "deletionPolicy Orphan keeps the jobs"


def test_kubectl_wait_for_complete(custom, ns, operator_process, testenv):
    create_batch(custom, ns, make_batch("waited-for", values(3)))
    result = testenv.kubectl("wait", "-n", ns, "--for=condition=Complete", "cbatch/waited-for", "--timeout=120s",
                             check=False)
    assert result.returncode == 0, result.stderr
    listing = testenv.kubectl("get", "-n", ns, "cbatch", "waited-for").stdout
    assert "3/3" in listing, listing


def test_suspended_batch_plans_without_running(custom, core, ns, operator_process):
    create_batch(custom, ns, make_batch("planned", values(4), suspend=True))
    status = wait_batch(custom, ns, "planned", "Suspended")
    wait_until(lambda: (get_batch(custom, ns, "planned").get("status") or {}).get("counts", {}).get("pending") == 4,
               timeout=30, message="the plan")
    uid = get_batch(custom, ns, "planned")["metadata"]["uid"]
    assert batch_jobs(custom, ns, uid) == []
    custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "componentbatches", "planned", {"spec": {"suspend": False}})
    status = wait_batch(custom, ns, "planned")
    assert status["counts"]["succeeded"] == 4


def test_admission_refuses_a_filter_that_does_not_compile(custom, ns, operator_process):
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as refused:
        create_batch(custom, ns, make_batch("bad-filter", values(2), filter="value >"))
    assert refused.value.status == 422
    message = json.loads(refused.value.body)["message"]
    assert "validate-batch" in message
    assert 'spec.filter: "value >" does not compile' in message, message


def test_object_storage_needs_the_data_plane(custom, ns, operator_process):
    body = make_batch("no-storage", [])
    del body["spec"]["items"]
    body["spec"]["fromObjectStorage"] = {"uri": "s3://somewhere/scans/"}
    create_batch(custom, ns, body)
    status = wait_batch(custom, ns, "no-storage", "Failed", timeout=60)
    failed = condition(status, "Failed")
    assert failed["reason"] == "NoObjectStorage" and "spec.fromObjectStorage" in failed["message"], failed
