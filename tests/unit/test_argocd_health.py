"""The Argo CD health checks (gitops/argocd/), run by a real Lua 5.1 interpreter as Argo CD runs them.

Statuses come from the operator's own planning functions where that is cheap (interfaces, jobs
driven through ``planning.jobs.decide`` with the job tests' fixtures, batches through
``planning.batch.decide`` and ``planning.batch.blocked``), and otherwise are written with the
status models' field names; every ImportStatus and every Phase has an expected
health, so a new state must be given one.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from component_operator.api.batch import ComponentBatchSpec
from component_operator.api.image import ImportStatus
from component_operator.api.job import Phase
from component_operator.planning import batch as batches
from component_operator.planning import identity
from component_operator.planning.interfaces import decide_interface_status
from component_operator.planning.jobs import MSG_INVALID_INPUTS, MSG_OOM, Observation, PodLogs, decide

from ..support.argocd_health import HEALTH_DIR, health
from .jobfixtures import BBOX, CONFIG, INTERFACES, NOW, image, job, pod, stamp

GROUP = "components.grand-challenge.org"
KINDS = ("ComponentInterface", "ComponentImage", "ComponentJob", "ComponentBatch")


def obj(kind: str, status: dict | None, generation: int = 1, spec: dict | None = None) -> dict:
    body = {"apiVersion": f"{GROUP}/v1alpha1", "kind": kind,
            "metadata": {"name": "x", "generation": generation}, "spec": spec or {}}
    if kind != "ComponentInterface":
        body["metadata"]["namespace"] = "ns"
    if status is not None:
        body["status"] = status
    return body


def ready(ok: bool | str, reason: str, message: str, generation: int = 1) -> dict:
    status = {True: "True", False: "False"}.get(ok, ok)
    return {"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": stamp(), "observedGeneration": generation}


def test_every_kind_has_a_health_check():
    for kind in KINDS:
        assert (HEALTH_DIR / GROUP / kind / "health.lua").is_file(), kind


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_is_progressing(kind):
    for status in (None, {}):
        hs = health(obj(kind, status))
        assert hs["status"] == "Progressing" and hs["message"], hs


# --------------------------------------------------------------------------------------------
# ComponentInterface


def test_interface_ready_true_is_healthy():
    spec = {"kind": "Float", "relativePath": "prob.json"}
    status = decide_interface_status(spec, {}, 1)
    assert status["conditions"][0]["status"] == "True"
    assert health(obj("ComponentInterface", status, spec=spec)) == {"status": "Healthy", "message": "every interface rule passes"}


def test_interface_ready_false_is_degraded_with_the_rule():
    for spec in ({"kind": "No such kind", "relativePath": "x.json"}, {"kind": "Float", "relativePath": "prob.txt"}):
        status = decide_interface_status(spec, {}, 1)
        hs = health(obj("ComponentInterface", status, spec=spec))
        assert hs["status"] == "Degraded"
        assert hs["message"] == status["conditions"][0]["message"] and hs["message"]


def test_interface_unknown_or_stale_is_progressing():
    assert health(obj("ComponentInterface", {"conditions": [ready("Unknown", "Checking", "")]}))["status"] == "Progressing"
    stale = {"observedGeneration": 1, "conditions": [ready(True, "Valid", "every interface rule passes")]}
    hs = health(obj("ComponentInterface", stale, generation=2))
    assert hs == {"status": "Progressing", "message": "Waiting for the operator to check generation 2"}


# --------------------------------------------------------------------------------------------
# ComponentImage

IMAGE_HEALTH = {
    ImportStatus.INITIALIZED: "Progressing",
    ImportStatus.QUEUED: "Progressing",
    ImportStatus.RE_QUEUED: "Progressing",
    ImportStatus.STARTED: "Progressing",
    ImportStatus.COMPLETED: "Healthy",
    ImportStatus.FAILED: "Degraded",
    ImportStatus.CANCELLED: "Degraded",
}

IMAGE_STATUS = {
    ImportStatus.INITIALIZED: ({}, ""),
    ImportStatus.QUEUED: ({}, ""),
    ImportStatus.RE_QUEUED: (ready(False, "RegistryUnreachable", "registry 127.0.0.1:5000: connection refused"),
                             "registry 127.0.0.1:5000: connection refused; retrying"),
    ImportStatus.STARTED: ({}, ""),
    ImportStatus.COMPLETED: (ready(True, "Ready", "image inspected: sha256:ab… (12 MB)"), "image inspected: sha256:ab… (12 MB)"),
    ImportStatus.FAILED: (ready(False, "RootUser", "The container runs as root."), "The container runs as root."),
    ImportStatus.CANCELLED: (ready(False, "Cancelled", "The import was cancelled."), ""),
}


def test_every_import_status_has_a_health():
    assert set(IMAGE_HEALTH) == set(ImportStatus) == set(IMAGE_STATUS)


@pytest.mark.parametrize("state", list(ImportStatus), ids=lambda s: s.value)
def test_image_health_per_import_status(state):
    condition, message = IMAGE_STATUS[state]
    status = {"importStatus": state.value, "message": message, "observedGeneration": 1, "isInRegistry": True,
              "imageSha256": "sha256:" + "b" * 64, "pinnedImage": "reg/algo@sha256:" + "b" * 64,
              "conditions": [condition] if condition else []}
    hs = health(obj("ComponentImage", status, spec={"image": "reg/algo:1"}))
    assert hs["status"] == IMAGE_HEALTH[state]
    assert hs["message"].startswith(state.value + ": ")
    expected = message or (condition or {}).get("message") or f"Import status {state.value}"
    assert hs["message"] == f"{state.value}: {expected}"


def test_image_completed_but_not_ready_is_not_healthy():
    status = {"importStatus": "Completed", "conditions": [ready("Unknown", "Checking", "")], "message": "checking"}
    assert health(obj("ComponentImage", status))["status"] == "Progressing"


def test_image_with_a_new_spec_is_progressing_until_inspected():
    status = {"importStatus": "Completed", "observedGeneration": 1, "message": "ok", "conditions": [ready(True, "Ready", "ok")]}
    assert health(obj("ComponentImage", status, generation=2)) == {
        "status": "Progressing", "message": "Waiting for the operator to inspect generation 2"}


def test_image_fixture_of_the_job_tests():
    assert health(obj("ComponentImage", image()["status"]))["status"] == "Healthy"
    hs = health(obj("ComponentImage", image(ready=False, import_status="Failed")["status"]))
    assert hs == {"status": "Degraded", "message": "Failed: The container runs as root."}


# --------------------------------------------------------------------------------------------
# ComponentJob

JOB_HEALTH = {
    Phase.VALIDATING_INPUTS: "Progressing",
    Phase.QUEUED: "Progressing",
    Phase.RE_QUEUED: "Progressing",
    Phase.PROVISIONING: "Progressing",
    Phase.PROVISIONED: "Progressing",
    Phase.EXECUTING: "Progressing",
    Phase.EXECUTED: "Progressing",
    Phase.PARSING_OUTPUTS: "Progressing",
    Phase.SUCCEEDED: "Healthy",
    Phase.FAILED: "Degraded",
    Phase.CANCELLED: "Degraded",
}


def test_every_phase_has_a_health():
    assert set(JOB_HEALTH) == set(Phase)


@pytest.mark.parametrize("phase", list(Phase), ids=lambda p: p.value)
def test_job_health_per_phase(phase):
    conditions = [{"type": "InputsValid", "status": "True", "reason": "Valid", "lastTransitionTime": stamp(-30),
                   "message": "every input is valid for its interface"},
                  {"type": "Scheduled", "status": "Unknown", "reason": "Pending", "lastTransitionTime": stamp(-20),
                   "message": "pod j1-0 created"}]
    status = {"phase": phase.value, "attempt": 0, "podName": "j1-0", "conditions": conditions, "errorMessage": ""}
    if phase is Phase.SUCCEEDED:
        conditions.append({"type": "Succeeded", "status": "True", "reason": "Succeeded", "lastTransitionTime": stamp(),
                           "message": "the algorithm ran and every output is valid"})
    elif phase.is_terminal:
        conditions.append({"type": "Failed", "status": "True", "reason": "OOMKilled", "lastTransitionTime": stamp(),
                           "message": MSG_OOM})
        status["errorMessage"] = MSG_OOM
    hs = health(obj("ComponentJob", status))
    assert hs["status"] == JOB_HEALTH[phase]
    expected = {Phase.SUCCEEDED: "the algorithm ran and every output is valid"}.get(
        phase, MSG_OOM if phase.is_terminal else "pod j1-0 created")
    assert hs["message"] == f"{phase.value}: {expected}"


def _decide(j, **kw):
    return decide(Observation(job=j, image=kw.pop("img", image()), interfaces=INTERFACES, now=NOW, config=CONFIG, **kw)).status


def _terminated(exit_code, reason):
    return {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": stamp(-20), "finishedAt": stamp(-5)}}


def _running():
    return {"phase": "Executing", "attempt": 0, "podName": "j1-0", "createdAt": stamp(-60)}


def test_job_statuses_written_by_the_state_machine():
    """Statuses exactly as planning.jobs.decide writes them."""
    cases = []
    cases.append((_decide(job(), pod=None), "Progressing", "Provisioning"))
    bad = job()
    bad["spec"]["inputs"][0]["value"]["corners"] = bad["spec"]["inputs"][0]["value"]["corners"][:3]
    cases.append((_decide(bad, pod=None), "Degraded", f"Cancelled: {MSG_INVALID_INPUTS}"))
    cases.append((_decide(job(cancel=True), pod=None), "Degraded", "Cancelled: The job was cancelled (spec.cancel is true)."))
    ok = pod("Succeeded", node="n", start=-25, container_state=_terminated(0, "Completed"))
    cases.append((_decide(job(status=_running()), pod=ok, logs=PodLogs(stdout="hi", stderr="")), "Healthy",
                  "Succeeded: the algorithm ran and every output is valid"))
    oom = pod("Failed", node="n", container_state=_terminated(137, "OOMKilled"))
    cases.append((_decide(job(status=_running()), pod=oom), "Degraded", f"Failed: {MSG_OOM}"))
    for status, want, message in cases:
        hs = health(obj("ComponentJob", copy.deepcopy(status)))
        assert hs["status"] == want, (status["phase"], hs)
        assert hs["message"].startswith(message), (hs, message)


# --------------------------------------------------------------------------------------------
# ComponentBatch: statuses written by planning.batch.decide / blocked, run after run

IMAGE_DIGEST = "sha256:" + "b" * 64
BOXES = [{**BBOX, "name": f"lesion {i}", "corners": [[i, 0, 0], [i + 1, 0, 0], [i + 1, 1, 0], [i, 1, 0]]}
         for i in range(6)]


def batch(status: dict | None = None, generation: int = 1, **spec) -> dict:
    body = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "ComponentBatch",
            "metadata": {"name": "boxes", "namespace": "ns", "uid": "uid-boxes", "generation": generation},
            "spec": {"image": "algo", "itemInterface": "bbox", "parallelism": 3,
                     "items": [{"value": v} for v in BOXES], **spec}}
    if status is not None:
        body["status"] = status
    return body


def plan(body: dict) -> tuple[ComponentBatchSpec, batches.Plan]:
    """The dataset of an inline batch, read as the handler reads it (no filter)."""
    spec = ComponentBatchSpec.model_validate(body["spec"])
    items = []
    for index, raw in enumerate(spec.items or []):
        job_input = batches.item_input(spec, raw)
        items.append(batches.PlannedItem(index=index, summary=batches.summarize(raw.to_wire()),
                                         job_input=job_input.to_wire(),
                                         digest=batches.item_digest(spec, IMAGE_DIGEST, job_input)))
    return spec, batches.Plan(generation=body["metadata"]["generation"], image_digest=IMAGE_DIGEST,
                              found=len(items), items=tuple(items))


def run_batch(body: dict, phases: dict[int, tuple[str, str | None]] | None = None,
              others: dict[int, str] | None = None) -> dict:
    """One reconcile: ``phases`` index -> (phase, reason) of the batch's own job for that item,
    ``others`` index -> phase of someone else's job with the same inputs. Returns the new status."""
    spec, p = plan(body)
    runs: dict[str, list[batches.JobRun]] = {}
    for index, (phase, reason) in (phases or {}).items():
        item = p.items[index]
        runs.setdefault(identity.label_value(item.digest), []).append(batches.JobRun(
            name=batches.job_name("boxes", item.digest), phase=phase, reason=reason,
            message="The container ran out of memory." if reason == "OOMKilled" else "",
            batch_uid="uid-boxes", batch_generation=1, created=stamp(-60)))
    for index, phase in (others or {}).items():
        item = p.items[index]
        runs.setdefault(identity.label_value(item.digest), []).append(batches.JobRun(
            name=f"earlier-{index}", phase=phase, created=stamp(-3600)))
    decision = batches.decide(body, spec, p, runs, now=NOW)
    return copy.deepcopy(decision.status)


