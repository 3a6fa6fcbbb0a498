"""Operator-wide settings applied once at start-up."""

from __future__ import annotations

import asyncio
import logging

import kopf

from ..adapters import metrics
from ..runner import OPTIONS


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, logger: logging.Logger, **_) -> None:
    # Progress and diff-base live in annotations; status belongs to us alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="components.grand-challenge.org")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="components.grand-challenge.org", key="last-handled-configuration"
    )
    # One event per handler run is noise at scale; our own transition events are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 16
    settings.networking.request_timeout = 60
    settings.queueing.error_delays = (1, 2, 4, 8, 15, 30, 60)
    settings.peering.standalone = OPTIONS.standalone
    # Job pods are watched by label; everything else the operator needs comes from indexes.
    settings.watching.reconnect_backoff = 0.5
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
    logger.info("component-operator configured (namespaces=%s)", OPTIONS.namespaces or "all")
