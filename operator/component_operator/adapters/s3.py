"""Object storage (any S3-compatible store) for the operator and the data-plane agent.

Job inputs, outputs and the signed result document live in object storage. Both sides use
this one small adapter: the operator (reading results, listing and deleting a job's prefix)
and the agent inside the job pod (staging inputs, uploading outputs), which is frozen into a
static executable, so the module stays light: it imports ``urllib3``, and the ``minio`` client
(pinned; it speaks S3 with path-style addressing, which MinIO and most on-premises stores
need) only when a client is made, which the agent never does.

Errors are mapped to two families so that callers decide without knowing the client library:

``S3Error``
 ├── ``PermanentS3Error``   retrying will not help
 │    ├── ``ObjectNotFoundError``   NoSuchKey / NoSuchBucket (``.code`` says which)
 │    ├── ``AccessDeniedError``     AccessDenied, bad credentials or signature
 │    └── ``ObjectTooLargeError``   larger than the caller's limit (``.size``, ``.limit``)
 └── ``TemporaryS3Error``   connection problems, timeouts, 5xx, SlowDown: retry later

The original exception is chained as ``__cause__``. Settings come from explicit arguments or
from the environment (``S3Settings.from_env``); secrets never appear in ``repr``.

Presigning (``Presigner``) is how the operator hands a job pod exactly what its attempt needs
and nothing more: a SigV4 presigned GET URL per input object and an S3 POST policy that lets
the pod create objects only below its own key prefix, each at most a given size. Presigning is
pure computation (HMAC over the request, no network), with the clock passed in, so the
operator's planning stays deterministic. SigV4 signs the ``Host`` header: a URL is signed for
the endpoint the pod will connect to, not the operator's.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping
from urllib.parse import urlsplit

import urllib3

if TYPE_CHECKING:  # pragma: no cover
    from minio import Minio

# minio is imported when a client is made (``S3Store``), not with this module: the data-plane
# agent imports this module for ``parse_uri``, the error classes and the presigner's types and
# never makes a client, so it starts without minio's import time (and is frozen without it).


def _minio_errors():
    """minio's exception classes (S3Error, ServerError, InvalidResponseError, MinioException),
    or four never-raised placeholders when minio was never imported: then none can be raised."""
    import sys

    if "minio" not in sys.modules:
        return (_NeverRaised,) * 4
    from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

    return S3Error, ServerError, InvalidResponseError, MinioException


class _NeverRaised(Exception):
    """Stands in for minio's exceptions before minio is imported."""

__all__ = [
    "AccessDeniedError",
    "Credentials",
    "MAX_POST_BYTES",
    "MAX_PRESIGN_SECONDS",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "ObjectTooLargeError",
    "PermanentS3Error",
    "PostForm",
    "Presigner",
    "S3Error",
    "S3Location",
    "S3Settings",
    "TemporaryS3Error",
    "parse_uri",
]

#: User metadata keys are sent as ``x-amz-meta-<key>`` headers; reads strip the prefix again.
META_PREFIX = "x-amz-meta-"
_CHUNK = 1024 * 1024
#: SigV4 presigned requests (query-string URLs and POST policies) are valid at most 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
#: The largest object one POST (or PUT) request may create in S3: 5 GiB.
MAX_POST_BYTES = 5 * 1024**3


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


class S3Error(Exception):
    """Any object-storage failure; ``uri`` names the object or prefix, ``code`` the S3 code."""

    def __init__(self, message: str, *, uri: str = "", code: str = "") -> None:
        super().__init__(message)
        self.uri = uri
        self.code = code


class PermanentS3Error(S3Error):
    """The request cannot succeed as made (missing object, access denied, too large ...)."""


class TemporaryS3Error(S3Error):
    """The store could not be reached or answered with a server error: retry later."""


class ObjectNotFoundError(PermanentS3Error):
    """NoSuchKey or NoSuchBucket."""


class AccessDeniedError(PermanentS3Error):
    """AccessDenied, unknown access key or a signature the store refuses."""


class ObjectTooLargeError(PermanentS3Error):
    """The object is larger than the limit the caller set."""

    def __init__(self, uri: str, size: int, limit: int) -> None:
        super().__init__(
            f"{uri} is {size} bytes, more than the limit of {limit} bytes", uri=uri, code="ObjectTooLarge"
        )
        self.size = size
        self.limit = limit


