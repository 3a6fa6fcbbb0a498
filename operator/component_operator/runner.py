"""Start the kopf operator with the project's settings.

Kept apart from ``cli`` so that importing the command line stays cheap (kopf and the
Kubernetes client are only imported when the operator actually runs).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from .config import OperatorConfig, load_config


@dataclass
class RunOptions:
    namespaces: list[str] = field(default_factory=list)
    standalone: bool = False
    verbose: bool = False
    metrics_port: int = 8080
    webhook: str = "none"
    liveness: str | None = None
    metrics_addr: str = "127.0.0.1"
    webhook_cert: str | None = None
    webhook_key: str | None = None
    webhook_ca: str | None = None
    webhook_port: int = 9443
    config: OperatorConfig = field(default_factory=OperatorConfig)


#: Read by the startup handler (kopf handlers take no custom arguments).
OPTIONS = RunOptions()


def run_operator(
    *,
    namespaces: list[str],
    standalone: bool,
    verbose: bool,
    metrics_port: int,
    webhook: str,
    liveness: str | None,
    config_path: str | None = None,
    metrics_addr: str = "127.0.0.1",
    webhook_cert: str | None = None,
    webhook_key: str | None = None,
    webhook_ca: str | None = None,
    webhook_port: int = 9443,
) -> int:
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    OPTIONS.namespaces = namespaces
    OPTIONS.standalone = standalone
    OPTIONS.verbose = verbose
    OPTIONS.metrics_port = metrics_port
    OPTIONS.webhook = webhook
    OPTIONS.liveness = liveness
    OPTIONS.metrics_addr = metrics_addr
    OPTIONS.webhook_cert, OPTIONS.webhook_key, OPTIONS.webhook_ca = webhook_cert, webhook_key, webhook_ca
    OPTIONS.webhook_port = webhook_port
    OPTIONS.config = load_config(config_path)
    if webhook != "none":
        from .handlers import admission  # noqa: F401  (registers the validating webhook)
    kopf.configure(verbose=verbose)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(
            kopf.operator(
                clusterwide=not namespaces,
                namespaces=namespaces,
                standalone=standalone,
                liveness_endpoint=liveness,
            )
        )
    except KeyboardInterrupt:
        return 130
    return 0
