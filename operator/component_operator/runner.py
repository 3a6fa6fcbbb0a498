"""Start the kopf operator with the project's settings.

Kept apart from ``cli`` so that importing the command line stays cheap (kopf and the
Kubernetes client are only imported when the operator actually runs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field

from .config import OperatorConfig, load_config

#: kopf's peering lifetime: how long a replica that died without saying goodbye (SIGKILL, a
#: lost node) keeps the others paused. kopf refreshes its record 5-10 s before it expires.
PEERING_LIFETIME_SECONDS = 20

#: The API server admits JSON nested up to 10,000 levels (the limit of Go's encoding/json), but
#: Python's json decoder stops at the interpreter's recursion limit (1,000 by default): a watch
#: event kopf cannot decode kills its watch stream for every object of that kind, so one user's
#: deeply nested value stopped all ComponentJobs. The operator raises the limit so that whatever
#: the API server admits can be decoded; its own depth rule (kinds.limits) then refuses it.
API_SERVER_MAX_NESTING = 10_000
RECURSION_LIMIT = 3 * API_SERVER_MAX_NESTING


@dataclass
class RunOptions:
    namespaces: list[str] = field(default_factory=list)
    standalone: bool = False
    peering: str | None = None
    """Name of the ClusterKopfPeering (KopfPeering per namespace when namespaced) shared by the replicas."""
    priority: int = 0
    verbose: bool = False
    metrics_port: int = 8080
    webhook: str = "none"
    """none | local (on 127.0.0.1, for a control plane on this host) | cluster (behind a Service)."""
    liveness: str | None = None
    metrics_addr: str = "127.0.0.1"
    webhook_cert: str | None = None
    webhook_key: str | None = None
    webhook_ca: str | None = None
    webhook_port: int = 9443
    webhook_secret: str | None = None
    """cluster mode without --webhook-cert: the Secret (in webhook_namespace) where the operator keeps its own CA and certificate."""
    webhook_service: str | None = None
    webhook_namespace: str | None = None
    webhook_configuration: str | None = None
    """The ValidatingWebhookConfiguration whose caBundle the operator keeps current."""
    config_path: str | None = None
    config: OperatorConfig = field(default_factory=OperatorConfig)


def parse_priority(value: str) -> int:
    """``random`` gives each replica its own priority: kopf freezes every peer on a tie."""
    if value == "random":
        return 1 + secrets.randbelow(1_000_000)
    return int(value)


def run_operator(options: RunOptions) -> int:
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    from .context import OperatorContext

    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    if options.webhook_namespace is None:
        options.webhook_namespace = os.environ.get("POD_NAMESPACE") or "default"
    options.config = load_config(options.config_path)
    # Everything the handlers share travels in kopf's memo (handlers take no custom arguments);
    # nothing is kept in module globals, so a test can build an operator of its own.
    memo = kopf.Memo(context=OperatorContext.create(options))
    if options.webhook != "none":
        from .handlers import admission  # noqa: F401  (registers the validating webhook)
    kopf.configure(verbose=options.verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if not options.verbose:
        # kopf logs a line per handler run (60 lines/s under load); warnings and errors stay.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        asyncio.run(
            kopf.operator(
                clusterwide=not options.namespaces,
                namespaces=options.namespaces,
                standalone=options.standalone,
                peering_name=options.peering,
                priority=options.priority,
                liveness_endpoint=options.liveness,
                memo=memo,
            )
        )
    except KeyboardInterrupt:
        return 130
    return 0
