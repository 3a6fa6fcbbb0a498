"""A small OCI distribution API client: what does an image reference point to, right now?

A ComponentImage names an image in a registry instead of carrying a ``docker save`` tarball,
so the operator must read the manifest and configuration from the registry itself, with
whatever credentials the image's pull secret holds. Only reads are needed, so a few hundred
lines of httpx replace a registry SDK:

* reference parsing with Docker's defaults (``ubuntu`` -> ``docker.io/library/ubuntu:latest``);
* anonymous access, HTTP basic auth, and the bearer-token challenge
  (``WWW-Authenticate: Bearer realm=...,service=...,scope=...``) with credentials from a
  ``kubernetes.io/dockerconfigjson`` secret (``username``/``password``, ``auth``,
  ``identitytoken``, ``registrytoken``);
* HTTPS with an optional CA bundle, or plain HTTP for a local registry;
* OCI and Docker v2 manifests and indexes (linux/amd64 is picked from an index);
* errors classified as permanent or transient (``RegistryError.transient``);
* layers are downloaded only when ``config.User`` names a user or group: then they are
  streamed from the top down (``adapters.rootfs``, bounded) until ``/etc/passwd`` and
  ``/etc/group`` are found, so that the name can be turned into a uid. Numeric users never
  download a layer.

The client is synchronous; the operator calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import certifi
import httpx

from ..planning import image_users
from ..planning.images import PLATFORM_ARCHITECTURE, PLATFORM_OS, ManifestInfo, check_image_config, image_facts
from . import rootfs

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")
ACCEPT = ", ".join((*INDEX_TYPES, *MANIFEST_TYPES))

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 8 * 1024 * 1024
#: Compressed layer bytes read to resolve a USER name, and the variable that overrides it.
USER_MAX_LAYER_BYTES = rootfs.MAX_LAYER_BYTES
USER_MAX_LAYER_BYTES_ENV = rootfs.MAX_LAYER_BYTES_ENV

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_BLOB_DIGEST_RE = re.compile(r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$")


# --- errors -------------------------------------------------------------------------------


class RegistryError(Exception):
    """The registry could not be inspected; ``reason`` is the Ready condition's reason."""

    reason = "RegistryError"
    transient = False

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason:
            self.reason = reason


class InvalidReference(RegistryError):
    reason = "InvalidReference"


class ManifestUnknown(RegistryError):
    reason = "ManifestUnknown"


class Unauthorized(RegistryError):
    reason = "Unauthorized"


class MalformedManifest(RegistryError):
    reason = "InvalidManifest"


class BlobUnknown(RegistryError):
    reason = "MissingConfig"


class RegistryUnavailable(RegistryError):
    """Connection refused, timeouts, 5xx and 429: worth another try later."""

    reason = "RegistryUnreachable"
    transient = True


# --- references ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageReference:
    """``registry/repository[:tag][@digest]`` with Docker's defaults applied."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def manifest_reference(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def is_pinned(self) -> bool:
        return self.digest is not None

    def pinned(self, digest: str) -> str:
        return f"{self.registry}/{self.repository}@{digest}"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Parse an image reference as Docker does; raise InvalidReference naming the broken part."""
    original = text
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"spec.image {original!r} is not a valid image reference: it is empty or contains whitespace.")
    name, _, digest = text.partition("@")
    if digest and not _DIGEST_RE.match(digest):
        raise InvalidReference(
            f"spec.image {original!r} is not a valid image reference: the digest {digest!r} must be 'sha256:' followed by 64 lower-case hex digits."
        )
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference(
                f"spec.image {original!r} is not a valid image reference: the tag {tag!r} must be 1-128 letters, "
                "digits, '_', '.' or '-', not starting with '.' or '-'."
            )
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, path = first, rest
        if not _HOST_RE.match(registry):
            raise InvalidReference(f"spec.image {original!r} is not a valid image reference: {registry!r} is not a valid registry host[:port].")
        registry = registry.lower()
    else:
        registry, path = DOCKER_HUB, name
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not _PATH_RE.match(path) or len(registry) + 1 + len(path) > 255:
        raise InvalidReference(
            f"spec.image {original!r} is not a valid image reference: the repository {path!r} must be lower-case "
            "letters and digits separated by '/', '.', '_', '__' or '-' (255 characters at most)."
        )
    if tag is None and not digest:
        tag = "latest"
    return ImageReference(registry=registry, repository=path, tag=tag, digest=digest or None)


