"""Kubernetes API access for the handlers, never blocking kopf's event loop.

The calls a job makes (read its pod, create its children, patch its status, post events,
read logs) are async JSON requests on the loop (``kube_http``: measured, the official
client's per-call machinery was most of the operator's CPU). The rare rest (Secrets, the
webhook's CA bundle, peering) use the official client in a dedicated thread pool. Creates treat 409
as success once the existing object is shown to be ours (same controller uid); deletes treat
404 as success. Errors are mapped to the operator's taxonomy (``component_operator.errors``):
``TemporaryError`` for what a retry can fix (connection failures, timeouts, 5xx, 429,
conflicts), ``RefusedError`` (permanent) when the API server refuses what we sent (400, 403,
422, with its own message), a 404 is the caller's to interpret.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .. import GROUP, VERSION
from ..errors import RefusedError, TemporaryError
from .kube_http import KubeHTTP

T = TypeVar("T")
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="kube")
_API: client.ApiClient | None = None
_HTTP: KubeHTTP | None = None


__all__ = ["OwnershipError", "RefusedError", "TemporaryError"]


class OwnershipError(RefusedError):
    """An object with our deterministic name exists but belongs to someone else."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 409, reason="NameCollision")


def api() -> client.ApiClient:
    global _API
    if _API is None:
        try:
            config.load_incluster_config()
            cfg = client.Configuration.get_default_copy()
        except config.ConfigException:
            cfg = client.Configuration()
            config.load_kube_config(client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        _API = client.ApiClient(cfg)
    return _API


def http() -> KubeHTTP:
    """The async transport of the hot-path calls, with the same credentials as ``api()``."""
    global _HTTP
    if _HTTP is None:
        _HTTP = KubeHTTP(api().configuration)
    return _HTTP


async def close() -> None:
    """Close the async transport's connections (operator clean-up)."""
    if _HTTP is not None:
        await _HTTP.close()


#: (connect, read) seconds of every API call: nothing the operator waits for can hang.
REQUEST_TIMEOUT = (10, 60)


# The paths of the async calls, in the official client's own template form: ``_call`` fills the
# placeholders (quoted), and the chart's RBAC test reads these templates and the calls' literal
# methods (tests/support/rbac_scan.py), as it reads the official client's for the other calls.
CUSTOM_OBJECTS = "/apis/{group}/{version}/namespaces/{namespace}/{plural}"
CUSTOM_OBJECT = "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}"
CUSTOM_OBJECT_STATUS = "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}/status"
CLUSTER_CUSTOM_OBJECT_STATUS = "/apis/{group}/{version}/{plural}/{name}/status"
POD = "/api/v1/namespaces/{namespace}/pods/{name}"
PODS = "/api/v1/namespaces/{namespace}/pods"
ALL_PODS = "/api/v1/pods"
POD_LOG = "/api/v1/namespaces/{namespace}/pods/{name}/log"
EVENTS = "/api/v1/namespaces/{namespace}/events"
#: A job's children by kind: the collection (create) and the object (read after a 409).
CHILD_COLLECTIONS = {"Pod": "/api/v1/namespaces/{namespace}/pods",
                     "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps",
                     "Secret": "/api/v1/namespaces/{namespace}/secrets",
                     "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"}
CHILD_OBJECTS = {"Pod": "/api/v1/namespaces/{namespace}/pods/{name}",
                 "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps/{name}",
                 "Secret": "/api/v1/namespaces/{namespace}/secrets/{name}",
                 "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}"}
MERGE_PATCH = "application/merge-patch+json"


def _path(template: str, values: dict[str, str]) -> str:
    return template.format(**{key: urllib.parse.quote(str(value), safe="") for key, value in values.items()})


async def _call(method: str, template: str, body: Any = None, *, params: dict[str, Any] | None = None,
                content_type: str = "application/json", timeout: tuple[float, float] = REQUEST_TIMEOUT,
                text: bool = False, **path: str) -> Any:
    """One async API call to ``template`` filled with ``path``; errors mapped as ``_run`` maps
    them (a 404 stays an ``ApiException``)."""
    try:
        return await http().call(method, _path(template, path), body, params=params, content_type=content_type,
                                 timeout=timeout, text=text)
    except ApiException as err:
        mapped = classify(err)
        if mapped is err:
            raise
        raise mapped from err


async def _stream(method: str, template: str, *, params: dict[str, Any], **path: str):
    """A watch on ``template`` (only GET is a watch); errors mapped as in ``_call``."""
    assert method == "GET"
    try:
        async for event in http().stream(_path(template, path), params=params, timeout=WATCH_TIMEOUT):
            yield event
    except ApiException as err:
        mapped = classify(err)
        if mapped is err:
            raise
        raise mapped from err


def api_message(err: ApiException) -> str:
    """The API server's own words (its Status ``message``), else the HTTP reason."""
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or err.reason or f"HTTP {err.status}")[:2000]


