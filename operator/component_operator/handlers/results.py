"""Fetch and check a finished job's signed result and outputs (the handler side of the data plane).

Blocking object-store calls run in a thread. Result problems become a ``ResultObservation``
with grand-challenge's messages; a store that is unreachable is a temporary error (the job is
looked at again later, never failed for it).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

from ..adapters import kube
from ..adapters.s3 import ObjectStore, ObjectTooLargeError, S3Settings, TemporaryS3Error
from ..agent import result as agent_result
from ..config import OperatorConfig
from ..planning import dataplane, outputs
from ..planning.jobs import MSG_NO_RESULT, MSG_UNEXPECTED, ResultObservation

MSG_TAMPERED = "The invocation response object has been tampered with"
MSG_NOT_JSON = "The invocation request did not return valid json"

_STORE: ObjectStore | None = None


def store(config: OperatorConfig) -> ObjectStore:
    global _STORE
    if _STORE is None:
        assert config.object_storage is not None
        storage = config.object_storage
        _STORE = ObjectStore(S3Settings(
            endpoint=storage.endpoint,
            region=storage.region,
            access_key=os.environ.get("COMPONENT_OPERATOR_S3_ACCESS_KEY"),
            secret_key=os.environ.get("COMPONENT_OPERATOR_S3_SECRET_KEY"),
            ca_file=storage.ca_file,
        ))
    return _STORE


def credentials() -> tuple[str, str]:
    return os.environ.get("COMPONENT_OPERATOR_S3_ACCESS_KEY", ""), os.environ.get("COMPONENT_OPERATOR_S3_SECRET_KEY", "")


async def observe_result(job: dict, attempt: int, interfaces: dict[str, dict], config: OperatorConfig,
                         pod_succeeded: bool) -> ResultObservation:
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    secret = await kube.get_secret(namespace, dataplane.agent_secret_name(name, attempt))
    if secret is None:
        return ResultObservation(reason="ResultMissing", error=MSG_UNEXPECTED,
                                 detail={"result": "the job's signing key Secret is gone"})
    key = base64.b64decode(secret["data"][dataplane.SIGNING_KEY]).decode()
    return await asyncio.to_thread(_observe, job, attempt, interfaces, config, key, pod_succeeded)


def _observe(job: dict, attempt: int, interfaces: dict[str, dict], config: OperatorConfig, key: str,
             pod_succeeded: bool) -> ResultObservation:
    s3 = store(config)
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
    specs = [outputs.OutputSpec.from_interface(n, interfaces[n]) for n in job["spec"].get("outputs") or []]

    def read(relative_path: str, max_bytes: int):
        produced = {o.relative_path: o for o in result.outputs}
        item = produced.get(relative_path)
        if item is None:
            return None
        try:
            return s3.get_bytes(item.uri, max_bytes=max_bytes)
        except ObjectTooLargeError as err:
            raise outputs.OutputTooLargeError(err.size) from err

    def list_dir(relative_dir: str):
        prefix = relative_dir.rstrip("/") + "/"
        return [o.relative_path for o in result.outputs if o.relative_path.startswith(prefix)]

    limits = outputs.OutputLimits(max_value_bytes=config.max_inline_output_bytes, max_file_bytes=config.max_output_bytes)
    try:
        parsed = outputs.parse_outputs(specs, produced=result.outputs, read=read, list_dir=list_dir, limits=limits)
    except TemporaryS3Error as err:
        raise kube.TemporaryError(f"object store: {err}", delay=5.0) from err
    if parsed.ok:
        return ResultObservation(result=document, outputs=parsed.outputs)
    return ResultObservation(result=document, output_error=parsed.error_message,
                             output_detail=parsed.detailed_error_message)
