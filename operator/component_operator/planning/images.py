"""Decide whether a ComponentImage may be used by jobs, and what its status says (pure).

grand-challenge validates an uploaded ``docker save`` tarball (``_validate_docker_image_manifest``);
here the image already sits in an OCI registry, so the registry adapter reports what it found
(``ManifestInfo``) or why it could not look (``RegistryFailure``), and this module applies
grand-challenge's rules in grand-challenge's order, with grand-challenge's messages:

1. the image configuration must be readable (upload step 4);
2. ``config.User`` must not be root (step 6; ``1000:0`` passes, ``ROOT`` does not), and a
   name must resolve to a uid other than 0 in the image's own ``/etc/passwd`` (and a group
   name in ``/etc/group``; ``image_users``), which becomes ``status.runAsUser``/``runAsGroup``;
3. ``architecture`` must be ``amd64`` (step 7; the message shows the Python repr);
4. the operating system must be ``linux`` (implicit upstream: the platform is ``linux/amd64``);
5. an entrypoint or a cmd must be set (upstream only finds out at run time, in the shim);
6. no other image in the namespace may have the same configuration digest (step 8).

Registry trouble that may pass (connection refused, timeouts, 5xx, 429) never fails an image:
it is ``Re-Queued`` and retried with backoff. Nothing here performs I/O or reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..api.image import ImportStatus
from . import image_users
from .conditions import get_condition, set_condition

PLATFORM_OS = "linux"
PLATFORM_ARCHITECTURE = "amd64"

ROOT_USER_MESSAGE = (
    "The container runs as root. Please add a user, group and USER instruction to your Dockerfile, "
    "rebuild, test and upload the container again, see "
    "https://docs.docker.com/develop/develop-images/dockerfile_best-practices/#user"
)
ARCHITECTURE_MESSAGE = "Architecture type {arch!r} is not supported. Please provide a container image built for 'amd64'."
OS_MESSAGE = "Operating system {os!r} is not supported. Please provide a container image built for 'linux'."
MISSING_CONFIG_MESSAGE = "Could not find the config file in the container image in the registry."
INVALID_SHA256_MESSAGE = "The container image file does not have a valid sha256 hash."
NO_ENTRYPOINT_MESSAGE = "The container image has neither an entrypoint nor a cmd, so jobs could not run it."
DUPLICATE_MESSAGE = (
    "This container image has already been uploaded. "
    "Please re-activate the existing container image or upload a new version."
)

# grand-challenge's ImportStatusChoices (display names), as the API model spells them.
INITIALIZED = ImportStatus.INITIALIZED.value
QUEUED = ImportStatus.QUEUED.value
RE_QUEUED = ImportStatus.RE_QUEUED.value
STARTED = ImportStatus.STARTED.value
CANCELLED = ImportStatus.CANCELLED.value
FAILED = ImportStatus.FAILED.value
COMPLETED = ImportStatus.COMPLETED.value
FINISHED = frozenset({FAILED, COMPLETED, CANCELLED})

#: Seconds between retries after a transient registry error (attempt n uses entry min(n, last)).
RETRY_DELAYS = (2, 5, 10, 20, 40, 60, 120, 300)

#: The status keys this module owns; every decision sets all of them (None removes a key).
STATUS_KEYS = (
    "importStatus",
    "message",
    "imageSha256",
    "configSha256",
    "pinnedImage",
    "isManifestValid",
    "isInRegistry",
    "sizeInRegistry",
    "architecture",
    "os",
    "user",
    "runAsUser",
    "runAsGroup",
    "entrypoint",
    "cmd",
    "workingDir",
    "lastInspectedAt",
    "conditions",
    "observedGeneration",
)


@dataclass(frozen=True)
class ManifestInfo:
    """What the registry holds for a reference: the chosen manifest and its configuration."""

    manifest_digest: str
    """Digest of the image manifest that jobs will run (for an index: the linux/amd64 entry)."""
    pinned_image: str
    """``registry/repository@<manifest_digest>``."""
    media_type: str = ""
    config_digest: str | None = None
    config: dict[str, Any] | None = None
    """The parsed image configuration, or None when it could not be read (see config_error)."""
    config_error: str | None = None
    config_error_reason: str = "MissingConfig"
    size: int = 0
    """Bytes in the registry: the layer sizes plus the configuration size."""
    index_digest: str | None = None
    """Digest of the image index the tag pointed to, if it was an index."""
    platforms: tuple[str, ...] = ()
    """Platforms listed by the index (``os/arch[/variant]``), empty for a single manifest."""
    user_files: image_users.UserFiles | None = None
    """/etc/passwd and /etc/group from the layers when config.User names a user or group
    (None: numeric, so nothing was read)."""


@dataclass(frozen=True)
class RegistryFailure:
    """Why the registry could not be inspected."""

    reason: str
    """CamelCase reason for the Ready condition, e.g. ManifestUnknown, Unauthorized, RegistryUnreachable."""
    message: str
    transient: bool
    """True when the same request may succeed later (the image is Re-Queued, never Failed)."""


Observation = ManifestInfo | RegistryFailure


@dataclass(frozen=True)
class Problem:
    """One broken rule: the field, the value found and the user-facing message."""

    reason: str
    field: str
    value: Any
    message: str

    def detail(self) -> str:
        if self.message.startswith(self.field):  # the message already names the field and value
            return self.message
        return f"{self.field} is {self.value!r}: {self.message}"


@dataclass(frozen=True)
class Peer:
    """Another ComponentImage of the namespace, as far as duplicate detection needs it."""

    name: str
    config_sha256: str
    created: str = ""
    import_status: str = ""


@dataclass(frozen=True)
class ImageFacts:
    """The configuration fields recorded in status."""

    architecture: str | None = None
    os: str | None = None
    user: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    working_dir: str | None = None


def is_root_user(user: str | None) -> bool:
    """grand-challenge's rule: lower-cased User is "", root, 0, or starts with 0: / root:."""
    user = (user or "").lower()
    return user in ("", "root", "0") or user.startswith("0:") or user.startswith("root:")


