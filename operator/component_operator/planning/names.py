"""Deterministic names and labels of a job's child objects.

A child's name depends only on the job and the attempt, so a restarted operator finds what
it created before and a repeated create answers 409 instead of making a twin.
"""

from __future__ import annotations

import hashlib

LABEL_PREFIX = "components.grand-challenge.org"
JOB_LABEL = f"{LABEL_PREFIX}/job"
JOB_UID_LABEL = f"{LABEL_PREFIX}/job-uid"
ATTEMPT_LABEL = f"{LABEL_PREFIX}/attempt"
IMAGE_LABEL = f"{LABEL_PREFIX}/image"
MANAGED_BY = {"app.kubernetes.io/managed-by": "component-operator"}


def _short(value: str, limit: int) -> str:
    """``value`` if it fits, else a prefix plus a hash (stable, DNS-safe)."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{value[: limit - 9].rstrip('-.')}-{digest}"


def label_value(value: str) -> str:
    return _short(value, 63)


def pod_name(job_name: str, attempt: int) -> str:
    return _short(f"{job_name}-{attempt}", 63)


def inputs_configmap_name(job_name: str, attempt: int) -> str:
    return _short(f"{job_name}-{attempt}-inputs", 253)
