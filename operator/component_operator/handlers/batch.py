"""ComponentBatch handlers: read the dataset once per generation, then gather, decide, act.

A batch is reconciled by the same work queue as jobs (``JobReconciler``: one task per batch,
coalesced kicks, bounded retries), with its own slots. Its events, and the events of every job
it created (label ``batch-uid``), kick it; a reconcile runs at most once a second per batch
(``MIN_INTERVAL_SECONDS``), so 200 jobs finishing together cost one status write, not 200.

What a batch reads, and its bounds:

* the dataset (``plan``): the inline items, or a listing of the prefix (at most 100,000
  objects), narrowed by the CEL filter in the validation pool's worker processes (time- and
  memory-bounded), each item's inputs digest computed (objects without a sha256 are hashed,
  cached by ETag). It is read once per generation and image digest and kept in memory: about
  half a kilobyte per item. A changed spec (or a moved image tag) reads it again;
* the jobs, from a kopf index of ComponentJobs by inputs-digest label, kept from the watch
  stream (no list calls per reconcile);
* the image and interfaces, from the job handlers' indexes.

Errors follow ``component_operator.errors``: an invalid spec, filter or dataset ends the batch
``Failed`` with the field and rule; a missing image or interface waits; unexpected errors are
retried five times, then ``Failed``/``InternalError``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import kopf
from pydantic import ValidationError

from .. import GROUP, VERSION
from ..adapters import kube
from ..api.batch import MAX_LISTED_OBJECTS, BatchItem, ComponentBatchSpec
from ..context import OperatorContext
from ..errors import RefusedError
from ..planning import batch as planning
from ..planning import identity
from ..planning.conditions import is_true, status_changes
from ..planning.jobs import SpecError, parse_spec
from .job import JobReconciler
from .job import attach_indexes

log = logging.getLogger("component_operator.batches")
MIN_INTERVAL_SECONDS = 1.0
#: Jobs created at once by one reconcile (each is one API call).
CREATE_CONCURRENCY = 16
#: A created job the index has not shown after this long is no longer counted as in flight.
INFLIGHT_SECONDS = 300.0


class PlanError(Exception):
    """The dataset cannot be read for good: the batch fails with this reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class BatchState:
    """What the operator keeps in memory for one live batch (rebuilt after a restart)."""

    plan: planning.Plan | None = None
    plan_key: tuple[int, str] | None = None
    #: job name -> (inputs-digest label, when created) of jobs created but not yet in the index.
    inflight: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: digest -> why the API server refused its job (the item is invalid).
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class BatchRuntime:
    reconciler: JobReconciler
    states: dict[str, BatchState] = field(default_factory=dict)  # by batch uid
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # batch uid -> (namespace, name)
    runs: Any = None  # the kopf index of jobs by (namespace, inputs-digest label)

    @classmethod
    def create(cls) -> "BatchRuntime":
        return cls(reconciler=JobReconciler(concurrency=4, reconcile=reconcile_batch, end=end_batch,
                                            kind="componentbatch"))

    def forget(self, namespace: str, name: str) -> None:
        for uid in [u for u, key in self.keys.items() if key == (namespace, name)]:
            self.keys.pop(uid, None)
            self.states.pop(uid, None)
        self.reconciler.forget((namespace, name))


class _RunsView:
    """The job index seen from one namespace: label -> the JobRuns with it."""

    def __init__(self, index: Any, namespace: str) -> None:
        self.index, self.namespace = index, namespace

    def get(self, label: str, default=()):
        store = self.index.get((self.namespace, label)) if self.index is not None else None
        return list(store) if store else default


def _runtime(ctx: OperatorContext) -> BatchRuntime:
    if ctx.batches is None:
        ctx.batches = BatchRuntime.create()
    ctx.batches.reconciler.context = ctx
    return ctx.batches


