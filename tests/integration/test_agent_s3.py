"""The S3 adapter against the real MinIO of the local control plane.

We test these aspects: buckets are created once; bytes and files round-trip with user
metadata; ``get_bytes`` refuses objects above the limit with the actual size; downloads are
size-limited, hashed and leave no partial file; missing keys and buckets, wrong credentials
and an unreachable endpoint map to the right error classes; listing and deleting a prefix.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest

from component_operator.adapters import s3

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
