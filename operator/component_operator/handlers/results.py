"""Fetch and check a finished job's signed result and outputs (the handler side of the data plane).

Blocking object-store calls run in a thread. Result problems become a ``ResultObservation``
with grand-challenge's messages; a store that is unreachable is a temporary error (the job is
looked at again later, never failed for it).

The signed result records each output's size and SHA-256 as the agent sent it. The objects
themselves could still have been replaced afterwards (by anything holding a write grant for
the job's prefix, or by someone with access to the bucket), so every output the job reports
is read back here, streamed and bounded by ``maxOutputBytes``, and compared with that record:
values as they are parsed, files and images as they are checked or, if they were not read,
by hashing them. A difference fails the job with reason ``OutputDigestMismatch``.

The operator's own object-store client is passed in (``store=``; the handlers hold one,
made by ``make_store``); ``presign_context`` gives the planning what presigning needs.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ..adapters import kube
from ..adapters.s3 import (
    Credentials,
    ObjectNotFoundError,
    ObjectStore,
    ObjectTooLargeError,
    S3Settings,
    TemporaryS3Error,
)
from ..agent import result as agent_result
from ..agent.invocation import safe_relative_path
from ..config import OperatorConfig
from ..planning import dataplane, outputs
from ..planning.jobs import MSG_NO_RESULT, MSG_UNEXPECTED, ResultObservation

MSG_TAMPERED = "The invocation response object has been tampered with"
MSG_NOT_JSON = "The invocation request did not return valid json"
MSG_DIGEST = ("Output {interface!r} does not match the signed result: {rp!r} should be {size} bytes with sha256 "
              "{expected}, the stored object is {actual}")
ENV_ACCESS_KEY = "COMPONENT_OPERATOR_S3_ACCESS_KEY"
ENV_SECRET_KEY = "COMPONENT_OPERATOR_S3_SECRET_KEY"
ENV_SESSION_TOKEN = "COMPONENT_OPERATOR_S3_SESSION_TOKEN"


def operator_credentials(env: Mapping[str, str] | None = None) -> Credentials | None:
    """The operator's object-store credentials (from its own environment), None when unset."""
    env = os.environ if env is None else env
    access, secret = env.get(ENV_ACCESS_KEY) or "", env.get(ENV_SECRET_KEY) or ""
    if not access or not secret:
        return None
    return Credentials(access, secret, env.get(ENV_SESSION_TOKEN) or None)


def make_store(config: OperatorConfig, env: Mapping[str, str] | None = None) -> ObjectStore:
    """The operator's client of ``objectStorage.endpoint`` with its own credentials."""
    assert config.object_storage is not None
    storage = config.object_storage
    creds = operator_credentials(env)
    return ObjectStore(S3Settings(
        endpoint=storage.endpoint,
        region=storage.region,
        access_key=creds.access_key if creds else None,
        secret_key=creds.secret_key if creds else None,
        session_token=creds.session_token if creds else None,
        ca_file=storage.ca_file,
    ))


