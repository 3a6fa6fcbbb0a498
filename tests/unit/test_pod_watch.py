"""The job pods' own watch: which pods reach the reconciler, relists, and recovery after failures.

The list and watch calls are injected (the real ones are exercised by every integration test:
they are the operator's only source of pod events); here they are scripted sequences, so each
recovery path (a compacted version, a broken stream, a pod deleted while the stream was down)
runs deterministically.
"""

from __future__ import annotations

import asyncio

import pytest

from component_operator.adapters import kube
from component_operator.handlers import pod_watch
from component_operator.handlers.pod_watch import PodWatch, job_of, vanished
from component_operator.handlers.watch_cache import WatchCache


def pod(name: str, job: str = "j", namespace: str = "ns", version: str = "1", phase: str = "Pending") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": version,
                         "ownerReferences": [{"kind": "ComponentJob", "controller": True, "name": job}]},
            "status": {"phase": phase}}


class Reconciler:
    def __init__(self) -> None:
        self.seen = WatchCache()
        self.running: dict = {}
        self.kicked: list = []

    def kick(self, key) -> None:
        self.kicked.append(key)


def tracked(*keys) -> Reconciler:
    r = Reconciler()
    for key in keys:
        r.seen.see_job(key, {"metadata": {"resourceVersion": "1"}})
    return r


def test_job_of_reads_only_a_controlling_componentjob():
    assert job_of(pod("p", job="a")) == ("ns", "a")
    other = pod("p")
    other["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "controller": True, "name": "x"},
                                            {"kind": "ComponentJob", "controller": False, "name": "y"}]
    assert job_of(other) is None
    for junk in ({}, {"metadata": None}, {"metadata": {"namespace": 3}}, {"metadata": {"namespace": "ns", "ownerReferences": [7]}}):
        assert job_of(junk) is None


def test_only_tracked_live_jobs_get_their_pods():
    r = tracked(("ns", "live"))
    r.seen.forget(("ns", "done"), ended=True)
    w = PodWatch(r)
    w.deliver(pod("a", job="live"), deleted=False)
    w.deliver(pod("b", job="done"), deleted=False)
    w.deliver(pod("c", job="unknown"), deleted=False)
    assert r.kicked == [("ns", "live")]
    assert r.seen.pod(("ns", "live"), "a") is not None
    assert ("ns", "unknown") not in r.seen.pods and ("ns", "done") not in r.seen.pods
    w.deliver(pod("a", job="live"), deleted=True)
    assert r.seen.pod(("ns", "live"), "a") is None


def test_vanished_names_cached_pods_a_list_no_longer_shows_in_its_scope():
    cached = {("ns", "j"): {"p1": {}, "p2": {}}, ("other", "k"): {"q": {}}}
    assert vanished(cached, [pod("p1")], "ns") == [(("ns", "j"), "p2")]
    assert sorted(vanished(cached, [pod("p1")], None)) == [(("ns", "j"), "p2"), (("other", "k"), "q")]


def run_scripted(watch: PodWatch, seconds: float = 0.3) -> None:
    async def go():
        task = asyncio.get_running_loop().create_task(watch.run(None))
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(go())


def test_relist_after_410_drops_pods_deleted_meanwhile_and_follows_new_events(monkeypatch):
    monkeypatch.setattr(pod_watch, "RETRY_DELAYS", (0.01,))
    key = ("ns", "j")
    r = tracked(key)
    lists = [{"items": [pod("p1"), pod("p2")], "metadata": {"resourceVersion": "10"}},
             {"items": [pod("p1", version="12")], "metadata": {"resourceVersion": "20"}}]
    watched: list[str] = []

    async def lister(scope, selector, page):
        assert selector == pod_watch.SELECTOR
        return lists.pop(0) if lists else {"items": [pod("p1", version="12")], "metadata": {"resourceVersion": "20"}}

    async def watcher(scope, selector, version):
        watched.append(version)
        if version == "10":
            yield {"type": "MODIFIED", "object": pod("p1", version="11", phase="Running")}
            yield {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
        else:
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "25"}}}
            yield {"type": "MODIFIED", "object": pod("p1", version="26", phase="Succeeded")}
            await asyncio.sleep(10)

    run_scripted(PodWatch(r, lister=lister, watcher=watcher))
    assert watched[:2] == ["10", "20"]
    assert r.seen.pod(key, "p2") is None  # deleted while the stream was down
    assert r.seen.pod(key, "p1")["status"]["phase"] == "Succeeded"


def test_failures_back_off_and_list_again(monkeypatch):
    monkeypatch.setattr(pod_watch, "RETRY_DELAYS", (0.01,))
    r = tracked(("ns", "j"))
    calls = {"list": 0, "watch": 0}

    async def lister(scope, selector, page):
        calls["list"] += 1
        if calls["list"] == 1:
            raise kube.TemporaryError("API unreachable")
        if page is None:
            return {"items": [pod("p1")], "metadata": {"resourceVersion": "5", "continue": "next"}}
        return {"items": [pod("p2")], "metadata": {"resourceVersion": "5"}}

    async def watcher(scope, selector, version):
        calls["watch"] += 1
        if calls["watch"] == 1:
            raise kube.TemporaryError("stream broke")
            yield  # pragma: no cover
        await asyncio.sleep(10)
        yield  # pragma: no cover

    run_scripted(PodWatch(r, lister=lister, watcher=watcher))
    # failed list, then two pages (p1, p2), a broken stream, then a fresh two-page list
    assert calls == {"list": 5, "watch": 2}
    assert r.seen.pod(("ns", "j"), "p1") and r.seen.pod(("ns", "j"), "p2")


def test_each_scope_is_its_own_task_named_for_the_liveness_probe():
    async def go():
        w = PodWatch(Reconciler(), ["a", "b"], lister=lambda *a: asyncio.sleep(10), watcher=None)
        w.start()
        names = sorted(t.get_name() for t in w.tasks)
        await w.stop()
        return names
    from component_operator.handlers.health import WATCHER_TASK_PREFIX
    assert go and asyncio.run(go()) == [f"{WATCHER_TASK_PREFIX}pods in a", f"{WATCHER_TASK_PREFIX}pods in b"]
