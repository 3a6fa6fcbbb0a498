"""What a ComponentBatch does next (pure): which items exist, run, wait, failed; which jobs to create.

The handler gathers the batch's *plan* (its dataset read once per generation: every item with
its inputs digest, or why it is invalid) and the ComponentJobs known by digest (a kopf index),
and ``decide`` returns the next status, the jobs to create and the events to post.

Per item, by its inputs digest (``planning.identity``):

* a job of this batch exists: its phase decides (running, succeeded, failed; a job that refused
  its inputs makes the item invalid). With ``rerunFailed`` an item whose latest job failed
  before this generation asked for reruns gets one new job (so a rerun is bounded: once per
  change of the batch, never a loop);
* else, with ``skipExisting``, a job of anyone else with that digest that Succeeded or still runs
  makes the item ``existing`` (never owned, never deleted); one whose jobs all failed is
  ``failed`` (reported with that job) unless ``rerunFailed``;
* else the item is pending: started in index order while fewer than ``parallelism`` of the
  batch's jobs are not terminal, at most ``maxItems`` in all (the rest are ``deferred``), never
  while ``suspend`` is set or after more than ``maxFailures`` items failed.

Items with the same digest are one run: they share its state. Job names are deterministic
(batch name + digest, ``-r<n>`` for the n-th rerun), so a repeated create answers 409 and never
makes a twin; the handler also remembers jobs it created that the index has not shown yet.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from .. import API_VERSION
from ..api.batch import MAX_REPORTED_ITEMS, MAX_REPORTED_MESSAGE, BatchItem, ComponentBatchSpec
from ..api.job import JobInput, JobSettings
from . import identity, names
from .conditions import set_condition
from .jobs import TERMINAL_PHASES, Event, rfc3339

#: Job reasons that mean the item's inputs, not the run, were wrong: the item is invalid.
INVALID_REASONS = {"InvalidInputs", "InvalidSpec", "InterfaceNotFound", "InputsTooLarge", "NameCollision"}
BATCH_GENERATION_ANNOTATION = f"{names.LABEL_PREFIX}/batch-generation"
#: How long the batch waits before looking again when nothing wakes it (jobs' events do).
RESYNC_SECONDS = 60.0


@dataclass(frozen=True)
class JobRun:
    """What the batch needs of one ComponentJob (from the operator's index of jobs by digest)."""

    name: str
    phase: str | None
    reason: str | None = None
    message: str = ""
    batch_uid: str | None = None
    batch_generation: int | None = None
    created: str = ""

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"

    @property
    def invalid(self) -> bool:
        return self.terminal and self.reason in INVALID_REASONS


@dataclass(frozen=True)
class PlannedItem:
    """One dataset item as read for this generation: its job input and digest, or why it is invalid."""

    index: int
    summary: str
    job_input: dict[str, Any] | None = None  # a JobInput (wire form) for spec.itemInterface
    digest: str | None = None
    problem: str | None = None  # invalid: could not be read, filtered with an error, no sha256 ...
    reason: str = "InvalidItem"


@dataclass(frozen=True)
class Plan:
    """The dataset of one generation of a batch, read once (the handler caches it)."""

    generation: int
    image_digest: str
    found: int
    items: tuple[PlannedItem, ...]  # after the filter (invalid ones included)

    @functools.cached_property
    def digests_by_label(self) -> dict[str, str]:
        """inputs-digest label -> digest, for the jobs this plan creates."""
        return {identity.label_value(i.digest): i.digest for i in self.items if i.digest}


@dataclass
class BatchDecision:
    status: dict[str, Any]
    create: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = RESYNC_SECONDS


def summarize(item: Mapping[str, Any]) -> str:
    """An item, briefly, for reports: its URI or its value cut to 200 characters."""
    for kind in ("file", "image"):
        if isinstance(item.get(kind), Mapping):
            return str(item[kind].get("uri", ""))[:200]
    text = json.dumps(item.get("value"), sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def item_input(spec: ComponentBatchSpec, item: BatchItem) -> JobInput:
    """The job input an item becomes: the item's value, file or image for ``itemInterface``."""
    return JobInput(interface=spec.item_interface, value=item.value, file=item.file, image=item.image)


def item_digest(spec: ComponentBatchSpec, image_digest: str, job_input: JobInput,
                sha256_of: Mapping[str, str] | None = None) -> str:
    """The inputs digest the item's job will have (``UnknownContentError`` without a sha256)."""
    run = identity.RunIdentity(image_digest=image_digest, inputs=(*spec.inputs, job_input),
                               model=spec.model, ground_truth=spec.ground_truth)
    return identity.inputs_digest(run, sha256_of)


def job_name(batch_name: str, digest: str, rerun: int = 0) -> str:
    base = f"{batch_name[:40].rstrip('-.')}-{digest[:12]}"
    return base if rerun == 0 else f"{base}-r{rerun}"


@dataclass
class _Item:
    state: str  # existing | pending | running | succeeded | failed | invalid | deferred
    job: str | None = None
    reason: str = ""
    message: str = ""


@dataclass
class _Counts:
    found: int = 0
    total: int = 0
    existing: int = 0
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    invalid: int = 0
    deferred: int = 0

    def as_status(self) -> dict[str, int]:
        return dict(self.__dict__)


def decide(
    batch: Mapping[str, Any],
    spec: ComponentBatchSpec,
    plan: Plan,
    runs_by_label: Mapping[str, Iterable[JobRun]],
    *,
    now: datetime,
    annotation_prefixes: Iterable[str] = (),
    inflight: Mapping[str, str] | None = None,
    refused: Mapping[str, str] | None = None,
) -> BatchDecision:
    """The next status and the jobs to create.

    ``runs_by_label``: inputs-digest label -> the jobs with it; ``inflight``: job name -> label of
    jobs this batch created that the index has not shown yet; ``refused``: digest -> the API
    server's message for jobs it refused to create (the item is invalid).
    """
    meta = batch.get("metadata") or {}
    uid, generation = meta.get("uid", ""), int(meta.get("generation") or 0)
    current = dict(batch.get("status") or {})
    inflight, refused = inflight or {}, refused or {}
    inflight_labels = set(inflight.values())
    counts = _Counts(found=plan.found, total=len(plan.items))
    outcome: dict[str, _Item] = {}  # by digest: items with equal digests are one run
    reports: dict[str, list[dict[str, Any]]] = {"failed": [], "invalid": []}
    to_start: list[tuple[PlannedItem, int]] = []
    started_by_us = 0  # runs that have (or will get) a job of this batch, for maxItems

    states: list[tuple[PlannedItem, _Item]] = []
    for item in plan.items:
        if item.digest is None:
            states.append((item, _Item("invalid", reason=item.reason, message=item.problem or "")))
            continue
        if item.digest in outcome:
            states.append((item, outcome[item.digest]))
            continue
        label = identity.label_value(item.digest)
        runs = sorted(runs_by_label.get(label, ()), key=lambda r: (r.created, r.name))
        ours = [r for r in runs if r.batch_uid == uid]
        others = [r for r in runs if r.batch_uid != uid]
        state = _item_state(spec, generation, item, ours, others, label in inflight_labels, refused.get(item.digest))
        if state.state in ("pending", "rerun"):
            if spec.max_items is not None and started_by_us >= spec.max_items:
                state = _Item("deferred")
            else:
                rerun = sum(1 for r in ours) if state.state == "rerun" else 0
                to_start.append((item, rerun))
                state = _Item("pending", job=job_name(meta.get("name", ""), item.digest, rerun))
                started_by_us += 1
        elif ours or state.state == "running" and label in inflight_labels:
            started_by_us += 1
        outcome[item.digest] = state
        states.append((item, state))

    # Start what fits: parallelism counts the batch's jobs (one per digest) that are not terminal.
    failures = sum(1 for _, state in states if state.state in ("failed", "invalid"))
    too_many_failures = spec.max_failures is not None and failures > spec.max_failures
    create: list[dict[str, Any]] = []
    if not spec.suspend and not too_many_failures:
        running = sum(1 for state in outcome.values() if state.state == "running")
        for item, rerun in to_start[:max(0, spec.parallelism - running)]:
            create.append(build_job(batch, spec, plan, item, rerun, annotation_prefixes))
            outcome[item.digest].state = "running"  # items with the same digest follow

    for item, state in states:
        setattr(counts, state.state, getattr(counts, state.state) + 1)
        if state.state in reports and len(reports[state.state]) < MAX_REPORTED_ITEMS:
            reports[state.state].append({"index": item.index, "item": item.summary, "job": state.job,
                                         "reason": state.reason or "Failed",
                                         "message": state.message[:MAX_REPORTED_MESSAGE]})
    return _status(batch, spec, plan, counts, reports, create, current, generation, now, too_many_failures)


def _item_state(spec: ComponentBatchSpec, generation: int, item: PlannedItem, ours: list[JobRun],
                others: list[JobRun], in_flight: bool, refused: str | None) -> _Item:
    if refused is not None:
        return _Item("invalid", reason="Refused", message=refused)
    if ours:
        latest = ours[-1]
        if not latest.terminal:
            return _Item("running", job=latest.name)
        if latest.succeeded:
            return _Item("succeeded", job=latest.name)
        if latest.invalid:
            return _Item("invalid", job=latest.name, reason=latest.reason or "InvalidInputs", message=latest.message)
        if spec.rerun_failed and (latest.batch_generation or 0) < generation:
            return _Item("rerun")
        return _Item("failed", job=latest.name, reason=latest.reason or "Failed", message=latest.message)
    if in_flight:
        return _Item("running")
    if spec.skip_existing and others:
        if any(r.succeeded or not r.terminal for r in others):
            return _Item("existing")
        latest = others[-1]
        if not spec.rerun_failed:
            state = "invalid" if latest.invalid else "failed"
            return _Item(state, job=latest.name, reason=latest.reason or "Failed",
                         message=f"an earlier job with the same inputs failed: {latest.message}".rstrip(": "))
    return _Item("pending")


def build_job(batch: Mapping[str, Any], spec: ComponentBatchSpec, plan: Plan, item: PlannedItem, rerun: int,
              annotation_prefixes: Iterable[str]) -> dict[str, Any]:
    """The ComponentJob of one item: fixed inputs + the item, the batch's job settings, its labels."""
    meta = batch.get("metadata") or {}
    assert item.digest is not None and item.job_input is not None
    prefixes = tuple(p for p in annotation_prefixes if p)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if prefixes and k.startswith(prefixes)}
    annotations[identity.BATCH_INDEX_ANNOTATION] = str(item.index)
    annotations[BATCH_GENERATION_ANNOTATION] = str(meta.get("generation") or 0)
    settings = JobSettings.model_validate(spec.model_dump(include=set(JobSettings.model_fields))).to_wire()
    body: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ComponentJob",
        "metadata": {
            "name": job_name(meta.get("name", ""), item.digest, rerun),
            "namespace": meta.get("namespace"),
            "labels": {
                **names.MANAGED_BY,
                identity.INPUTS_DIGEST_LABEL: identity.label_value(item.digest),
                identity.BATCH_LABEL: names.label_value(meta.get("name", "")),
                identity.BATCH_UID_LABEL: meta.get("uid", ""),
            },
            "annotations": annotations,
        },
        "spec": {
            **settings,
            "image": spec.image,
            "inputs": [i.to_wire() for i in spec.inputs] + [item.job_input],
            "outputs": list(spec.outputs),
        },
    }
    if spec.deletion_policy == "Delete":
        body["metadata"]["ownerReferences"] = [{
            "apiVersion": API_VERSION, "kind": "ComponentBatch", "name": meta.get("name"), "uid": meta.get("uid"),
            "controller": True,
        }]
    return body


