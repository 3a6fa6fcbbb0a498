"""Start the kopf operator with the project's settings.

Kept apart from ``cli`` so that importing the command line stays cheap (kopf and the
Kubernetes client are only imported when the operator actually runs).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field


@dataclass
class RunOptions:
    namespaces: list[str] = field(default_factory=list)
    standalone: bool = False
    verbose: bool = False
    metrics_port: int = 8080
    webhook: str = "none"
    liveness: str | None = None


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
) -> int:
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    OPTIONS.namespaces = namespaces
    OPTIONS.standalone = standalone
    OPTIONS.verbose = verbose
    OPTIONS.metrics_port = metrics_port
    OPTIONS.webhook = webhook
    OPTIONS.liveness = liveness
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
