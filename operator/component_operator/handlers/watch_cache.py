"""What the watches last showed of each live ComponentJob and its pods.

Why it exists: a reconcile used to GET the job and its pod every time it ran, and a job runs
about six reconciles (its own status writes wake it too), so most of the operator's requests
were reads of objects kopf's watches had just delivered. The job's reconciles now decide from
the newest copy seen here: the body of the last watch event, or the operator's own last write
(the API server's reply to it), whichever is newer.

Staleness never decides anything on its own:

* every status write carries the copy's ``resourceVersion`` as a precondition, so a decision
  made on an old copy is refused (409) and made again from a fresh GET (``handlers.job``);
* a decision that creates objects is re-checked against a fresh GET first (a pod created from
  an old copy could be one attempt too early);
* a pod missing here is read from the API server before its absence means anything.

"Newer" compares ``resourceVersion`` as integers when both are integers (etcd's revisions,
which they are in every API server we know of); the comparison only saves a 409 and a re-read,
correctness rests on the preconditions above. Entries exist for live jobs only: ``forget``
drops a job and its pods when the job ends or disappears, so memory follows live jobs.
"""

from __future__ import annotations

from typing import Any, Mapping

Key = tuple[str, str]


def _version(obj: Mapping[str, Any] | None) -> int | None:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    value = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` should replace ``current`` (unknown order: it does)."""
    if current is None:
        return True
    a, b = _version(candidate), _version(current)
    return a is None or b is None or a >= b


class WatchCache:
    """Newest copies of live jobs and of their pods, plus the version of the operator's last write."""

    def __init__(self) -> None:
        self.jobs: dict[Key, dict[str, Any]] = {}
        self.pods: dict[Key, dict[str, dict[str, Any]]] = {}
        self.written: dict[Key, str] = {}
        #: Jobs seen terminal (a terminal phase is never left): their pods' later events
        #: (kwok and kubelets keep updating a finished pod) need no read of the job. Emptied
        #: by the job's DELETED event, so it follows the jobs that exist.
        self.ended: set[Key] = set()

    def see_job(self, key: Key, body: Mapping[str, Any]) -> bool:
        """Record a non-terminal job (a watch event or a read); False when it is the operator's
        own last write (nothing new to decide on)."""
        body = dict(body)
        self.ended.discard(key)  # not terminal (the caller checks): a new job of the same name
        if newer(body, self.jobs.get(key)):
            self.jobs[key] = body
        version = (body.get("metadata") or {}).get("resourceVersion")
        return not (version is not None and self.written.get(key) == version)

    def wrote_job(self, key: Key, body: Mapping[str, Any]) -> None:
        """Record the API server's reply to the operator's own write."""
        body = dict(body)
        self.jobs[key] = body
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version is not None:
            self.written[key] = version

    def job(self, key: Key) -> dict[str, Any] | None:
        return self.jobs.get(key)

    def drop_job(self, key: Key) -> None:
        """Forget the copy (it proved stale): the next reconcile reads the job afresh."""
        self.jobs.pop(key, None)
        self.written.pop(key, None)

    def see_pod(self, key: Key, body: Mapping[str, Any], deleted: bool = False) -> None:
        name = (body.get("metadata") or {}).get("name")
        if not isinstance(name, str):
            return
        pods = self.pods.setdefault(key, {})
        if deleted:
            pods.pop(name, None)
        elif newer(body, pods.get(name)):
            pods[name] = dict(body)

    def pod(self, key: Key, name: str) -> dict[str, Any] | None:
        return (self.pods.get(key) or {}).get(name)

    def forget(self, key: Key, ended: bool = False) -> None:
        """Drop a job's copies; ``ended``: it is terminal (remembered until it is deleted)."""
        self.jobs.pop(key, None)
        self.pods.pop(key, None)
        self.written.pop(key, None)
        if ended:
            self.ended.add(key)
        else:
            self.ended.discard(key)

    def __len__(self) -> int:
        return len(self.jobs)