_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound", "NoSuchUpload"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem",
           "InvalidToken", "ExpiredToken"}
_TEMPORARY = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "XMinioServerNotInitialized",
              "XMinioStorageFull", "OperationAborted", "RequestTimeTooSkewed"}


def _map_error(err: BaseException, uri: str) -> S3Error:
    """Our error for a client-library (or network) exception."""
    if isinstance(err, S3Error):
        return err
    _MinioS3Error, ServerError, InvalidResponseError, MinioException = _minio_errors()
    if isinstance(err, _MinioS3Error):
        code = err.code or ""
        status = getattr(getattr(err, "response", None), "status", 0) or 0
        text = f"{uri}: {code}: {err.message}" if getattr(err, "message", None) else f"{uri}: {code}"
        if code in _NOT_FOUND:
            return ObjectNotFoundError(text, uri=uri, code=code)
        if code in _DENIED:
            return AccessDeniedError(text, uri=uri, code=code)
        if code in _TEMPORARY or status >= 500 or status == 429:
            return TemporaryS3Error(text, uri=uri, code=code)
        return PermanentS3Error(text, uri=uri, code=code)
    if isinstance(err, ServerError):
        status = getattr(err, "status_code", 0) or 0
        cls = TemporaryS3Error if status >= 500 or status == 429 else PermanentS3Error
        return cls(f"{uri}: {err}", uri=uri, code=f"HTTP{status}")
    if isinstance(err, InvalidResponseError):
        status = int(getattr(err, "_code", 0) or 0)
        text = str(err)
        cls = TemporaryS3Error if status >= 500 or status == 429 or status == 0 else PermanentS3Error
        return cls(f"{uri}: unexpected response from the object store: {text.strip()}", uri=uri, code=f"HTTP{status}")
    if isinstance(err, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        return TemporaryS3Error(f"{uri}: the object store could not be reached: {err}", uri=uri, code="ConnectionError")
    if isinstance(err, MinioException):
        return PermanentS3Error(f"{uri}: {err}", uri=uri)
    raise err


class _Mapped:
    """``with _Mapped(uri):`` turns client-library exceptions into ours."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, S3Error) or not isinstance(
            exc, (_minio_errors()[3], urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
        ):
            return False
        raise _map_error(exc, self.uri) from exc


# ---------------------------------------------------------------------------------------
# Locations and settings
# ---------------------------------------------------------------------------------------

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$", re.IGNORECASE)


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key (the key may be a prefix ending in ``/``, or empty)."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, relative: str) -> "S3Location":
        """The location of ``relative`` below this prefix (a ``/`` is inserted when missing)."""
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Location(self.bucket, base + relative.lstrip("/"))


def parse_uri(uri: str) -> S3Location:
    """``s3://bucket/key`` -> ``S3Location``; raises ``ValueError`` naming the rule broken."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an S3 URI: it must start with 's3://'")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise ValueError(
            f"{uri!r} is not an S3 URI: bucket {bucket!r} must be 3-63 letters, digits, '.', '-' or '_'"
        )
    if "\x00" in key:
        raise ValueError(f"{uri!r} is not an S3 URI: the key contains a NUL byte")
    return S3Location(bucket, key)


