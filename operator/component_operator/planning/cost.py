"""Compute cost in euro millicents, as grand-challenge does (components spec 3.5/3.6).

The cheapest configured shape with the requested GPU type and at least the requested memory
sets the hourly price; cost = ceil(hours * cents/hour * (1 + tax) * 1000 * usd_to_eur).
"""

from __future__ import annotations

import math

from ..config import InstancePrice, OperatorConfig


def instance_for(memory_gb: int, gpu_type: str, config: OperatorConfig) -> InstancePrice | None:
    fitting = [p for p in config.prices if p.gpu_type == gpu_type and p.memory_gb >= memory_gb]
    return min(fitting, key=lambda p: p.usd_cents_per_hour, default=None)


def cost_euro_millicents(duration_seconds: float | None, memory_gb: int, gpu_type: str, config: OperatorConfig) -> int | None:
    if duration_seconds is None:
        return None
    instance = instance_for(memory_gb, gpu_type, config)
    if instance is None:
        return None
    cents_per_hour = instance.usd_cents_per_hour * (1 + config.tax_rate)
    return math.ceil(duration_seconds / 3600 * cents_per_hour * 1000 * config.usd_to_eur)
