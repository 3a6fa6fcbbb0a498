"""A thin, cheap client for the controller benchmarks: raw JSON requests, watches that timestamp
milestones locally, and the API server's own request counter.

Why it exists: the benchmark process shares two cores with the controllers it measures, so it
must not spend them deserialising every object into the kubernetes client's models (slow), nor
poll lists of thousands of objects (load on the API server that neither controller causes). Both
sides are driven through the same code here, so the client's own cost is the same for both.

* ``Rest``: POST/GET/DELETE of plain dicts over the kubernetes client's connection pool.
* ``Watch``: one namespace's watch of one resource, opened before the run (``open`` returns once
  the API server has registered it), read in a thread; ``on_event(obj, now)`` is called with the
  monotonic time at which each event arrived. The API's creationTimestamps have one-second
  resolution, so latencies are measured with this clock instead.
* ``write_counts``: ``apiserver_request_total`` of the write verbs by (group, resource,
  subresource, verb). The metric has no client label: attributing rows to clients is the
  caller's job (``bench/write_attribution.py``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from typing import Callable

from kubernetes import client

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY", "CREATE", "UPDATE"}
_METRIC = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


class ApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:300]!r}")
        self.status = status


class Rest:
    """Plain-dict requests on the API client's pool (client certificates: no auth headers)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.host = api.configuration.host

    def request(self, method: str, path: str, body: dict | None = None, ok: tuple[int, ...] = ()) -> dict:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.api.call_api(method, self.host + path, header_params=headers, body=body)
        data = response.read()  # drain: the connection goes back to the pool
        if not (200 <= response.status < 300 or response.status in ok):
            raise ApiError(method, path, response.status, data)
        return json.loads(data) if data else {}

    def post(self, path: str, body: dict) -> dict:
        return self.request("POST", path, body)

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def delete(self, path: str) -> dict:
        return self.request("DELETE", path, ok=(404,))

    def metrics_text(self) -> str:
        response = self.api.call_api("GET", self.host + "/metrics")
        return response.read().decode()


def path_for(resource: str, namespace: str) -> str:
    """The collection path of a namespaced resource: "pods", "jobs", "componentjobs", ..."""
    from component_operator import GROUP, VERSION
    if resource == "pods":
        return f"/api/v1/namespaces/{namespace}/pods"
    if resource == "jobs":
        return f"/apis/batch/v1/namespaces/{namespace}/jobs"
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{resource}"


class Watch:
    """A watch of one resource in one namespace, events handed to ``on_event(obj, t)`` in a thread.

    Resumes from the last resourceVersion when the server ends the stream; on a 410 (too old) it
    re-lists and hands every listed object over as if it had arrived then (late, never lost)."""

    def __init__(self, rest: Rest, resource: str, namespace: str, on_event: Callable[[dict, float], None]) -> None:
        self.rest, self.path, self.on_event = rest, path_for(resource, namespace), on_event
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response = None
        self.resource_version = ""
        self.events = 0

    def _list(self) -> None:
        listed = self.rest.get(self.path + "?limit=500")
        now = time.monotonic()
        while True:
            for item in listed.get("items", []):
                self.on_event(item, now)
            token = listed["metadata"].get("continue")
            if not token:
                break
            listed = self.rest.get(f"{self.path}?limit=500&continue={token}")
        self.resource_version = listed["metadata"]["resourceVersion"]

    def _connect(self):
        url = (f"{self.rest.host}{self.path}?watch=1&allowWatchBookmarks=true&timeoutSeconds=60"
               f"&resourceVersion={self.resource_version}")
        response = self.rest.api.call_api("GET", url, header_params={"Accept": "application/json"})
        if response.status != 200:
            raise ApiError("WATCH", self.path, response.status, response.read())
        return response

    def open(self) -> "Watch":
        """List, then register the watch (returns once the API server answered), then read in a thread."""
        self._list()
        self._response = self._connect()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {self.path}")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            buffer = b""
            gone = False
            try:
                for chunk in self._response.response.stream(65536):
                    now = time.monotonic()
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            gone = obj.get("code") == 410
                            break
                        self.resource_version = obj.get("metadata", {}).get("resourceVersion", self.resource_version)
                        if event.get("type") != "BOOKMARK":
                            self.events += 1
                            self.on_event(obj, now)
                    if gone or self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 - a broken stream is reopened below
                if self._stop.is_set():
                    return
            if self._stop.is_set():
                return
            try:
                if gone:
                    self._list()
                self._response = self._connect()
            except Exception:  # noqa: BLE001
                time.sleep(0.5)

    def close(self) -> None:
        self._stop.set()
        try:
            self._response.response.shutdown()
        except Exception:  # noqa: BLE001
            pass
        if self._thread:
            self._thread.join(5)


def write_counts(rest: Rest) -> Counter:
    """apiserver_request_total of the write verbs (not dry-run), by (group, resource, subresource, verb)."""
    counts: Counter = Counter()
    for line in rest.metrics_text().splitlines():
        match = _METRIC.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in WRITE_VERBS and labels.get("dry_run", "") == "":
            key = (labels.get("group", ""), labels.get("resource", ""), labels.get("subresource", ""), labels["verb"])
            counts[key] += int(float(match["value"]))
    return counts
