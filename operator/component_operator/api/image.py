"""ComponentImage: a container image in an OCI registry, checked before any job may use it.

grand-challenge imports a ``docker save`` tarball; here the image already lives in a
registry, so ``spec.image`` is its reference and the operator inspects it in place.
Field homes: creator -> spec.creator, comment -> spec.comment, is_desired_version ->
spec.isDesiredVersion, user_upload/image (the tarball) -> spec.image (the reference),
image_sha256 / is_manifest_valid / is_in_registry / is_removed / size_in_registry /
latest_shimmed_version / import_status / status (free text) -> status.
``size_in_storage`` has no tarball to measure and is reported as the registry size.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import Field

from .base import Condition, JsonObject, Model, StatusModel


class ImportStatus(str, Enum):
    """grand-challenge's ImportStatusChoices, by display name."""

    INITIALIZED = "Initialized"
    QUEUED = "Queued"
    RE_QUEUED = "Re-Queued"
    STARTED = "Started"
    CANCELLED = "Cancelled"
    FAILED = "Failed"
    COMPLETED = "Completed"


class ComponentImageSpec(Model):
    """Desired state of a ComponentImage."""

    image: str = Field(min_length=1, max_length=1024, pattern=r"^[^\s]+$")
    """OCI image reference, e.g. registry.example.org/team/algo:1.2 or ...@sha256:<digest>."""
    follow_tag: bool = False
    """Re-inspect when the tag moves to a new digest; references pinned by digest never move."""
    pull_secret_name: str | None = Field(default=None, max_length=253)
    """Name of a kubernetes.io/dockerconfigjson Secret in the same namespace for the registry."""
    insecure_registry: bool = False
    """Talk plain HTTP to the registry (local development registries only)."""
    is_desired_version: bool = True
    """Whether jobs of the parent algorithm should use this image."""
    comment: str = Field(default="", max_length=4096)
    """Free-text comment."""
    creator: str | None = Field(default=None, max_length=253)
    """Who uploaded the image (grand-challenge's creator)."""


class ComponentImageStatus(StatusModel):
    """Observed state of a ComponentImage: what the operator found in the registry."""

    import_status: ImportStatus = ImportStatus.INITIALIZED
    """grand-challenge's import status: Initialized, Queued, Re-Queued, Started, Cancelled, Failed, Completed."""
    message: str = ""
    """Outcome of the last check, in grand-challenge's words when it failed (its status field)."""
    image_sha256: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    """Digest of the manifest that was inspected."""
    config_sha256: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    """Digest of the image configuration (what grand-challenge calls image_sha256)."""
    pinned_image: str | None = None
    """The reference pinned by digest that jobs run."""
    is_manifest_valid: bool | None = None
    """null until checked, then whether the manifest and configuration passed every rule."""
    is_in_registry: bool = False
    """Whether the image was found in the registry."""
    is_removed: bool = False
    """Whether the image was removed from the registry after import."""
    size_in_registry: int | None = Field(default=None, ge=0)
    """Bytes in the registry: the layers plus the configuration."""
    latest_shimmed_version: str = ""
    """Version of the agent injected into pods of this image (the operator's version)."""
    architecture: str | None = None
    os: str | None = None
    user: str | None = None
    """USER of the image configuration."""
    run_as_user: int | None = Field(default=None, ge=1, le=2147483647)
    """The uid jobs of this image run as (the pod's securityContext.runAsUser): USER's uid, or,
    when USER is a name, that name's uid in the image's own /etc/passwd. Never 0."""
    run_as_group: int | None = Field(default=None, ge=0, le=2147483647)
    """The gid jobs of this image run as (runAsGroup): USER's group part (a gid, or a name from
    the image's /etc/group), else the primary gid of a named user in /etc/passwd; unset for a
    numeric USER without a group (the container runtime then picks it, as before)."""
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    working_dir: str | None = None
    last_inspected_at: datetime | None = None
    conditions: list[Condition] = Field(default_factory=list)
    """Ready: the image may be used by jobs."""
    observed_generation: int | None = None
    kopf: JsonObject | None = None
    """The operator's own bookkeeping (handler progress, the last handled spec), kept here so
    that it never writes annotations on your object."""
