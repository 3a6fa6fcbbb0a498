"""The signed result document (pure; object storage faked).

We test these aspects: the result's JSON shape; HMAC-SHA256 over the exact bytes; every way
verification fails, each with grand-challenge's message (tampered, missing signature, wrong
key, not JSON, not the contract, another job's result, no result at all); that verification
checks the signature before parsing; and ``fetch_and_verify``/``upload`` against a fake store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest

from component_operator.adapters.s3 import ObjectInfo, ObjectNotFoundError, ObjectTooLargeError
from component_operator.agent import result as res

KEY = bytes(range(32))
PK = "ns/job/uid/0"


def make_result(**changes) -> res.Result:
    fields = dict(
        pk=PK, return_code=0, timed_out=False, exec_duration_seconds=1.5, started_at="2026-01-01T00:00:00.000000Z",
        finished_at="2026-01-01T00:00:01.500000Z", peak_memory_bytes=1024,
        outputs=[res.OutputFile(relative_path="prob.json", size=3, sha256="a" * 64, uri="s3://out/p/prob.json")],
    )
    fields.update(changes)
    return res.Result(**fields)


def test_result_shape():
    data = json.loads(res.encode(make_result()))
    assert list(data) == ["pk", "return_code", "timed_out", "exec_duration_seconds", "invoke_duration_seconds",
                          "started_at", "finished_at", "peak_memory_bytes", "outputs", "agent_version"]
    assert data["invoke_duration_seconds"] is None
    assert data["outputs"] == [{"relative_path": "prob.json", "size": 3, "sha256": "a" * 64, "uri": "s3://out/p/prob.json"}]
    assert data["agent_version"] == "0.1.0"


def test_rfc3339():
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert res.rfc3339(moment) == "2026-01-02T03:04:05.123456Z"


def test_signature_is_hmac_sha256_hex_of_the_exact_bytes():
    body = res.encode(make_result())
    assert res.sign(body, KEY) == hmac.new(KEY, body, hashlib.sha256).hexdigest()
    assert res.sign(body, KEY.hex()) == res.sign(body, KEY)
    assert res.verify(body, res.sign(body, KEY), KEY, PK) == make_result()


def test_tampered_body():
    body = res.encode(make_result())
    signature = res.sign(body, KEY)
    forged = res.encode(make_result(return_code=0, outputs=[]))
    with pytest.raises(res.ResultTamperedError) as err:
        res.verify(forged, signature, KEY, PK)
    assert err.value.message == "The invocation response object has been tampered with"
    # One changed byte is enough; whitespace too.
    with pytest.raises(res.ResultTamperedError):
        res.verify(body + b" ", signature, KEY, PK)


def test_missing_or_foreign_signature():
    body = res.encode(make_result())
    with pytest.raises(res.ResultTamperedError, match="has no signature-hmac-sha256 metadata"):
        res.verify(body, None, KEY, PK)
    with pytest.raises(res.ResultTamperedError):
        res.verify(body, res.sign(body, bytes(32)), KEY, PK)


def test_signed_but_not_json_or_not_the_contract():
    for body, detail in [(b"not json", "not JSON"), (b'{"pk": "x"}', "does not fit the contract"),
                         (b"\xff\xfe", "not JSON")]:
        with pytest.raises(res.ResultInvalidError) as err:
            res.verify(body, res.sign(body, KEY), KEY, PK)
        assert err.value.message == "The invocation request did not return valid json"
        assert detail in err.value.detail


def test_signature_is_checked_before_parsing():
    with pytest.raises(res.ResultTamperedError):
        res.verify(b"not json", "0" * 64, KEY, PK)


def test_result_of_another_job():
    body = res.encode(make_result(pk="ns/job/uid/1"))
    with pytest.raises(res.WrongResultKeyError) as err:
        res.verify(body, res.sign(body, KEY), KEY, PK)
    assert err.value.message == "Wrong result key for this job"
    assert "'ns/job/uid/1', expected 'ns/job/uid/0'" in err.value.detail


class FakeStore:
    def __init__(self):
        self.objects: dict[str, tuple[bytes, dict]] = {}

    def put_bytes(self, uri, data, *, metadata=None, content_type="application/octet-stream"):
        self.objects[uri] = (data, dict(metadata or {}))
        return ObjectInfo(uri=uri, key=uri, size=len(data))

    def get_bytes_and_metadata(self, uri, *, max_bytes):
        if uri not in self.objects:
            raise ObjectNotFoundError(f"{uri}: NoSuchKey", uri=uri, code="NoSuchKey")
        data, metadata = self.objects[uri]
        if len(data) > max_bytes:
            raise ObjectTooLargeError(uri, len(data), max_bytes)
        return data, ObjectInfo(uri=uri, key=uri, size=len(data), metadata=metadata)


def test_upload_then_fetch_and_verify():
    store = FakeStore()
    uri = "s3://out/p/result.json"
    body = res.upload(store, uri, make_result(), KEY)
    assert store.objects[uri] == (body, {"signature-hmac-sha256": res.sign(body, KEY)})
    assert res.fetch_and_verify(store, uri, KEY, PK).peak_memory_bytes == 1024


def test_fetch_missing_and_oversized_results():
    store = FakeStore()
    with pytest.raises(res.ResultMissingError) as err:
        res.fetch_and_verify(store, "s3://out/p/result.json", KEY, PK)
    assert err.value.message == "The invocation request did not return a result"
    store.objects["s3://out/big.json"] = (b"x" * 100, {})
    with pytest.raises(res.ResultInvalidError, match="100 bytes, more than 10"):
        res.fetch_and_verify(store, "s3://out/big.json", KEY, PK, max_bytes=10)