def _status(batch: Mapping[str, Any], spec: ComponentBatchSpec, plan: Plan, counts: _Counts,
            reports: dict[str, list[dict[str, Any]]], create: list[dict[str, Any]], current: dict[str, Any],
            generation: int, now: datetime, too_many_failures: bool) -> BatchDecision:
    stamp = rfc3339(now)
    status = dict(current)
    status.update({
        "counts": counts.as_status(),
        "progress": f"{counts.total - counts.pending - counts.running}/{counts.total}",
        "failedItems": reports["failed"],
        "invalidItems": reports["invalid"],
        "imageDigest": plan.image_digest,
        "observedGeneration": generation,
    })
    conditions = current.get("conditions")

    def condition(type_: str, ok: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, type_, ok, reason, message, generation=generation, now=stamp)

    events: list[Event] = []
    settled = counts.pending == 0 and counts.running == 0
    summary = (f"{counts.succeeded} succeeded, {counts.failed} failed, {counts.invalid} invalid, "
               f"{counts.existing} existing, {counts.deferred} deferred of {counts.total}")
    condition("Suspended", spec.suspend, "Suspended" if spec.suspend else "Running",
              "spec.suspend is true: jobs are not started" if spec.suspend else "jobs are started")
    if too_many_failures:
        condition("Failed", True, "TooManyFailures",
                  f"{counts.failed + counts.invalid} items failed, more than maxFailures ({spec.max_failures}); "
                  "no more jobs are started")
        condition("Complete", False, "Failed", summary)
        condition("Progressing", False, "Failed", f"{counts.running} jobs still running")
    elif settled:
        condition("Failed", False, "Complete", "within maxFailures" if spec.max_failures is not None else "no maxFailures")
        condition("Complete", True, "Complete", summary)
        condition("Progressing", False, "Complete", summary)
    else:
        condition("Failed", False, "Running", "no limit passed")
        condition("Complete", False, "Suspended" if spec.suspend else "Running", summary)
        condition("Progressing", not spec.suspend, "Suspended" if spec.suspend else "Running",
                  f"{counts.running} running, {counts.pending} pending; {summary}")
    status["conditions"] = conditions
    if create and not status.get("startedAt"):
        status["startedAt"] = stamp
    was_done = bool(current.get("completedAt")) and current.get("observedGeneration") == generation
    if (settled or too_many_failures) and not was_done:
        status["completedAt"] = stamp
        if too_many_failures:
            events.append(Event("Warning", "TooManyFailures", f"Batch failed: {summary}"))
        else:
            events.append(Event("Normal", "Complete", f"Batch complete: {summary}"))
    elif not settled and not too_many_failures:
        status.pop("completedAt", None)
    if current.get("observedGeneration") != generation:
        events[:0] = _stage_events(spec, counts, create)
    return BatchDecision(status=status, create=create, events=events,
                         requeue_after=None if settled and not create else RESYNC_SECONDS)