def condition_of(status: dict, type_: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_batch_just_started_is_progressing_with_its_progress():
    status = run_batch(batch())
    assert status["counts"]["running"] == 3 and status["counts"]["pending"] == 3
    hs = health(batch(status))
    assert hs == {"status": "Progressing",
                  "message": "0/6: 3 running, 3 pending; 0 succeeded, 0 failed, 0 invalid, 0 existing, 0 deferred of 6"}


def test_batch_half_way_is_progressing():
    first = run_batch(batch())
    status = run_batch(batch(first), phases={0: ("Succeeded", None), 1: ("Succeeded", None), 2: ("Executing", None)})
    assert status["progress"] == "2/6"
    hs = health(batch(status))
    assert hs["status"] == "Progressing"
    assert hs["message"] == "2/6: " + condition_of(status, "Progressing")["message"]
    assert hs["message"].startswith("2/6: 3 running, 1 pending; 2 succeeded")


def test_batch_complete_is_healthy_with_the_counts():
    status = run_batch(batch(), phases={i: ("Succeeded", None) for i in range(6)})
    assert condition_of(status, "Complete")["status"] == "True"
    assert health(batch(status)) == {
        "status": "Healthy", "message": "6 succeeded, 0 failed, 0 invalid, 0 existing, 0 deferred of 6"}


def test_batch_complete_with_failed_and_existing_items_is_still_healthy():
    """Failed items within maxFailures are reported (status.failedItems), not a broken batch."""
    phases = {0: ("Succeeded", None), 1: ("Failed", "OOMKilled"), 2: ("Cancelled", "InvalidInputs"), 3: ("Succeeded", None)}
    for max_failures in ({}, {"maxFailures": 2}):
        status = run_batch(batch(**max_failures), phases=phases, others={4: "Succeeded", 5: "Executing"})
        counts = status["counts"]
        assert (counts["succeeded"], counts["failed"], counts["invalid"], counts["existing"]) == (2, 1, 1, 2)
        assert counts["failed"] + counts["invalid"] > 0 and status["failedItems"] and status["invalidItems"]
        assert health(batch(status)) == {
            "status": "Healthy", "message": "2 succeeded, 1 failed, 1 invalid, 2 existing, 0 deferred of 6"}


def test_batch_with_more_failures_than_allowed_is_degraded():
    status = run_batch(batch(maxFailures=1), phases={0: ("Failed", "OOMKilled"), 1: ("Failed", "OOMKilled"),
                                                     2: ("Executing", None)})
    failed = condition_of(status, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "TooManyFailures")
    assert health(batch(status)) == {"status": "Degraded", "message": failed["message"]}
    assert failed["message"].startswith("2 items failed, more than maxFailures (1)")


def test_suspended_batch_is_suspended():
    status = run_batch(batch(suspend=True))
    assert status["counts"]["pending"] == 6 and status["counts"]["running"] == 0
    assert health(batch(status, suspend=True)) == {
        "status": "Suspended", "message": "0/6: spec.suspend is true: jobs are not started"}
    # Suspended with jobs still running from before (they go on): still Suspended.
    running = run_batch(batch(suspend=True), phases={0: ("Succeeded", None), 1: ("Executing", None)})
    assert health(batch(running, suspend=True)) == {
        "status": "Suspended", "message": "1/6: spec.suspend is true: jobs are not started"}


def test_suspended_batch_with_nothing_left_to_run_is_healthy():
    status = run_batch(batch(suspend=True), others={i: "Succeeded" for i in range(6)})
    assert condition_of(status, "Suspended")["status"] == "True"
    assert health(batch(status, suspend=True)) == {
        "status": "Healthy", "message": "0 succeeded, 0 failed, 0 invalid, 6 existing, 0 deferred of 6"}


# Every reason the batch handler gives planning.batch.blocked, with the failed flag it passes.
BLOCKED = [
    ("ImageNotFound", "waiting for ComponentImage 'algo'", False, "Progressing"),
    ("ImageNotReady", "ComponentImage 'algo': Queued", False, "Progressing"),
    ("WaitingForInterfaces", "waiting for ComponentInterface 'bbox'", False, "Progressing"),
    ("ImageNotReady", "ComponentImage 'algo': The container runs as root.", True, "Degraded"),
    ("InvalidSpec", "The batch's spec is not valid: spec.parallelism: Input should be less than or equal to 1000",
     True, "Degraded"),
    ("InvalidFilter", "spec.filter: undeclared reference to 'valeu'", True, "Degraded"),
    ("DatasetTooLarge", "spec.fromObjectStorage.uri: more than 100000 objects under s3://data/ct/; narrow the prefix",
     True, "Degraded"),
    ("DatasetUnreadable", "spec.fromObjectStorage.uri: s3://data/ct/: NoSuchBucket", True, "Degraded"),
    ("NoObjectStorage", "spec.fromObjectStorage: the operator has no object storage configured "
     "(objectStorage in its configuration)", True, "Degraded"),
    ("InternalError", "5 retries of an unexpected error: KeyError 'items'", True, "Degraded"),
]


@pytest.mark.parametrize("reason, message, failed, want", BLOCKED,
                         ids=[f"{r}-{'failed' if f else 'waiting'}" for r, _, f, _ in BLOCKED])
def test_blocked_batch(reason, message, failed, want):
    for before in (None, run_batch(batch())):  # a fresh batch, and one that already started jobs
        status = copy.deepcopy(batches.blocked(batch(before), reason, message, now=NOW, failed=failed).status)
        hs = health(batch(status))
        assert hs["status"] == want, (reason, hs)
        if want == "Degraded":
            assert hs["message"] == message
        else:
            assert hs["message"] == f"{status['progress']}: {message}"


def test_batch_with_a_new_spec_is_progressing_until_planned():
    done = run_batch(batch(), phases={i: ("Succeeded", None) for i in range(6)})
    assert health(batch(done, generation=2)) == {
        "status": "Progressing", "message": "Waiting for the operator to plan generation 2"}


def test_batch_ignores_conditions_of_an_older_generation():
    """blocked() does not rewrite Suspended: a batch resumed in generation 2 that then waits for
    its image is Progressing, not Suspended by generation 1's condition."""
    suspended = run_batch(batch(suspend=True))
    status = copy.deepcopy(batches.blocked(batch(suspended, generation=2), "ImageNotFound",
                                           "waiting for ComponentImage 'algo'", now=NOW, failed=False).status)
    assert condition_of(status, "Suspended")["status"] == "True"
    assert health(batch(status, generation=2)) == {
        "status": "Progressing", "message": "0/6: waiting for ComponentImage 'algo'"}


# --------------------------------------------------------------------------------------------
# The argocd-cm snippet embeds exactly these scripts


def test_readme_argocd_cm_embeds_the_scripts():
    readme = (HEALTH_DIR / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    cm = next(yaml.safe_load(b) for b in blocks if "kind: ConfigMap" in b)
    assert cm["metadata"]["name"] == "argocd-cm"
    for kind in KINDS:
        key = f"resource.customizations.health.{GROUP}_{kind}"
        assert cm["data"][key] == (HEALTH_DIR / GROUP / kind / "health.lua").read_text(), key
    ignore = yaml.safe_load(cm["data"]["resource.customizations.ignoreDifferences.admissionregistration.k8s.io_ValidatingWebhookConfiguration"])
    assert ignore == {"jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]}
    app = next(yaml.safe_load(b) for b in blocks if "kind: Application" in b)
    assert {"ServerSideApply=true", "RespectIgnoreDifferences=true"} <= set(app["spec"]["syncPolicy"]["syncOptions"])
    assert app["spec"]["ignoreDifferences"][0]["jqPathExpressions"] == [".webhooks[]?.clientConfig.caBundle"]
    assert (Path(app["spec"]["source"]["path"]) == Path("charts/component-operator"))