@dataclass(frozen=True)
class S3Settings:
    """How to reach the store.

    ``endpoint`` is a URL (``http://minio:9000``, ``https://s3.eu-west-1.amazonaws.com``) or a
    bare ``host:port`` (then ``secure`` decides the scheme). ``ca_file`` is a PEM bundle for
    stores with a private CA; ``verify_tls=False`` is only for tests.
    """

    endpoint: str
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None
    session_token: str | None = field(default=None, repr=False)
    secure: bool | None = None
    ca_file: str | None = None
    verify_tls: bool = True
    path_style: bool = True
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    retries: int = 3

    #: The environment variables ``from_env`` reads (suffixes after the prefix).
    ENV_SUFFIXES = ("ENDPOINT", "REGION", "ACCESS_KEY", "SECRET_KEY", "SESSION_TOKEN", "CA_FILE", "INSECURE_SKIP_VERIFY")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, prefix: str = "COMPONENT_OPERATOR_S3_") -> "S3Settings":
        """Read ``<prefix>ENDPOINT``, ``REGION``, ``ACCESS_KEY``, ``SECRET_KEY``, ``SESSION_TOKEN``, ``CA_FILE``."""
        env = os.environ if env is None else env
        endpoint = env.get(prefix + "ENDPOINT", "").strip()
        if not endpoint:
            raise ValueError(f"{prefix}ENDPOINT is not set: the object store's URL, e.g. http://minio:9000")
        return cls(
            endpoint=endpoint,
            access_key=env.get(prefix + "ACCESS_KEY") or None,
            secret_key=env.get(prefix + "SECRET_KEY") or None,
            region=env.get(prefix + "REGION") or None,
            session_token=env.get(prefix + "SESSION_TOKEN") or None,
            ca_file=env.get(prefix + "CA_FILE") or None,
            verify_tls=env.get(prefix + "INSECURE_SKIP_VERIFY", "").lower() not in ("1", "true", "yes"),
        )

    def host_and_secure(self) -> tuple[str, bool]:
        if "://" in self.endpoint:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https"):
                raise ValueError(f"S3 endpoint {self.endpoint!r} must use http or https")
            if parts.path not in ("", "/"):
                raise ValueError(f"S3 endpoint {self.endpoint!r} must not have a path")
            return parts.netloc, parts.scheme == "https"
        return self.endpoint, True if self.secure is None else self.secure


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about one object. ``metadata`` holds the user metadata (lower-case keys)."""

    uri: str
    key: str
    size: int
    etag: str | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


class ObjectStore:
    """A thin, error-mapped facade over one S3 client. Thread-safe (urllib3 pools are)."""

    def __init__(self, settings: S3Settings, *, client: Minio | None = None) -> None:
        self.settings = settings
        self._client = client if client is not None else self._make_client(settings)

    @staticmethod
    def _make_client(settings: S3Settings) -> Minio:
        host, secure = settings.host_and_secure()
        pool: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
            "maxsize": 10,
            "retries": urllib3.Retry(
                total=settings.retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504],
                allowed_methods=None,  # S3 requests are idempotent (PUT of a whole object included)
            ),
        }
        if secure:
            if settings.verify_tls:
                pool["cert_reqs"] = "CERT_REQUIRED"
                pool["ca_certs"] = settings.ca_file or _default_ca_bundle()
            else:
                pool["cert_reqs"] = "CERT_NONE"
        from minio import Minio

        client = Minio(
            host,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            session_token=settings.session_token,
            secure=secure,
            region=settings.region,
            http_client=urllib3.PoolManager(**pool),
            cert_check=settings.verify_tls,
        )
        if settings.path_style:
            client.disable_virtual_style_endpoint()
        return client

    # -- buckets ---------------------------------------------------------------------

    def ensure_bucket(self, bucket: str) -> bool:
        """Create the bucket unless it exists; True when it was created."""
        uri = f"s3://{bucket}/"
        with _Mapped(uri):
            if self._client.bucket_exists(bucket):
                return False
            try:
                self._client.make_bucket(bucket, location=self.settings.region)
            except _minio_errors()[0] as err:
                if err.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return False
                raise
        return True

    def remove_bucket(self, bucket: str, *, force: bool = False) -> None:
        """Delete the bucket (with ``force``: its objects first); a missing bucket is fine."""
        uri = f"s3://{bucket}/"
        if force:
            try:
                self.delete_prefix(uri)
            except ObjectNotFoundError:
                return
        with _Mapped(uri):
            try:
                self._client.remove_bucket(bucket)
            except _minio_errors()[0] as err:
                if err.code != "NoSuchBucket":
                    raise

    # -- writing ---------------------------------------------------------------------

    def put_bytes(
        self,
        uri: str,
        data: bytes,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        loc = parse_uri(uri)
        with _Mapped(uri):
            result = self._client.put_object(
                loc.bucket, loc.key, io.BytesIO(data), len(data),
                content_type=content_type, metadata=_user_metadata(metadata),
            )
        return ObjectInfo(uri=str(loc), key=loc.key, size=len(data), etag=result.etag,
                          content_type=content_type, metadata=dict(metadata or {}))

    def put_file(
        self,
        uri: str,
        path: str | os.PathLike,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        loc = parse_uri(uri)
        size = os.stat(path).st_size
        with _Mapped(uri):
            result = self._client.fput_object(
                loc.bucket, loc.key, os.fspath(path), content_type=content_type, metadata=_user_metadata(metadata),
            )
        return ObjectInfo(uri=str(loc), key=loc.key, size=size, etag=result.etag,
                          content_type=content_type, metadata=dict(metadata or {}))

    # -- reading ---------------------------------------------------------------------

    def get_object_metadata(self, uri: str) -> ObjectInfo:
        loc = parse_uri(uri)
        with _Mapped(uri):
            stat = self._client.stat_object(loc.bucket, loc.key)
        return _info_from_stat(loc, stat)

    def get_bytes(self, uri: str, *, max_bytes: int) -> bytes:
        """The whole object; ``ObjectTooLargeError`` (with the actual size) when above ``max_bytes``."""
        data, _ = self.get_bytes_and_metadata(uri, max_bytes=max_bytes)
        return data

    def get_bytes_and_metadata(self, uri: str, *, max_bytes: int) -> tuple[bytes, ObjectInfo]:
        """Content and metadata from one GET, so both describe the same version of the object."""
        loc = parse_uri(uri)
        with _Mapped(uri):
            response = self._client.get_object(loc.bucket, loc.key)
            try:
                info = _info_from_headers(loc, response.headers)
                if info.size > max_bytes:
                    raise ObjectTooLargeError(str(loc), info.size, max_bytes)
                buffer = bytearray()
                for chunk in response.stream(_CHUNK):
                    buffer += chunk
                    if len(buffer) > max_bytes:
                        raise ObjectTooLargeError(str(loc), max(len(buffer), info.size), max_bytes)
            finally:
                response.close()
                response.release_conn()
        return bytes(buffer), info

    def download_file(
        self, uri: str, path: str | os.PathLike, *, max_bytes: int | None = None, sha256: bool = False
    ) -> tuple[int, str | None]:
        """Stream the object into ``path`` (parents created); returns (size, sha256 hex or None).

        With ``max_bytes`` the download stops, and the partial file is removed, as soon as the
        object is known to be larger.
        """
        loc = parse_uri(uri)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256() if sha256 else None
        written = 0
        try:
            with _Mapped(uri):
                response = self._client.get_object(loc.bucket, loc.key)
                try:
                    size = _info_from_headers(loc, response.headers).size
                    if max_bytes is not None and size > max_bytes:
                        raise ObjectTooLargeError(str(loc), size, max_bytes)
                    with open(target, "wb") as out:
                        for chunk in response.stream(_CHUNK):
                            written += len(chunk)
                            if max_bytes is not None and written > max_bytes:
                                raise ObjectTooLargeError(str(loc), max(written, size), max_bytes)
                            out.write(chunk)
                            if digest is not None:
                                digest.update(chunk)
                finally:
                    response.close()
                    response.release_conn()
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return written, digest.hexdigest() if digest is not None else None

    def hash_object(self, uri: str, *, max_bytes: int) -> tuple[int, str]:
        """(size, sha256 hex) of the object, streamed and never stored; ``ObjectTooLargeError``
        as soon as it is known to be larger than ``max_bytes``."""
        loc = parse_uri(uri)
        digest = hashlib.sha256()
        read = 0
        with _Mapped(uri):
            response = self._client.get_object(loc.bucket, loc.key)
            try:
                size = _info_from_headers(loc, response.headers).size
                if size > max_bytes:
                    raise ObjectTooLargeError(str(loc), size, max_bytes)
                for chunk in response.stream(_CHUNK):
                    read += len(chunk)
                    if read > max_bytes:
                        raise ObjectTooLargeError(str(loc), max(read, size), max_bytes)
                    digest.update(chunk)
            finally:
                response.close()
                response.release_conn()
        return read, digest.hexdigest()

    # -- prefixes --------------------------------------------------------------------

    def list_prefix(self, uri: str, *, limit: int | None = None) -> Iterator[ObjectInfo]:
        """Every object whose key starts with the prefix (recursively), in key order."""
        loc = parse_uri(uri)
        count = 0
        with _Mapped(uri):
            for obj in self._client.list_objects(loc.bucket, prefix=loc.key, recursive=True):
                if obj.is_dir:
                    continue
                yield ObjectInfo(uri=f"s3://{loc.bucket}/{obj.object_name}", key=obj.object_name,
                                 size=int(obj.size or 0), etag=(obj.etag or "").strip('"') or None)
                count += 1
                if limit is not None and count >= limit:
                    return

    def delete_prefix(self, uri: str) -> int:
        """Delete every object under the prefix; returns how many were deleted."""
        from minio.deleteobjects import DeleteObject

        loc = parse_uri(uri)
        keys = [info.key for info in self.list_prefix(uri)]
        with _Mapped(uri):
            for start in range(0, len(keys), 1000):
                batch = [DeleteObject(key) for key in keys[start : start + 1000]]
                errors = list(self._client.remove_objects(loc.bucket, batch))
                if errors:
                    first = errors[0]
                    raise PermanentS3Error(
                        f"{uri}: {len(errors)} object(s) could not be deleted, e.g. {first.name}: {first.code}",
                        uri=uri, code=first.code or "",
                    )
        return len(keys)


# ---------------------------------------------------------------------------------------
# Presigning
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """An access key pair (and the session token of temporary credentials)."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.access_key or not self.secret_key:
            raise ValueError("object-storage credentials need an access key and a secret key "
                             "(COMPONENT_OPERATOR_S3_ACCESS_KEY, COMPONENT_OPERATOR_S3_SECRET_KEY)")