async def reconcile_batch(ctx: OperatorContext, namespace: str, name: str) -> float | None:
    rt = _runtime(ctx)
    batch = await kube.get_custom(namespace, "componentbatches", name)
    if batch is None:
        rt.forget(namespace, name)
        return None
    meta = batch["metadata"]
    uid, generation = meta["uid"], int(meta.get("generation") or 0)
    rt.keys[uid] = (namespace, name)
    state = rt.states.setdefault(uid, BatchState())
    now = datetime.now(timezone.utc)
    try:
        spec = parse_spec(batch.get("spec"), ComponentBatchSpec)
    except SpecError as err:
        message = f"The batch's spec is not valid: {err}"
        return await _apply(batch, planning.blocked(batch, "InvalidSpec", message, now=now, failed=True))
    image_digest, waiting = _image(ctx, namespace, spec)
    if image_digest is None:
        reason, message, failed = waiting
        return await _apply(batch, planning.blocked(batch, reason, message, now=now, failed=failed))
    missing = _missing_interfaces(ctx, spec)
    if missing:
        message = "waiting for ComponentInterface " + ", ".join(repr(m) for m in missing)
        return await _apply(batch, planning.blocked(batch, "WaitingForInterfaces", message, now=now, failed=False))
    if state.plan is None or state.plan_key != (generation, image_digest):
        try:
            state.plan = await _read_plan(ctx, spec, generation, image_digest)
        except PlanError as err:
            return await _apply(batch, planning.blocked(batch, err.reason, err.message, now=now, failed=True))
        state.plan_key = (generation, image_digest)
        state.refused.clear()
    runs = _RunsView(rt.runs, namespace)
    _settle_inflight(state, runs)
    decision = planning.decide(
        batch, spec, state.plan, runs, now=now, annotation_prefixes=ctx.config.pod_annotation_prefixes,
        inflight={job: label for job, (label, _) in state.inflight.items()}, refused=state.refused)
    refused_now = await _create_jobs(state, uid, decision.create)
    requeue = await _apply(batch, decision)
    await asyncio.sleep(MIN_INTERVAL_SECONDS)  # at most one reconcile a second per batch
    return 0.0 if refused_now else requeue


def _image(ctx: OperatorContext, namespace: str, spec: ComponentBatchSpec) -> tuple[str | None, tuple[str, str, bool]]:
    image = ctx.reconciler.lookup_image(namespace, spec.image)
    if image is None:
        return None, ("ImageNotFound", f"waiting for ComponentImage {spec.image!r}", False)
    status = image.get("status") or {}
    if is_true(status.get("conditions"), "Ready") and status.get("imageSha256"):
        return str(status["imageSha256"]), ("", "", False)
    failed = status.get("importStatus") in ("Failed", "Cancelled")
    why = status.get("message") or status.get("importStatus") or "is not ready"
    return None, ("ImageNotReady", f"ComponentImage {spec.image!r}: {why}", failed)


def _missing_interfaces(ctx: OperatorContext, spec: ComponentBatchSpec) -> list[str]:
    known = ctx.reconciler.all_interfaces()
    wanted = {spec.item_interface, *(i.interface for i in spec.inputs), *spec.outputs}
    return sorted(n for n in wanted if n not in known)


def _settle_inflight(state: BatchState, runs: _RunsView) -> None:
    """Forget created jobs once the index shows them (or after ``INFLIGHT_SECONDS``)."""
    now = time.monotonic()
    for job, (label, created) in list(state.inflight.items()):
        if any(r.name == job for r in runs.get(label)) or now - created > INFLIGHT_SECONDS:
            state.inflight.pop(job, None)


async def _create_jobs(state: BatchState, uid: str, jobs: list[dict[str, Any]]) -> bool:
    """Create the decided jobs; a refusal makes the item invalid. True when one was refused."""
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)
    refused = False

    async def one(body: dict[str, Any]) -> None:
        nonlocal refused
        meta = body["metadata"]
        label = meta["labels"][identity.INPUTS_DIGEST_LABEL]
        digest = _digest_of(state, label)
        async with gate:
            try:
                created = await kube.create_custom(meta["namespace"], "componentjobs", body)
            except RefusedError as err:
                state.refused[digest] = str(err)
                refused = True
                return
            if created is None:  # 409: ours from an earlier reconcile, or someone else's object
                existing = await kube.get_custom(meta["namespace"], "componentjobs", meta["name"])
                owner = ((existing or {}).get("metadata", {}).get("labels") or {}).get(identity.BATCH_UID_LABEL)
                if existing is not None and owner != uid:
                    state.refused[digest] = (f"a ComponentJob named {meta['name']!r} already exists and does not "
                                             "belong to this batch (NameCollision)")
                    refused = True
                    return
        state.inflight[meta["name"]] = (label, time.monotonic())

    await asyncio.gather(*(one(body) for body in jobs))
    return refused


def _digest_of(state: BatchState, label: str) -> str:
    return state.plan.digests_by_label.get(label, label) if state.plan else label


async def _apply(batch: dict[str, Any], decision: planning.BatchDecision) -> float | None:
    meta = batch["metadata"]
    current = batch.get("status") if isinstance(batch.get("status"), dict) else {}
    changes = status_changes(current, decision.status)
    if changes and await kube.patch_status(meta["namespace"], "componentbatches", meta["name"], changes) is None:
        return None
    for event in decision.events:
        await kube.post_event(batch, event.type, event.reason, event.message)
    return decision.requeue_after


