"""ComponentJob handlers: gather, decide, act.

Events about a job or any of its pods "kick" the job; a kicked job is reconciled by at most
one task at a time (more kicks while it runs coalesce into one re-run), and a decision that
asks to look again later schedules a single timer. The policy is ``planning.jobs.decide``.
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
from ..planning import names
from ..planning.conditions import status_changes
from ..planning.jobs import Observation, PodLogs, decide, parse_time
from ..agent.logs import split_user_logs
from ..runner import OPTIONS
from . import results

log = logging.getLogger("component_operator.jobs")
TERMINAL = {p.value for p in Phase if p.is_terminal}


class JobReconciler:
    def __init__(self, concurrency: int = 32) -> None:
        self.running: dict[tuple[str, str], asyncio.Task] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self.concurrency = concurrency
        self._sem: asyncio.Semaphore | None = None
        self.interfaces: kopf.Index | None = None
        self.images: kopf.Index | None = None

    def kick(self, key: tuple[str, str]) -> None:
        if key in self.running:
            self.dirty.add(key)
            return
        self.running[key] = asyncio.get_running_loop().create_task(self._loop(key))

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

    async def _loop(self, key: tuple[str, str]) -> None:
        self._sem = self._sem or asyncio.Semaphore(self.concurrency)
        try:
            while True:
                self.dirty.discard(key)
                requeue: float | None
                started = time.monotonic()
                try:
                    async with self._sem:
                        requeue = await reconcile_job(self, *key)
                except kube.TemporaryError as err:
                    metrics.RECONCILE_ERRORS.labels("componentjob", "temporary").inc()
                    log.info("job %s/%s: temporary error, retrying: %s", *key, err)
                    requeue = err.delay
                except Exception:  # noqa: BLE001 - unexpected: log with context, retry later
                    metrics.RECONCILE_ERRORS.labels("componentjob", "unexpected").inc()
                    log.exception("job %s/%s: unexpected error while reconciling", *key)
                    requeue = 10.0
                finally:
                    metrics.RECONCILE_DURATION.labels("componentjob").observe(time.monotonic() - started)
                if key in self.dirty:
                    continue
                if requeue is not None:
                    self._later(key, requeue)
                return
        finally:
            self.running.pop(key, None)

    def lookup_image(self, namespace: str, name: str) -> dict | None:
        store = self.images.get((namespace, name)) if self.images is not None else None
        return next(iter(store), None) if store else None

    def all_interfaces(self) -> dict[str, dict]:
        if self.interfaces is None:
            return {}
        return {name: next(iter(store)) for name, store in self.interfaces.items() if store}


RECONCILER = JobReconciler()


async def _logs(namespace: str, pod: dict) -> PodLogs | None:
    if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        return None
    stdout, stderr = await kube.read_logs(namespace, pod["metadata"]["name"], "algorithm")
    if OPTIONS.config.object_storage is None:
        return PodLogs(stdout=stdout, stderr=stderr)
    # The agent writes JSON lines; keep the algorithm's own lines, per stream, without internals.
    lines = [_strip_timestamp(line) for line in (stdout + "\n" + stderr).splitlines()]
    out, err = split_user_logs(lines, unstructured="stderr")
    return PodLogs(stdout="\n".join(out), stderr="\n".join(err))


def _strip_timestamp(line: str) -> str:
    stamp, _, rest = line.partition(" ")
    return rest if stamp[:4].isdigit() and "T" in stamp else line


async def reconcile_job(reconciler: JobReconciler, namespace: str, name: str) -> float | None:
    job = await kube.get_custom(namespace, "componentjobs", name)
    if job is None:
        metrics.PHASES.observe((namespace, name), None)
        return None
    status = job.get("status") or {}
    if status.get("phase") in TERMINAL:
        metrics.PHASES.observe((namespace, name), status["phase"])
        return None
    pod = None
    if status.get("phase") not in (None, Phase.VALIDATING_INPUTS.value, Phase.QUEUED.value, Phase.RE_QUEUED.value):
        pod = await kube.get_pod(namespace, names.pod_name(name, int(status.get("attempt", 0))))
    interfaces = reconciler.all_interfaces()
    config = OPTIONS.config
    result = None
    pod_phase = ((pod or {}).get("status") or {}).get("phase")
    if config.object_storage is not None and pod_phase in ("Succeeded", "Failed"):
        result = await results.observe_result(job, int(status.get("attempt", 0)), interfaces, config,
                                              pod_succeeded=pod_phase == "Succeeded")
    observation = Observation(
        job=job,
        image=reconciler.lookup_image(namespace, job["spec"].get("image", "")),
        interfaces=interfaces,
        pod=pod,
        now=datetime.now(timezone.utc),
        config=config,
        logs=await _logs(namespace, pod) if pod else None,
        result=result,
        new_signing_key_hex=secrets.token_hex(32),
        s3_credentials=results.credentials() if config.object_storage is not None else None,
    )
    decision = decide(observation)
    uid = job["metadata"]["uid"]
    if any(obj["kind"] == "Pod" for obj in decision.create):
        await _mark_interfaces_in_use(job, observation.interfaces)
    for obj in decision.create:
        await kube.create_owned(obj, uid)
    for pod_name in decision.delete_pods:
        await kube.delete_pod(namespace, pod_name)
    changes = status_changes(status, decision.status)
    if changes:
        await kube.patch_status(namespace, "componentjobs", name, changes)
        _record_transition(job, status, decision.status)
    for event in decision.events if changes else []:
        await kube.post_event(job, event.type, event.reason, event.message)
    metrics.PHASES.observe((namespace, name), decision.status.get("phase"))
    return decision.requeue_after


async def _mark_interfaces_in_use(job: dict, interfaces: dict[str, dict]) -> None:
    """Once a job uses an interface, its overlay segments may only be extended (grand-challenge's rule)."""
    used = [i.get("interface") for i in job["spec"].get("inputs", [])] + list(job["spec"].get("outputs", []))
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


@kopf.index(GROUP, VERSION, "componentinterfaces")
def component_interfaces(name, body, **_):
    return {name: {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec", {})), "status": dict(body.get("status", {}))}}


@kopf.index(GROUP, VERSION, "componentimages")
def component_images(namespace, name, body, **_):
    return {(namespace, name): {"metadata": dict(body["metadata"]), "spec": dict(body.get("spec", {})), "status": dict(body.get("status", {}))}}


@kopf.on.event(GROUP, VERSION, "componentjobs")
async def job_event(event, namespace, name, body, component_interfaces, component_images, **_):
    RECONCILER.interfaces, RECONCILER.images = component_interfaces, component_images
    if event.get("type") == "DELETED":
        metrics.PHASES.observe((namespace, name), None)
        return
    phase = (body.get("status") or {}).get("phase")
    metrics.PHASES.observe((namespace, name), phase or Phase.VALIDATING_INPUTS.value)
    if phase not in TERMINAL:
        RECONCILER.kick((namespace, name))


@kopf.on.event("", "v1", "pods", labels={names.JOB_UID_LABEL: kopf.PRESENT})
async def pod_event(namespace, body, component_interfaces, component_images, **_):
    RECONCILER.interfaces, RECONCILER.images = component_interfaces, component_images
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "ComponentJob" and ref.get("controller"):
            RECONCILER.kick((namespace, ref["name"]))


@kopf.on.event(GROUP, VERSION, "componentimages")
async def image_event(namespace, name, component_interfaces, component_images, **_):
    """An image becoming Ready releases the jobs waiting for it."""
    RECONCILER.interfaces, RECONCILER.images = component_interfaces, component_images
    for key in list(RECONCILER.timers):
        if key[0] == namespace:
            RECONCILER.kick(key)
