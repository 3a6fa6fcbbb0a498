"""The operator's own watch of job pods: list, then watch, with a server-side label selector.

Why it exists: job pods were watched through kopf (``@kopf.on.event`` on pods). kopf does
real work for every event of every resource it serves (its cause detection, per-object
memories, handler invocation with two dozen keyword arguments, logging contexts), and kopf
filters labels on the client: in a shared cluster it decoded and remembered every pod of
every namespace to find the few that belong to ComponentJobs. Profiled under
``bench/bench_controllers.py --profile``, kopf's handling of pod events was the largest share
of the operator's CPU after its own reconciles. Pods carry no handler that needs kopf (no
finalizer, no progress, no diff): what the reconciler needs is the newest copy of each job
pod and a kick of its job, which this module delivers from one plain watch per scope.

How it stays correct:

* a scope (one namespace, or the whole cluster) is listed in pages, then watched from the
  list's ``resourceVersion``; a ``410 Gone`` (the version was compacted) or a broken stream
  lists again (so does any other failure). Pods the cache holds that the new list no longer shows were deleted while the
  stream was down: they are dropped and their jobs kicked, which kopf's relist did not do;
* every failure waits ``RETRY_DELAYS`` (0.5 s doubling to 30 s, reset after a good stream)
  and is retried: the stream is the operator's only source of pod events, so it never gives
  up; the task is named like kopf's watchers so the liveness probe (``handlers.health``)
  restarts the operator if it ever ends;
* only pods of jobs the reconciler tracks are recorded (a job kopf delivered, not terminal).
  A pod event that arrives before its job's first event is dropped: the job's reconcile reads
  a pod it has not seen from the API server before its absence means anything.

Bounds: one connection per scope for the stream (its own session, ``kube_http``), pages of
``kube.LIST_PAGE`` pods, an event of at most ``kube_http.MAX_EVENT_BYTES``, and the watch
request's ``kube.WATCH_SECONDS`` on the server.

Peering: kopf pauses its own watches in a replica that is not the active one; this stream
keeps running there, but a paused replica's reconciler tracks no new jobs (kopf delivers it
no job events), so it records and kicks only the jobs it was already reconciling, exactly
the ones its running reconciles and timers still finish (every write there is guarded by a
``resourceVersion`` precondition, and pod names are deterministic).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

from ..adapters import kube
from ..planning import names
from .health import WATCHER_TASK_PREFIX

log = logging.getLogger("component_operator.pods")

SELECTOR = names.JOB_UID_LABEL
#: Seconds between attempts after a failure: doubling, capped, reset by a healthy stream.
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)

Key = tuple[str, str]
Lister = Callable[[str | None, str, str | None], Awaitable[Mapping[str, Any]]]
Watcher = Callable[[str | None, str, str], AsyncIterator[Mapping[str, Any]]]


def job_of(pod: Mapping[str, Any]) -> Key | None:
    """The (namespace, name) of the ComponentJob controlling ``pod``, or None (any shape)."""
    meta = pod.get("metadata") if isinstance(pod, Mapping) else None
    if not isinstance(meta, Mapping) or not isinstance(meta.get("namespace"), str):
        return None
    for ref in meta.get("ownerReferences") or []:
        if (isinstance(ref, Mapping) and ref.get("kind") == "ComponentJob" and ref.get("controller")
                and isinstance(ref.get("name"), str)):
            return meta["namespace"], ref["name"]
    return None


def vanished(cached: Mapping[Key, Mapping[str, Any]], listed: Iterable[Mapping[str, Any]],
             namespace: str | None) -> list[tuple[Key, str]]:
    """(job, pod name) of cached pods in the scope that a fresh list no longer shows."""
    present = {(p["metadata"].get("namespace"), p["metadata"].get("name")) for p in listed}
    return [(key, pod) for key, pods in cached.items() if namespace is None or key[0] == namespace
            for pod in pods if (key[0], pod) not in present]


class PodWatch:
    """One list-then-watch task per scope, delivering pods to the job reconciler."""

    def __init__(self, reconciler, namespaces: Iterable[str] = (), lister: Lister | None = None,
                 watcher: Watcher | None = None) -> None:
        self.reconciler = reconciler
        self.scopes: list[str | None] = list(namespaces) or [None]
        self.lister = lister or kube.list_pods
        self.watcher = watcher or kube.watch_pods
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self.run(scope), name=f"{WATCHER_TASK_PREFIX}pods in {scope or 'all namespaces'}")
                      for scope in self.scopes]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []

    # -- delivery ---------------------------------------------------------------------------

    def deliver(self, pod: Mapping[str, Any], deleted: bool) -> None:
        key = job_of(pod)
        if key is None:
            return
        reconciler = self.reconciler
        seen = reconciler.seen
        if key in seen.ended:
            return  # its job is terminal: a finished pod's later updates decide nothing
        if key not in seen.jobs and key not in seen.pods and key not in reconciler.running:
            return  # not (yet) a job this replica reconciles: its reconcile reads the pod itself
        seen.see_pod(key, pod, deleted=deleted)
        reconciler.kick(key)

    def relisted(self, scope: str | None, items: list[Mapping[str, Any]]) -> None:
        for key, name in vanished(self.reconciler.seen.pods, items, scope):
            self.deliver({"metadata": {"namespace": key[0], "name": name,
                                       "ownerReferences": [{"kind": "ComponentJob", "controller": True,
                                                            "name": key[1]}]}}, deleted=True)
        for pod in items:
            self.deliver(pod, deleted=False)

    # -- the stream -------------------------------------------------------------------------

    async def list_all(self, scope: str | None) -> tuple[list[Mapping[str, Any]], str]:
        items: list[Mapping[str, Any]] = []
        page: str | None = None
        while True:
            reply = await self.lister(scope, SELECTOR, page)
            items += [p for p in reply.get("items") or [] if isinstance(p, Mapping) and isinstance(p.get("metadata"), Mapping)]
            meta = reply.get("metadata") or {}
            page = meta.get("continue")
            if not page:
                return items, str(meta.get("resourceVersion") or "")

    async def follow(self, scope: str | None, version: str) -> str | None:
        """Deliver events from ``version``; the version to go on from, None to list again."""
        async for event in self.watcher(scope, SELECTOR, version):
            kind, pod = event.get("type"), event.get("object")
            if not isinstance(pod, Mapping):
                continue
            if kind == "ERROR":
                if pod.get("code") == 410:
                    return None  # compacted: list again
                raise kube.TemporaryError(f"watch error: {pod.get('code')} {pod.get('message')}")
            meta = pod.get("metadata")
            if not isinstance(meta, Mapping):
                continue
            version = str(meta.get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.deliver(pod, deleted=kind == "DELETED")
        return version

    async def run(self, scope: str | None) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        version: str | None = None
        while True:
            began = loop.time()
            try:
                if version is None:
                    items, version = await self.list_all(scope)
                    self.relisted(scope, items)
                version = await self.follow(scope, version)
                failures = 0
                if loop.time() - began < 1:
                    await asyncio.sleep(RETRY_DELAYS[0])  # a stream the server ends at once: no busy loop
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the only pod stream: retried, never given up
                version = None  # whatever broke (a compacted version, a lost stream): list again
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("pod watch (%s) failed, again in %.1f s: %s: %s", scope or "all namespaces", delay,
                            type(err).__name__, err)
                await asyncio.sleep(delay)
