"""Which uid and gid an image's USER stands for (pure).

grand-challenge's own algorithm template ends with ``RUN useradd -r user`` and ``USER user``:
a *name*, which a container runtime resolves from ``/etc/passwd`` inside the image. A pod's
``securityContext.runAsUser`` must be a number, and Pod Security "restricted" only trusts a
number to be non-root, so the operator resolves the name itself when it inspects the image,
as runc does (github.com/moby/sys/user, ``GetExecUser``):

* ``USER`` is ``user[:group]``; each part is a number or a name. A numeric part is used as
  it is and needs no file: ``1000`` and ``1000:1000`` are never looked up. An empty user part
  (``:1000``) is uid 0, as for runc.
* A user name is looked up in ``/etc/passwd`` (the first line with that name wins, as for
  glibc's ``getpwnam``), a group name in ``/etc/group``. Without a group part the gid is the
  user's primary gid from ``/etc/passwd``; for a numeric user without a group none is set and
  the runtime picks it, as today.
* Lines that are not ``name:password:uid:gid[:...]`` (``name:password:gid[:...]`` for groups)
  with a POSIX portable name (letters, digits, ``.``, ``_``, ``-``, not starting with ``-``;
  a trailing ``$`` as for machine accounts) and decimal ids are ignored, as are comments,
  blank lines and NIS ``+``/``-`` entries.
* Outcomes: a uid other than 0 -> ``RunAs`` (recorded as ``status.runAsUser``/``runAsGroup``);
  uid 0 -> grand-challenge's root refusal; a name the file does not have, no such file, a
  file too large or layers too large to search -> a ``Problem`` naming ``config.User``, the
  value and the rule. All of them are permanent: the same image gives the same answer.

Kubernetes accepts ids from 0 to 2147483647 (``runAsUser``/``runAsGroup`` validation), so
larger ids are refused here rather than by the API server when the first pod is created.
The layers themselves are read by ``adapters.rootfs``; this module only decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

PASSWD = "etc/passwd"
GROUP = "etc/group"
MAX_ID = 2**31 - 1
"""The largest uid/gid Kubernetes accepts for runAsUser/runAsGroup."""

_NUMBER_RE = re.compile(r"^[0-9]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,255}\$?$")

ROOT_REASON = "RootUser"
INVALID_USER_REASON = "InvalidUser"
UNKNOWN_USER_REASON = "UnknownUser"
UNKNOWN_GROUP_REASON = "UnknownGroup"
NO_DATABASE_REASON = "NoUserDatabase"
TOO_LARGE_REASON = "UserDatabaseTooLarge"
BUDGET_REASON = "LayersTooLargeToSearch"
UNREADABLE_REASON = "UnreadableLayer"

NAME_RULE = "names are letters, digits, '.', '_' and '-' (POSIX portable), not starting with '-'"
NUMERIC_HINT = "or use a numeric USER (e.g. USER 1000:1000)"
INVALID_MESSAGE = "{what} is not a valid user: {part!r} is neither a {kind} nor a {name} name (" + NAME_RULE + ")."
UNKNOWN_MESSAGE = (
    "{what} names the {kind} {name!r}, but /{path} in the image has no such {kind}; "
    "add it (e.g. RUN {command} -r {name}) " + NUMERIC_HINT + "."
)
NO_FILE_MESSAGE = (
    "{what} names the {kind} {name!r}, but the image has no /{path} to resolve it from; "
    "add the {kind} (e.g. RUN {command} -r {name}) " + NUMERIC_HINT + "."
)
SEARCH_MESSAGE = (
    "{what} names a user or group that must be resolved from the image's files, but {error}; "
    "use a numeric USER (e.g. USER 1000:1000) instead."
)


@dataclass(frozen=True)
class UserSpec:
    """``config.User`` split as runc splits it."""

    user: str
    group: str | None
    """None when the value has no ``:``."""

    @property
    def uid(self) -> int | None:
        """The uid when the user part is numeric (an empty user part is uid 0)."""
        return 0 if self.user == "" else _number(self.user)

    @property
    def gid(self) -> int | None:
        return _number(self.group) if self.group is not None else None


def _number(text: str) -> int | None:
    """A decimal id; absurdly long ones stay out of range without converting them."""
    if not _NUMBER_RE.match(text):
        return None
    return int(text) if len(text) <= 20 else MAX_ID + 1


@dataclass(frozen=True)
class UserFiles:
    """What the image's root filesystem holds at the paths a USER needs (from adapters.rootfs).

    ``files`` maps a wanted path (``etc/passwd``, ``etc/group``) to its content, or to None
    when no layer has it (or the topmost layer that mentions it deletes it). ``error`` is set
    instead when the layers could not be searched to the end (too large, unreadable).
    """

    files: Mapping[str, bytes | None] = field(default_factory=dict)
    error: str | None = None
    error_reason: str = ""
    layers_read: int = 0
    bytes_read: int = 0
    """Compressed layer bytes read from the registry."""


@dataclass(frozen=True)
class RunAs:
    """The ids a pod of this image runs with."""

    uid: int
    gid: int | None = None


@dataclass(frozen=True)
class UserProblem:
    """Why USER cannot be run: the Ready reason and a message naming config.User and the value."""

    reason: str
    message: str


Outcome = RunAs | UserProblem


def split_user(user: str | None) -> UserSpec:
    name, sep, group = (user or "").partition(":")
    return UserSpec(user=name, group=group if sep else None)


def files_needed(user: str | None) -> tuple[str, ...]:
    """The paths of the root filesystem needed to resolve ``user`` (empty: none, no download).

    Nothing is needed when the uid is numeric and the group numeric or absent, when the uid
    is already known to be 0 (refused anyway), or when a part is not a valid name.
    """
    spec = split_user(user)
    if spec.uid == 0 or spec.user.lower() == "root":
        return ()
    needed = []
    if spec.uid is None:
        if not _NAME_RE.match(spec.user):
            return ()
        needed.append(PASSWD)
    if spec.group not in (None, "") and spec.gid is None:
        if not _NAME_RE.match(spec.group):
            return ()
        needed.append(GROUP)
    return tuple(needed)


def parse_passwd(content: bytes) -> dict[str, tuple[int, int]]:
    """name -> (uid, gid) of every well-formed ``/etc/passwd`` line; the first line of a name wins."""
    users: dict[str, tuple[int, int]] = {}
    for fields in _lines(content):
        if len(fields) >= 4 and _NAME_RE.match(fields[0]):
            uid, gid = _number(fields[2]), _number(fields[3])
            if uid is not None and gid is not None:
                users.setdefault(fields[0], (uid, gid))
    return users


def parse_group(content: bytes) -> dict[str, int]:
    """name -> gid of every well-formed ``/etc/group`` line; the first line of a name wins."""
    groups: dict[str, int] = {}
    for fields in _lines(content):
        if len(fields) >= 3 and _NAME_RE.match(fields[0]):
            gid = _number(fields[2])
            if gid is not None:
                groups.setdefault(fields[0], gid)
    return groups


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _lines(content: bytes):
    for raw in content.decode("utf-8", errors="replace").split("\n"):
        line = raw.lstrip(" \t").rstrip("\r")
        if line and not line.startswith("#"):
            yield line.split(":")


def resolve(user: str | None, files: UserFiles | None) -> Outcome | None:
    """The ids ``user`` (``config.User``) runs as, or why it cannot run.

    None when the user is a name and ``files`` is None: nobody looked into the image (a
    caller that does not resolve names); the pod builder then keeps its old fallback.
    """
    value = user or ""
    spec = split_user(value)
    what = f"config.User {_clip(value)!r}"
    if spec.uid == 0 or spec.user.lower() == "root":
        return UserProblem(ROOT_REASON, "")  # the caller uses grand-challenge's message
    if spec.uid is None and not _NAME_RE.match(spec.user):
        return UserProblem(INVALID_USER_REASON, INVALID_MESSAGE.format(what=what, part=_clip(spec.user), kind="uid", name="user"))
    if spec.group and spec.gid is None and not _NAME_RE.match(spec.group):
        return UserProblem(INVALID_USER_REASON, INVALID_MESSAGE.format(what=what, part=_clip(spec.group), kind="gid", name="group"))
    needed = files_needed(value)
    if needed and files is None:
        return None
    if needed and files is not None and files.error:
        return UserProblem(files.error_reason or UNREADABLE_REASON, SEARCH_MESSAGE.format(what=what, error=files.error))
    uid, gid = spec.uid, spec.gid
    if uid is None:
        found = _look_up(what, "user", spec.user, files, PASSWD, parse_passwd)
        if isinstance(found, UserProblem):
            return found
        uid, gid = found[0], (gid if spec.group else found[1])
        if uid == 0:
            return UserProblem(ROOT_REASON, "")
    if spec.group and gid is None:
        found_gid = _look_up(what, "group", spec.group, files, GROUP, parse_group)
        if isinstance(found_gid, UserProblem):
            return found_gid
        gid = found_gid
    for kind, number in (("uid", uid), ("gid", gid)):
        if number is not None and number > MAX_ID:
            return UserProblem(INVALID_USER_REASON, f"{what} resolves to {kind} {number}; Kubernetes accepts ids from 0 to {MAX_ID}.")
    return RunAs(uid=uid, gid=gid)


def _look_up(what: str, kind: str, name: str, files: UserFiles | None, path: str, parse):
    """``name``'s entry in the file at ``path`` (parsed by ``parse``), or the problem."""
    content = files.files.get(path) if files else None
    command = "useradd" if kind == "user" else "groupadd"
    if content is None:
        return UserProblem(NO_DATABASE_REASON, NO_FILE_MESSAGE.format(what=what, kind=kind, name=name, path=path, command=command))
    entry = parse(content).get(name)
    if entry is None:
        reason = UNKNOWN_USER_REASON if kind == "user" else UNKNOWN_GROUP_REASON
        return UserProblem(reason, UNKNOWN_MESSAGE.format(what=what, kind=kind, name=name, path=path, command=command))
    return entry