def image_facts(config: dict[str, Any] | None) -> ImageFacts:
    if not isinstance(config, dict):
        return ImageFacts()
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    return ImageFacts(
        architecture=_str_or_none(config.get("architecture")),
        os=_str_or_none(config.get("os")),
        user=str(inner.get("User") or ""),
        entrypoint=_str_list(inner.get("Entrypoint")),
        cmd=_str_list(inner.get("Cmd")),
        working_dir=_str_or_none(inner.get("WorkingDir")) or None,
    )


def check_image_config(config: dict[str, Any] | None, manifest_info: ManifestInfo | None = None) -> list[Problem]:
    """Every rule the configuration breaks, in grand-challenge's order (empty: the image is fine)."""
    info = manifest_info
    if not isinstance(config, dict):
        digest = info.config_digest if info else None
        if info and info.config_error_reason == "InvalidSha256":
            return [Problem("InvalidSha256", "config digest", digest, INVALID_SHA256_MESSAGE)]
        detail = f" {info.config_error}" if info and info.config_error else ""
        return [Problem("MissingConfig", "config", digest, MISSING_CONFIG_MESSAGE + detail)]
    facts = image_facts(config)
    problems: list[Problem] = []
    if is_root_user(facts.user):
        problems.append(Problem("RootUser", "config.User", facts.user, ROOT_USER_MESSAGE))
    else:
        outcome = resolve_user(facts.user, info)
        if isinstance(outcome, image_users.UserProblem):
            message = outcome.message or ROOT_USER_MESSAGE
            problems.append(Problem(outcome.reason, "config.User", facts.user, message))
    if facts.architecture != PLATFORM_ARCHITECTURE:
        message = ARCHITECTURE_MESSAGE.format(arch=facts.architecture)
        if info and info.platforms:
            message += f" The image index offers: {', '.join(info.platforms)}."
        problems.append(Problem("UnsupportedArchitecture", "architecture", facts.architecture, message))
    if facts.os is not None and facts.os != PLATFORM_OS:
        problems.append(Problem("UnsupportedOS", "os", facts.os, OS_MESSAGE.format(os=facts.os)))
    if not facts.entrypoint and not facts.cmd:
        problems.append(Problem("NoEntrypoint", "config.Entrypoint and config.Cmd", None, NO_ENTRYPOINT_MESSAGE))
    return problems


def resolve_user(user: str | None, info: ManifestInfo | None) -> image_users.Outcome | None:
    """The ids ``user`` runs as (numeric, or from the files the registry adapter read), or why not."""
    return image_users.resolve(user, info.user_files if info else None)


def find_duplicate(name: str, created: str, config_sha256: str | None, peers: Iterable[Peer]) -> Peer | None:
    """The original this image duplicates: the oldest other image with the same config digest.

    Failed images do not count (a duplicate is not an original); ties on creation time are
    broken by name, so two images never both claim to be the original.
    """
    if not config_sha256:
        return None
    candidates = [
        p
        for p in peers
        if p.name != name and p.config_sha256 == config_sha256 and p.import_status != FAILED and (p.created, p.name) < (created, name)
    ]
    return min(candidates, key=lambda p: (p.created, p.name), default=None)


def needs_inspection(status: dict[str, Any] | None, generation: int | None) -> bool:
    """Whether a (resumed, created or updated) image must be looked at in its registry."""
    status = status or {}
    if status.get("importStatus") == COMPLETED and status.get("runAsUser") is None:
        return True  # inspected before runAsUser was recorded: resolve USER once more
    return status.get("observedGeneration") != generation or status.get("importStatus") not in FINISHED


def follows_tag(spec: dict[str, Any]) -> bool:
    """Whether the image is re-inspected periodically: followTag set and not pinned by digest."""
    return bool(spec.get("followTag")) and "@" not in str(spec.get("image", ""))