# --- credentials --------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    """An OAuth2 refresh token (``docker login`` with some identity providers)."""
    registry_token: str = ""
    """A bearer token to send as is."""

    def __repr__(self) -> str:  # never log secrets
        return f"Credentials(username={self.username!r})"


def normalize_registry(key: str) -> str:
    """The host[:port] a docker config ``auths`` key stands for (Docker Hub aliases -> docker.io)."""
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def credentials_from_docker_config(docker_config: dict[str, Any] | None, registry: str) -> Credentials | None:
    """Credentials for ``registry`` from a ``.dockerconfigjson`` (or legacy ``.dockercfg``) document."""
    if not isinstance(docker_config, dict):
        return None
    auths = docker_config.get("auths") if isinstance(docker_config.get("auths"), dict) else docker_config
    wanted = normalize_registry(registry)
    for key, entry in auths.items():
        if not isinstance(entry, dict) or normalize_registry(key) != wanted:
            continue
        username, password = entry.get("username") or "", entry.get("password") or ""
        if entry.get("auth") and not (username and password):
            try:
                decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
            except (ValueError, UnicodeDecodeError) as err:
                raise RegistryError(
                    f"The pull secret's 'auth' entry for {key!r} is not base64 of 'user:password': {err}", reason="InvalidPullSecret"
                ) from err
            username, sep, password = decoded.partition(":")
            if not sep:
                raise RegistryError(f"The pull secret's 'auth' entry for {key!r} is not base64 of 'user:password'.", reason="InvalidPullSecret")
        return Credentials(
            username=str(username),
            password=str(password),
            identity_token=str(entry.get("identitytoken") or ""),
            registry_token=str(entry.get("registrytoken") or ""),
        )
    return None


# --- client -------------------------------------------------------------------------------

