"""Read an image pull secret (``kubernetes.io/dockerconfigjson``) for the registry client.

A ComponentImage names its pull secret (``spec.pullSecretName``) the way a Pod does, so the
operator reads the same Secret that the kubelet will use when jobs pull the image. The
official client is synchronous: call ``read_docker_config`` through ``asyncio.to_thread``.
Configuration comes from the in-cluster service account, else from the kubeconfig.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
DOCKER_CFG = "kubernetes.io/dockercfg"

_lock = threading.Lock()
_core_api = None


class PullSecretError(Exception):
    """The pull secret could not be used; ``reason`` is the Ready condition's reason."""

    def __init__(self, message: str, *, reason: str, transient: bool):
        super().__init__(message)
        self.reason = reason
        self.transient = transient


def _core():
    global _core_api
    with _lock:
        if _core_api is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
            _core_api = client.CoreV1Api(client.ApiClient(configuration))
        return _core_api


def read_docker_config(namespace: str, name: str) -> dict[str, Any]:
    """The decoded docker config of Secret ``namespace/name`` (raises PullSecretError)."""
    from kubernetes.client.exceptions import ApiException

    field = f"spec.pullSecretName {name!r}"
    try:
        secret = _core().read_namespaced_secret(name, namespace)
    except ApiException as err:
        if err.status == 404:
            raise PullSecretError(
                f"{field}: Secret {name!r} does not exist in namespace {namespace!r}; create it with type {DOCKER_CONFIG_JSON}.",
                reason="PullSecretNotFound",
                transient=True,  # GitOps tools may create it a moment later
            ) from err
        raise PullSecretError(
            f"{field}: reading the Secret failed ({err.status} {err.reason}).", reason="PullSecretUnreadable", transient=True
        ) from err
    except Exception as err:  # connection problems of the API client
        raise PullSecretError(f"{field}: reading the Secret failed ({err}).", reason="PullSecretUnreadable", transient=True) from err
    return parse_pull_secret(name, secret.type, secret.data or {})


def parse_pull_secret(name: str, secret_type: str | None, data: dict[str, str]) -> dict[str, Any]:
    """Decode a pull secret's data (base64 values, as the API returns them) to a docker config."""
    field = f"spec.pullSecretName {name!r}"
    keys = {DOCKER_CONFIG_JSON: ".dockerconfigjson", DOCKER_CFG: ".dockercfg"}
    if secret_type not in keys:
        raise PullSecretError(
            f"{field}: Secret type is {secret_type!r}; an image pull secret must have type {DOCKER_CONFIG_JSON!r}.",
            reason="InvalidPullSecret",
            transient=False,
        )
    key = keys[secret_type]
    if key not in data:
        raise PullSecretError(f"{field}: the Secret has no {key!r} key.", reason="InvalidPullSecret", transient=False)
    try:
        document = json.loads(base64.b64decode(data[key]))
    except ValueError as err:
        raise PullSecretError(f"{field}: {key!r} is not base64-encoded JSON ({err}).", reason="InvalidPullSecret", transient=False) from err
    if not isinstance(document, dict):
        raise PullSecretError(f"{field}: {key!r} is not a JSON object.", reason="InvalidPullSecret", transient=False)
    return document if secret_type == DOCKER_CONFIG_JSON else {"auths": document}
