"""ComponentJob handlers: gather, decide, act.

Events about a job or any of its pods "kick" the job; a kicked job is reconciled by at most
one task at a time (more kicks while it runs coalesce into one re-run), and a decision that
asks to look again later schedules a single timer. The policy is ``planning.jobs.decide``.

The event handlers do nothing that can fail on a user's object: they read the key and kick.
Whatever a job contains is met inside the reconcile, where every error is classified
(``component_operator.errors``) and bounded, so no object can stop kopf's watch stream.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import datetime, timezone

import kopf

from .. import GROUP, VERSION
from ..adapters import kube, metrics
from ..api.job import Phase
from ..context import OperatorContext
from ..errors import (INTERNAL_ERROR, TEMPORARY_RETRY_LIMIT, UNEXPECTED_RETRY_LIMIT, PermanentError, TemporaryError,
                      backoff, describe)
from ..planning import identity, names
from ..planning.conditions import status_changes
from ..planning.jobs import Decision, Observation, PodLogs, SpecError, decide, fail, parse_spec, parse_time
from ..agent.logs import split_user_logs
from . import results
from .watch_cache import WatchCache

log = logging.getLogger("component_operator.jobs")
TERMINAL = {p.value for p in Phase if p.is_terminal}


class JobReconciler:
    """The job work queue: one task per job at a time, coalesced kicks, one timer per job.

    It also counts each job's consecutive failures, which bounds its retries (see
    ``component_operator.errors``): temporary errors back off exponentially, unexpected ones
    end the job ``InternalError`` after a few tries. Every map here is keyed by job and
    emptied when the job ends or disappears, so memory follows the number of live jobs.
    """

    def __init__(self, concurrency: int = 32, reconcile=None, end=None, kind: str = "componentjob") -> None:
        #: The gather-decide-act step and the last-resort terminal write (injectable for tests).
        self.reconcile = reconcile or reconcile_job
        self.end = end or end_job
        self.running: dict[tuple[str, str], asyncio.Task] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.failures: dict[tuple[str, str], tuple[str, int]] = {}
        self.concurrency = concurrency
        #: The resource it reconciles, for metrics and logs (the batch queue reuses this class).
        self.kind = kind
        self._sem: asyncio.Semaphore | None = None
        self.interfaces: kopf.Index | None = None
        self.images: kopf.Index | None = None
        self.context: OperatorContext | None = None
        self.started: dict[tuple[str, str], float] = {}
        #: The ComponentImage each live job runs: an image's events wake only its own jobs.
        self.image_of: dict[tuple[str, str], str] = {}
        #: The newest copies of live jobs and their pods (watch events and our own writes).
        self.seen = WatchCache()
        #: Whether the API server splits log streams (learned once).
        self.log_reader = kube.LogReader()

    def kick(self, key: tuple[str, str]) -> None:
        if key in self.running:
            self.dirty.add(key)
            return
        self.running[key] = asyncio.get_running_loop().create_task(self._loop(key), name=f"reconcile {key[0]}/{key[1]}")

    def _later(self, key: tuple[str, str], delay: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        handle = self.timers.get(key)
        if handle is not None and not handle.cancelled() and handle.when() <= when:
            return
        if handle is not None:
            handle.cancel()
        self.timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: tuple[str, str]) -> None:
        self.timers.pop(key, None)
        self.kick(key)

    def forget(self, key: tuple[str, str], ended: bool = False) -> None:
        """Drop everything kept about a job (``ended``: it is terminal, not gone)."""
        self.failures.pop(key, None)
        self.image_of.pop(key, None)
        self.seen.forget(key, ended)
        handle = self.timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _count(self, key: tuple[str, str], kind: str) -> int:
        previous, count = self.failures.get(key, (kind, 0))
        count = count + 1 if previous == kind else 1
        self.failures[key] = (kind, count)
        return count

    async def outside_slot(self, awaitable):
        """Await ``awaitable`` without holding a reconcile slot (the bounded validation pool
        queues its own work): jobs with slow, hostile values must not starve everyone else."""
        if self._sem is None:
            return await awaitable
        self._sem.release()
        try:
            return await awaitable
        finally:
            await self._sem.acquire()

    def oldest_reconcile_seconds(self) -> float:
        """How long the longest-running reconcile has been running (0 when none is)."""
        if not self.started:
            return 0.0
        return time.monotonic() - min(self.started.values())

    async def _loop(self, key: tuple[str, str]) -> None:
        assert self.context is not None, "JobReconciler used before the operator attached its context"
        self._sem = self._sem or asyncio.Semaphore(self.concurrency)
        try:
            while True:
                self.dirty.discard(key)
                requeue: float | None
                started = time.monotonic()
                try:
                    async with self._sem:
                        self.started[key] = time.monotonic()
                        try:
                            requeue = await self.reconcile(self.context, *key)
                        finally:
                            self.started.pop(key, None)
                    self.failures.pop(key, None)
                except TemporaryError as err:
                    metrics.RECONCILE_ERRORS.labels(self.kind, "temporary").inc()
                    count = self._count(key, "temporary")
                    if count > TEMPORARY_RETRY_LIMIT:
                        requeue = await self._give_up(key, f"{TEMPORARY_RETRY_LIMIT} retries of a temporary error: {err}")
                    else:
                        requeue = backoff(count, least=err.delay)
                        log.info("job %s/%s: temporary error (try %d of %d, next in %.0f s): %s",
                                 *key, count, TEMPORARY_RETRY_LIMIT, requeue, err)
                except PermanentError as err:
                    metrics.RECONCILE_ERRORS.labels(self.kind, "permanent").inc()
                    log.info("job %s/%s: %s: %s", *key, err.reason, err)
                    requeue = await self._end(key, err.reason, err.message, err.detail)
                except Exception as err:  # noqa: BLE001 - unexpected: bounded retries, then InternalError
                    metrics.RECONCILE_ERRORS.labels(self.kind, "unexpected").inc()
                    count = self._count(key, "unexpected")
                    log.exception("job %s/%s: unexpected error while reconciling (try %d of %d)",
                                  *key, count, UNEXPECTED_RETRY_LIMIT)
                    if count >= UNEXPECTED_RETRY_LIMIT:
                        requeue = await self._give_up(key, describe(err))
                    else:
                        requeue = backoff(count)
                finally:
                    metrics.RECONCILE_DURATION.labels(self.kind).observe(time.monotonic() - started)
                if key in self.dirty:
                    continue
                if requeue is not None:
                    self._later(key, requeue)
                else:
                    self.failures.pop(key, None)
                return
        finally:
            self.running.pop(key, None)

    async def _give_up(self, key: tuple[str, str], text: str) -> float | None:
        return await self._end(key, INTERNAL_ERROR, f"The operator could not process this job: {text}")

    async def _end(self, key: tuple[str, str], reason: str, message: str, detail: dict | None = None) -> float | None:
        """Write the terminal state; if even that fails, stop trying (never retry forever)."""
        assert self.context is not None
        try:
            await self.end(self.context, *key, reason=reason, message=message, detail=detail)
        except Exception:  # noqa: BLE001 - the last resort failed: log loudly, leave the job alone
            log.exception("job %s/%s: could not write the terminal state %s; giving up on it", *key, reason)
        self.forget(key)
        return None

    def lookup_image(self, namespace: str, name: str) -> dict | None:
        store = self.images.get((namespace, name)) if self.images is not None else None
        return next(iter(store), None) if store else None

    def all_interfaces(self) -> dict[str, dict]:
        if self.interfaces is None:
            return {}
        return {name: next(iter(store)) for name, store in self.interfaces.items() if store}


async def _logs(ctx: OperatorContext, namespace: str, pod: dict) -> PodLogs | None:
    if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        return None
    # With the data plane on, the agent marks each line's stream itself: one combined read.
    data_plane = ctx.config.object_storage is not None
    stdout, stderr = await ctx.reconciler.log_reader.read(namespace, pod["metadata"]["name"], "algorithm",
                                                          combined=data_plane)
    if not data_plane:
        return PodLogs(stdout=stdout, stderr=stderr)
    # The agent writes JSON lines; keep the algorithm's own lines, per stream, without internals.
    lines = [_strip_timestamp(line) for line in (stdout + "\n" + stderr).splitlines()]
    out, err = split_user_logs(lines, unstructured="stderr")
    return PodLogs(stdout="\n".join(out), stderr="\n".join(err))


def _strip_timestamp(line: str) -> str:
    stamp, _, rest = line.partition(" ")
    return rest if stamp[:4].isdigit() and "T" in stamp else line


async def reconcile_job(ctx: OperatorContext, namespace: str, name: str) -> float | None:
    """Gather, decide, act for one job; the delay before the next look (None: done).

    It decides from the newest copy the watches delivered (``watch_cache``); a decision that
    creates objects is first checked against a fresh read, and a status write made on a copy
    that proves stale (409) is decided again once from a fresh read.
    """
    key = (namespace, name)
    seen = ctx.reconciler.seen
    if key in seen.ended:
        return None  # terminal: never left, nothing to read
    job, fresh = seen.job(key), False
    for _ in range(2):
        if job is None:
            job, fresh = await kube.get_custom(namespace, "componentjobs", name), True
            if job is None:
                metrics.PHASES.observe(key, None)
                ctx.reconciler.forget(key)
                return None
            seen.see_job(key, job)  # the next look starts from this read, not from another
        status = job.get("status") if isinstance(job.get("status"), dict) else {}
        if status.get("phase") in TERMINAL:
            metrics.PHASES.observe(key, status["phase"])
            ctx.reconciler.forget(key, ended=True)
            return None
        observation = await _observe(ctx, job)
        decision = decide(observation)
        if decision.create and not fresh:
            latest = await kube.get_custom(namespace, "componentjobs", name)
            fresh = True
            if latest is None or _version(latest) != _version(job):
                job = latest
                continue  # decide again on what is there now
        try:
            return await _act(ctx, observation, decision)
        except kube.ConflictError:
            if fresh:
                raise  # a concurrent writer: the work queue's bounded retries take over
            seen.drop_job(key)
            job = None
    raise AssertionError("unreachable: the second pass decides on a fresh read")


def _version(obj: dict) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


async def _observe(ctx: OperatorContext, job: dict) -> Observation:
    """Everything ``decide`` needs about one job: its pod, logs, result, input checks, hashes."""
    reconciler = ctx.reconciler
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    status = job.get("status") if isinstance(job.get("status"), dict) else {}
    try:
        spec = parse_spec(job.get("spec"))
    except SpecError:
        spec = None  # decide() ends it InvalidSpec with the field-by-field message
    attempt = int(status.get("attempt", 0) or 0) if str(status.get("attempt", 0)).isdigit() else 0
    pod = None
    if status.get("phase") not in (None, Phase.VALIDATING_INPUTS.value, Phase.QUEUED.value, Phase.RE_QUEUED.value):
        pod_name = names.pod_name(name, attempt)
        # A pod the watch has not shown (yet) is read: its absence must be the API server's word.
        pod = reconciler.seen.pod((namespace, name), pod_name) or await kube.get_pod(namespace, pod_name)
    interfaces = reconciler.all_interfaces()
    config = ctx.config
    result = None
    pod_phase = ((pod or {}).get("status") or {}).get("phase")
    if spec is not None and config.object_storage is not None and pod_phase in ("Succeeded", "Failed"):
        result = await results.observe_result(
            {**job, "spec": spec.model_dump(by_alias=True, mode="json")}, attempt, interfaces, config,
            pod_succeeded=pod_phase == "Succeeded", store=ctx.store,
            validate=ctx.validation.validate_value_sync if ctx.validation is not None else None)
    input_problems = None
    if spec is not None and status.get("phase") in (None, Phase.VALIDATING_INPUTS.value) and ctx.validation is not None:
        # CPU-heavy (custom schemas, hostile patterns): in the bounded pool, off the event loop.
        input_problems = await reconciler.outside_slot(ctx.validation.check_inputs(
            spec.model_dump(by_alias=True, mode="json"), interfaces, require_known=True))
    sha256_of: dict[str, str] = {}
    if (spec is not None and ctx.content_hashes is not None and not status.get("inputsDigest")
            and status.get("phase") in (None, Phase.VALIDATING_INPUTS.value, Phase.QUEUED.value, Phase.RE_QUEUED.value)):
        unknown = identity.sources_without_sha256(identity.job_identity(spec, ""))
        if unknown:  # the identity names files by content: hash the ones given only by URI (bounded, cached)
            sha256_of, _ = await reconciler.outside_slot(ctx.content_hashes.sha256_of_uris(unknown))
    return Observation(
        job=job,
        image=reconciler.lookup_image(namespace, spec.image) if spec is not None else None,
        interfaces=interfaces,
        pod=pod,
        now=datetime.now(timezone.utc),
        config=config,
        logs=await _logs(ctx, namespace, pod) if pod else None,
        result=result,
        new_signing_key_hex=secrets.token_hex(32),
        presign=results.presign_context(config, ctx.store) if config.object_storage is not None else None,
        spec=spec,
        input_problems=input_problems,
        sha256_of=sha256_of,
    )


async def _act(ctx: OperatorContext, observation: Observation, decision: Decision) -> float | None:
    job, spec = observation.job, observation.spec
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    if spec is not None and decision.status.get("phase") not in TERMINAL:
        ctx.reconciler.image_of[(namespace, name)] = spec.image
    uid = job["metadata"]["uid"]
    if any(obj["kind"] == "Pod" for obj in decision.create):
        await _mark_interfaces_in_use(observation)
    for obj in decision.create:
        await kube.create_owned(obj, uid)
    status = job.get("status") if isinstance(job.get("status"), dict) else {}
    return await _apply(ctx.reconciler.seen, job, status, decision)


async def _apply(seen: WatchCache, job: dict, status: dict, decision: Decision) -> float | None:
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    for pod_name in decision.delete_pods:
        await kube.delete_pod(namespace, pod_name)
    changes = status_changes(status, decision.status)
    if changes:
        written = await kube.patch_status(namespace, "componentjobs", name, changes, resource_version=_version(job))
        if written is None:
            return None  # deleted meanwhile
        seen.wrote_job((namespace, name), written)
        _record_transition(job, status, decision.status)
    for event in decision.events if changes else []:
        await kube.post_event(job, event.type, event.reason, event.message)
    metrics.PHASES.observe((namespace, name), decision.status.get("phase"))
    return decision.requeue_after


async def end_job(ctx: OperatorContext, namespace: str, name: str, *, reason: str, message: str,
                  detail: dict | None = None) -> None:
    """Put a job in ``Failed`` for an error the reconcile could not get past (pure ``fail``)."""
    job = await kube.get_custom(namespace, "componentjobs", name)
    if job is None:
        return
    status = job.get("status") if isinstance(job.get("status"), dict) else {}
    observation = Observation(job={**job, "status": status}, image=None, interfaces={}, pod=None,
                              now=datetime.now(timezone.utc), config=ctx.config)
    try:
        decision = fail(observation, reason, message, detail)
    except Exception:  # noqa: BLE001 - even the pure decision failed: write the bare terminal state
        log.exception("job %s/%s: building the %s state failed; writing a minimal one", namespace, name, reason)
        now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        decision = Decision(status={**status, "phase": Phase.FAILED.value, "reason": reason,
                                    "errorMessage": message[:1024], "completedAt": now})
    await _apply(ctx.reconciler.seen, job, status, decision)


async def _mark_interfaces_in_use(observation: Observation) -> None:
    """Once a job uses an interface, its overlay segments may only be extended (grand-challenge's rule)."""
    spec, interfaces = observation.spec, observation.interfaces
    if spec is None:
        return
    used = [i.interface for i in spec.inputs] + list(spec.outputs)
    for name in sorted(set(used)):
        iface = interfaces.get(name) or {}
        if not (iface.get("status") or {}).get("inUse"):
            segments = (iface.get("spec") or {}).get("overlaySegments") or []
            await kube.patch_cluster_status("componentinterfaces", name, {"inUse": True, "overlaySegmentsInUse": segments})


def _record_transition(job: dict, old: dict, new: dict) -> None:
    before, after = old.get("phase") or "", new.get("phase") or ""
    if before == after:
        return
    metrics.JOB_TRANSITIONS.labels(before or "None", after).inc()
    created = parse_time(job["metadata"].get("creationTimestamp"))
    if new.get("startedAt") and not old.get("startedAt"):
        queue = (new.get("runtimeMetrics") or {}).get("queueSeconds")
        if queue is not None:
            metrics.JOB_QUEUE_DURATION.observe(queue)
    if after in TERMINAL:
        run = (new.get("runtimeMetrics") or {}).get("runSeconds")
        if run is not None:
            metrics.JOB_EXEC_DURATION.labels(after).observe(run)
        if created:
            metrics.JOB_TOTAL_DURATION.labels(after).observe((datetime.now(timezone.utc) - created).total_seconds())


def _index_copy(body) -> dict:
    """A plain copy of what the reconciler reads from an indexed object (tolerates any shape)."""
    def part(key: str) -> dict:
        value = body.get(key)
        return dict(value) if isinstance(value, dict) else {}
    return {"metadata": part("metadata"), "spec": part("spec"), "status": part("status")}


@kopf.index(GROUP, VERSION, "componentinterfaces")
def component_interfaces(name, body, **_):
    return {name: _index_copy(body)}


@kopf.index(GROUP, VERSION, "componentimages")
def component_images(namespace, name, body, **_):
    return {(namespace, name): _index_copy(body)}


def attach_indexes(memo: kopf.Memo, component_interfaces, component_images) -> JobReconciler:
    ctx: OperatorContext = memo.context
    reconciler = ctx.reconciler
    reconciler.context = ctx
    reconciler.interfaces, reconciler.images = component_interfaces, component_images
    return reconciler


@kopf.on.event(GROUP, VERSION, "componentjobs")
async def job_event(event, namespace, name, body, memo, component_interfaces, component_images, **_):
    reconciler = attach_indexes(memo, component_interfaces, component_images)
    key = (namespace, name)
    if event.get("type") == "DELETED":
        metrics.PHASES.observe(key, None)
        reconciler.forget(key)
        return
    status = body.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    phase = phase if isinstance(phase, str) else None
    metrics.PHASES.observe(key, phase or Phase.VALIDATING_INPUTS.value)
    if phase in TERMINAL:
        reconciler.forget(key, ended=True)
        return
    # The echo of the operator's own status write changes nothing it decided on: no reconcile
    # (unless the job is not tracked at all: no reconcile running, none scheduled).
    if reconciler.seen.see_job(key, body) or (key not in reconciler.running and key not in reconciler.timers):
        reconciler.kick(key)


@kopf.on.event(GROUP, VERSION, "componentimages")
async def image_event(namespace, name, status, memo, component_interfaces, component_images, **_):
    """An image that finished its inspection (Ready, or failed for good) releases the jobs
    waiting for it; only those: an image that keeps failing must not wake a whole namespace."""
    reconciler = attach_indexes(memo, component_interfaces, component_images)
    if not isinstance(status, dict) or status.get("importStatus") not in ("Completed", "Failed", "Cancelled"):
        return
    for key in [k for k, image in reconciler.image_of.items() if k[0] == namespace and image == name]:
        if key in reconciler.timers:
            reconciler.kick(key)