@dataclass(frozen=True)
class PostForm:
    """An S3 POST policy, signed: what a client needs to create objects below ``key_prefix``.

    ``fields`` go into the multipart/form-data body before the ``key`` (below ``key_prefix``),
    the allowed extra fields (``Content-Type``, the user metadata named in the policy) and,
    last, the ``file``. ``max_bytes`` is the policy's ``content-length-range`` upper bound.
    """

    url: str
    bucket: str
    key_prefix: str
    fields: Mapping[str, str] = field(repr=False)
    max_bytes: int
    expires_at: str
    metadata_keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "bucket": self.bucket, "keyPrefix": self.key_prefix, "fields": dict(self.fields),
                "maxBytes": self.max_bytes, "expiresAt": self.expires_at, "metadataKeys": list(self.metadata_keys)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PostForm":
        try:
            return cls(url=str(data["url"]), bucket=str(data["bucket"]), key_prefix=str(data["keyPrefix"]),
                       fields={str(k): str(v) for k, v in dict(data["fields"]).items()},
                       max_bytes=int(data["maxBytes"]), expires_at=str(data["expiresAt"]),
                       metadata_keys=tuple(str(k) for k in data.get("metadataKeys") or ()))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"the upload grant is not a POST form document: {type(err).__name__}: {err}") from None