def classify(err: ApiException, what: str = "") -> Exception:
    """The taxonomy's exception for an API error (a 404 stays an ``ApiException``)."""
    status = err.status or 0
    prefix = f"{what}: " if what else ""
    if status in (409, 429) or status >= 500 or status == 0:
        return TemporaryError(f"{prefix}API {status}: {api_message(err)}")
    if status in (400, 403, 413, 422):
        return RefusedError(f"{prefix}the API server refused it ({status}): {api_message(err)}", status)
    return err




async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return await loop.run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))
    except ApiException as err:
        mapped = classify(err)
        if mapped is err:
            raise
        raise mapped from err
    except (urllib3.exceptions.HTTPError, OSError) as err:  # connection refused, reset, timed out
        raise TemporaryError(f"API unreachable: {err}") from err


def _sanitize(obj: Any) -> dict[str, Any]:
    return api().sanitize_for_serialization(obj)


def _raw(response: Any) -> dict[str, Any]:
    """The JSON body of a call made with ``_preload_content=False``.

    The official client would otherwise build typed models (V1Pod …) that we only turn back
    into dicts. (Measured with bench/bench_jobs.py: no visible change in the operator's CPU;
    kept because it is simpler, not because it is faster.)
    """
    return json.loads(response.data)


async def get_custom(namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        return await _call("GET", CUSTOM_OBJECT, group=GROUP, version=VERSION, namespace=namespace, plural=plural, name=name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


class ConflictError(TemporaryError):
    """A write's ``resourceVersion`` precondition failed: the object changed since it was read."""


async def patch_status(namespace: str, plural: str, name: str, status: dict[str, Any],
                       resource_version: str | None = None) -> dict[str, Any] | None:
    """Merge-patch the status; the object as written, or None when it is gone (deleted meanwhile).

    With ``resource_version`` the patch applies only to that version of the object (the API
    server's optimistic concurrency): a decision made on an older copy raises ``ConflictError``
    instead of overwriting what changed since.
    """
    body: dict[str, Any] = {"status": status}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    try:
        return await _call("PATCH", CUSTOM_OBJECT_STATUS, body, content_type=MERGE_PATCH, group=GROUP, version=VERSION,
                           namespace=namespace, plural=plural, name=name)
    except TemporaryError as err:
        if resource_version and isinstance(err.__cause__, ApiException) and err.__cause__.status == 409:
            raise ConflictError(f"{plural} {namespace}/{name} changed since version {resource_version}") from err
        raise
    except ApiException as err:
        if err.status == 404:
            return None
        raise


#: The field manager of the objects the operator creates for a user (a ComponentBatch's jobs).
FIELD_MANAGER = "component-operator"


async def create_custom(namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """Create a custom object; None when one of that name exists already (409: the caller decides
    whether it is the one it meant to create)."""
    try:
        return await _call("POST", CUSTOM_OBJECTS, body, params={"fieldManager": FIELD_MANAGER}, group=GROUP,
                           version=VERSION, namespace=namespace, plural=plural)
    except TemporaryError as err:
        if isinstance(err.__cause__, ApiException) and err.__cause__.status == 409:
            return None
        raise
    except ApiException as err:
        if err.status == 404:  # the namespace is gone
            raise RefusedError(f"create {plural} {body['metadata'].get('name')}: {api_message(err)}", 404) from err
        raise


async def patch_cluster_status(plural: str, name: str, status: dict[str, Any]) -> None:
    try:
        await _call("PATCH", CLUSTER_CUSTOM_OBJECT_STATUS, {"status": status}, content_type=MERGE_PATCH, group=GROUP,
                    version=VERSION, plural=plural, name=name)
    except ApiException as err:
        if err.status != 404:
            raise


#: Server-side seconds of one watch request (kopf's setting too); the read timeout is longer.
WATCH_SECONDS = 300
WATCH_TIMEOUT = (10, WATCH_SECONDS + 30)
#: Pods per page of a list.
LIST_PAGE = 500


async def list_pods(namespace: str | None, selector: str, page: str | None = None) -> dict[str, Any]:
    """One page of the pods matching ``selector`` (``namespace`` None: every namespace)."""
    params = {"labelSelector": selector, "limit": LIST_PAGE, "continue": page}
    if namespace is None:
        return await _call("GET", ALL_PODS, params=params)
    return await _call("GET", PODS, params=params, namespace=namespace)


def watch_pods(namespace: str | None, selector: str, resource_version: str):
    """The events of the pods matching ``selector`` from ``resource_version`` on (bookmarks
    included); ends when the server ends the request (``WATCH_SECONDS``)."""
    params = {"labelSelector": selector, "watch": True, "resourceVersion": resource_version,
              "allowWatchBookmarks": True, "timeoutSeconds": WATCH_SECONDS}
    if namespace is None:
        return _stream("GET", ALL_PODS, params=params)
    return _stream("GET", PODS, params=params, namespace=namespace)


async def get_pod(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await _call("GET", POD, namespace=namespace, name=name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _owned_by(obj: dict[str, Any], owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


async def get_secret(namespace: str, name: str) -> dict[str, Any] | None:
    core = client.CoreV1Api(api())
    try:
        return _raw(await _run(core.read_namespaced_secret, name, namespace, _preload_content=False))
    except ApiException as err:
        if err.status == 404:
            return None
        raise


async def create_owned(body: dict[str, Any], owner_uid: str) -> None:
    """Create a child object; an existing one with the same name must be ours (else OwnershipError)."""
    namespace, name, kind = body["metadata"]["namespace"], body["metadata"]["name"], body["kind"]
    try:
        await http().call("POST", _path(CHILD_COLLECTIONS[kind], {"namespace": namespace}), body, timeout=REQUEST_TIMEOUT)
    except ApiException as err:
        if err.status != 409:
            mapped = classify(err, f"create {kind} {name}")
            if err.status == 404:  # the namespace is gone
                mapped = RefusedError(f"create {kind} {name}: {api_message(err)}", 404)
            raise mapped from err
        try:
            existing = await _call("GET", CHILD_OBJECTS[kind], namespace=namespace, name=name)
        except ApiException as read_err:
            if read_err.status == 404:  # deleted between the two calls: try again
                raise TemporaryError(f"create {kind} {name}: it existed and is gone now") from read_err
            raise
        if not _owned_by(existing, owner_uid):
            raise OwnershipError(
                f"{kind} {namespace}/{name} already exists and is not owned by this job; the job's "
                "child objects have fixed names, so delete or rename that object, or the job"
            ) from err
    except TemporaryError as err:
        raise TemporaryError(f"create {kind} {name}: {err}") from err


async def delete_pod(namespace: str, name: str) -> None:
    try:
        await _call("DELETE", POD, params={"gracePeriodSeconds": 5}, namespace=namespace, name=name)
    except ApiException as err:
        if err.status != 404:
            raise


class LogReader:
    """Reads a finished container's log, remembering whether the API server splits streams.

    Separate stdout and stderr need the PodLogsQuerySplitStreams feature (alpha in Kubernetes
    1.36), and even there the API server refuses ``stream`` together with ``tailLines`` (422).
    The first refusal is remembered for the life of the process, so every later job costs one
    request instead of three. The timeout is short: a node that cannot serve logs (a simulated
    one) must not stall a job.
    """

    def __init__(self) -> None:
        #: None: not tried yet; False: refused once, only the combined log is read from now on.
        self.split_streams: bool | None = None

    async def read(self, namespace: str, pod: str, container: str, tail_lines: int = 500,
                   combined: bool = False) -> tuple[str, str]:
        """(stdout, stderr), each its last ``tail_lines`` lines with timestamps; ``combined``
        (or a server without split streams): the whole log as stdout and an empty stderr."""
        base: dict[str, Any] = {"container": container, "tailLines": tail_lines, "timestamps": True}

        def read(**stream: str):
            return _call("GET", POD_LOG, params={**base, **stream}, timeout=(5, 5), text=True, namespace=namespace, name=pod)

        if not combined and self.split_streams is not False:
            try:
                stdout, stderr = await asyncio.gather(read(stream="Stdout"), read(stream="Stderr"))
                self.split_streams = True
                return stdout or "", stderr or ""
            except (ApiException, TemporaryError, RefusedError) as err:
                status = getattr(err, "status", None) or getattr(err.__cause__, "status", None)
                if status not in (400, 422):
                    return "", ""
                self.split_streams = False
            except Exception:  # noqa: BLE001 - the node may be unreachable; logs are best effort
                return "", ""
        try:
            return (await read()) or "", ""
        except Exception:  # noqa: BLE001
            return "", ""


async def post_event(obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """A core/v1 Event about a custom object (best effort: events are not state).

    Built and sent as plain JSON (``kube_http``): the client's typed models cost more CPU than
    the request itself (measured with ``bench/bench_jobs.py --profile``).
    """
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                           "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                           "resourceVersion": meta.get("resourceVersion")},
        "reason": reason[:128], "message": message[:1024], "type": type_,
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "source": {"component": "component-operator"},
        "reportingComponent": "component-operator", "reportingInstance": "component-operator",
    }
    try:
        await _call("POST", EVENTS, event, namespace=namespace)
    except Exception:  # noqa: BLE001 - an event that cannot be posted must not fail a reconcile
        pass


async def put_secret(namespace: str, name: str, data: dict[str, str], type_: str, resource_version: str | None) -> None:
    """Create the Secret, or replace it when ``resource_version`` (the version read) is given.

    A concurrent writer makes this a 409, which is a ``TemporaryError``: read again and decide again.
    """
    core = client.CoreV1Api(api())
    body = {"apiVersion": "v1", "kind": "Secret", "type": type_, "data": data,
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "component-operator"}}}
    if resource_version is None:
        await _run(core.create_namespaced_secret, namespace, body, _preload_content=False)
    else:
        body["metadata"]["resourceVersion"] = resource_version
        await _run(core.replace_namespaced_secret, name, namespace, body, _preload_content=False)


async def patch_webhook_ca_bundle(configuration: str, ca_bundle: bytes) -> bool:
    """Set ``caBundle`` of every webhook in a ValidatingWebhookConfiguration; True when it changed.

    Only that field is written (a JSON patch guarded by the resourceVersion read), so GitOps
    tools that own the rest of the object see no other drift.
    """
    admission = client.AdmissionregistrationV1Api(api())
    try:
        current = _raw(await _run(admission.read_validating_webhook_configuration, configuration, _preload_content=False))
    except ApiException as err:
        if err.status == 404:
            raise TemporaryError(f"ValidatingWebhookConfiguration {configuration} does not exist (yet)", delay=10.0) from err
        raise
    encoded = base64.b64encode(ca_bundle).decode()
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": current["metadata"]["resourceVersion"]}]
    for i, webhook in enumerate(current.get("webhooks") or []):
        if (webhook.get("clientConfig") or {}).get("caBundle") != encoded:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": encoded})
    if len(ops) == 1:
        return False
    await _run(admission.patch_validating_webhook_configuration, configuration, ops, _preload_content=False)
    return True


async def _create_unless_exists(fn: Callable[..., Any], *args: Any) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(_POOL, functools.partial(fn, *args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
    except ApiException as err:
        if err.status == 409:
            return
        mapped = classify(err)
        if mapped is err:
            raise
        raise mapped from err


async def ensure_peering(name: str, namespaces: list[str]) -> None:
    """kopf's mandatory peering needs its object; create it (cluster-wide or per namespace) if missing."""
    objects = client.CustomObjectsApi(api())
    body = {"apiVersion": "kopf.dev/v1", "metadata": {"name": name}}
    if not namespaces:
        await _create_unless_exists(objects.create_cluster_custom_object, "kopf.dev", "v1", "clusterkopfpeerings",
                                    {**body, "kind": "ClusterKopfPeering"})
    for namespace in namespaces:
        await _create_unless_exists(objects.create_namespaced_custom_object, "kopf.dev", "v1", namespace, "kopfpeerings",
                                    {**body, "kind": "KopfPeering"})