_PARAM_RE = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM_RE.finditer(rest)}
    return scheme.lower(), params


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    """One registry, one set of credentials; use as a context manager."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        ca_file: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        host = DOCKER_HUB_API if normalize_registry(registry) == DOCKER_HUB else registry
        self.base_url = f"{'http' if insecure else 'https'}://{host}"
        self.credentials = credentials
        verify: ssl.SSLContext | bool = True
        if ca_file:  # trusted in addition to the CAs httpx trusts by default
            verify = ssl.create_default_context(cafile=certifi.where())
            verify.load_verify_locations(cafile=ca_file)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=verify,
            transport=transport,
            follow_redirects=True,
            headers={"User-Agent": "component-operator"},
        )
        self._auth: dict[str, str] = {}

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- public operations --

    def resolve(self, ref: ImageReference) -> tuple[str, str]:
        """(digest, media type) of what the reference points to, with a HEAD request (GET if needed)."""
        resp = self._request("HEAD", f"/v2/{ref.repository}/manifests/{ref.manifest_reference}", ref.repository, {"Accept": ACCEPT})
        self._raise_for_status(resp, f"manifest {ref.manifest_reference!r} of {ref.registry}/{ref.repository}", ManifestUnknown)
        digest = resp.headers.get("docker-content-digest", "")
        media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        if not _DIGEST_RE.match(digest):
            digest, media_type, _ = self.get_manifest(ref.repository, ref.manifest_reference)
        return digest, media_type

    def get_manifest(self, repository: str, reference: str) -> tuple[str, str, dict[str, Any]]:
        """(digest, media type, document) of a manifest or index; the digest is verified."""
        what = f"manifest {reference!r} of {self._where(repository)}"
        resp = self._request("GET", f"/v2/{repository}/manifests/{reference}", repository, {"Accept": ACCEPT})
        self._raise_for_status(resp, what, ManifestUnknown)
        raw = resp.content
        if len(raw) > MAX_MANIFEST_BYTES:
            raise MalformedManifest(f"The {what} is {len(raw)} bytes, more than the {MAX_MANIFEST_BYTES} allowed.")
        digest = sha256_digest(raw)
        if reference.startswith("sha256:") and digest != reference:
            raise MalformedManifest(f"The registry returned content with digest {digest} for {what}.")
        try:
            doc = json.loads(raw)
        except ValueError as err:
            raise MalformedManifest(f"The {what} is not valid JSON: {err}") from err
        if not isinstance(doc, dict):
            raise MalformedManifest(f"The {what} is not a JSON object.")
        media_type = doc.get("mediaType") or resp.headers.get("content-type", "").split(";")[0].strip()
        if media_type not in (*INDEX_TYPES, *MANIFEST_TYPES):
            if "manifests" in doc:
                media_type = OCI_INDEX
            elif "layers" in doc and doc.get("schemaVersion") == 2:
                media_type = OCI_MANIFEST
            else:
                raise MalformedManifest(
                    f"The {what} has media type {media_type!r}; expected an OCI or Docker v2 manifest or index "
                    "(Docker schema 1 images must be rebuilt)."
                )
        return digest, media_type, doc

    def get_blob(self, repository: str, digest: str, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
        what = f"blob {digest} of {self._where(repository)}"
        resp = self._request("GET", f"/v2/{repository}/blobs/{digest}", repository)
        self._raise_for_status(resp, what, BlobUnknown)
        if len(resp.content) > max_bytes:
            raise MalformedManifest(f"The {what} is {len(resp.content)} bytes, more than the {max_bytes} allowed.")
        return resp.content

    @contextmanager
    def open_blob(self, repository: str, digest: str, chunk_bytes: int = rootfs.CHUNK_BYTES) -> Iterator[Iterator[bytes]]:
        """Stream a blob (a layer): yields an iterator of chunks; nothing is held beyond one chunk.

        A connection lost or timing out midway raises RegistryUnavailable from the iterator.
        """
        if not _BLOB_DIGEST_RE.match(str(digest)):
            raise MalformedManifest(f"A layer of {self._where(repository)} has no valid digest: {digest!r}.")
        what = f"blob {digest} of {self._where(repository)}"
        resp = self._open_stream(f"/v2/{repository}/blobs/{digest}", repository)
        try:
            if resp.status_code != 200:
                resp.read()
                self._raise_for_status(resp, what, BlobUnknown)
            yield self._chunks(resp, chunk_bytes)
        finally:
            resp.close()

    def inspect(self, ref: ImageReference, *, max_layer_bytes: int = rootfs.MAX_LAYER_BYTES) -> ManifestInfo:
        """Read the manifest (linux/amd64 from an index) and the configuration of ``ref``; when
        ``config.User`` holds a name, also the files of the layers that resolve it."""
        digest, media_type, doc = self.get_manifest(ref.repository, ref.manifest_reference)
        index_digest, platforms = None, ()
        if media_type in INDEX_TYPES:
            index_digest = digest
            entry, platforms = choose_platform(doc, f"index {digest}")
            digest, media_type, doc = self.get_manifest(ref.repository, entry["digest"])
            if media_type in INDEX_TYPES:
                raise MalformedManifest(f"The image index {index_digest} points to another index ({digest}); nested indexes are not supported.")
        config_desc, layers = _image_descriptors(doc, f"manifest {digest}")
        size = int(config_desc["size"]) + sum(int(layer["size"]) for layer in layers)
        config, config_error, error_reason = None, None, "MissingConfig"
        try:
            blob = self.get_blob(ref.repository, config_desc["digest"])
        except BlobUnknown as err:
            config_error = str(err)
        else:
            if sha256_digest(blob) != config_desc["digest"]:
                config_error, error_reason = f"The config blob's content does not match its digest {config_desc['digest']}.", "InvalidSha256"
            else:
                try:
                    config = json.loads(blob)
                except ValueError as err:
                    config_error = f"The config blob {config_desc['digest']} is not valid JSON: {err}"
                if not isinstance(config, dict):
                    config, config_error = None, config_error or f"The config blob {config_desc['digest']} is not a JSON object."
        user_files = self._user_files(ref.repository, config, layers, max_layer_bytes) if config is not None else None
        return ManifestInfo(
            manifest_digest=digest,
            pinned_image=ref.pinned(digest),
            media_type=media_type,
            config_digest=config_desc["digest"],
            config=config,
            config_error=config_error,
            config_error_reason=error_reason,
            size=size,
            index_digest=index_digest,
            platforms=tuple(platforms),
            user_files=user_files,
        )

    def _user_files(self, repository: str, config: dict[str, Any], layers: list[dict[str, Any]], max_layer_bytes: int) -> image_users.UserFiles | None:
        """/etc/passwd and /etc/group from the layers, when config.User needs them (else None).

        An image that fails a rule of its configuration anyway (architecture, no entrypoint ...)
        is not worth downloading layers for.
        """
        wanted = image_users.files_needed(image_facts(config).user)
        if not wanted or check_image_config(config):
            return None

        @contextmanager
        def open_layer(descriptor: dict[str, Any]) -> Iterator[Iterator[bytes]]:
            try:
                with self.open_blob(repository, str(descriptor.get("digest", ""))) as chunks:
                    yield chunks
            except (BlobUnknown, MalformedManifest) as err:
                raise rootfs.LayerUnreadable(str(err)) from err

        return rootfs.read_files(open_layer, layers, wanted, max_layer_bytes=max_layer_bytes)

    # -- HTTP and auth --

    def _where(self, repository: str) -> str:
        return f"{self.base_url.split('://', 1)[1]}/{repository}"

    def _send(self, method: str, url: str, headers: dict[str, str], **kwargs) -> httpx.Response:
        try:
            return self._http.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException as err:
            raise RegistryUnavailable(f"The registry at {self.base_url} did not answer in time ({type(err).__name__}).") from err
        except httpx.TransportError as err:
            raise RegistryUnavailable(f"The registry at {self.base_url} could not be reached: {err or type(err).__name__}.") from err

    def _open_stream(self, path: str, repository: str) -> httpx.Response:
        """A streamed GET (the caller closes the response), authorizing once on 401 as _request does."""
        headers: dict[str, str] = {}
        for attempt in (1, 2):
            if repository in self._auth:
                headers["Authorization"] = self._auth[repository]
            try:
                resp = self._http.send(self._http.build_request("GET", self.base_url + path, headers=headers), stream=True)
            except httpx.TimeoutException as err:
                raise RegistryUnavailable(f"The registry at {self.base_url} did not answer in time ({type(err).__name__}).") from err
            except httpx.TransportError as err:
                raise RegistryUnavailable(f"The registry at {self.base_url} could not be reached: {err or type(err).__name__}.") from err
            if resp.status_code != 401:
                return resp
            resp.read()
            resp.close()
            if attempt == 2:
                who = f"user {self.credentials.username!r}" if self.credentials and self.credentials.username else "anonymous access"
                raise Unauthorized(f"The registry refused {who} to {self._where(repository)} (401 {_error_text(resp)}).")
            self._auth[repository] = self._authorize(resp.headers.get("www-authenticate", ""), repository)
        raise AssertionError("unreachable")

    def _chunks(self, resp: httpx.Response, chunk_bytes: int) -> Iterator[bytes]:
        try:
            yield from resp.iter_bytes(chunk_bytes)
        except httpx.TimeoutException as err:
            raise RegistryUnavailable(f"The registry at {self.base_url} stopped sending a layer ({type(err).__name__}).") from err
        except httpx.TransportError as err:
            raise RegistryUnavailable(f"The registry at {self.base_url} broke off a layer download: {err or type(err).__name__}.") from err

    def _request(self, method: str, path: str, repository: str, headers: dict[str, str] | None = None) -> httpx.Response:
        headers = dict(headers or {})
        if repository in self._auth:
            headers["Authorization"] = self._auth[repository]
        resp = self._send(method, self.base_url + path, headers)
        if resp.status_code != 401:
            return resp
        authorization = self._authorize(resp.headers.get("www-authenticate", ""), repository)
        self._auth[repository] = headers["Authorization"] = authorization
        resp = self._send(method, self.base_url + path, headers)
        if resp.status_code == 401:
            who = f"user {self.credentials.username!r}" if self.credentials and self.credentials.username else "anonymous access"
            raise Unauthorized(f"The registry refused {who} to {self._where(repository)} (401 {_error_text(resp)}).")
        return resp

    def _authorize(self, challenge: str, repository: str) -> str:
        scheme, params = parse_challenge(challenge)
        creds = self.credentials
        if scheme == "basic":
            if not creds or not (creds.username or creds.password):
                raise Unauthorized(f"The registry {self._where(repository)} requires a user name and password; set spec.pullSecretName.")
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return f"Basic {token}"
        if scheme != "bearer" or not params.get("realm"):
            raise Unauthorized(f"The registry {self._where(repository)} asked for unsupported authentication {challenge!r}.")
        if creds and creds.registry_token:
            return f"Bearer {creds.registry_token}"
        return f"Bearer {self._fetch_token(params, repository)}"

    def _fetch_token(self, params: dict[str, str], repository: str) -> str:
        realm = params["realm"]
        scope = params.get("scope") or f"repository:{repository}:pull"
        query = {"scope": scope, **({"service": params["service"]} if params.get("service") else {})}
        creds = self.credentials
        if creds and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "component-operator", **query}
            resp = self._send("POST", realm, {}, data=form)
        else:
            headers = {}
            if creds and (creds.username or creds.password):
                headers["Authorization"] = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            resp = self._send("GET", realm, headers, params=query)
        if resp.status_code in (401, 403):
            who = f"user {creds.username!r}" if creds and creds.username else "anonymous access"
            raise Unauthorized(f"The token service {realm} refused {who} for scope {scope!r} ({resp.status_code} {_error_text(resp)}).")
        if resp.status_code == 429 or resp.status_code >= 500:
            raise RegistryUnavailable(f"The token service {realm} answered {resp.status_code} {_error_text(resp)}.")
        if resp.status_code != 200:
            raise Unauthorized(f"The token service {realm} answered {resp.status_code} {_error_text(resp)}.")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise Unauthorized(f"The token service {realm} returned no token.")
        return str(token)

    def _raise_for_status(self, resp: httpx.Response, what: str, not_found: type[RegistryError]) -> None:
        code = resp.status_code
        if code == 200:
            return
        detail = _error_text(resp)
        if code == 404:
            raise not_found(f"The {what} was not found in the registry (404 {detail}).")
        if code in (401, 403):
            raise Unauthorized(f"Access to the {what} was denied ({code} {detail}).")
        if code == 429 or code >= 500:
            raise RegistryUnavailable(f"The registry answered {code} {detail} for the {what}.")
        raise RegistryError(f"The registry answered {code} {detail} for the {what}.")


def choose_platform(index: dict[str, Any], what: str) -> tuple[dict[str, Any], list[str]]:
    """The linux/amd64 entry of an index (else the first image entry) and every platform listed."""
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise MalformedManifest(f"The {what} has no 'manifests' list.")
    images, platforms = [], []
    for entry in entries:
        if not isinstance(entry, dict) or not _DIGEST_RE.match(str(entry.get("digest", ""))):
            raise MalformedManifest(f"The {what} lists an entry without a valid sha256 digest: {entry!r}.")
        platform = entry.get("platform") if isinstance(entry.get("platform"), dict) else {}
        os_, arch = platform.get("os", "unknown"), platform.get("architecture", "unknown")
        if (os_, arch) == ("unknown", "unknown"):
            continue  # build attestations, not images
        images.append((entry, os_, arch, platform.get("variant")))
        platforms.append("/".join(p for p in (os_, arch, platform.get("variant")) if p))
    if not images:
        raise MalformedManifest(f"The {what} lists no image manifests.")
    wanted = [img for img in images if img[1] == PLATFORM_OS and img[2] == PLATFORM_ARCHITECTURE]
    wanted.sort(key=lambda img: img[3] not in (None, "", "v1"))  # plain amd64 before amd64/v2, v3 ...
    return (wanted or images)[0][0], platforms


def _image_descriptors(doc: dict[str, Any], what: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if doc.get("schemaVersion") != 2:
        raise MalformedManifest(f"The {what} has schemaVersion {doc.get('schemaVersion')!r}; expected 2.")
    config = doc.get("config")
    if not isinstance(config, dict) or not _DIGEST_RE.match(str(config.get("digest", ""))) or not _is_size(config.get("size")):
        raise MalformedManifest(f"The {what} has no valid 'config' descriptor (sha256 digest and size).")
    if config.get("mediaType") and config["mediaType"] not in CONFIG_TYPES:
        raise MalformedManifest(
            f"The {what} is not a container image: its config media type is {config['mediaType']!r}, expected one of {list(CONFIG_TYPES)}."
        )
    layers = doc.get("layers")
    if not isinstance(layers, list) or not all(isinstance(l, dict) and _is_size(l.get("size")) for l in layers):
        raise MalformedManifest(f"The {what} has no valid 'layers' list (descriptors with sizes).")
    return config, layers


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _error_text(resp: httpx.Response) -> str:
    """The registry's own error code and message, e.g. ``MANIFEST_UNKNOWN: manifest unknown``."""
    try:
        errors = resp.json().get("errors") or []
        first = errors[0]
        return f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return resp.reason_phrase or ""


def inspect_image(
    image: str,
    *,
    docker_config: dict[str, Any] | None = None,
    insecure: bool = False,
    ca_file: str | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    max_layer_bytes: int = rootfs.MAX_LAYER_BYTES,
) -> ManifestInfo:
    """Parse ``image``, pick credentials for its registry and inspect it (raises RegistryError).

    ``max_layer_bytes`` bounds the compressed layer bytes read to resolve a USER name.
    """
    ref = parse_reference(image)
    creds = credentials_from_docker_config(docker_config, ref.registry)
    with RegistryClient(ref.registry, credentials=creds, insecure=insecure, ca_file=ca_file, timeout=timeout, transport=transport) as client:
        return client.inspect(ref, max_layer_bytes=max_layer_bytes)
