"""ComponentImage handlers: inspect the image in its registry and keep status and Ready current.

The decision is ``planning.images.decide_image_status``; the registry and the pull secret are
read off the event loop. Transient registry errors retry with backoff (kopf.TemporaryError);
images that follow a tag are re-inspected every COMPONENT_OPERATOR_IMAGE_RECHECK_SECONDS
(default 300). COMPONENT_OPERATOR_REGISTRY_CA_FILE adds a CA bundle for HTTPS registries.
"""

from __future__ import annotations

import asyncio
import os

import kopf

from .. import GROUP, VERSION
from ..adapters import kube, kube_secrets, metrics, registry
from ..errors import UNEXPECTED_RETRY_LIMIT, backoff, describe
from ..planning import images
from ..planning.conditions import get_condition, now_rfc3339, set_condition, status_changes

RECHECK_SECONDS = float(os.environ.get("COMPONENT_OPERATOR_IMAGE_RECHECK_SECONDS", "300"))
CA_FILE = os.environ.get("COMPONENT_OPERATOR_REGISTRY_CA_FILE") or None
#: Tries of a registry that cannot be reached (2 s growing to 300 s between them: about an hour).
REGISTRY_RETRY_LIMIT = 20


@kopf.index(GROUP, VERSION, "componentimages")
def image_config_digests(namespace, name, meta, status, **_):
    digest = status.get("configSha256")
    if digest:
        return {namespace: images.Peer(name, digest, meta.get("creationTimestamp", ""), status.get("importStatus", ""))}
    return None


@kopf.on.resume(GROUP, VERSION, "componentimages")
@kopf.on.create(GROUP, VERSION, "componentimages")
@kopf.on.update(GROUP, VERSION, "componentimages")
async def reconcile_image(body, spec, status, meta, namespace, name, patch, retry, image_config_digests, logger,
                          **_) -> None:
    if images.needs_inspection(dict(status), meta.get("generation")):
        try:
            await _inspect(body, spec, status, meta, namespace, name, patch, image_config_digests, retry=retry)
        except kopf.TemporaryError:
            raise
        except Exception as err:  # noqa: BLE001 - unexpected: bounded retries, then a clear state
            _give_up_or_retry(err, retry, status, meta, patch, logger)


@kopf.timer(GROUP, VERSION, "componentimages", interval=RECHECK_SECONDS, initial_delay=RECHECK_SECONDS,
            when=lambda spec, **_: images.follows_tag(dict(spec)))  # fmt: skip
async def recheck_tag(body, spec, status, meta, namespace, name, patch, image_config_digests, logger, **_) -> None:
    try:
        await _inspect(body, spec, status, meta, namespace, name, patch, image_config_digests, retry=None)
    except Exception:  # noqa: BLE001 - the next timer tick tries again; the current status stays
        metrics.RECONCILE_ERRORS.labels("componentimage", "unexpected").inc()
        logger.exception("image: re-inspection of the tag failed")


def _give_up_or_retry(err: Exception, retry: int, status, meta, patch, logger) -> None:
    metrics.RECONCILE_ERRORS.labels("componentimage", "unexpected").inc()
    if retry + 1 < UNEXPECTED_RETRY_LIMIT:
        logger.exception("image: unexpected error (try %d of %d)", retry + 1, UNEXPECTED_RETRY_LIMIT)
        raise kopf.TemporaryError(describe(err), delay=backoff(retry + 1)) from err
    logger.exception("image: unexpected error, giving up")
    message = f"The operator could not inspect this image: {describe(err)}"
    conditions = set_condition(status.get("conditions"), "Ready", False, "InternalError", message,
                               generation=meta.get("generation"))
    patch.status.update({"importStatus": images.FAILED, "message": message[:1024], "conditions": conditions,
                         "observedGeneration": meta.get("generation")})


async def _inspect(body, spec, status, meta, namespace, name, patch, index, *, retry: int | None) -> None:
    started = status.get("importStatus", images.INITIALIZED) in (images.INITIALIZED, images.QUEUED, images.RE_QUEUED)
    if started:
        # Say that the check started before it runs (kopf's own patch lands only at the end).
        await kube.patch_status(namespace, "componentimages", name, {"importStatus": images.STARTED})
    observation = await asyncio.to_thread(_observe, dict(spec), namespace)
    peers = list(index.get(namespace, []))
    desired = images.decide_image_status(dict(spec), dict(status), observation, meta.get("generation"), now_rfc3339(),
                                         name=name, created=meta.get("creationTimestamp", ""), peers=peers)  # fmt: skip
    changes = status_changes(dict(status), desired)
    if started:
        changes["importStatus"] = desired["importStatus"]  # always overwrite our "Started"
    patch.status.update(changes)
    before, after = status.get("importStatus", images.INITIALIZED), desired["importStatus"]
    before = images.STARTED if before in (images.INITIALIZED, images.QUEUED) else before
    if after != before:
        reason = (get_condition(desired["conditions"], "Ready") or {}).get("reason", "ImportStatusChanged")
        kind = "Normal" if after == images.COMPLETED else "Warning"
        kopf.event(body, type=kind, reason=reason, message=f"Import status {before} -> {after}: {desired['message']}")
    if retry is not None and isinstance(observation, images.RegistryFailure) and observation.transient and after == images.RE_QUEUED:
        if retry + 1 >= REGISTRY_RETRY_LIMIT:  # never retried forever: give up with the last error
            message = (f"Gave up after {REGISTRY_RETRY_LIMIT} tries over about an hour: {observation.message} "
                       "(edit the ComponentImage to try again)")
            conditions = set_condition(desired.get("conditions"), "Ready", False, "RegistryUnreachable", message,
                                       generation=meta.get("generation"))
            patch.status.update({"importStatus": images.FAILED, "message": message[:1024], "conditions": conditions})
            kopf.event(body, type="Warning", reason="RegistryUnreachable", message=message[:1024])
            return
        raise kopf.TemporaryError(observation.message, delay=images.retry_delay(retry))


def _observe(spec: dict, namespace: str) -> images.Observation:
    """Read the pull secret and the registry, and for a USER name the layers (blocking: runs in a thread).

    COMPONENT_OPERATOR_IMAGE_USER_MAX_LAYER_BYTES bounds the compressed layer bytes read to
    resolve a USER name from the image's /etc/passwd (default 2 GiB; docs/operating.md).
    """
    max_layer_bytes = int(os.environ.get(registry.USER_MAX_LAYER_BYTES_ENV) or registry.USER_MAX_LAYER_BYTES)
    try:
        docker_config = kube_secrets.read_docker_config(namespace, spec["pullSecretName"]) if spec.get("pullSecretName") else None
        return registry.inspect_image(spec["image"], docker_config=docker_config, insecure=bool(spec.get("insecureRegistry")),
                                      ca_file=CA_FILE, max_layer_bytes=max_layer_bytes)  # fmt: skip
    except (registry.RegistryError, kube_secrets.PullSecretError) as err:
        return images.RegistryFailure(reason=err.reason, message=str(err), transient=err.transient)
