"""The watch cache the job reconciles decide from: newest copy wins, own writes are recognised,
pods follow their events, and nothing outlives its job."""

from __future__ import annotations

from component_operator.handlers.startup import EssenceStorage
from component_operator.handlers.watch_cache import WatchCache, newer

KEY = ("ns", "job")


def job(rv: str, phase: str | None = None) -> dict:
    return {"metadata": {"name": "job", "namespace": "ns", "resourceVersion": rv}, "status": {"phase": phase}}


def pod(name: str, rv: str, phase: str = "Pending") -> dict:
    return {"metadata": {"name": name, "resourceVersion": rv}, "status": {"phase": phase}}


def test_newer_compares_integer_versions_and_accepts_what_it_cannot_order():
    assert newer(job("10"), job("9")) and newer(job("10"), job("10")) and not newer(job("9"), job("10"))
    assert newer(job("abc"), job("10")) and newer(job("10"), None)


def test_an_older_watch_event_does_not_replace_the_operators_own_write():
    cache = WatchCache()
    assert cache.see_job(KEY, job("5"))
    cache.wrote_job(KEY, job("7", "Provisioning"))
    assert cache.see_job(KEY, job("6"))  # someone else's change: worth a look ...
    assert cache.job(KEY)["metadata"]["resourceVersion"] == "7"  # ... but the newer copy stays
    assert not cache.see_job(KEY, job("7", "Provisioning"))  # the echo of our own write: nothing new


def test_a_stale_copy_is_dropped_and_the_next_read_is_fresh():
    cache = WatchCache()
    cache.wrote_job(KEY, job("7"))
    cache.drop_job(KEY)
    assert cache.job(KEY) is None
    assert cache.see_job(KEY, job("7"))  # no longer recognised as our write: reconcile


def test_pods_follow_their_events_and_a_deleted_pod_is_gone():
    cache = WatchCache()
    cache.see_pod(KEY, pod("job-0", "3", "Running"))
    cache.see_pod(KEY, pod("job-0", "2", "Pending"))  # late, older event
    assert cache.pod(KEY, "job-0")["status"]["phase"] == "Running"
    cache.see_pod(KEY, pod("job-0", "4"), deleted=True)
    assert cache.pod(KEY, "job-0") is None
    cache.see_pod(KEY, {"metadata": {}})  # nameless: ignored
    assert cache.pod(KEY, "job-1") is None


def test_forget_drops_everything_and_remembers_only_that_a_job_ended():
    cache = WatchCache()
    cache.wrote_job(KEY, job("7"))
    cache.see_pod(KEY, pod("job-0", "3"))
    cache.forget(KEY, ended=True)
    assert cache.job(KEY) is None and cache.pod(KEY, "job-0") is None and not cache.written
    assert KEY in cache.ended and len(cache) == 0
    cache.forget(KEY)  # deleted: not ended any more
    assert KEY not in cache.ended
    cache.forget(KEY, ended=True)
    cache.see_job(KEY, job("9"))  # a new, live job of that name
    assert KEY not in cache.ended


def test_event_only_kinds_get_no_essence_copy_the_others_keep_theirs():
    storage = EssenceStorage(field="status.kopf.lastHandledConfiguration")
    body = {"apiVersion": "components.grand-challenge.org/v1alpha1", "kind": "ComponentJob",
            "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"x": 1}}
    assert storage.build(body=body) == {}
    image = {**body, "kind": "ComponentImage"}
    essence = storage.build(body=image)
    assert essence["spec"] == {"x": 1} and essence["metadata"]["labels"] == {"a": "b"}
