"""The invocation document and the agent's environment: everything the operator tells the agent.

The operator writes one invocation per job attempt into a ConfigMap; the agent reads it from
``COMPONENT_OPERATOR_INVOCATION_FILE``. This module is the single definition of that shape
(a pydantic model with the camelCase names of the contract, see the package docstring) and
of the environment variables the agent reads, so both sides agree by construction. Paths in
it are checked here: an invocation can never make the agent write outside its roots.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ..adapters.s3 import parse_uri

ENV_PREFIX = "COMPONENT_OPERATOR_"
ENV_INVOCATION_FILE = "COMPONENT_OPERATOR_INVOCATION_FILE"
ENV_SIGNING_KEY = "COMPONENT_OPERATOR_SIGNING_KEY_HEX"
ENV_INPUT_ROOT = "COMPONENT_OPERATOR_INPUT_ROOT"
ENV_OUTPUT_ROOT = "COMPONENT_OPERATOR_OUTPUT_ROOT"
ENV_MODEL_ROOT = "COMPONENT_OPERATOR_MODEL_ROOT"
ENV_GROUND_TRUTH_ROOT = "COMPONENT_OPERATOR_GROUND_TRUTH_ROOT"
ENV_AGENT_DIR = "COMPONENT_OPERATOR_AGENT_DIR"
ENV_AGENT_BINARY = "COMPONENT_OPERATOR_AGENT_BINARY"
ENV_RUN_AS = "COMPONENT_OPERATOR_RUN_AS"
ENV_GRACE = "COMPONENT_OPERATOR_TERMINATION_GRACE_SECONDS"
ENV_TERMINATION_LOG = "COMPONENT_OPERATOR_TERMINATION_LOG"
#: ``prepare`` only (from the Secret): ``{"source": "s3://…", "url": "<presigned GET>"}`` per input object.
ENV_DOWNLOAD_PREFIX = "COMPONENT_OPERATOR_DOWNLOAD_"
#: ``prepare`` only (from the Secret): the signed POST policy for the attempt's prefix (JSON).
ENV_UPLOAD = "COMPONENT_OPERATOR_UPLOAD"
#: Both containers: where ``prepare`` leaves the key and the upload policy for ``run``.
ENV_HANDOFF_FILE = "COMPONENT_OPERATOR_HANDOFF_FILE"
DEFAULT_HANDOFF_FILE = "/tmp/.component-operator/handoff.json"
#: Optional PEM bundle of the object store's private CA.
ENV_CA_FILE = "COMPONENT_OPERATOR_S3_CA_FILE"
#: Prefixes of variables the algorithm never sees.
SCRUBBED_PREFIXES = ("COMPONENT_OPERATOR_", "GRAND_CHALLENGE_")

DEFAULT_MAX_INPUT_BYTES = 10 * 1024**3
DEFAULT_MAX_ZIP_ENTRIES = 10_000
MIN_SIGNING_KEY_BYTES = 32
INPUTS_JSON = "inputs.json"


class InvocationError(ValueError):
    """The invocation document is missing, unreadable or breaks the contract."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def safe_relative_path(path: str, *, what: str, allow_empty: bool = False) -> str:
    """``path`` normalised (posix, no leading ``./``); refuses absolute paths, ``..`` and NUL."""
    if not isinstance(path, str):
        raise ValueError(f"{what} must be a string")
    if "\x00" in path or "\\" in path:
        raise ValueError(f"{what} {path!r} must not contain NUL bytes or backslashes")
    if path.startswith("/"):
        raise ValueError(f"{what} {path!r} must be relative, not absolute")
    if ".." in path.split("/"):
        raise ValueError(f"{what} {path!r} must not contain '..'")
    normal = posixpath.normpath(path) if path else ""
    normal = "" if normal == "." else normal
    if not normal and not allow_empty:
        raise ValueError(f"{what} must not be empty")
    return normal


def input_path(relative_path: str, prefix: str = "") -> str:
    """Where an input lands below the input root: ``<prefix>/<relativePath>`` (mirrors planning.pods)."""
    parts = [p for p in (prefix or "").strip("/").split("/") if p] + ([relative_path] if relative_path else [])
    return posixpath.normpath(posixpath.join(*parts)) if parts else ""


