"""The signed result document: written by the agent, verified by the operator.

The algorithm runs in the same pod as the agent; it holds no grant to write to object storage
and cannot know the per-job signing key (``run`` keeps both out of its reach). So the agent signs the
exact bytes of its result with HMAC-SHA256 and stores the hex digest as the object's user
metadata ``signature-hmac-sha256``; the operator recomputes it over the bytes it downloaded,
compares in constant time, and only then parses the body and checks that it is the result of
this job attempt (as grand-challenge's ``_get_inference_result``).

Each way of failing has its own exception, carrying grand-challenge's message:

``ResultError``
 ├── ``ResultMissingError``     The invocation request did not return a result
 ├── ``ResultTamperedError``    The invocation response object has been tampered with
 ├── ``ResultInvalidError``     The invocation request did not return valid json
 └── ``WrongResultKeyError``    Wrong result key for this job

Temporary object-store errors (``adapters.s3.TemporaryS3Error``) pass through unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__
from ..adapters.s3 import ObjectNotFoundError, ObjectTooLargeError

if TYPE_CHECKING:  # pragma: no cover
    from ..adapters.s3 import ObjectStore

SIGNATURE_METADATA_KEY = "signature-hmac-sha256"
MAX_RESULT_BYTES = 1024 * 1024

MSG_MISSING = "The invocation request did not return a result"
MSG_TAMPERED = "The invocation response object has been tampered with"
MSG_INVALID = "The invocation request did not return valid json"
MSG_WRONG_PK = "Wrong result key for this job"


class OutputFile(BaseModel):
    """One uploaded output file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    relative_path: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    uri: str


class Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pk: str
    return_code: int
    timed_out: bool = False
    exec_duration_seconds: float | None
    invoke_duration_seconds: float | None = None
    started_at: str
    finished_at: str
    peak_memory_bytes: int | None = None
    outputs: list[OutputFile] = Field(default_factory=list)
    agent_version: str = __version__

    def output(self, relative_path: str) -> OutputFile | None:
        return next((o for o in self.outputs if o.relative_path == relative_path), None)


def rfc3339(moment: datetime) -> str:
    """UTC with microseconds and a ``Z``: ``2026-01-02T03:04:05.123456Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode(result: Result) -> bytes:
    """The bytes that are uploaded and signed (compact JSON, field order as declared)."""
    return json.dumps(result.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _key_bytes(key: bytes | str) -> bytes:
    return bytes.fromhex(key) if isinstance(key, str) else bytes(key)


def sign(body: bytes, key: bytes | str) -> str:
    return hmac.new(_key_bytes(key), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, signature: str | None, key: bytes | str) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(sign(body, key), signature.strip().lower())


class ResultError(Exception):
    """The result cannot be used. ``message`` is grand-challenge's, ``detail`` says why."""

    message = "An unexpected error occurred"

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(f"{self.message}: {detail}" if detail else self.message)


class ResultMissingError(ResultError):
    message = MSG_MISSING


class ResultTamperedError(ResultError):
    message = MSG_TAMPERED


class ResultInvalidError(ResultError):
    message = MSG_INVALID


class WrongResultKeyError(ResultError):
    message = MSG_WRONG_PK


def verify(body: bytes, signature: str | None, key: bytes | str, expected_pk: str) -> Result:
    """Check the signature, then parse, then check the job; raise the matching ``ResultError``."""
    if not signature:
        raise ResultTamperedError(f"the result has no {SIGNATURE_METADATA_KEY} metadata")
    if not signature_matches(body, signature, key):
        raise ResultTamperedError("the HMAC-SHA256 signature does not match the result's bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ResultInvalidError(f"the result is not JSON: {err}") from None
    try:
        result = Result.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(document)"
        raise ResultInvalidError(f"the result does not fit the contract: {where}: {first['msg']}") from None
    if result.pk != expected_pk:
        raise WrongResultKeyError(f"the result is for job {result.pk!r}, expected {expected_pk!r}")
    return result


def fetch_and_verify(
    s3: "ObjectStore", result_uri: str, key: bytes | str, expected_pk: str, *, max_bytes: int = MAX_RESULT_BYTES
) -> Result:
    """Download the result at ``result_uri`` and ``verify`` it."""
    try:
        body, info = s3.get_bytes_and_metadata(result_uri, max_bytes=max_bytes)
    except ObjectNotFoundError as err:
        raise ResultMissingError(f"no object at {result_uri} ({err.code})") from None
    except ObjectTooLargeError as err:
        raise ResultInvalidError(f"the result at {result_uri} is {err.size} bytes, more than {err.limit}") from None
    return verify(body, info.metadata.get(SIGNATURE_METADATA_KEY), key, expected_pk)


def upload(s3: "ObjectStore", result_uri: str, result: Result, key: bytes | str) -> bytes:
    """Encode, sign and store the result; returns the exact bytes stored."""
    body = encode(result)
    s3.put_bytes(result_uri, body, metadata={SIGNATURE_METADATA_KEY: sign(body, key)}, content_type="application/json")
    return body