def _stage_events(spec: ComponentBatchSpec, counts: _Counts, create: list[dict[str, Any]]) -> list[Event]:
    """QuerySetRunner's stages, in its words, once per generation of the batch."""
    prepared = counts.pending + counts.running + counts.succeeded + counts.failed
    events = [Event("Normal", "InstancesFound", f"{counts.found} instances found.")]
    if spec.filter:
        events.append(Event("Normal", "Filtered", f"{counts.total} execution candidates found."))
    events.append(Event("Normal", "ExistingRunsFound", f"{counts.existing} existing runs found."))
    events.append(Event("Normal", "PendingExecution",
                        f"{counts.pending + counts.running + counts.deferred} instances pending execution."))
    events.append(Event("Normal", "InputsPrepared", f"{prepared} input specifications prepared."
                        + (f" {counts.invalid} items are invalid." if counts.invalid else "")))
    if create:
        events.append(Event("Normal", "ExecutionStarted",
                            f"Successfully started {len(create)} jobs (parallelism {spec.parallelism}); "
                            f"{counts.pending} wait for a free slot."))
    elif spec.suspend:
        events.append(Event("Normal", "Suspended", "spec.suspend is true: no jobs started."))
    return events


def blocked(batch: Mapping[str, Any], reason: str, message: str, *, now: datetime, failed: bool,
            retry_after: float | None = 30.0) -> BatchDecision:
    """A batch that cannot plan: waiting (image not ready, interfaces missing) or failed for good
    (invalid spec or filter, dataset too large, operator error). Counts stay as they were."""
    meta = batch.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    current = dict(batch.get("status") or {})
    stamp = rfc3339(now)
    conditions = current.get("conditions")
    conditions = set_condition(conditions, "Progressing", False, reason, message, generation=generation, now=stamp)
    conditions = set_condition(conditions, "Complete", False, reason, message, generation=generation, now=stamp)
    conditions = set_condition(conditions, "Failed", failed, reason, message if failed else "not failed",
                               generation=generation, now=stamp)
    status = {**current, "conditions": conditions, "observedGeneration": generation}
    status.setdefault("counts", _Counts().as_status())
    status.setdefault("progress", "0/0")
    if failed:
        status.setdefault("completedAt", stamp)
    previous = next((c for c in current.get("conditions") or [] if c.get("type") == "Progressing"), {})
    events = [] if previous.get("reason") == reason and current.get("observedGeneration") == generation else [
        Event("Warning" if failed else "Normal", reason, message)]
    return BatchDecision(status=status, events=events, requeue_after=None if failed else retry_after)