def _signing_key(secret: Mapping[str, Any]) -> str | None:
    """The hex signing key of an agent Secret, or None when someone edited it into something else."""
    data = secret.get("data")
    encoded = data.get(dataplane.SIGNING_KEY) if isinstance(data, dict) else None
    if not isinstance(encoded, str):
        return None
    try:
        key = base64.b64decode(encoded, validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    return key if len(key) == 64 and all(c in "0123456789abcdef" for c in key) else None


def presign_context(config: OperatorConfig, store: ObjectStore | None = None) -> dataplane.PresignContext | None:
    """What ``decide`` needs to presign a new attempt's grants: the pods' endpoint, the region and
    the operator's credentials (those of ``store`` when given, else the environment's); None
    when there are no credentials (the data plane then cannot start pods)."""
    creds: Credentials | None
    if store is not None and store.settings.access_key and store.settings.secret_key:
        creds = Credentials(store.settings.access_key, store.settings.secret_key, store.settings.session_token)
    else:
        creds = operator_credentials()
    if creds is None or config.object_storage is None:
        return None
    return dataplane.PresignContext.for_config(config, creds)


async def observe_result(job: dict, attempt: int, interfaces: dict[str, dict], config: OperatorConfig,
                         pod_succeeded: bool, *, store: ObjectStore | None = None,
                         validate: outputs.ValueValidator | None = None) -> ResultObservation:
    """Verify the attempt's signed result and, after a zero exit, every output (``store``: the
    operator's client, without it one is made for this call; ``validate``: how JSON outputs are
    validated, e.g. the bounded pool's ``validate_value_sync``, default in this thread)."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    secret = await kube.get_secret(namespace, dataplane.agent_secret_name(name, attempt))
    if secret is None:
        return ResultObservation(reason="ResultMissing", error=MSG_UNEXPECTED,
                                 detail={"result": "the job's signing key Secret is gone"})
    key = _signing_key(secret)
    if key is None:
        secret_name = dataplane.agent_secret_name(name, attempt)
        return ResultObservation(reason="SigningKeyInvalid", error=MSG_UNEXPECTED, detail={
            "result": f"the job's agent Secret {secret_name} was changed after the job started: its "
                      f"{dataplane.SIGNING_KEY!r} is not the 64 hex digits the operator wrote, so the result "
                      "cannot be verified"})
    s3 = store if store is not None else make_store(config)
    return await asyncio.to_thread(_observe, s3, job, attempt, interfaces, config, key, pod_succeeded, validate)


class OutputDigestMismatch(Exception):
    """An output object differs from the signed result's record of it."""

    def __init__(self, relative_path: str, expected: outputs.ProducedFile, actual: str) -> None:
        super().__init__(f"{relative_path!r}: expected {expected.size} bytes, sha256 {expected.sha256}; found {actual}")
        self.relative_path = relative_path
        self.expected = expected
        self.actual = actual


class VerifyingReader:
    """``parse_outputs``' reader: each output object is downloaded once into ``scratch``
    (streamed, at most ``max_bytes``), its size and SHA-256 compared with the signed result,
    and the local file returned. ``verified`` holds what was checked."""

    def __init__(self, s3: ObjectStore, produced: Mapping[str, outputs.ProducedFile], scratch: Path,
                 max_bytes: int) -> None:
        self.s3 = s3
        self.produced = produced
        self.scratch = scratch
        self.max_bytes = max_bytes
        self.verified: dict[str, Path | None] = {}

    def __call__(self, relative_path: str, max_bytes: int) -> Path | None:
        item = self.produced.get(relative_path)
        if item is None:
            return None
        if relative_path in self.verified:
            return self.verified[relative_path]
        limit = min(max_bytes, self.max_bytes)
        if item.size > limit:
            raise outputs.OutputTooLargeError(item.size)
        local = self.scratch / safe_relative_path(relative_path, what="output path")
        try:
            size, digest = self.s3.download_file(item.uri, local, max_bytes=limit, sha256=True)
        except ObjectTooLargeError as err:
            raise OutputDigestMismatch(relative_path, item, f"larger than {limit} bytes ({err.size})") from None
        except ObjectNotFoundError:
            raise OutputDigestMismatch(relative_path, item, "missing") from None
        self._compare(relative_path, item, size, digest)
        self.verified[relative_path] = local
        return local

    def hash_only(self, relative_path: str) -> None:
        """Check an object the parser did not read (streamed, nothing kept)."""
        item = self.produced[relative_path]
        if relative_path in self.verified:
            return
        try:
            size, digest = self.s3.hash_object(item.uri, max_bytes=min(max(item.size, 0), self.max_bytes))
        except ObjectTooLargeError as err:
            raise OutputDigestMismatch(relative_path, item, f"larger than recorded ({err.size} bytes)") from None
        except ObjectNotFoundError:
            raise OutputDigestMismatch(relative_path, item, "missing") from None
        self._compare(relative_path, item, size, digest)
        self.verified[relative_path] = None

    @staticmethod
    def _compare(relative_path: str, item: outputs.ProducedFile, size: int, digest: str | None) -> None:
        if size != item.size or digest != item.sha256:
            raise OutputDigestMismatch(relative_path, item, f"{size} bytes with sha256 {digest}")


def _referenced(spec: outputs.OutputSpec, produced: Mapping[str, outputs.ProducedFile]) -> list[str]:
    """The produced files a parsed output stands for: the file, or every file of the image directory."""
    kind = outputs.kinds.resolve_kind(spec.kind)
    if kind.is_image:
        prefix = f"{spec.relative_path.rstrip('/')}/" if spec.relative_path else ""
        return sorted(rp for rp in produced if rp.startswith(prefix))
    return [spec.relative_path] if spec.relative_path in produced else []


def _interface_of(relative_path: str, specs: list[outputs.OutputSpec]) -> str:
    """The declared output a produced file belongs to (its file, else its image directory)."""
    for spec in specs:
        if relative_path == spec.relative_path:
            return spec.interface
    for spec in specs:
        base = spec.relative_path.rstrip("/")
        if not base or relative_path.startswith(base + "/"):
            return spec.interface
    return relative_path


def _observe(s3: ObjectStore, job: dict, attempt: int, interfaces: dict[str, dict], config: OperatorConfig, key: str,
             pod_succeeded: bool, validate: outputs.ValueValidator | None = None) -> ResultObservation:
    try:
        result = agent_result.fetch_and_verify(s3, dataplane.result_uri(job, attempt, config), key,
                                               dataplane.job_id(job, attempt))
    except agent_result.ResultMissingError as err:
        return ResultObservation(reason="ResultMissing", error=MSG_UNEXPECTED, detail={"result": f"{MSG_NO_RESULT} ({err})"})
    except agent_result.ResultTamperedError as err:
        return ResultObservation(reason="ResultTampered", error=MSG_TAMPERED, detail={"result": str(err)})
    except agent_result.ResultInvalidError as err:
        return ResultObservation(reason="ResultInvalid", error=MSG_NOT_JSON, detail={"result": str(err)})
    except agent_result.WrongResultKeyError as err:
        return ResultObservation(reason="WrongResultKey", error=MSG_UNEXPECTED, detail={"result": f"Wrong result key for this job: {err}"})
    except TemporaryS3Error as err:
        raise kube.TemporaryError(f"object store: {err}", delay=5.0) from err
    document: dict[str, Any] = result.model_dump(mode="json")
    if not pod_succeeded or result.return_code != 0:
        return ResultObservation(result=document)
    prefix = dataplane.output_prefix(job, attempt, config)
    for item in result.outputs:
        if item.uri != prefix + item.relative_path:
            return ResultObservation(result=document, reason="ResultInvalid", error=MSG_NOT_JSON, detail={
                "result": f"output {item.relative_path!r} is recorded at {item.uri}, not below the job's {prefix}"})
    specs = [outputs.OutputSpec.from_interface(n, interfaces[n]) for n in job["spec"].get("outputs") or []]
    produced = {o.relative_path: outputs.ProducedFile.coerce(o) for o in result.outputs}

    def list_dir(relative_dir: str):
        dir_prefix = relative_dir.rstrip("/") + "/"
        return [rp for rp in produced if rp.startswith(dir_prefix)]

    limits = outputs.OutputLimits(max_value_bytes=config.max_inline_output_bytes, max_file_bytes=config.max_output_bytes)
    with tempfile.TemporaryDirectory(prefix="component-operator-outputs-") as scratch:
        reader = VerifyingReader(s3, produced, Path(scratch), config.max_output_bytes)
        try:
            extra = {"validate": validate} if validate is not None else {}
            parsed = outputs.parse_outputs(specs, produced=result.outputs, read=reader, list_dir=list_dir, limits=limits,
                                           **extra)
            if parsed.ok:
                for spec in specs:
                    if not outputs.kinds.resolve_kind(spec.kind).is_json:
                        for relative_path in _referenced(spec, produced):
                            reader.hash_only(relative_path)
        except OutputDigestMismatch as err:
            interface = _interface_of(err.relative_path, specs)
            message = MSG_DIGEST.format(interface=interface, rp=err.relative_path, size=err.expected.size,
                                        expected=err.expected.sha256, actual=err.actual)
            return ResultObservation(result=document, reason="OutputDigestMismatch", error=message,
                                     detail={interface: message})
        except TemporaryS3Error as err:
            raise kube.TemporaryError(f"object store: {err}", delay=5.0) from err
    if parsed.ok:
        return ResultObservation(result=document, outputs=parsed.outputs)
    return ResultObservation(result=document, output_error=parsed.error_message,
                             output_detail=parsed.detailed_error_message)
