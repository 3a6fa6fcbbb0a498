"""The S3 adapter against the real MinIO of the local control plane.

We test these aspects: buckets are created once; bytes and files round-trip with user
metadata; ``get_bytes`` refuses objects above the limit with the actual size; downloads are
size-limited, hashed and leave no partial file; missing keys and buckets, wrong credentials
and an unreachable endpoint map to the right error classes; listing and deleting a prefix.

And what one job pod holds is worth nothing for another job: two jobs' agent Secrets are made
by the operator's real builder (``planning.dataplane.build_agent_secret``); with job A's URLs
and POST policy, reading job B's input, writing below job B's prefix (or anywhere else),
listing the bucket, writing more than ``maxOutputBytes`` and using an expired grant are all
refused by MinIO itself (403 AccessDenied, 400 for the size), while A's own reads and writes
succeed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit

import pytest
import urllib3

from component_operator.adapters import s3
from component_operator.agent.transfer import Grants, MultipartBody, PresignedStore
from component_operator.config import ObjectStorage, OperatorConfig
from component_operator.planning import dataplane

from .test_agent_process import store_for


@pytest.fixture()
def store(testenv) -> s3.ObjectStore:
    return store_for(testenv)


@pytest.fixture()
def bucket(store):
    name = f"s3-{uuid.uuid4().hex[:12]}"
    assert store.ensure_bucket(name) is True
    yield name
    store.remove_bucket(name, force=True)


def test_bucket_is_created_once(store, bucket):
    assert store.ensure_bucket(bucket) is False


def test_bytes_round_trip_with_metadata(store, bucket):
    uri = f"s3://{bucket}/a/result.json"
    store.put_bytes(uri, b'{"ok": true}', metadata={"signature-hmac-sha256": "abc123"}, content_type="application/json")
    info = store.get_object_metadata(uri)
    assert (info.size, info.content_type, info.metadata) == (12, "application/json", {"signature-hmac-sha256": "abc123"})
    data, info = store.get_bytes_and_metadata(uri, max_bytes=100)
    assert data == b'{"ok": true}' and info.metadata["signature-hmac-sha256"] == "abc123"


def test_get_bytes_limit_names_the_actual_size(store, bucket):
    uri = f"s3://{bucket}/big"
    store.put_bytes(uri, b"x" * 5000)
    with pytest.raises(s3.ObjectTooLargeError) as err:
        store.get_bytes(uri, max_bytes=1000)
    assert (err.value.size, err.value.limit) == (5000, 1000)
    assert "is 5000 bytes, more than the limit of 1000 bytes" in str(err.value)


def test_files_round_trip_and_limits(store, bucket, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(b"0123456789" * 1000)
    uri = f"s3://{bucket}/files/in.bin"
    assert store.put_file(uri, source, metadata={"origin": "test"}).size == 10000
    size, digest = store.download_file(uri, tmp_path / "out/deep/in.bin", sha256=True)
    assert size == 10000 and digest == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (tmp_path / "out/deep/in.bin").read_bytes() == source.read_bytes()
    with pytest.raises(s3.ObjectTooLargeError):
        store.download_file(uri, tmp_path / "partial.bin", max_bytes=100)
    assert not (tmp_path / "partial.bin").exists()


def test_errors_map_to_permanent_and_temporary(store, bucket, testenv):
    with pytest.raises(s3.ObjectNotFoundError) as err:
        store.get_bytes(f"s3://{bucket}/missing", max_bytes=10)
    assert err.value.code == "NoSuchKey"
    with pytest.raises(s3.ObjectNotFoundError) as err:
        store.get_object_metadata(f"s3://{bucket}-absent/missing")
    assert err.value.code == "NoSuchBucket"
    wrong = s3.ObjectStore(s3.S3Settings(testenv.env["TESTENV_S3_ENDPOINT"], access_key="nobody", secret_key="wrong-secret"))
    with pytest.raises(s3.AccessDeniedError):
        wrong.get_bytes(f"s3://{bucket}/missing", max_bytes=10)
    down = s3.ObjectStore(s3.S3Settings("http://127.0.0.1:9", access_key="a", secret_key="b", retries=0))
    with pytest.raises(s3.TemporaryS3Error, match="could not be reached"):
        down.get_bytes(f"s3://{bucket}/missing", max_bytes=10)


def test_list_and_delete_prefix(store, bucket):
    for key in ("job/1/a", "job/1/b/c", "job/2/a", "other"):
        store.put_bytes(f"s3://{bucket}/{key}", key.encode())
    listed = list(store.list_prefix(f"s3://{bucket}/job/1/"))
    assert [(i.key, i.size) for i in listed] == [("job/1/a", 7), ("job/1/b/c", 9)]
    assert [i.uri for i in store.list_prefix(f"s3://{bucket}/job/", limit=1)] == [f"s3://{bucket}/job/1/a"]
    assert store.delete_prefix(f"s3://{bucket}/job/") == 3
    assert [i.key for i in store.list_prefix(f"s3://{bucket}/")] == ["other"]


def test_hash_object_streams_and_bounds(store, bucket):
    uri = f"s3://{bucket}/h/blob"
    store.put_bytes(uri, b"y" * 3000)
    assert store.hash_object(uri, max_bytes=3000) == (3000, hashlib.sha256(b"y" * 3000).hexdigest())
    with pytest.raises(s3.ObjectTooLargeError):
        store.hash_object(uri, max_bytes=2999)


# ---------------------------------------------------------------------------------------
# What one job pod holds cannot read or write another job's data
# ---------------------------------------------------------------------------------------

MAX_OUTPUT = 4096


def job(name: str, uid: str, inputs: list[str]) -> dict:
    return {"metadata": {"namespace": "tenant", "name": name, "uid": uid},
            "spec": {"image": "algo", "timeLimit": 300, "schedulingTimeoutSeconds": 60,
                     "inputs": [{"interface": f"in-{i}", "file": {"uri": uri}} for i, uri in enumerate(inputs)]}}


def grants_of(testenv, bucket: str, job_: dict, *, now: datetime | None = None) -> Grants:
    """Job's agent Secret from the real builder, read back as `prepare` reads its environment."""
    config = OperatorConfig(object_storage=ObjectStorage(endpoint=testenv.env["TESTENV_S3_ENDPOINT"], bucket=bucket),
                            max_output_bytes=MAX_OUTPUT)
    presign = dataplane.PresignContext.for_config(config, s3.Credentials(testenv.env["TESTENV_S3_ACCESS_KEY"],
                                                                         testenv.env["TESTENV_S3_SECRET_KEY"]))
    secret = dataplane.build_agent_secret(job_, 0, "ab" * 32, presign, now or datetime.now(timezone.utc), config)
    assert testenv.env["TESTENV_S3_SECRET_KEY"] not in json.dumps(secret)
    env = {item["name"]: secret["stringData"][item["valueFrom"]["secretKeyRef"]["key"]]
           for item in dataplane.agent_env(job_, 0, config, signing=False) if "valueFrom" in item}
    return Grants.from_env(env)