def retry_delay(retry: int | None) -> int:
    """Backoff before the next attempt after ``retry`` failed attempts."""
    return RETRY_DELAYS[min(max(retry or 0, 0), len(RETRY_DELAYS) - 1)]


def decide_image_status(
    spec: dict[str, Any],
    status: dict[str, Any] | None,
    observation: Observation,
    generation: int | None,
    now: str,
    *,
    name: str = "",
    created: str = "",
    peers: Iterable[Peer] = (),
) -> dict[str, Any]:
    """The next status (every key in STATUS_KEYS) after inspecting the registry.

    ``lastInspectedAt`` moves only when the outcome changed, so re-checking an unchanged
    image writes nothing.
    """
    status = dict(status or {})
    failure_detail = f"spec.image {spec.get('image')!r}: {getattr(observation, 'message', '')}"
    if isinstance(observation, RegistryFailure) and observation.transient:
        if status.get("importStatus") == COMPLETED and status.get("observedGeneration") == generation:
            # A completed image stays usable while its registry is briefly away.
            return {key: status.get(key) for key in STATUS_KEYS}
        desired = _empty(generation)
        desired.update(
            importStatus=RE_QUEUED,
            message=f"{observation.message} The import is retried.",
            conditions=_ready(status, False, observation.reason, failure_detail, generation, now),
        )
    elif isinstance(observation, RegistryFailure):
        desired = _empty(generation)
        desired.update(
            importStatus=FAILED,
            message=observation.message,
            isManifestValid=False if observation.reason == "InvalidManifest" else None,
            conditions=_ready(status, False, observation.reason, failure_detail, generation, now),
        )
    else:
        desired = _from_manifest(spec, status, observation, generation, now, name, created, peers)
    outcome_changed = any(status.get(k) != desired.get(k) for k in STATUS_KEYS if k not in ("lastInspectedAt", "conditions"))
    outcome_changed = outcome_changed or _ready_key(status.get("conditions")) != _ready_key(desired.get("conditions"))
    desired["lastInspectedAt"] = now if outcome_changed or not status.get("lastInspectedAt") else status["lastInspectedAt"]
    return desired


def _from_manifest(spec, status, info: ManifestInfo, generation, now, name, created, peers) -> dict[str, Any]:
    facts = image_facts(info.config)
    problems = check_image_config(info.config, info)
    run_as = resolve_user(facts.user, info) if info.config is not None and not is_root_user(facts.user) else None
    run_as = run_as if isinstance(run_as, image_users.RunAs) else None
    duplicate = find_duplicate(name, created, info.config_digest, peers) if info.config is not None else None
    if duplicate is not None:
        message = f"{DUPLICATE_MESSAGE} (same as ComponentImage {duplicate.name!r})"
        problems.append(Problem("Duplicate", "configSha256", info.config_digest, message))
    desired = _empty(generation)
    desired.update(
        imageSha256=info.manifest_digest,
        configSha256=info.config_digest,
        pinnedImage=info.pinned_image,
        isInRegistry=True,
        sizeInRegistry=info.size,
        architecture=facts.architecture,
        os=facts.os,
        user=facts.user,
        runAsUser=run_as.uid if run_as else None,
        runAsGroup=run_as.gid if run_as else None,
        entrypoint=facts.entrypoint,
        cmd=facts.cmd,
        workingDir=facts.working_dir,
    )
    if problems:
        first = problems[0]
        desired.update(
            importStatus=FAILED,
            message=first.message,
            isManifestValid=False,
            conditions=_ready(status, False, first.reason, "; ".join(p.detail() for p in problems), generation, now),
        )
    else:
        platform = f"{facts.os or PLATFORM_OS}/{facts.architecture}"
        ids = f", uid {run_as.uid}" + (f" gid {run_as.gid}" if run_as.gid is not None else "") if run_as else ""
        message = f"{info.pinned_image} ({platform}, user {facts.user!r}{ids}, {info.size} bytes) passed every check."
        desired.update(
            importStatus=COMPLETED,
            message=message,
            isManifestValid=True,
            conditions=_ready(status, True, "Ready", message, generation, now),
        )
    return desired


def _empty(generation: int | None) -> dict[str, Any]:
    desired: dict[str, Any] = {key: None for key in STATUS_KEYS}
    desired.update(isInRegistry=False, observedGeneration=generation)
    return desired


def _ready(status, ok: bool, reason: str, message: str, generation, now) -> list[dict[str, Any]]:
    return set_condition(status.get("conditions"), "Ready", ok, reason, message, generation=generation, now=now)


def _ready_key(conditions) -> tuple | None:
    cond = get_condition(conditions, "Ready")
    return (cond.get("status"), cond.get("reason"), cond.get("message"), cond.get("observedGeneration")) if cond else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and value:
        return [str(v) for v in value]
    if isinstance(value, str) and value:
        return [value]
    return None
