"""Presigned transfers: how the agent reads inputs and writes outputs without any credential.

A job pod never holds the object store's access key. The operator gives each attempt exactly
what it needs (``planning.dataplane.build_agent_secret``):

* one presigned GET URL per input object (files, images, the model and ground-truth
  tarballs), so ``prepare`` can read those objects and nothing else;
* one signed S3 POST policy that lets ``run`` create objects only below the attempt's own
  prefix (``jobs/<namespace>/<name>/<uid>/<attempt>/``), each at most ``maxBytes`` bytes.

Both expire (the bound is documented in ``planning.dataplane.grant_lifetime``). Reading is a
plain streamed GET; writing is a ``multipart/form-data`` POST whose body is streamed from disk
(``MultipartBody``: fields, then the file, never all in memory), hashed while it is sent, so
the SHA-256 in the signed result is that of the bytes the store received.

``PresignedStore`` has the methods of ``adapters.s3.ObjectStore`` that ``prepare`` and ``run``
use, and raises the same ``S3Error`` family, so staging and uploading code does not care which
one it has. Everything here is the standard library and urllib3 (the agent is frozen).

The handoff file: the init container ``prepare`` gets the signing key and the upload policy
(environment from the Secret: an init container's environment is gone when it exits), and
passes them to ``run`` in a file on the pod's shared ``/tmp`` (mode 0600 in a 0700 directory).
``run`` reads it and deletes it before it starts the algorithm, which therefore never finds
it; the algorithm container's own environment holds no secret at all (its PID 1 is staticx's
bootloader, whose ``/proc/1/environ`` a same-uid program can read).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping
from urllib.parse import urlsplit

import urllib3

from ..adapters.s3 import (
    _DENIED,
    _NOT_FOUND,
    _TEMPORARY,
    AccessDeniedError,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectTooLargeError,
    PermanentS3Error,
    PostForm,
    S3Error,
    TemporaryS3Error,
    parse_uri,
)
from .invocation import (
    ENV_DOWNLOAD_PREFIX,
    ENV_HANDOFF_FILE,
    ENV_SIGNING_KEY,
    ENV_UPLOAD,
    DEFAULT_HANDOFF_FILE,
    InvocationError,
    signing_key_from_hex,
)

_CHUNK = 1024 * 1024
#: Bytes of an error response that are read to find its S3 code.
_ERROR_BODY_BYTES = 64 * 1024
_CODE = re.compile(r"<Code>([^<]{1,128})</Code>")
_MESSAGE = re.compile(r"<Message>([^<]{0,512})</Message>")
#: Content types of uploaded outputs by name ending (a fixed table: no mime.types is read).
CONTENT_TYPES = {
    ".json": "application/json", ".csv": "text/csv", ".txt": "text/plain", ".pdf": "application/pdf",
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".zip": "application/zip", ".gz": "application/gzip", ".html": "text/html", ".svg": "image/svg+xml",
    ".mp4": "video/mp4", ".obj": "text/plain",
}


def content_type_for(name: str) -> str:
    lower = name.lower()
    return next((ct for suffix, ct in CONTENT_TYPES.items() if lower.endswith(suffix)), "application/octet-stream")


# ---------------------------------------------------------------------------------------
# What the Secret gives (environment of `prepare`) and the handoff to `run`
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grants:
    """What one attempt may do: GET these objects (source URI -> URL), POST below one prefix."""

    downloads: Mapping[str, str] = field(default_factory=dict, repr=False)
    upload: PostForm | None = field(default=None, repr=False)
    signing_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Grants":
        """``COMPONENT_OPERATOR_DOWNLOAD_<n>`` ({"source", "url"}), ``COMPONENT_OPERATOR_UPLOAD``
        (the POST form) and ``COMPONENT_OPERATOR_SIGNING_KEY_HEX``, each optional here."""
        downloads: dict[str, str] = {}
        for name, value in env.items():
            if not name.startswith(ENV_DOWNLOAD_PREFIX):
                continue
            try:
                item = json.loads(value)
                source, url = str(item["source"]), str(item["url"])
            except (ValueError, KeyError, TypeError):
                raise InvocationError(f"{name} is not a download grant (JSON with 'source' and 'url')") from None
            parse_uri(source)
            _check_url(url, name)
            downloads[source] = url
        upload = None
        if env.get(ENV_UPLOAD):
            try:
                upload = PostForm.from_json(json.loads(env[ENV_UPLOAD]))
            except ValueError as err:
                raise InvocationError(f"{ENV_UPLOAD}: {err}") from None
            _check_url(upload.url, ENV_UPLOAD)
        key = signing_key_from_hex(env[ENV_SIGNING_KEY]) if env.get(ENV_SIGNING_KEY) else None
        return cls(downloads=downloads, upload=upload, signing_key=key)


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvocationError(f"{what}: {parts.scheme or '(no scheme)'}://… is not an http(s) URL")


def handoff_path(env: Mapping[str, str]) -> Path:
    return Path(env.get(ENV_HANDOFF_FILE) or DEFAULT_HANDOFF_FILE)


def write_handoff(path: Path, *, signing_key: bytes, upload: PostForm | None) -> None:
    """Leave the key and the upload policy for ``run``: 0600 file in a 0700 directory, written
    to a temporary name and renamed (a second ``prepare`` of the same pod replaces it)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    body = json.dumps({"signingKeyHex": signing_key.hex(), "upload": upload.to_json() if upload else None}).encode()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Handoff:
    signing_key: bytes = field(repr=False)
    upload: PostForm | None = field(default=None, repr=False)


