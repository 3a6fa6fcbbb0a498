"""Image reference parsing (Docker's defaults), docker config credentials and auth challenges."""

from __future__ import annotations

import base64
import json

import pytest

from component_operator.adapters import kube_secrets, registry
from component_operator.adapters.registry import ImageReference, parse_reference

D = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "text,expected",
    [
        ("ubuntu", ("docker.io", "library/ubuntu", "latest", None)),
        ("ubuntu:22.04", ("docker.io", "library/ubuntu", "22.04", None)),
        ("team/algo", ("docker.io", "team/algo", "latest", None)),
        ("docker.io/ubuntu", ("docker.io", "library/ubuntu", "latest", None)),
        ("index.docker.io/library/ubuntu:1", ("docker.io", "library/ubuntu", "1", None)),
        ("registry-1.docker.io/team/algo:2", ("docker.io", "team/algo", "2", None)),
        ("ghcr.io/org/team/algo:v1.2.3", ("ghcr.io", "org/team/algo", "v1.2.3", None)),
        ("localhost/algo", ("localhost", "algo", "latest", None)),
        ("localhost:5000/algo:dev", ("localhost:5000", "algo", "dev", None)),
        ("127.0.0.1:5000/tests/good:v1", ("127.0.0.1:5000", "tests/good", "v1", None)),
        ("Registry.Example.ORG/algo", ("registry.example.org", "algo", "latest", None)),
        (f"ghcr.io/org/algo@{D}", ("ghcr.io", "org/algo", None, D)),
        (f"ghcr.io/org/algo:v1@{D}", ("ghcr.io", "org/algo", "v1", D)),
        (f"ubuntu@{D}", ("docker.io", "library/ubuntu", None, D)),
        ("reg.example:8443/a.b/c_d/e__f/g-h---i:tag_1.x-2", ("reg.example:8443", "a.b/c_d/e__f/g-h---i", "tag_1.x-2", None)),
        ("[::1]:5000/algo:1", ("[::1]:5000", "algo", "1", None)),
    ],
)
def test_parse_reference(text, expected):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


def test_reference_properties():
    ref = parse_reference("ubuntu")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.manifest_reference == "latest" and not ref.is_pinned
    assert str(ref) == "docker.io/library/ubuntu:latest"
    assert ref.pinned(D) == f"docker.io/library/ubuntu@{D}"
    pinned = parse_reference(f"127.0.0.1:5000/x:1@{D}")
    assert pinned.api_host == "127.0.0.1:5000" and pinned.manifest_reference == D and pinned.is_pinned
    assert str(pinned) == f"127.0.0.1:5000/x:1@{D}"


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("", "empty"),
        ("ubuntu latest", "whitespace"),
        ("team/Algo", "repository 'team/Algo' must be lower-case"),
        ("algo:", "tag ''"),
        ("algo:.hidden", "tag '.hidden'"),
        ("algo:" + "x" * 129, "tag"),
        ("algo@sha256:abc", "digest 'sha256:abc'"),
        (f"algo@md5:{'a' * 32}", "digest"),
        (f"algo@{D.upper().replace('SHA256', 'sha256')}", "digest"),
        ("reg.example/-algo", "repository '-algo'"),
        ("reg.example//algo", "repository '/algo'"),
        ("reg.example/algo/", "repository 'algo/'"),
        ("bad_host.example/algo", "'bad_host.example' is not a valid registry"),
        ("reg.example/" + "a" * 260, "255 characters"),
    ],
)
def test_invalid_references_name_the_broken_part(text, fragment):
    with pytest.raises(registry.InvalidReference) as info:
        parse_reference(text)
    assert f"spec.image {text!r}" in str(info.value)
    assert fragment in str(info.value)
    assert info.value.reason == "InvalidReference" and info.value.transient is False


# --- credentials from a .dockerconfigjson ---


def _auth(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "key,registry_name",
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("127.0.0.1:5055", "127.0.0.1:5055"),
        ("http://127.0.0.1:5055", "127.0.0.1:5055"),
        ("https://GHCR.io/v2/", "ghcr.io"),
    ],
)
def test_docker_config_keys_match_registries(key, registry_name):
    config = {"auths": {key: {"auth": _auth("alice", "s3:cr3t")}}}
    creds = registry.credentials_from_docker_config(config, registry_name)
    assert creds is not None and (creds.username, creds.password) == ("alice", "s3:cr3t")


def test_docker_config_username_password_and_tokens():
    config = {
        "auths": {
            "a.example": {"username": "bob", "password": "pw"},
            "b.example": {"identitytoken": "refresh-me"},
            "c.example": {"registrytoken": "bearer-me"},
        }
    }
    assert registry.credentials_from_docker_config(config, "a.example").password == "pw"
    assert registry.credentials_from_docker_config(config, "b.example").identity_token == "refresh-me"
    assert registry.credentials_from_docker_config(config, "c.example").registry_token == "bearer-me"
    assert registry.credentials_from_docker_config(config, "d.example") is None
    assert registry.credentials_from_docker_config(None, "a.example") is None
    assert "pw" not in repr(registry.credentials_from_docker_config(config, "a.example"))


def test_legacy_dockercfg_without_auths_key():
    creds = registry.credentials_from_docker_config({"reg.example": {"auth": _auth("u", "p")}}, "reg.example")
    assert (creds.username, creds.password) == ("u", "p")


def test_auth_without_colon_is_an_invalid_pull_secret():
    config = {"auths": {"reg.example": {"auth": base64.b64encode(b"no-colon").decode()}}}
    with pytest.raises(registry.RegistryError) as info:
        registry.credentials_from_docker_config(config, "reg.example")
    assert info.value.reason == "InvalidPullSecret" and not info.value.transient


def _secret_data(doc, key=".dockerconfigjson"):
    return {key: base64.b64encode(json.dumps(doc).encode()).decode()}


def test_parse_pull_secret():
    doc = {"auths": {"reg.example": {"auth": _auth("u", "p")}}}
    assert kube_secrets.parse_pull_secret("pull", "kubernetes.io/dockerconfigjson", _secret_data(doc)) == doc
    legacy = kube_secrets.parse_pull_secret("pull", "kubernetes.io/dockercfg", _secret_data(doc["auths"], ".dockercfg"))
    assert legacy == doc


@pytest.mark.parametrize(
    "secret_type,data,fragment",
    [
        ("Opaque", {}, "type is 'Opaque'"),
        ("kubernetes.io/dockerconfigjson", {}, "no '.dockerconfigjson' key"),
        ("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "!!!"}, "not base64-encoded JSON"),
        ("kubernetes.io/dockerconfigjson", _secret_data([1, 2]), "not a JSON object"),
    ],
)
def test_bad_pull_secrets_are_permanent(secret_type, data, fragment):
    with pytest.raises(kube_secrets.PullSecretError) as info:
        kube_secrets.parse_pull_secret("pull", secret_type, data)
    assert fragment in str(info.value) and "spec.pullSecretName 'pull'" in str(info.value)
    assert info.value.reason == "InvalidPullSecret" and info.value.transient is False


# --- WWW-Authenticate ---


def test_parse_bearer_challenge():
    scheme, params = registry.parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/ubuntu:pull"}


def test_parse_basic_challenge_and_unquoted_params():
    assert registry.parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
    assert registry.parse_challenge("Bearer realm=https://t.example/token,service=reg")[1] == {"realm": "https://t.example/token", "service": "reg"}


def test_image_reference_is_hashable_value():
    assert parse_reference("ubuntu") == ImageReference("docker.io", "library/ubuntu", "latest", None)