def _utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"presigning needs an aware time (UTC), got the naive {moment.isoformat()}")
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _check_expiry(expires: timedelta) -> int:
    seconds = int(expires.total_seconds())
    if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"a presigned request's lifetime must be 1 s to {MAX_PRESIGN_SECONDS} s (SigV4's 7 days), "
                         f"got {expires.total_seconds():g} s")
    return seconds


class Presigner:
    """SigV4 presigning for one endpoint as its clients reach it (no network, clock passed in).

    ``endpoint`` is the URL the holder of the URLs connects to (for job pods:
    ``objectStorage.podEndpoint``): the host is part of what GET URLs sign. The region must be
    known (it is part of the signature; a lookup would be a network call).
    """

    def __init__(self, endpoint: str, region: str, credentials: Credentials) -> None:
        if not region:
            raise ValueError("presigning needs the object store's region (objectStorage.region)")
        self.settings = S3Settings(endpoint=endpoint, region=region, access_key=credentials.access_key,
                                   secret_key=credentials.secret_key, session_token=credentials.session_token)
        self.credentials = credentials
        self.region = region
        host, secure = self.settings.host_and_secure()
        self.base_url = f"{'https' if secure else 'http'}://{host}"
        # The client only builds and signs URLs here; it never connects (the region is given).
        self._client = ObjectStore._make_client(self.settings)

    def get_url(self, uri: str, *, now: datetime, expires: timedelta) -> str:
        """A presigned GET URL of the object ``uri`` (``s3://bucket/key``), valid ``expires`` from ``now``."""
        loc = parse_uri(uri)
        if not loc.key or loc.key.endswith("/"):
            raise ValueError(f"{uri!r} must name an object to presign a GET for it, not a bucket or prefix")
        _check_expiry(expires)
        return self._client.presigned_get_object(loc.bucket, loc.key, expires=expires, request_date=_utc_naive(now))

    def post_form(self, bucket: str, key_prefix: str, *, now: datetime, expires: timedelta, max_bytes: int,
                  metadata_keys: tuple[str, ...] = ()) -> PostForm:
        """A signed POST policy for objects ``key_prefix*`` of at most ``max_bytes`` bytes.

        The conditions are those of minio's ``PostPolicy`` with ``add_starts_with_condition("key",
        key_prefix)``, ``add_starts_with_condition("Content-Type", "")``, one empty starts-with per
        metadata key and ``add_content_length_range_condition(0, max_bytes)``; the document and the
        signature are what ``Minio.presigned_post_policy`` makes of it (a unit test compares the
        two), except that the date is ``now`` instead of the wall clock.
        """
        if not key_prefix or not key_prefix.endswith("/") or key_prefix.startswith("/"):
            raise ValueError(f"the upload key prefix {key_prefix!r} must be a relative prefix ending in '/'")
        if not 0 < max_bytes <= MAX_POST_BYTES:
            raise ValueError(f"the upload size limit must be 1 to {MAX_POST_BYTES} bytes (S3's POST limit), got {max_bytes}")
        for key in metadata_keys:
            if not re.fullmatch(r"[a-z0-9\-]+", key):
                raise ValueError(f"user metadata key {key!r} must be lower-case letters, digits and '-'")
        seconds = _check_expiry(expires)
        date = _utc_naive(now)
        expiration = date + timedelta(seconds=seconds)
        from minio.signer import get_credential_string, post_presign_v4
        from minio.time import to_amz_date, to_iso8601utc

        creds = self.credentials
        credential = get_credential_string(creds.access_key, date, self.region)
        amz_date = to_amz_date(date)
        conditions: list[list[Any]] = [["eq", "$bucket", bucket]]
        conditions.append(["starts-with", "$key", key_prefix])
        conditions.append(["starts-with", "$Content-Type", ""])
        conditions += [["starts-with", f"${META_PREFIX}{key}", ""] for key in metadata_keys]
        conditions.append(["content-length-range", 0, max_bytes])
        conditions.append(["eq", "$x-amz-algorithm", "AWS4-HMAC-SHA256"])
        conditions.append(["eq", "$x-amz-credential", credential])
        if creds.session_token:
            conditions.append(["eq", "$x-amz-security-token", creds.session_token])
        conditions.append(["eq", "$x-amz-date", amz_date])
        policy = {"expiration": to_iso8601utc(expiration), "conditions": conditions}
        encoded = base64.b64encode(json.dumps(policy).encode()).decode("utf-8")
        fields = {
            "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": credential,
            "x-amz-date": amz_date,
            "policy": encoded,
            "x-amz-signature": post_presign_v4(encoded, creds.secret_key, date, self.region),
        }
        if creds.session_token:
            fields["x-amz-security-token"] = creds.session_token
        return PostForm(url=f"{self.base_url}/{bucket}", bucket=bucket, key_prefix=key_prefix, fields=fields,
                        max_bytes=max_bytes, expires_at=to_iso8601utc(expiration), metadata_keys=tuple(metadata_keys))