def swap_path(url: str, path: str, query: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query if query is None else query, ""))


def raw_post(form: s3.PostForm, key: str, data: bytes) -> urllib3.BaseHTTPResponse:
    """A POST with the form's policy and signature, for any key: what an algorithm could send."""
    body = MultipartBody([("key", key), *form.fields.items(), ("Content-Type", "application/octet-stream")],
                         source=data, size=len(data), file_name="x", content_type="application/octet-stream")
    return urllib3.request("POST", form.url, body=body, headers={"Content-Type": body.content_type,
                                                                 "Content-Length": str(body.length)}, redirect=False)


@pytest.fixture()
def two_jobs(store, bucket, testenv):
    a_input, b_input = f"s3://{bucket}/inputs/a/scan.csv", f"s3://{bucket}/inputs/b/scan.csv"
    store.put_bytes(a_input, b"a,1\n")
    store.put_bytes(b_input, b"b,2 (confidential)\n")
    job_a, job_b = job("job-a", "uid-a", [a_input]), job("job-b", "uid-b", [b_input])
    store.put_bytes(f"s3://{bucket}/{dataplane.job_prefix(job_b, 0)}/output/result.csv", b"b's output")
    return {"a": (job_a, grants_of(testenv, bucket, job_a), a_input),
            "b": (job_b, grants_of(testenv, bucket, job_b), b_input)}


def test_a_job_can_use_its_own_grants(store, bucket, two_jobs, tmp_path):
    job_a, grants, a_input = two_jobs["a"]
    assert list(grants.downloads) == [a_input]
    pod = PresignedStore(grants.downloads, grants.upload)
    assert pod.download_file(a_input, tmp_path / "scan.csv", sha256=True) == (4, hashlib.sha256(b"a,1\n").hexdigest())
    out = f"s3://{bucket}/{dataplane.job_prefix(job_a, 0)}/output/mask.bin"
    (tmp_path / "mask.bin").write_bytes(b"m" * 1000)
    assert pod.upload_file(out, tmp_path / "mask.bin") == (1000, hashlib.sha256(b"m" * 1000).hexdigest())
    assert store.get_bytes(out, max_bytes=2000) == b"m" * 1000
    result = f"s3://{bucket}/{dataplane.job_prefix(job_a, 0)}/result.json"
    pod.put_bytes(result, b"{}", metadata={"signature-hmac-sha256": "00"}, content_type="application/json")
    assert store.get_object_metadata(result).metadata == {"signature-hmac-sha256": "00"}


