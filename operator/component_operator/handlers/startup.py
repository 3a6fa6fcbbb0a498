"""Operator-wide settings applied once at start-up: persistence, peering, metrics, webhook TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path

import kopf

from ..adapters import kube, metrics, webhook_tls
from ..runner import OPTIONS, PEERING_LIFETIME_SECONDS


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_) -> None:
    # kopf's bookkeeping (handler progress, the last handled spec) lives in status.kopf: the
    # operator never writes labels, annotations or spec of a user's object, so GitOps tools see
    # exactly what they applied.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.lastHandledConfiguration")
    # One event per handler run is noise at scale; our own transition events are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 16
    settings.networking.request_timeout = 60
    settings.queueing.error_delays = (1, 2, 4, 8, 15, 30, 60)
    settings.peering.standalone = OPTIONS.standalone
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS
    settings.peering.stealth = True
    # Job pods are watched by label; everything else the operator needs comes from indexes.
    settings.watching.reconnect_backoff = 0.5
    if OPTIONS.peering and not OPTIONS.standalone:
        await kube.ensure_peering(OPTIONS.peering, OPTIONS.namespaces)
        logger.info("peering %r with priority %d: the highest priority replica works, others pause",
                    OPTIONS.peering, OPTIONS.priority)
    metrics.serve(OPTIONS.metrics_port, OPTIONS.metrics_addr)
    if OPTIONS.config.object_storage is not None:
        from . import results

        bucket = OPTIONS.config.object_storage.bucket
        await asyncio.to_thread(results.store(OPTIONS.config).ensure_bucket, bucket)
        logger.info("data plane on: results in s3://%s", bucket)
    if OPTIONS.webhook == "local":
        # A control plane on this host calls the webhook on loopback; the certificate comes from
        # the project's own PKI (kopf's self-signing needs oscrypto, which fails on OpenSSL 3).
        if not (OPTIONS.webhook_cert and OPTIONS.webhook_key):
            raise kopf.PermanentError("--webhook local needs --webhook-cert and --webhook-key")
        settings.admission.server = kopf.WebhookServer(
            addr="127.0.0.1",
            host="127.0.0.1",
            port=OPTIONS.webhook_port,
            certfile=OPTIONS.webhook_cert,
            pkeyfile=OPTIONS.webhook_key,
            cafile=OPTIONS.webhook_ca,
        )
        settings.admission.managed = "validate.components.grand-challenge.org"
    elif OPTIONS.webhook == "cluster":
        settings.admission.server = await _cluster_webhook_server(memo, logger)
    logger.info("component-operator configured (namespaces=%s)", OPTIONS.namespaces or "all")


async def _cluster_webhook_server(memo: kopf.Memo, logger: logging.Logger) -> kopf.WebhookServer:
    """Behind the chart's Service; the chart owns the webhook configuration (never kopf)."""
    if OPTIONS.webhook_cert:  # cert-manager (or any) mounted files; kopf reloads them on change
        certfile, keyfile = OPTIONS.webhook_cert, OPTIONS.webhook_key
        logger.info("webhook: serving the certificate in %s", certfile)
    else:
        assert OPTIONS.webhook_secret and OPTIONS.webhook_service and OPTIONS.webhook_namespace
        target = webhook_tls.Target(
            namespace=OPTIONS.webhook_namespace, secret=OPTIONS.webhook_secret, service=OPTIONS.webhook_service,
            configuration=OPTIONS.webhook_configuration,
            directory=Path(tempfile.mkdtemp(prefix="component-operator-webhook-")),
        )
        await _ensure_with_retries(target, logger)
        memo.webhook_rotation = asyncio.get_running_loop().create_task(_rotate_forever(target, logger))
        certfile, keyfile = str(target.certfile), str(target.keyfile)
        logger.info("webhook: certificate from Secret %s/%s, caBundle kept in %s",
                    target.namespace, target.secret, target.configuration or "(none)")
    return kopf.WebhookServer(addr="0.0.0.0", port=OPTIONS.webhook_port, certfile=certfile, pkeyfile=keyfile,
                              host=f"{OPTIONS.webhook_service or 'localhost'}.{OPTIONS.webhook_namespace}.svc",
                              file_check_interval=30)


async def _ensure_with_retries(target: webhook_tls.Target, logger: logging.Logger, attempts: int = 6) -> None:
    """Bounded: about a minute of retries at start-up, then the operator fails (and is restarted)."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            await webhook_tls.ensure(target)
            return
        except kube.TemporaryError as err:
            if attempt == attempts:
                raise kopf.PermanentError(f"webhook certificate: {err}") from err
            logger.warning("webhook certificate (attempt %d/%d): %s", attempt, attempts, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 16.0)


async def _rotate_forever(target: webhook_tls.Target, logger: logging.Logger) -> None:
    while True:
        await asyncio.sleep(webhook_tls.CHECK_INTERVAL_SECONDS)
        try:
            await webhook_tls.ensure(target)
        except Exception as err:  # noqa: BLE001 - retried at the next check; the current cert stays served
            logger.warning("webhook certificate check failed (next try in %.0f s): %s", webhook_tls.CHECK_INTERVAL_SECONDS, err)


@kopf.on.cleanup()
async def stop_background(memo: kopf.Memo, **_) -> None:
    task = getattr(memo, "webhook_rotation", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
