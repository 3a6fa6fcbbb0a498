"""Operator-wide settings applied once at start-up: persistence, peering, metrics, webhook TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path

import kopf

from ..adapters import kube, metrics, webhook_tls
from ..context import OperatorContext
from ..runner import PEERING_LIFETIME_SECONDS, RunOptions


#: Kinds the operator watches only through event and index handlers: kopf never compares two
#: of their versions, so the "essence" it would build for that comparison is not needed.
EVENT_ONLY_KINDS = frozenset({"ComponentJob", "ComponentBatch"})


class EssenceStorage(kopf.StatusDiffBaseStorage):
    """kopf's status-field diff-base, minus the copy kopf makes of event-only objects.

    kopf builds the essence of every object on every watch event, a deep copy of the whole
    body, even for resources that have no create/update handler to compare it with. Profiled
    under ``bench/bench_jobs.py --profile``, that copy was an eighth of the operator's CPU (the
    pods' statuses are large). For the kinds above it is an empty essence; the others (images,
    interfaces: their on.create/on.update handlers need the comparison) are unchanged.
    """

    def build(self, *, body, extra_fields=None):
        if body.get("kind") in EVENT_ONLY_KINDS:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, logger: logging.Logger, **_) -> None:
    ctx: OperatorContext = memo.context
    options = ctx.options
    ctx.reconciler.context = ctx
    # kopf's bookkeeping (handler progress, the last handled spec) lives in status.kopf: the
    # operator never writes metadata or spec of a user's object, so GitOps tools see what they applied.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = EssenceStorage(field="status.kopf.lastHandledConfiguration")
    # One event per handler run is noise at scale; our own transition events are posted explicitly.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 16
    settings.networking.request_timeout = 60
    settings.queueing.error_delays = (1, 2, 4, 8, 15, 30, 60)
    settings.peering.standalone = options.standalone
    settings.peering.lifetime = PEERING_LIFETIME_SECONDS
    settings.peering.stealth = True
    # Job pods are watched by handlers.pod_watch (not kopf); images and interfaces come from indexes.
    settings.watching.reconnect_backoff = 0.5
    if options.peering and not options.standalone:
        await kube.ensure_peering(options.peering, options.namespaces)
        logger.info("peering %r with priority %d: the highest priority replica works, others pause",
                    options.peering, options.priority)
    if not ctx.metrics_serving:  # kopf retries a failed start-up: the port is bound once
        metrics.serve(options.metrics_port, options.metrics_addr)
        ctx.metrics_serving = True
    if ctx.config.object_storage is not None:
        from . import results

        bucket = ctx.config.object_storage.bucket
        ctx.store = results.make_store(ctx.config)
        await asyncio.to_thread(ctx.store.ensure_bucket, bucket)
        from ..adapters.content_hashes import ContentHashes

        ctx.content_hashes = ContentHashes(ctx.store, ctx.config.digest_max_bytes)
        logger.info("data plane on: results in s3://%s", bucket)
    from ..kinds.sandbox import ValidationPool

    if ctx.validation is None:
        pool = ValidationPool.from_config(ctx.config)
        await pool.start()
        ctx.validation = pool
    if ctx.pod_watch is None:
        from .pod_watch import PodWatch

        ctx.pod_watch = PodWatch(ctx.reconciler, options.namespaces)
        ctx.pod_watch.start()
    if options.webhook == "local":
        # A control plane on this host calls the webhook on loopback; the certificate comes from
        # the project's own PKI (kopf's self-signing needs oscrypto, which fails on OpenSSL 3).
        if not (options.webhook_cert and options.webhook_key):
            raise kopf.PermanentError("--webhook local needs --webhook-cert and --webhook-key")
        settings.admission.server = kopf.WebhookServer(
            addr="127.0.0.1",
            host="127.0.0.1",
            port=options.webhook_port,
            certfile=options.webhook_cert,
            pkeyfile=options.webhook_key,
            cafile=options.webhook_ca,
        )
        settings.admission.managed = "validate.components.grand-challenge.org"
    elif options.webhook == "cluster":
        settings.admission.server = await _cluster_webhook_server(options, memo, logger)
    logger.info("component-operator configured (namespaces=%s)", options.namespaces or "all")


async def _cluster_webhook_server(options: RunOptions, memo: kopf.Memo, logger: logging.Logger) -> kopf.WebhookServer:
    """Behind the chart's Service; the chart owns the webhook configuration (never kopf)."""
    if options.webhook_cert:  # cert-manager (or any) mounted files; kopf reloads them on change
        certfile, keyfile = options.webhook_cert, options.webhook_key
        logger.info("webhook: serving the certificate in %s", certfile)
    else:
        assert options.webhook_secret and options.webhook_service and options.webhook_namespace
        target = webhook_tls.Target(
            namespace=options.webhook_namespace, secret=options.webhook_secret, service=options.webhook_service,
            configuration=options.webhook_configuration,
            directory=Path(tempfile.mkdtemp(prefix="component-operator-webhook-")),
        )
        await _ensure_with_retries(target, logger)
        memo.webhook_rotation = asyncio.get_running_loop().create_task(_rotate_forever(target, logger))
        certfile, keyfile = str(target.certfile), str(target.keyfile)
        logger.info("webhook: certificate from Secret %s/%s, caBundle kept in %s",
                    target.namespace, target.secret, target.configuration or "(none)")
    return kopf.WebhookServer(addr="0.0.0.0", port=options.webhook_port, certfile=certfile, pkeyfile=keyfile,
                              host=f"{options.webhook_service or 'localhost'}.{options.webhook_namespace}.svc",
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
    ctx: OperatorContext = memo.context
    if ctx.pod_watch is not None:
        await ctx.pod_watch.stop()
    if ctx.validation is not None:
        await ctx.validation.close()
    await kube.close()