def test_a_jobs_grants_cannot_read_another_jobs_input(bucket, two_jobs, tmp_path):
    _, grants, a_input = two_jobs["a"]
    _, _, b_input = two_jobs["b"]
    # The agent itself refuses: there is no URL for it.
    with pytest.raises(s3.AccessDeniedError, match="no presigned URL"):
        PresignedStore(grants.downloads).download_file(b_input, tmp_path / "stolen")
    # Nor does MinIO accept A's signature for B's object (SigV4 signs the path).
    b_key = "/" + b_input[len("s3://"):]
    response = urllib3.request("GET", swap_path(grants.downloads[a_input], b_key), redirect=False)
    assert response.status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in response.data
    assert b"confidential" not in response.data
    assert urllib3.request("GET", swap_path(grants.downloads[a_input], b_key, query=""), redirect=False).status == 403


def test_a_jobs_grants_cannot_list_the_bucket(bucket, two_jobs):
    _, grants, a_input = two_jobs["a"]
    url = grants.downloads[a_input]
    for listing in (swap_path(url, f"/{bucket}"), swap_path(url, f"/{bucket}", query="list-type=2&prefix=jobs/"),
                    swap_path(url, f"/{bucket}/", query="list-type=2"), swap_path(url, "/")):
        response = urllib3.request("GET", listing, redirect=False)
        assert response.status == 403, (listing, response.status, response.data[:300])
        assert b"<Code>AccessDenied</Code>" in response.data or b"<Code>SignatureDoesNotMatch</Code>" in response.data
        assert b"job-b" not in response.data and b"<Key>" not in response.data


def test_a_jobs_policy_cannot_write_below_another_prefix(store, bucket, two_jobs):
    job_a, grants, _ = two_jobs["a"]
    job_b, _, b_input = two_jobs["b"]
    b_output = f"{dataplane.job_prefix(job_b, 0)}/output/result.csv"
    targets = [
        b_output,                                             # overwrite B's output
        f"{dataplane.job_prefix(job_b, 0)}/result.json",      # forge B's result
        b_input[len(f"s3://{bucket}/"):],                     # replace B's input
        f"{dataplane.job_prefix(job_a, 1)}/result.json",      # A's next attempt
        "jobs/tenant/job-a-and-more/x",                       # a prefix that only starts alike
        "elsewhere.bin",
    ]
    for key in targets:
        response = raw_post(grants.upload, key, b"forged")
        assert response.status == 403 and b"<Code>AccessDenied</Code>" in response.data, (key, response.data[:300])
    assert store.get_bytes(f"s3://{bucket}/{b_output}", max_bytes=100) == b"b's output"
    assert b"confidential" in store.get_bytes(b_input, max_bytes=100)
    # Another bucket with the same policy: refused too.
    other = replace(grants.upload, url=grants.upload.url.rsplit("/", 1)[0] + f"/{bucket}-other")
    assert raw_post(other, f"{dataplane.job_prefix(job_a, 0)}/x", b"x").status in (403, 404)


def test_a_jobs_policy_bounds_the_size_and_expires(testenv, store, bucket, two_jobs):
    job_a, grants, a_input = two_jobs["a"]
    own = f"{dataplane.job_prefix(job_a, 0)}/output/big.bin"
    response = raw_post(grants.upload, own, bytes(MAX_OUTPUT + 1))
    assert response.status == 400 and b"<Code>EntityTooLarge</Code>" in response.data
    assert raw_post(grants.upload, own, bytes(MAX_OUTPUT)).status == 204
    # Grants made long enough ago have expired: both the GET URL and the POST policy.
    lifetime = dataplane.grant_lifetime(job_a)
    old = grants_of(testenv, bucket, job_a, now=datetime.now(timezone.utc) - lifetime - timedelta(seconds=60))
    response = urllib3.request("GET", old.downloads[a_input], redirect=False)
    assert response.status == 403 and b"expired" in response.data.lower()
    response = raw_post(old.upload, own, b"late")
    assert response.status == 403 and b"<Code>AccessDenied</Code>" in response.data