def consume_handoff(path: Path) -> Handoff:
    """Read the handoff file and delete it (and its directory when empty) at once.

    Raises ``InvocationError`` when it is missing (``prepare`` did not run, or this container
    already ran: it is single-use) or cannot be deleted: then the program must not start,
    since it could read the file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InvocationError(f"the handoff file {path} from `prepare` is missing (it is read once; "
                              f"{ENV_HANDOFF_FILE} must name the same file in both containers)") from None
    except OSError as err:
        raise InvocationError(f"the handoff file {path} cannot be read: {err.strerror}") from None
    try:
        with os.fdopen(fd, "rb") as stream:
            body = stream.read(1024 * 1024)
    finally:
        try:
            path.unlink()
        except OSError as err:
            raise InvocationError(f"the handoff file {path} cannot be deleted ({err.strerror}); "
                                  "the program is not started, as it could read it") from None
        try:
            path.parent.rmdir()
        except OSError:
            pass
    try:
        data = json.loads(body)
        key = signing_key_from_hex(str(data["signingKeyHex"]))
        upload = PostForm.from_json(data["upload"]) if data.get("upload") else None
    except (ValueError, KeyError, TypeError) as err:
        raise InvocationError(f"the handoff file {path} is not valid: {err}") from None
    return Handoff(signing_key=key, upload=upload)


# ---------------------------------------------------------------------------------------
# multipart/form-data, streamed
# ---------------------------------------------------------------------------------------


class MultipartBody:
    """A ``multipart/form-data`` body read in pieces: the fields, the file (``source``: a path
    or bytes, exactly ``size`` bytes), the closing boundary. ``sha256``/``sent`` describe the
    file bytes actually read, so the digest is that of what was sent."""

    def __init__(self, fields: list[tuple[str, str]], *, source: Path | bytes, size: int, file_name: str,
                 content_type: str) -> None:
        self.boundary = "----component-operator-" + secrets.token_hex(16)
        for name, value in fields:
            if any(c in name + value for c in "\r\n\""):
                raise ValueError(f"form field {name!r} must not contain CR, LF or a double quote")
        safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", file_name) or "file"
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields
        )
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n").encode()
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._source = source
        self.size = size
        self.length = len(head) + size + len(self._tail)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self.sha256 = hashlib.sha256()
        self.sent = 0
        self._stage = 0  # 0 head, 1 file, 2 tail, 3 done
        self._stream: IO[bytes] | None = None

    def read(self, amount: int = -1) -> bytes:
        while self._stage < 3:
            if self._stage == 0:
                self._stage = 1
                return self._head
            if self._stage == 1:
                chunk = self._read_file(_CHUNK if amount is None or amount < 0 else max(amount, 1))
                if chunk:
                    return chunk
                self._stage = 2
                continue
            self._stage = 3
            return self._tail
        return b""

    def _read_file(self, amount: int) -> bytes:
        left = self.size - self.sent
        if left <= 0:
            self.close()
            return b""
        if isinstance(self._source, (bytes, bytearray)):
            chunk = bytes(self._source[self.sent : self.sent + min(amount, left)])
        else:
            if self._stream is None:
                self._stream = open(self._source, "rb")  # noqa: SIM115 - closed in close()
            chunk = self._stream.read(min(amount, left))
        if not chunk:
            raise OSError(f"{self._source} became shorter while it was uploaded: {self.sent} of {self.size} bytes")
        self.sent += len(chunk)
        self.sha256.update(chunk)
        return chunk

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


# ---------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------


def _error(status: int, body: bytes, uri: str, what: str) -> S3Error:
    text = body.decode("utf-8", "replace")
    match = _CODE.search(text)
    code = match.group(1) if match else f"HTTP{status}"
    message = _MESSAGE.search(text)
    detail = f"{uri}: {what} answered HTTP {status} {code}" + (f": {message.group(1)}" if message else "")
    if code in _NOT_FOUND or (status == 404 and not match):
        return ObjectNotFoundError(detail, uri=uri, code=code)
    if code in _DENIED or status == 403:
        return AccessDeniedError(detail, uri=uri, code=code)
    if code in _TEMPORARY or status >= 500 or status == 429:
        return TemporaryS3Error(detail, uri=uri, code=code)
    return PermanentS3Error(detail, uri=uri, code=code)


def _unreachable(err: BaseException, uri: str) -> TemporaryS3Error:
    return TemporaryS3Error(f"{uri}: the object store could not be reached: {err}", uri=uri, code="ConnectionError")


def _default_ca_bundle() -> str | None:
    from ..adapters.s3 import _default_ca_bundle as bundle

    return bundle()


class PresignedStore:
    """``download_file`` through presigned GET URLs, ``upload_file``/``put_bytes`` through the POST policy."""

    def __init__(self, downloads: Mapping[str, str] | None = None, upload: PostForm | None = None, *,
                 ca_file: str | None = None, connect_timeout: float = 10.0, read_timeout: float = 300.0,
                 retries: int = 3) -> None:
        self.downloads = dict(downloads or {})
        self.upload = upload
        self._retries = retries
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self._ca_file = ca_file
        self._pool: urllib3.PoolManager | None = None

    @property
    def pool(self) -> urllib3.PoolManager:
        """The connection pool, with its TLS context made (CA bundle read) on first use."""
        if self._pool is None:
            context = ssl.create_default_context(cafile=self._ca_file or _default_ca_bundle())
            self._pool = urllib3.PoolManager(maxsize=4, timeout=self._timeout, ssl_context=context, blocksize=256 * 1024)
        return self._pool

    # -- reading -----------------------------------------------------------------------

    def download_file(self, uri: str, path: str | os.PathLike, *, max_bytes: int | None = None,
                      sha256: bool = False) -> tuple[int, str | None]:
        """Stream the object into ``path`` (parents created); returns (size, sha256 hex or None).

        ``ObjectTooLargeError`` (and no partial file) as soon as the object is known to be
        larger than ``max_bytes``; ``AccessDeniedError`` for an object this attempt was not
        given (no URL) or an expired URL.
        """
        url = self.downloads.get(uri)
        if url is None:
            raise AccessDeniedError(f"{uri}: this job attempt was given no presigned URL for it", uri=uri,
                                    code="NoGrant")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256() if sha256 else None
        written = 0
        retry = urllib3.Retry(total=self._retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504],
                              allowed_methods=["GET"], raise_on_status=False, redirect=0)
        try:
            try:
                response = self.pool.request("GET", url, preload_content=False, decode_content=False, redirect=False,
                                             retries=retry)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise _unreachable(err, uri) from err
            try:
                if response.status != 200:
                    raise _error(response.status, response.read(_ERROR_BODY_BYTES), uri, "GET")
                declared = int(response.headers.get("content-length") or 0)
                if max_bytes is not None and declared > max_bytes:
                    raise ObjectTooLargeError(uri, declared, max_bytes)
                with open(target, "wb") as out:
                    try:
                        for chunk in response.stream(_CHUNK, decode_content=False):
                            written += len(chunk)
                            if max_bytes is not None and written > max_bytes:
                                raise ObjectTooLargeError(uri, max(written, declared), max_bytes)
                            out.write(chunk)
                            if digest is not None:
                                digest.update(chunk)
                    except (urllib3.exceptions.HTTPError, OSError) as err:
                        if isinstance(err, FileNotFoundError):
                            raise
                        raise _unreachable(err, uri) from err
            finally:
                response.release_conn()
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return written, digest.hexdigest() if digest is not None else None

    # -- writing -----------------------------------------------------------------------

    def _post(self, uri: str, source: Path | bytes, size: int, *, content_type: str,
              metadata: Mapping[str, str] | None) -> tuple[int, str]:
        form = self.upload
        if form is None:
            raise AccessDeniedError(f"{uri}: this job attempt was given no upload policy", uri=uri, code="NoGrant")
        loc = parse_uri(uri)
        if loc.bucket != form.bucket or not loc.key.startswith(form.key_prefix):
            raise AccessDeniedError(f"{uri}: outside this attempt's upload grant s3://{form.bucket}/{form.key_prefix}",
                                    uri=uri, code="NoGrant")
        if size > form.max_bytes:
            raise ObjectTooLargeError(uri, size, form.max_bytes)
        fields = [("key", loc.key), *form.fields.items(), ("Content-Type", content_type)]
        for key, value in (metadata or {}).items():
            if key.lower() not in form.metadata_keys:
                raise AccessDeniedError(f"{uri}: metadata {key!r} is not allowed by the upload policy", uri=uri,
                                        code="NoGrant")
            fields.append((f"x-amz-meta-{key.lower()}", str(value)))
        body = MultipartBody(fields, source=source, size=size, file_name=loc.key.rsplit("/", 1)[-1],
                             content_type=content_type)
        try:
            response = self.pool.request("POST", form.url, body=body, redirect=False, retries=False,
                                         headers={"Content-Type": body.content_type,
                                                  "Content-Length": str(body.length)},
                                         preload_content=False)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise _unreachable(err, uri) from err
        finally:
            body.close()
        try:
            if response.status not in (200, 201, 204):
                raise _error(response.status, response.read(_ERROR_BODY_BYTES), uri, "POST")
            response.read(_ERROR_BODY_BYTES)
        finally:
            response.release_conn()
        if body.sent != size:
            raise PermanentS3Error(f"{uri}: {body.sent} of {size} bytes were sent", uri=uri, code="IncompleteBody")
        return body.sent, body.sha256.hexdigest()

    def upload_file(self, uri: str, path: str | os.PathLike, *, content_type: str = "application/octet-stream",
                    metadata: Mapping[str, str] | None = None) -> tuple[int, str]:
        """POST the file; returns (size, sha256) of the bytes sent (read once, streamed)."""
        size = os.stat(path).st_size
        return self._post(uri, Path(path), size, content_type=content_type, metadata=metadata)

    def put_file(self, uri: str, path: str | os.PathLike, *, metadata: Mapping[str, str] | None = None,
                 content_type: str = "application/octet-stream") -> ObjectInfo:
        size, _ = self.upload_file(uri, path, content_type=content_type, metadata=metadata)
        loc = parse_uri(uri)
        return ObjectInfo(uri=str(loc), key=loc.key, size=size, content_type=content_type, metadata=dict(metadata or {}))

    def put_bytes(self, uri: str, data: bytes, *, metadata: Mapping[str, str] | None = None,
                  content_type: str = "application/octet-stream") -> ObjectInfo:
        size, _ = self._post(uri, bytes(data), len(data), content_type=content_type, metadata=metadata)
        loc = parse_uri(uri)
        return ObjectInfo(uri=str(loc), key=loc.key, size=size, content_type=content_type, metadata=dict(metadata or {}))

    def warm_up(self) -> None:
        """Do now what would otherwise happen lazily after the program started (see
        ``run.seal_imports``): the TLS context and its CA bundle, a multipart body, error parsing."""
        _ = self.pool
        body = MultipartBody([("key", "k")], source=b"x", size=1, file_name="f", content_type=content_type_for("a.json"))
        while body.read(_CHUNK):
            pass
        _error(503, b"<Error><Code>SlowDown</Code><Message>m</Message></Error>", "s3://b/k", "POST")

