"""Deterministic names and labels of a job's child objects.

A child's name depends only on the job and the attempt, so a restarted operator finds what
it created before and a repeated create answers 409 instead of making a twin.
"""

from __future__ import annotations

import hashlib
import re

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


#: A safe relative directory below /input: components start with a letter, digit, ``_`` or ``-``
#: (so no ``.``, ``..`` or hidden names), separated by single slashes. The CRD carries the same
#: pattern (api/job.py), so the API server refuses what the reconciler would.
SAFE_RELATIVE_DIR = r"^([A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*/?)?$"
SAFE_RELATIVE_DIR_MAX = 255


def unsafe_relative_path(value: str) -> str | None:
    """Why ``value`` is not a safe relative directory (None when it is)."""
    if len(value) > SAFE_RELATIVE_DIR_MAX:
        return f"longer than {SAFE_RELATIVE_DIR_MAX} characters"
    if value.startswith("/"):
        return "absolute paths are not allowed"
    if any(part in (".", "..") for part in value.split("/")):
        return "'.' and '..' are not allowed"
    if re.fullmatch(SAFE_RELATIVE_DIR, value) is None:
        return ("only letters, digits, '.', '_' and '-' in components that do not start with '.', "
                "separated by single '/'")
    return None
