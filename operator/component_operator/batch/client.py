"""The few Kubernetes API calls the runner and ``component-operator batch`` make.

Reads: a ComponentImage, a ComponentBatch, and the namespace's ComponentJobs (one paged list, for
the digests of runs that exist). Writes: ComponentBatches only, by server-side apply with a field
manager of our own, so applying the same batch twice changes nothing. The client is the current
kubeconfig's, or the pod's service account inside a cluster, unless one is passed in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .. import GROUP, VERSION
from .manifest import PLURAL

#: Jobs per page of the list of a namespace's ComponentJobs.
PAGE_SIZE = 500
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_APPLY = "application/apply-patch+yaml"


def load_api_client() -> client.ApiClient:
    """The current kubeconfig's client, else the in-cluster service account's."""
    try:
        return config.new_client_from_config()
    except (ConfigException, FileNotFoundError, TypeError):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)


def default_namespace() -> str:
    """The current kubeconfig context's namespace, the pod's own namespace, or ``default``."""
    try:
        _, active = config.list_kube_config_contexts()
        namespace = (active or {}).get("context", {}).get("namespace")
        if namespace:
            return str(namespace)
    except (ConfigException, FileNotFoundError, TypeError):
        pass
    if _SERVICE_ACCOUNT_NAMESPACE.is_file():
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return "default"


class BatchApi:
    """Typed wrappers around ``CustomObjectsApi`` for the objects a batch involves."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.custom = client.CustomObjectsApi(api_client or load_api_client())

    def get_image(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(namespace, "componentimages", name)

    def get_batch(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(namespace, PLURAL, name)

    def list_jobs(self, namespace: str, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every ComponentJob of the namespace, ``page_size`` at a time (one list, paged)."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": page_size}
            if token:
                kwargs["_continue"] = token
            page = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", **kwargs)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def apply_batch(self, body: Mapping[str, Any], field_manager: str, force: bool = False) -> dict[str, Any]:
        """Server-side apply: creates the batch, or changes only the fields this manager owns."""
        meta = body["metadata"]
        applied = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], dict(body),
            field_manager=field_manager, force=force, _content_type=_APPLY)
        if isinstance(applied, dict):
            return applied
        # The generated client decodes only 200; an apply that creates answers 201 (body dropped).
        return self.get_batch(meta["namespace"], meta["name"]) or dict(body)

    def create_batch(self, body: Mapping[str, Any], field_manager: str) -> dict[str, Any]:
        """A plain create (for ``metadata.generateName``, which apply cannot do)."""
        namespace = body["metadata"]["namespace"]
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dict(body),
                                                           field_manager=field_manager)

    def delete_batch(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
            if err.status != 404:
                raise

    def _get(self, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise


def api_message(err: ApiException) -> str:
    """The API server's own message of a failed call (its Status body), else the HTTP reason."""
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or err.reason or err)
