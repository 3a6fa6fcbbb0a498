"""planning.batch.decide: what a ComponentBatch counts, starts and reports (pure, no cluster)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from component_operator.api.batch import ComponentBatchSpec
from component_operator.planning import batch as planning
from component_operator.planning import identity

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
IMAGE = "sha256:" + "a" * 64
UID = "batch-uid-1"


def spec(n=5, **kw) -> ComponentBatchSpec:
    return ComponentBatchSpec.model_validate({
        "image": "algo", "itemInterface": "prob", "items": [{"value": i / 10} for i in range(n)],
        "inputs": [{"interface": "cfg", "value": {"threshold": 0.5}}], **kw})


def body(generation=1, status=None, annotations=None):
    return {"metadata": {"name": "b", "namespace": "ns", "uid": UID, "generation": generation,
                         "annotations": annotations or {}}, "status": status or {}}


def plan(s: ComponentBatchSpec, generation=1) -> planning.Plan:
    items = []
    for index, item in enumerate(s.items or []):
        job_input = planning.item_input(s, item)
        items.append(planning.PlannedItem(index, planning.summarize(item.to_wire()), job_input=job_input.to_wire(),
                                          digest=planning.item_digest(s, IMAGE, job_input)))
    return planning.Plan(generation=generation, image_digest=IMAGE, found=len(items), items=tuple(items))


def label(p: planning.Plan, index: int) -> str:
    return identity.label_value(p.items[index].digest)


def run(name, phase, *, ours=True, reason=None, generation=1, created="2026-12-02T11:00:00Z", message=""):
    return planning.JobRun(name=name, phase=phase, reason=reason, message=message,
                           batch_uid=UID if ours else "someone-else", batch_generation=generation if ours else None,
                           created=created)


def decide(s, p, runs=None, b=None, **kw):
    return planning.decide(b or body(), s, p, runs or {}, now=NOW, **kw)


def conditions(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_fresh_batch_starts_parallelism_jobs_and_announces_the_stages():
    s = spec(5, parallelism=2)
    p = plan(s)
    d = decide(s, p)
    assert [j["metadata"]["name"] for j in d.create] == [planning.job_name("b", p.items[i].digest) for i in (0, 1)]
    assert d.status["counts"] == {"found": 5, "total": 5, "existing": 0, "pending": 3, "running": 2,
                                  "succeeded": 0, "failed": 0, "invalid": 0, "deferred": 0}
    assert d.status["progress"] == "0/5"
    assert [e.message for e in d.events] == [
        "5 instances found.", "0 existing runs found.", "5 instances pending execution.",
        "5 input specifications prepared.", "Successfully started 2 jobs (parallelism 2); 3 wait for a free slot."]
    assert conditions(d.status)["Progressing"] == ("True", "Running")
    assert conditions(d.status)["Complete"][0] == "False"


def test_stage_events_once_per_generation():
    s = spec(3)
    p = plan(s)
    first = decide(s, p)
    again = decide(s, p, b=body(status=first.status))
    assert again.events == []


def test_jobs_carry_inputs_labels_annotations_and_owner():
    s = spec(1, requiresMemoryGB=2, timeLimit=600)
    p = plan(s)
    b = body(annotations={"sim.testenv/outcome": "fail", "other.example/x": "y"})
    (job,) = planning.decide(b, s, p, {}, now=NOW, annotation_prefixes=["sim.testenv/"]).create
    meta = job["metadata"]
    assert meta["labels"][identity.INPUTS_DIGEST_LABEL] == label(p, 0)
    assert meta["labels"][identity.BATCH_UID_LABEL] == UID
    assert meta["annotations"] == {"sim.testenv/outcome": "fail", identity.BATCH_INDEX_ANNOTATION: "0",
                                   planning.BATCH_GENERATION_ANNOTATION: "1"}
    assert meta["ownerReferences"] == [{"apiVersion": "components.grand-challenge.org/v1alpha1",
                                        "kind": "ComponentBatch", "name": "b", "uid": UID, "controller": True}]
    assert job["spec"]["inputs"] == [{"interface": "cfg", "value": {"threshold": 0.5}},
                                     {"interface": "prob", "value": 0.0}]
    assert job["spec"]["requiresMemoryGB"] == 2 and job["spec"]["timeLimit"] == 600
    assert "parallelism" not in job["spec"] and "items" not in job["spec"]
    orphan = spec(1, deletionPolicy="Orphan")
    (kept,) = decide(orphan, plan(orphan)).create
    assert "ownerReferences" not in kept["metadata"]


def test_existing_runs_of_others_are_skipped_and_failed_ones_reported():
    s = spec(4)
    p = plan(s)
    runs = {label(p, 0): [run("theirs-ok", "Succeeded", ours=False)],
            label(p, 1): [run("theirs-running", "Executing", ours=False)],
            label(p, 2): [run("theirs-failed", "Failed", ours=False, reason="NonZeroExitCode", message="exit 2")]}
    d = decide(s, p, runs)
    c = d.status["counts"]
    assert (c["existing"], c["failed"], c["running"], c["pending"]) == (2, 1, 1, 0)
    (failed,) = d.status["failedItems"]
    assert failed["index"] == 2 and failed["job"] == "theirs-failed" and "exit 2" in failed["message"]
    assert len(d.create) == 1 and d.create[0]["spec"]["inputs"][-1]["value"] == 0.3


def test_skip_existing_false_runs_everything_again():
    s = spec(2, skipExisting=False)
    p = plan(s)
    d = decide(s, p, {label(p, 0): [run("theirs", "Succeeded", ours=False)]})
    assert len(d.create) == 2 and d.status["counts"]["existing"] == 0


def test_rerun_failed_reruns_once_per_generation():
    s = spec(3, rerunFailed=True)
    p = plan(s, generation=2)
    runs = {label(p, 0): [run("b-0", "Failed", reason="NonZeroExitCode", generation=1)],
            label(p, 1): [run("b-1", "Succeeded")],
            label(p, 2): [run("theirs", "Failed", ours=False, reason="OOMKilled")]}
    d = decide(s, p, runs, b=body(generation=2))
    names = sorted(j["metadata"]["name"] for j in d.create)
    assert names == sorted([planning.job_name("b", p.items[0].digest, 1), planning.job_name("b", p.items[2].digest)])
    # A rerun that fails again in the same generation is not rerun again.
    runs[label(p, 0)].append(run("b-0-r1", "Failed", reason="NonZeroExitCode", generation=2,
                                 created="2026-12-02T11:30:00Z"))
    again = decide(s, p, runs, b=body(generation=2))
    assert all(j["metadata"]["name"] != planning.job_name("b", p.items[0].digest, 2) for j in again.create)
    assert again.status["counts"]["failed"] == 1


def test_without_rerun_failed_our_failures_stay_failed_and_invalid_ones_invalid():
    s = spec(2)
    p = plan(s, generation=3)
    runs = {label(p, 0): [run("b-0", "Failed", reason="OOMKilled", generation=1)],
            label(p, 1): [run("b-1", "Cancelled", reason="InvalidInputs", message="One or more of the inputs failed")]}
    d = decide(s, p, runs, b=body(generation=3))
    assert d.create == []
    assert d.status["counts"]["failed"] == 1 and d.status["counts"]["invalid"] == 1
    assert conditions(d.status)["Complete"] == ("True", "Complete")


def test_parallelism_counts_running_and_in_flight_jobs():
    s = spec(6, parallelism=3)
    p = plan(s)
    runs = {label(p, 0): [run("b-0", "Executing")]}
    inflight = {planning.job_name("b", p.items[1].digest): label(p, 1)}
    d = decide(s, p, runs, inflight=inflight)
    assert len(d.create) == 1 and d.status["counts"]["running"] == 3


def test_max_items_defers_the_rest():
    s = spec(5, maxItems=2)
    p = plan(s)
    d = decide(s, p, {label(p, 0): [run("theirs", "Succeeded", ours=False)]})
    assert len(d.create) == 2
    assert d.status["counts"]["deferred"] == 2 and d.status["counts"]["existing"] == 1


def test_max_failures_fails_the_batch_and_stops_starting():
    s = spec(6, parallelism=6, maxFailures=1)
    p = plan(s)
    runs = {label(p, i): [run(f"b-{i}", "Failed", reason="NonZeroExitCode")] for i in (0, 1)}
    d = decide(s, p, runs)
    assert d.create == []
    assert conditions(d.status)["Failed"] == ("True", "TooManyFailures")
    assert conditions(d.status)["Complete"] == ("False", "Failed")
    assert any(e.reason == "TooManyFailures" for e in d.events)


def test_suspended_batch_plans_but_starts_nothing():
    s = spec(3, suspend=True)
    d = decide(s, plan(s))
    assert d.create == [] and d.status["counts"]["pending"] == 3
    assert conditions(d.status)["Suspended"] == ("True", "Suspended")
    assert conditions(d.status)["Progressing"] == ("False", "Suspended")


def test_items_with_equal_inputs_are_one_run():
    s = ComponentBatchSpec.model_validate({"image": "algo", "itemInterface": "prob",
                                           "items": [{"value": 1}, {"value": 1.0}, {"value": 2}]})
    d = decide(s, plan(s))
    assert len(d.create) == 2
    assert d.status["counts"]["running"] == 3 and d.status["counts"]["total"] == 3


def test_refused_and_unreadable_items_are_invalid_with_index_and_message():
    s = spec(3)
    p = plan(s)
    items = list(p.items)
    items[1] = planning.PlannedItem(1, "s3://b/x", problem="items[1]: s3://b/x: not found; give its sha256",
                                    reason="UnknownContent")
    p = planning.Plan(1, IMAGE, 3, tuple(items))
    d = decide(s, p, refused={p.items[2].digest: "the API server refused it (400): it-prob: not a number"})
    assert [(i["index"], i["reason"]) for i in d.status["invalidItems"]] == [(1, "UnknownContent"), (2, "Refused")]
    assert len(d.create) == 1


def test_complete_once_with_an_event_and_no_requeue():
    s = spec(2)
    p = plan(s)
    runs = {label(p, i): [run(f"b-{i}", "Succeeded")] for i in (0, 1)}
    first = decide(s, p, runs, b=body(status={"observedGeneration": 1}))
    assert conditions(first.status)["Complete"] == ("True", "Complete")
    assert first.status["completedAt"] and first.requeue_after is None
    assert [e.reason for e in first.events] == ["Complete"]
    again = decide(s, p, runs, b=body(status=first.status))
    assert again.events == [] and again.status["completedAt"] == first.status["completedAt"]


def test_status_stays_small_for_ten_thousand_failed_items():
    s = ComponentBatchSpec.model_validate({"image": "algo", "itemInterface": "prob",
                                           "items": [{"value": i} for i in range(10_000)]})
    p = plan(s)
    runs = {label(p, i): [run(f"b-{i}", "Failed", reason="NonZeroExitCode", message="x" * 5000)] for i in range(10_000)}
    d = decide(s, p, runs)
    assert d.status["counts"]["failed"] == 10_000
    assert len(d.status["failedItems"]) == 50
    assert len(json.dumps(d.status)) < 64 * 1024


def test_blocked_batches_wait_or_fail_with_the_reason():
    waiting = planning.blocked(body(), "ImageNotReady", "ComponentImage 'algo': Started", now=NOW, failed=False)
    assert conditions(waiting.status)["Progressing"] == ("False", "ImageNotReady")
    assert conditions(waiting.status)["Failed"][0] == "False" and waiting.requeue_after == 30.0
    failed = planning.blocked(body(), "InvalidFilter", "spec.filter: ...", now=NOW, failed=True)
    assert conditions(failed.status)["Failed"] == ("True", "InvalidFilter") and failed.requeue_after is None
    again = planning.blocked(body(status=failed.status), "InvalidFilter", "spec.filter: ...", now=NOW, failed=True)
    assert again.events == []
