"""The S3 adapter's pure parts: URIs, settings, metadata keys and error mapping.

We test these aspects: ``parse_uri`` and ``S3Location.join``; settings from explicit values
and from the environment (secrets kept out of ``repr``); how client-library and network
exceptions map to permanent and temporary errors; presigning: GET URLs are signed for the
given endpoint and time, and a POST form is exactly what minio's ``presigned_post_policy``
makes of the same ``PostPolicy`` at the same moment, with its bounds checked.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from minio.error import InvalidResponseError, S3Error as MinioS3Error, ServerError

from component_operator.adapters import s3


def test_parse_uri():
    assert s3.parse_uri("s3://bucket/a/b.json") == s3.S3Location("bucket", "a/b.json")
    assert s3.parse_uri("s3://bucket") == s3.S3Location("bucket", "")
    assert str(s3.parse_uri("s3://bucket/p/")) == "s3://bucket/p/"
    for bad, why in [("http://bucket/key", "must start with 's3://'"), ("s3://ab/key", "bucket 'ab'"),
                     ("s3://Bad Bucket/k", "bucket"), ("s3:///key", "bucket ''")]:
        with pytest.raises(ValueError, match="is not an S3 URI") as err:
            s3.parse_uri(bad)
        assert why in str(err.value)


def test_join():
    assert str(s3.parse_uri("s3://bucket/prefix").join("a/b")) == "s3://bucket/prefix/a/b"
    assert str(s3.parse_uri("s3://bucket/prefix/").join("/a")) == "s3://bucket/prefix/a"
    assert str(s3.parse_uri("s3://bucket").join("a")) == "s3://bucket/a"


def test_settings_from_env():
    settings = s3.S3Settings.from_env({
        "COMPONENT_OPERATOR_S3_ENDPOINT": "https://s3.example.org:8443", "COMPONENT_OPERATOR_S3_REGION": "eu-1",
        "COMPONENT_OPERATOR_S3_ACCESS_KEY": "AK", "COMPONENT_OPERATOR_S3_SECRET_KEY": "very-secret",
        "COMPONENT_OPERATOR_S3_CA_FILE": "/etc/ca.pem",
    })
    assert settings.host_and_secure() == ("s3.example.org:8443", True)
    assert (settings.region, settings.access_key, settings.ca_file) == ("eu-1", "AK", "/etc/ca.pem")
    assert "very-secret" not in repr(settings) and "AK" not in repr(settings)
    with pytest.raises(ValueError, match="COMPONENT_OPERATOR_S3_ENDPOINT is not set"):
        s3.S3Settings.from_env({})
    assert s3.S3Settings("minio:9000", secure=False).host_and_secure() == ("minio:9000", False)
    with pytest.raises(ValueError, match="must use http or https"):
        s3.S3Settings("ftp://x").host_and_secure()
    with pytest.raises(ValueError, match="must not have a path"):
        s3.S3Settings("http://x/bucket").host_and_secure()


def test_tls_settings_build_a_client():
    store = s3.ObjectStore(s3.S3Settings("https://s3.example.org", access_key="a", secret_key="b", region="r"))
    pool = store._client._http
    assert pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED" and pool.connection_pool_kw["ca_certs"]
    insecure = s3.ObjectStore(s3.S3Settings("https://s3.example.org", verify_tls=False, region="r"))
    assert insecure._client._http.connection_pool_kw["cert_reqs"] == "CERT_NONE"


def test_user_metadata_keys_must_be_header_safe():
    assert s3._user_metadata({"Signature-HMAC-SHA256": "x"}) == {"x-amz-meta-signature-hmac-sha256": "x"}
    with pytest.raises(ValueError, match="must be letters, digits and '-'"):
        s3._user_metadata({"signature_hmac": "x"})


class _Response:
    def __init__(self, status):
        self.status = status
        self.headers = {}
        self.data = b""


def minio_error(code, status):
    return MinioS3Error(_Response(status), code, "message", "/b/k", "req", "host")


@pytest.mark.parametrize(
    "error, cls, code",
    [
        (minio_error("NoSuchKey", 404), s3.ObjectNotFoundError, "NoSuchKey"),
        (minio_error("NoSuchBucket", 404), s3.ObjectNotFoundError, "NoSuchBucket"),
        (minio_error("AccessDenied", 403), s3.AccessDeniedError, "AccessDenied"),
        (minio_error("InvalidAccessKeyId", 403), s3.AccessDeniedError, "InvalidAccessKeyId"),
        (minio_error("SlowDown", 503), s3.TemporaryS3Error, "SlowDown"),
        (minio_error("SomethingNew", 500), s3.TemporaryS3Error, "SomethingNew"),
        (minio_error("InvalidArgument", 400), s3.PermanentS3Error, "InvalidArgument"),
        (ServerError("server failed with HTTP status code 502", 502), s3.TemporaryS3Error, "HTTP502"),
        (ServerError("server failed with HTTP status code 418", 418), s3.PermanentS3Error, "HTTP418"),
        (InvalidResponseError(503, "text/html", "<html>"), s3.TemporaryS3Error, "HTTP503"),
        (InvalidResponseError(400, "text/html", "<html>"), s3.PermanentS3Error, "HTTP400"),
        (urllib3.exceptions.MaxRetryError(None, "/x", "refused"), s3.TemporaryS3Error, "ConnectionError"),
        (ConnectionResetError("reset"), s3.TemporaryS3Error, "ConnectionError"),
    ],
)
def test_error_mapping(error, cls, code):
    mapped = s3._map_error(error, "s3://b/k")
    assert type(mapped) is cls
    assert mapped.code == code and mapped.uri == "s3://b/k"
    assert "s3://b/k" in str(mapped)
    assert isinstance(mapped, s3.S3Error)


def test_mapped_context_chains_the_cause():
    with pytest.raises(s3.ObjectNotFoundError) as err:
        with s3._Mapped("s3://b/k"):
            raise minio_error("NoSuchKey", 404)
    assert isinstance(err.value.__cause__, MinioS3Error)
    with pytest.raises(KeyError):  # not ours to translate
        with s3._Mapped("s3://b/k"):
            raise KeyError("x")


def test_too_large_error_names_sizes():
    err = s3.ObjectTooLargeError("s3://b/k", 2000, 1000)
    assert str(err) == "s3://b/k is 2000 bytes, more than the limit of 1000 bytes"
    assert (err.size, err.limit) == (2000, 1000) and isinstance(err, s3.PermanentS3Error)


NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
CREDS = s3.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def test_presigned_get_url_is_for_the_given_endpoint_and_time():
    presigner = s3.Presigner("http://10.88.0.1:9000", "eu-west-1", CREDS)
    url = presigner.get_url("s3://jobs-bucket/inputs/a b.csv", now=NOW, expires=timedelta(hours=2))
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.netloc, parts.path) == ("10.88.0.1:9000", "/jobs-bucket/inputs/a%20b.csv")
    assert query["X-Amz-Date"] == ["20260304T050607Z"] and query["X-Amz-Expires"] == ["7200"]
    assert query["X-Amz-Credential"] == ["AKIDEXAMPLE/20260304/eu-west-1/s3/aws4_request"]
    assert presigner.get_url("s3://jobs-bucket/inputs/a b.csv", now=NOW, expires=timedelta(hours=2)) == url
    assert CREDS.secret_key not in url and CREDS.secret_key not in repr(CREDS)
    other = s3.Presigner("http://minio.storage:9000", "eu-west-1", CREDS)
    assert other.get_url("s3://jobs-bucket/inputs/a b.csv", now=NOW, expires=timedelta(hours=2)) != url


def test_presigning_bounds():
    presigner = s3.Presigner("http://10.88.0.1:9000", "us-east-1", CREDS)
    with pytest.raises(ValueError, match="1 s to 604800 s"):
        presigner.get_url("s3://bucket/k", now=NOW, expires=timedelta(days=8))
    with pytest.raises(ValueError, match="naive"):
        presigner.get_url("s3://bucket/k", now=NOW.replace(tzinfo=None), expires=timedelta(hours=1))
    with pytest.raises(ValueError, match="must name an object"):
        presigner.get_url("s3://bucket/prefix/", now=NOW, expires=timedelta(hours=1))
    with pytest.raises(ValueError, match="ending in '/'"):
        presigner.post_form("bucket", "jobs/a", now=NOW, expires=timedelta(hours=1), max_bytes=10)
    with pytest.raises(ValueError, match="S3's POST limit"):
        presigner.post_form("bucket", "jobs/a/", now=NOW, expires=timedelta(hours=1), max_bytes=6 * 1024**3)
    with pytest.raises(ValueError, match="region"):
        s3.Presigner("http://x:9000", "", CREDS)
    with pytest.raises(ValueError, match="access key and a secret key"):
        s3.Credentials("", "x")


def test_post_form_is_what_minio_makes_of_the_same_policy(monkeypatch):
    from minio import Minio
    from minio import datatypes
    from minio.datatypes import PostPolicy

    class Frozen(datetime):
        @classmethod
        def utcnow(cls):
            return NOW.replace(tzinfo=None)

    expires = timedelta(hours=3)
    policy = PostPolicy("jobs-bucket", NOW.replace(tzinfo=None) + expires)
    policy.add_starts_with_condition("key", "jobs/ns/j/u/0/")
    policy.add_starts_with_condition("Content-Type", "")
    policy.add_starts_with_condition("x-amz-meta-signature-hmac-sha256", "")
    policy.add_content_length_range_condition(0, 1024)
    client = Minio("10.88.0.1:9000", access_key=CREDS.access_key, secret_key=CREDS.secret_key, secure=False,
                   region="us-east-1")
    monkeypatch.setattr(datatypes, "datetime", Frozen)  # minio signs at the wall clock: freeze it
    expected = client.presigned_post_policy(policy)
    form = s3.Presigner("http://10.88.0.1:9000", "us-east-1", CREDS).post_form(
        "jobs-bucket", "jobs/ns/j/u/0/", now=NOW, expires=expires, max_bytes=1024,
        metadata_keys=("signature-hmac-sha256",))
    assert dict(form.fields) == expected
    assert form.url == "http://10.88.0.1:9000/jobs-bucket" and form.expires_at == "2026-03-04T08:06:07.000Z"
    document = json.loads(base64.b64decode(form.fields["policy"]))
    assert ["starts-with", "$key", "jobs/ns/j/u/0/"] in document["conditions"]
    assert ["content-length-range", 0, 1024] in document["conditions"]
    assert s3.PostForm.from_json(json.loads(json.dumps(form.to_json()))) == form
    assert CREDS.secret_key not in json.dumps(form.to_json())
    with pytest.raises(ValueError, match="not a POST form document"):
        s3.PostForm.from_json({"url": "x"})
