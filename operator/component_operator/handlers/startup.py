"""Operator-wide settings applied once at start-up."""

from __future__ import annotations

import logging

import kopf

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
    logger.info("component-operator configured (namespaces=%s)", OPTIONS.namespaces or "all")