class InputItem(_Model):
    """One input, staged to ``INPUT_ROOT/<prefix>/<relativePath>``."""

    interface: str = Field(min_length=1)
    relative_path: str
    prefix: str = ""
    super_kind: Literal["Value", "File", "Image"]
    kind: str = Field(min_length=1)
    value: Any = None
    source: str | None = None
    decompress: bool = False
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return safe_relative_path(value.strip("/"), what="prefix", allow_empty=True)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        if value is not None:
            loc = parse_uri(value)
            if not loc.key or loc.key.endswith("/"):
                raise ValueError(f"source {value!r} must name an object, not a bucket or prefix")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "InputItem":
        safe_relative_path(self.relative_path, what="relativePath", allow_empty=self.super_kind == "Image")
        if self.super_kind == "Value":
            if self.source is not None:
                raise ValueError(f"input {self.interface!r}: a Value input is inline; it must not have a source")
        elif self.source is None:
            raise ValueError(f"input {self.interface!r}: a {self.super_kind} input needs a source (s3://bucket/key)")
        if self.decompress and self.super_kind != "File":
            raise ValueError(f"input {self.interface!r}: only File inputs (ZIP kind) can be decompressed")
        return self

    @property
    def target(self) -> str:
        """Path below the input root: the file (Value, File) or the directory (Image)."""
        return input_path(safe_relative_path(self.relative_path, what="relativePath", allow_empty=True), self.prefix)


class OutputItem(_Model):
    """One declared output (the agent uploads everything; the operator reads these)."""

    interface: str = Field(min_length=1)
    relative_path: str
    kind: str = Field(min_length=1)
    super_kind: Literal["Value", "File", "Image"]

    @model_validator(mode="after")
    def _path(self) -> "OutputItem":
        safe_relative_path(self.relative_path, what="relativePath", allow_empty=self.super_kind == "Image")
        return self