def _user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    if not metadata:
        return None
    out = {}
    for key, value in metadata.items():
        if not re.fullmatch(r"[A-Za-z0-9\-]+", key):
            raise ValueError(f"user metadata key {key!r} must be letters, digits and '-' (it becomes an HTTP header)")
        out[META_PREFIX + key.lower()] = str(value)
    return out


def _metadata_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower()[len(META_PREFIX) :]: v for k, v in headers.items() if k.lower().startswith(META_PREFIX)}


def _info_from_headers(loc: S3Location, headers: Mapping[str, str]) -> ObjectInfo:
    return ObjectInfo(
        uri=str(loc), key=loc.key, size=int(headers.get("content-length") or 0),
        etag=(headers.get("etag") or "").strip('"') or None, content_type=headers.get("content-type"),
        metadata=_metadata_from_headers(headers),
    )


def _info_from_stat(loc: S3Location, stat: Any) -> ObjectInfo:
    return ObjectInfo(
        uri=str(loc), key=loc.key, size=int(stat.size or 0), etag=(stat.etag or "").strip('"') or None,
        content_type=stat.content_type, metadata=_metadata_from_headers(stat.metadata or {}),
    )


def _default_ca_bundle() -> str | None:
    """SSL_CERT_FILE, else certifi's bundle (frozen into the agent), else the system's."""
    candidates = [os.environ.get("SSL_CERT_FILE")]
    try:
        import certifi

        candidates.append(certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with minio
        pass
    candidates += ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    return None