async def end_batch(ctx: OperatorContext, namespace: str, name: str, *, reason: str, message: str,
                    detail: dict | None = None) -> None:
    batch = await kube.get_custom(namespace, "componentbatches", name)
    if batch is not None:
        await _apply(batch, planning.blocked(batch, reason, message, now=datetime.now(timezone.utc), failed=True))


# -- reading the dataset ----------------------------------------------------------------------


async def _read_plan(ctx: OperatorContext, spec: ComponentBatchSpec, generation: int, image_digest: str) -> planning.Plan:
    raw = await _dataset(ctx, spec)
    kept = await _filter(ctx, spec, raw)
    items: list[planning.PlannedItem] = []
    # Only what the filter kept is hashed (a filter on key or size spares reading the rest).
    known = await _known_sha256(ctx, spec, [entry for entry, verdict in kept if verdict is True])
    for entry, verdict in kept:
        summary = planning.summarize(entry["item"])
        if isinstance(verdict, str):
            items.append(planning.PlannedItem(entry["index"], summary, problem=verdict, reason="FilterError"))
            continue
        items.append(_plan_item(spec, image_digest, entry, summary, known))
    return planning.Plan(generation=generation, image_digest=image_digest, found=len(raw), items=tuple(items))


def _plan_item(spec: ComponentBatchSpec, image_digest: str, entry: dict[str, Any], summary: str,
               known: dict[str, str]) -> planning.PlannedItem:
    index = entry["index"]
    try:
        item = BatchItem.model_validate(entry["item"])
    except ValidationError as err:
        message = "; ".join(f"items[{index}].{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5])
        return planning.PlannedItem(index, summary, problem=message)
    job_input = planning.item_input(spec, item)
    source = item.file or item.image
    if source is not None and not source.sha256 and source.uri not in known:
        why = entry.get("hash_problem") or "its SHA-256 is not known"
        return planning.PlannedItem(index, summary, problem=f"items[{index}]: {source.uri}: {why}; give its sha256",
                                    reason="UnknownContent")
    if source is not None and not source.sha256:
        # The job gets the hash: its digest needs no second read, and staging verifies the bytes.
        pinned = source.model_copy(update={"sha256": known[source.uri]})
        job_input = job_input.model_copy(update={"file": pinned} if item.file else {"image": pinned})
    digest = planning.item_digest(spec, image_digest, job_input, known)
    return planning.PlannedItem(index, summary, job_input=job_input.to_wire(), digest=digest)


async def _dataset(ctx: OperatorContext, spec: ComponentBatchSpec) -> list[dict[str, Any]]:
    """The items before the filter: [{index, item (BatchItem wire), info (ObjectInfo or None)}]."""
    if spec.items is not None:
        return [{"index": i, "item": item.to_wire() if item.value is not None or item.file or item.image
                 else {"value": None}, "info": None} for i, item in enumerate(spec.items)]
    source = spec.from_object_storage
    assert source is not None
    if ctx.store is None:
        raise PlanError("NoObjectStorage", "spec.fromObjectStorage: the operator has no object storage configured "
                        "(objectStorage in its configuration)")
    from ..adapters.s3 import S3Error, parse_uri

    try:
        prefix = parse_uri(source.uri).key
        listed = await asyncio.to_thread(lambda: list(ctx.store.list_prefix(source.uri, limit=MAX_LISTED_OBJECTS + 1)))
    except (S3Error, ValueError) as err:
        raise PlanError("DatasetUnreadable", f"spec.fromObjectStorage.uri: {source.uri}: {err}") from err
    if len(listed) > MAX_LISTED_OBJECTS:
        raise PlanError("DatasetTooLarge", f"spec.fromObjectStorage.uri: more than {MAX_LISTED_OBJECTS} objects under "
                        f"{source.uri}; narrow the prefix")
    out = []
    for info in listed:
        relative = info.key[len(prefix):].lstrip("/")
        if fnmatch.fnmatchcase(relative, source.glob):
            out.append({"index": len(out), "item": {source.item_kind: {"uri": info.uri}}, "info": info})
    return out


def _filter_variables(entry: dict[str, Any]) -> dict[str, Any]:
    item, info = entry["item"], entry["info"]
    kind = "file" if "file" in item else "image" if "image" in item else "value"
    source = item.get(kind) if kind != "value" else None
    uri = source.get("uri", "") if source else ""
    return {
        "index": entry["index"], "kind": kind, **({"value": item.get("value")} if kind == "value" else {}),
        "uri": uri, "key": uri.split("/", 3)[3] if uri.count("/") >= 3 else "",
        "size": info.size if info is not None else 0,
        "lastModified": "", "sha256": (source or {}).get("sha256") or "",
    }


async def _filter(ctx: OperatorContext, spec: ComponentBatchSpec, raw: list[dict[str, Any]]):
    """[(entry, True | error string)] of the items the filter keeps (all without a filter)."""
    if not spec.filter:
        return [(entry, True) for entry in raw]
    from ..kinds.cel_filter import FilterError, evaluate_filter

    variables = [_filter_variables(entry) for entry in raw]
    try:
        if ctx.validation is not None:
            verdicts = await ctx.validation.filter_items(spec.filter, variables)
        else:
            verdicts = await asyncio.to_thread(evaluate_filter, spec.filter, variables)
    except FilterError as err:
        raise PlanError("InvalidFilter", err.message) from err
    return [(entry, verdict) for entry, verdict in zip(raw, verdicts) if verdict is not False]


async def _known_sha256(ctx: OperatorContext, spec: ComponentBatchSpec, raw: list[dict[str, Any]]) -> dict[str, str]:
    """SHA-256 of the dataset's objects given without one (listed objects by ETag; others by HEAD)."""
    hashes = ctx.content_hashes
    known: dict[str, str] = {}
    if hashes is None:
        return known
    from ..adapters.s3 import S3Error

    by_uri: list[str] = []
    for entry in raw:
        item = entry["item"]
        source = item.get("file") or item.get("image")
        if not isinstance(source, dict) or source.get("sha256") or not source.get("uri"):
            continue
        if entry["info"] is None:
            by_uri.append(source["uri"])
            continue
        try:
            known[source["uri"]] = await hashes.sha256(entry["info"])
        except S3Error as err:
            entry["hash_problem"] = str(err)
    found, problems = await hashes.sha256_of_uris(by_uri)
    known.update(found)
    for entry in raw:
        source = entry["item"].get("file") or entry["item"].get("image")
        if isinstance(source, dict) and source.get("uri") in problems:
            entry["hash_problem"] = problems[source["uri"]]
    return known


# -- kopf -------------------------------------------------------------------------------------


def _run_of(body: Any) -> planning.JobRun | None:
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    status = body.get("status") if isinstance(body.get("status"), dict) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    generation = annotations.get(planning.BATCH_GENERATION_ANNOTATION)
    return planning.JobRun(
        name=str(meta.get("name", "")),
        phase=status.get("phase") if isinstance(status.get("phase"), str) else None,
        reason=status.get("reason") if isinstance(status.get("reason"), str) else None,
        message=str(status.get("errorMessage") or "")[:300],
        batch_uid=labels.get(identity.BATCH_UID_LABEL) if isinstance(labels.get(identity.BATCH_UID_LABEL), str) else None,
        batch_generation=int(generation) if isinstance(generation, str) and generation.isdigit() else None,
        created=str(meta.get("creationTimestamp") or ""),
    )


@kopf.index(GROUP, VERSION, "componentjobs")
def job_runs(namespace, body, **_):
    """ComponentJobs by (namespace, inputs-digest label): what "already ran" is decided from."""
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    status = body.get("status") if isinstance(body.get("status"), dict) else {}
    label = labels.get(identity.INPUTS_DIGEST_LABEL)
    if not isinstance(label, str):
        digest = status.get("inputsDigest")
        label = identity.label_value(digest) if isinstance(digest, str) else None
    if not label:
        return None
    return {(namespace, label): _run_of(body)}


@kopf.on.event(GROUP, VERSION, "componentbatches")
async def batch_event(event, namespace, name, memo, job_runs, component_interfaces, component_images, **_):
    attach_indexes(memo, component_interfaces, component_images)  # the image and interface indexes
    rt = _runtime(memo.context)
    rt.runs = job_runs
    if event.get("type") == "DELETED":
        rt.forget(namespace, name)
        return
    rt.reconciler.kick((namespace, name))


@kopf.on.event(GROUP, VERSION, "componentjobs", labels={identity.BATCH_UID_LABEL: kopf.PRESENT})
async def batch_job_event(namespace, labels, memo, job_runs, **_):
    """A job of a batch changed: its batch looks again (kicks coalesce)."""
    rt = _runtime(memo.context)
    rt.runs = job_runs
    key = rt.keys.get(labels.get(identity.BATCH_UID_LABEL, ""))
    if key is not None:
        rt.reconciler.kick(key)