class Invocation(_Model):
    job_id: str = Field(min_length=1)
    inputs: list[InputItem] = Field(default_factory=list)
    inputs_json: list[Any] = Field(default_factory=list)
    inputs_json_value_from: list[str | None] = Field(default_factory=list)
    """Per ``inputsJson`` entry, the Value input whose ``value`` fills the entry's ``value``
    (or null): each inline value is stored once in the document, under ``inputs``."""
    outputs: list[OutputItem] = Field(default_factory=list)
    output_prefix: str
    result_uri: str
    time_limit_seconds: int = Field(ge=1)
    model: str | None = None
    ground_truth: str | None = None
    max_input_bytes: int = Field(default=DEFAULT_MAX_INPUT_BYTES, ge=0)
    max_zip_entries: int = Field(default=DEFAULT_MAX_ZIP_ENTRIES, ge=1)

    @field_validator("output_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        parse_uri(value)
        return value if value.endswith("/") else value + "/"

    @field_validator("result_uri", "model", "ground_truth")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None:
            loc = parse_uri(value)
            if not loc.key or loc.key.endswith("/"):
                raise ValueError(f"{value!r} must name an object, not a bucket or prefix")
        return value

    @model_validator(mode="after")
    def _unique_targets(self) -> "Invocation":
        seen: dict[str, str] = {}
        for item in self.inputs:
            if item.super_kind != "Image" and item.target == INPUTS_JSON:
                raise ValueError(f"input {item.interface!r}: {INPUTS_JSON} is reserved for the list of inputs")
            key = item.target + ("/" if item.super_kind == "Image" else "")
            if item.super_kind != "Image" and key in seen:
                raise ValueError(f"inputs {seen[key]!r} and {item.interface!r} would both be staged at {key!r}")
            seen[key] = item.interface
        if self.inputs_json_value_from:
            if len(self.inputs_json_value_from) != len(self.inputs_json):
                raise ValueError(f"inputsJsonValueFrom has {len(self.inputs_json_value_from)} entries; it must have one "
                                 f"per inputsJson entry ({len(self.inputs_json)})")
            values = {item.interface for item in self.inputs if item.super_kind == "Value"}
            for index, name in enumerate(self.inputs_json_value_from):
                if name is None:
                    continue
                if name not in values:
                    raise ValueError(f"inputsJsonValueFrom[{index}] names {name!r}, which is not a Value input")
                if not isinstance(self.inputs_json[index], dict) or "value" not in self.inputs_json[index]:
                    raise ValueError(f"inputsJson[{index}] has no 'value' for inputsJsonValueFrom[{index}] to fill")
        return self

    def inputs_json_document(self) -> list[Any]:
        """``/input/inputs.json``'s list: ``inputsJson`` with each referenced value filled in
        (the entries keep their key order, so the JSON is byte-identical to the unshared form)."""
        if not self.inputs_json_value_from:
            return list(self.inputs_json)
        values = {item.interface: item.value for item in self.inputs if item.super_kind == "Value"}
        entries = []
        for entry, name in zip(self.inputs_json, self.inputs_json_value_from):
            if name is not None:
                entry = dict(entry)
                entry["value"] = values[name]
            entries.append(entry)
        return entries

    @classmethod
    def from_json(cls, text: str | bytes) -> "Invocation":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise InvocationError(f"the invocation is not valid JSON: {err}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise InvocationError(f"the invocation does not fit the contract: {_first_errors(err)}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Invocation":
        try:
            text = Path(path).read_bytes()
        except OSError as err:
            raise InvocationError(f"the invocation file {os.fspath(path)!r} cannot be read: {err.strerror}") from None
        return cls.from_json(text)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)


def _first_errors(err: ValidationError, limit: int = 5) -> str:
    parts = []
    for item in err.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "(document)"
        parts.append(f"{where}: {item['msg']}")
    more = len(err.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roots:
    """The directories the agent works in (configurable so tests run without root paths)."""

    input: Path = Path("/input")
    output: Path = Path("/output")
    model: Path = Path("/opt/ml/model")
    ground_truth: Path = Path("/opt/ml/input/data/ground_truth")
    agent_dir: Path = Path("/agent")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Roots":
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            input=Path(env.get(ENV_INPUT_ROOT) or defaults.input),
            output=Path(env.get(ENV_OUTPUT_ROOT) or defaults.output),
            model=Path(env.get(ENV_MODEL_ROOT) or defaults.model),
            ground_truth=Path(env.get(ENV_GROUND_TRUTH_ROOT) or defaults.ground_truth),
            agent_dir=Path(env.get(ENV_AGENT_DIR) or defaults.agent_dir),
        )


def invocation_from_env(env: Mapping[str, str] | None = None) -> Invocation:
    env = os.environ if env is None else env
    path = env.get(ENV_INVOCATION_FILE)
    if not path:
        raise InvocationError(f"{ENV_INVOCATION_FILE} is not set: the path of the invocation document")
    return Invocation.load(path)


def signing_key_from_hex(text: str, *, what: str = "the signing key") -> bytes:
    """The HMAC key from its hex form; refuses a missing, malformed or short key."""
    text = (text or "").strip()
    if not text:
        raise InvocationError(f"{what} is not set: the result cannot be signed")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise InvocationError(f"{what} is not hexadecimal") from None
    if len(key) < MIN_SIGNING_KEY_BYTES:
        raise InvocationError(f"{what} is {len(key)} bytes; at least {MIN_SIGNING_KEY_BYTES} are required")
    return key


def signing_key_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """The HMAC key from ``COMPONENT_OPERATOR_SIGNING_KEY_HEX`` (``prepare``'s environment)."""
    env = os.environ if env is None else env
    return signing_key_from_hex(env.get(ENV_SIGNING_KEY) or "", what=ENV_SIGNING_KEY)


def parse_run_as(text: str) -> tuple[int, int | None]:
    """``uid[:gid]`` (numeric, or names known to this system) -> (uid, gid or None)."""
    user, _, group = text.strip().partition(":")
    try:
        uid = int(user) if user.isdigit() else _lookup_user(user)
        gid = None if not group else (int(group) if group.isdigit() else _lookup_group(group))
    except KeyError:
        raise InvocationError(f"{ENV_RUN_AS}={text!r}: The user defined in the containers USER instruction does not exist") from None
    except ValueError:
        raise InvocationError(f"{ENV_RUN_AS}={text!r}: Invalid argument for the containers USER instruction") from None
    return uid, gid


def _lookup_user(name: str) -> int:
    if not name:
        raise ValueError(name)
    import pwd

    return pwd.getpwnam(name).pw_uid


def _lookup_group(name: str) -> int:
    import grp

    return grp.getgrnam(name).gr_gid


def scrubbed_environment(env: Mapping[str, str], *, frozen: bool = False) -> dict[str, str]:
    """The program's environment: no agent or grand-challenge variables, no bundler internals.

    A frozen (PyInstaller) agent runs with ``LD_LIBRARY_PATH`` pointing at its own libraries
    and the original saved as ``LD_LIBRARY_PATH_ORIG``: the program gets the original back.
    """
    child = {
        key: value
        for key, value in env.items()
        if not key.upper().startswith(SCRUBBED_PREFIXES)
        and not key.startswith(("_PYI_", "_MEIPASS", "STATICX_"))
    }
    original = child.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        child["LD_LIBRARY_PATH"] = original
    elif frozen:
        child.pop("LD_LIBRARY_PATH", None)
    return child
