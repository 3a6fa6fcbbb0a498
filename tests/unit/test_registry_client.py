"""The OCI registry client against a fake registry (httpx.MockTransport): auth flows, manifest
and index handling, and which failures are permanent and which transient."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest

from component_operator.adapters import registry
from component_operator.adapters.registry import OCI_INDEX, OCI_MANIFEST, RegistryClient, parse_reference


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """Blobs and manifests by digest, tags by name, optional auth."""

    def __init__(self, auth: str | None = None, user: str = "alice", password: str = "pw"):
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, str] = {}
        self.auth = auth  # None, "basic" or "bearer"
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[httpx.Request] = []
        self.fail: dict[str, httpx.Response | Exception] = {}

    def image(self, arch="amd64", user="1000", tag=None, layer_size=100) -> tuple[str, bytes]:
        config = json.dumps({"architecture": arch, "os": "linux", "config": {"User": user, "Entrypoint": ["/run"]}}).encode()
        self.blobs[sha(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "1" * 64, "size": layer_size}],
            }
        ).encode()
        self.manifests[sha(manifest)] = (manifest, OCI_MANIFEST)
        if tag:
            self.tags[tag] = sha(manifest)
        return sha(manifest), config

    def index(self, entries: list[tuple[str, str, str | None]], tag: str) -> str:
        manifests = []
        for digest, arch, os_ in entries:
            manifests.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": 1, "platform": {"architecture": arch, "os": os_}})
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
        self.manifests[sha(data)] = (data, OCI_INDEX)
        self.tags[tag] = sha(data)
        return sha(data)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        for fragment, failure in self.fail.items():
            if fragment in url:
                if isinstance(failure, Exception):
                    raise failure
                return failure
        if request.url.host == "auth.example":
            if request.headers.get("authorization") != self.basic:
                return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            return httpx.Response(200, json={"token": "tok-123"})
        if self.auth == "basic" and request.headers.get("authorization") != self.basic:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
        if self.auth == "bearer" and request.headers.get("authorization") != "Bearer tok-123":
            challenge = 'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:team/algo:pull"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge}, json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
        path = request.url.path
        if "/manifests/" in path:
            ref = path.rsplit("/", 1)[1]
            digest = self.tags.get(ref, ref)
            if digest not in self.manifests:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
            data, media_type = self.manifests[digest]
            headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
            return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else data)
        if "/blobs/" in path:
            digest = path.rsplit("/", 1)[1]
            if digest not in self.blobs:
                return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]})
            return httpx.Response(200, content=self.blobs[digest])
        return httpx.Response(404)


def client(fake: FakeRegistry, creds=None) -> RegistryClient:
    return RegistryClient("reg.example", credentials=creds, transport=httpx.MockTransport(fake.handler))


REF = parse_reference("reg.example/team/algo:v1")


def test_anonymous_single_manifest():
    fake = FakeRegistry()
    digest, config = fake.image(tag="v1", layer_size=1000)
    info = client(fake).inspect(REF)
    assert info.manifest_digest == digest and info.index_digest is None and info.platforms == ()
    assert info.config_digest == sha(config) and info.config["config"]["User"] == "1000"
    assert info.size == 1000 + len(config)
    assert info.pinned_image == f"reg.example/team/algo@{digest}"
    accept = fake.requests[0].headers["accept"]
    for media_type in (OCI_INDEX, OCI_MANIFEST, registry.DOCKER_LIST, registry.DOCKER_MANIFEST):
        assert media_type in accept
    assert str(fake.requests[0].url).startswith("https://reg.example/v2/team/algo/manifests/v1")


def test_insecure_uses_plain_http():
    fake = FakeRegistry()
    fake.image(tag="v1")
    with RegistryClient("reg.example", insecure=True, transport=httpx.MockTransport(fake.handler)) as c:
        c.inspect(REF)
    assert fake.requests[0].url.scheme == "http"


def test_index_picks_linux_amd64():
    fake = FakeRegistry()
    arm, _ = fake.image(arch="arm64")
    amd, _ = fake.image(arch="amd64", user="2000")
    attestation = "sha256:" + "9" * 64
    index = fake.index([(arm, "arm64", "linux"), (attestation, "unknown", "unknown"), (amd, "amd64", "linux")], tag="v1")
    info = client(fake).inspect(REF)
    assert info.manifest_digest == amd and info.index_digest == index
    assert info.platforms == ("linux/arm64", "linux/amd64")
    assert info.config["architecture"] == "amd64"


def test_index_without_amd64_reports_platforms():
    fake = FakeRegistry()
    arm, _ = fake.image(arch="arm64")
    fake.index([(arm, "arm64", "linux")], tag="v1")
    info = client(fake).inspect(REF)
    assert info.manifest_digest == arm and info.platforms == ("linux/arm64",)
    assert info.config["architecture"] == "arm64"


def test_bearer_challenge_with_credentials():
    fake = FakeRegistry(auth="bearer")
    fake.image(tag="v1")
    info = client(fake, registry.Credentials(username="alice", password="pw")).inspect(REF)
    assert info.config is not None
    token_requests = [r for r in fake.requests if r.url.host == "auth.example"]
    assert len(token_requests) == 1  # the token is reused for the config blob
    assert token_requests[0].url.params["service"] == "reg.example"
    assert token_requests[0].url.params["scope"] == "repository:team/algo:pull"


def test_bearer_with_wrong_password_is_unauthorized():
    fake = FakeRegistry(auth="bearer")
    fake.image(tag="v1")
    with pytest.raises(registry.Unauthorized) as info:
        client(fake, registry.Credentials(username="alice", password="wrong")).inspect(REF)
    assert "refused user 'alice'" in str(info.value) and not info.value.transient


def test_basic_auth():
    fake = FakeRegistry(auth="basic")
    fake.image(tag="v1")
    assert client(fake, registry.Credentials(username="alice", password="pw")).inspect(REF).config is not None
    with pytest.raises(registry.Unauthorized) as info:
        client(fake).inspect(REF)
    assert "spec.pullSecretName" in str(info.value)
    with pytest.raises(registry.Unauthorized):
        client(fake, registry.Credentials(username="alice", password="nope")).inspect(REF)


def test_registry_token_is_sent_as_is():
    fake = FakeRegistry(auth="bearer")
    fake.image(tag="v1")
    client(fake, registry.Credentials(registry_token="tok-123")).inspect(REF)
    assert not [r for r in fake.requests if r.url.host == "auth.example"]


def test_forbidden_is_unauthorized():
    fake = FakeRegistry()
    fake.fail["/manifests/"] = httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]})
    with pytest.raises(registry.Unauthorized) as info:
        client(fake).inspect(REF)
    assert "DENIED" in str(info.value)


def test_missing_tag_is_manifest_unknown():
    fake = FakeRegistry()
    with pytest.raises(registry.ManifestUnknown) as info:
        client(fake).inspect(REF)
    assert "manifest 'v1' of reg.example/team/algo was not found" in str(info.value)
    assert "MANIFEST_UNKNOWN" in str(info.value) and not info.value.transient


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(503),
        httpx.Response(429),
        httpx.ConnectError("Connection refused"),
        httpx.ReadTimeout("timed out"),
    ],
)
def test_transient_failures(failure):
    fake = FakeRegistry()
    fake.image(tag="v1")
    fake.fail["/manifests/"] = failure
    with pytest.raises(registry.RegistryUnavailable) as info:
        client(fake).inspect(REF)
    assert info.value.transient and info.value.reason == "RegistryUnreachable"


def test_token_service_down_is_transient():
    fake = FakeRegistry(auth="bearer")
    fake.image(tag="v1")
    fake.fail["auth.example"] = httpx.Response(502)
    with pytest.raises(registry.RegistryUnavailable):
        client(fake, registry.Credentials(username="alice", password="pw")).inspect(REF)


def test_missing_config_blob_is_reported_not_raised():
    fake = FakeRegistry()
    _, config = fake.image(tag="v1")
    del fake.blobs[sha(config)]
    info = client(fake).inspect(REF)
    assert info.config is None and "BLOB_UNKNOWN" in info.config_error and info.config_error_reason == "MissingConfig"


def test_config_blob_with_wrong_content():
    fake = FakeRegistry()
    _, config = fake.image(tag="v1")
    fake.blobs[sha(config)] = b'{"tampered": true}'
    info = client(fake).inspect(REF)
    assert info.config is None and info.config_error_reason == "InvalidSha256"


def test_manifest_not_matching_pinned_digest_is_malformed():
    fake = FakeRegistry()
    digest, _ = fake.image()
    other, _ = fake.image(user="3000")
    fake.manifests[digest] = fake.manifests[other]
    with pytest.raises(registry.MalformedManifest):
        client(fake).inspect(parse_reference(f"reg.example/team/algo@{digest}"))


@pytest.mark.parametrize(
    "doc,fragment",
    [
        ({"schemaVersion": 1, "name": "x", "fsLayers": []}, "media type"),
        ({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}, "'config' descriptor"),
        (
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:" + "2" * 64, "size": 1}, "layers": []},
            "not a container image",
        ),
        ({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}, "lists no image manifests"),
    ],
)
def test_malformed_manifests_are_permanent(doc, fragment):
    fake = FakeRegistry()
    data = json.dumps(doc).encode()
    fake.manifests[sha(data)] = (data, doc.get("mediaType", "application/vnd.docker.distribution.manifest.v1+prettyjws"))
    fake.tags["v1"] = sha(data)
    with pytest.raises(registry.MalformedManifest) as info:
        client(fake).inspect(REF)
    assert fragment in str(info.value) and info.value.reason == "InvalidManifest" and not info.value.transient


def test_resolve_uses_head():
    fake = FakeRegistry()
    digest, _ = fake.image(tag="v1")
    assert client(fake).resolve(REF) == (digest, OCI_MANIFEST)
    assert [r.method for r in fake.requests] == ["HEAD"]


def test_inspect_image_picks_credentials_from_docker_config():
    fake = FakeRegistry(auth="bearer")
    fake.image(tag="v1")
    docker_config = {"auths": {"https://reg.example": {"auth": base64.b64encode(b"alice:pw").decode()}}}
    info = registry.inspect_image("reg.example/team/algo:v1", docker_config=docker_config, transport=httpx.MockTransport(fake.handler))
    assert info.config is not None
