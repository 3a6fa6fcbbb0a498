"""ComponentImage against the real API server, a real registry and the running operator.

Images are built by tests/support/oci_images.py and pushed with crane; tests that stop a
registry, need authentication or TLS get a private registry process of their own
(tests/support/registry_process.py) and never touch the shared one.
"""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest
from kubernetes import client

from component_operator import GROUP, VERSION
from component_operator.adapters import registry as registry_adapter
from component_operator.planning import image_users
from component_operator.planning import images as rules

from ..support import oci_images
from ..support.registry_process import LocalRegistry, TokenServer, make_tls
from .conftest import wait_until

PLURAL = "componentimages"


@pytest.fixture(scope="module")
def pushed(testenv, tmp_path_factory) -> dict[str, oci_images.Pushed]:
    """Every test image variant, pushed once to the shared testenv registry."""
    workdir = tmp_path_factory.mktemp("cimg-layouts")
    env = {**os.environ, **testenv.env}
    return {v: oci_images.push_variant(testenv.env["TESTENV_REGISTRY"], v, workdir, env=env) for v in oci_images.VARIANTS}


@pytest.fixture()
def cimg(custom, namespace, operator_process):
    """Create ComponentImages in the test's namespace; wait for them to reach a state."""

    class Images:
        def create(self, name: str, image: str, **spec) -> None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ComponentImage",
                "metadata": {"name": name},
                "spec": {"image": image, "insecureRegistry": True, **spec},
            }
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

        def get(self, name: str) -> dict:
            return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

        def wait(self, name: str, *states: str, timeout: float = 90, **expected) -> dict:
            def reached():
                obj = self.get(name)
                status = obj.get("status") or {}
                if status.get("importStatus") in states and all(status.get(k) == v for k, v in expected.items()):
                    return obj
                return None

            try:
                return wait_until(reached, timeout=timeout, message=f"ComponentImage {name} in {states} with {expected}")
            except AssertionError as err:
                raise AssertionError(f"{err}\nstatus: {json.dumps(self.get(name).get('status'), indent=1)}\n"
                                     f"operator log:\n{operator_process.log_tail(40)}") from None  # fmt: skip

        def delete(self, name: str) -> None:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

            def gone():
                try:
                    self.get(name)
                    return False
                except client.ApiException as err:
                    return err.status == 404

            wait_until(gone, timeout=60, message=f"ComponentImage {name} deleted")

    return Images()


def ready(obj: dict) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_good_image_becomes_ready_with_its_facts(cimg, pushed, testenv, core, namespace):
    good = pushed["good"]
    info = good.manifests["linux/amd64"]
    cimg.create("algo", good.ref)
    obj = cimg.wait("algo", "Completed")
    status = obj["status"]
    assert status["imageSha256"] == good.digest == info["digest"]
    assert status["configSha256"] == info["config"]
    assert status["sizeInRegistry"] == info["size"]
    assert status["pinnedImage"] == good.ref.rsplit(":", 1)[0] + "@" + good.digest
    assert status["user"] == "1000:1000" and status["entrypoint"] == ["/bin/algorithm"]
    assert (status["architecture"], status["os"], status["workingDir"]) == ("amd64", "linux", "/opt/algorithm")
    assert status["isManifestValid"] is True and status["isInRegistry"] is True
    assert status["observedGeneration"] == obj["metadata"]["generation"] and status["lastInspectedAt"]
    assert (ready(obj)["status"], ready(obj)["reason"]) == ("True", "Ready")

    # kubectl shows the import status, readiness, digest and size
    table = testenv.kubectl("get", "cimg", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "STATUS", "READY", "DIGEST", "SIZE"]
    assert row.split()[:5] == ["algo", "Completed", "True", good.digest, str(info["size"])]

    # the transition was announced as a Kubernetes Event
    def event():
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=algo").items
        return [e for e in events if "-> Completed" in (e.message or "")]

    found = wait_until(event, timeout=30, message="an Event for the Completed transition")
    assert found[0].type == "Normal" and found[0].reason == "Ready"


@pytest.mark.parametrize(
    "variant,reason,message",
    [
        ("root", "RootUser", rules.ROOT_USER_MESSAGE),
        ("arm64", "UnsupportedArchitecture", "Architecture type 'arm64' is not supported. Please provide a container image built for 'amd64'."),
        (
            "arm64-index",
            "UnsupportedArchitecture",
            "Architecture type 'arm64' is not supported. Please provide a container image built for 'amd64'. "
            "The image index offers: linux/arm64/v8.",
        ),
        ("noentry", "NoEntrypoint", rules.NO_ENTRYPOINT_MESSAGE),
        # USER names resolved from the image's /etc/passwd: unknown, and one that is uid 0
        (
            "unknown-user",
            "UnknownUser",
            "config.User 'nobody-here' names the user 'nobody-here', but /etc/passwd in the image has no such user; "
            "add it (e.g. RUN useradd -r nobody-here) or use a numeric USER (e.g. USER 1000:1000).",
        ),
        ("toor-user", "RootUser", rules.ROOT_USER_MESSAGE),
    ],
)
def test_unusable_images_fail_with_a_message_users_understand(cimg, pushed, core, namespace, variant, reason, message):
    cimg.create("algo", pushed[variant].ref)
    obj = cimg.wait("algo", "Failed")
    assert obj["status"]["message"] == message
    assert obj["status"]["isManifestValid"] is False and obj["status"]["isInRegistry"] is True
    cond = ready(obj)
    assert (cond["status"], cond["reason"]) == ("False", reason)
    wait_until(
        lambda: [e for e in core.list_namespaced_event(namespace, field_selector="involvedObject.name=algo").items
                 if e.type == "Warning" and e.reason == reason],  # fmt: skip
        timeout=30,
        message=f"a Warning event {reason}",
    )


def test_named_user_runs_as_its_uid_from_etc_passwd(cimg, pushed, custom, core, namespace, job_interfaces):
    """grand-challenge's template (useradd -r user; USER user): the image's top layer adds the
    user to /etc/passwd; the image records uid 999 and its jobs' pods run as 999."""
    named = pushed["named-user"]
    cimg.create("algo", named.ref)
    status = cimg.wait("algo", "Completed")["status"]
    assert (status["user"], status["runAsUser"], status["runAsGroup"]) == ("user", 999, 999)
    assert "uid 999 gid 999" in status["message"]
    job = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentJob",
        "metadata": {"name": "as-user", "annotations": {"sim.testenv/outcome": "succeed", "sim.testenv/after": "1s"}},
        "spec": {
            "image": "algo",
            "inputs": [{"interface": "it-bbox", "value": {"version": {"major": 1, "minor": 0}, "type": "2D bounding box",
                                                          "corners": [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]}}],
            "requiresMemoryGB": 1,
            "timeLimit": 300,
        },
    }  # fmt: skip
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "componentjobs", job)
    pods = wait_until(lambda: core.list_namespaced_pod(namespace, label_selector=f"{GROUP}/job=as-user").items,
                      timeout=60, message="the job's pod")  # fmt: skip
    security = pods[0].spec.security_context
    assert (security.run_as_user, security.run_as_group, security.run_as_non_root) == (999, 999, True)


def test_numeric_user_downloads_no_layer(pushed, testenv):
    """The adapter alone, against the real registry: a numeric USER needs no layer, a name does."""
    info = registry_adapter.inspect_image(pushed["good"].ref, insecure=True)
    assert info.user_files is None
    info = registry_adapter.inspect_image(pushed["named-user"].ref, insecure=True)
    assert info.user_files.files == {"etc/passwd": oci_images.PASSWD + oci_images.USER_LINE}
    assert info.user_files.layers_read == 1  # the top layer defines /etc/passwd: nothing below is read
    assert rules.resolve_user("user", info) == image_users.RunAs(999, 999)


def test_missing_tag_fails_as_manifest_unknown(cimg, pushed):
    ref = pushed["good"].ref.rsplit(":", 1)[0] + ":never-pushed"
    cimg.create("algo", ref)
    obj = cimg.wait("algo", "Failed")
    assert ready(obj)["reason"] == "ManifestUnknown"
    assert "manifest 'never-pushed'" in obj["status"]["message"] and "not found" in obj["status"]["message"]
    assert obj["status"]["isInRegistry"] is False and "imageSha256" not in obj["status"]


def test_multi_platform_index_runs_the_amd64_manifest(cimg, pushed):
    multi = pushed["multi"]
    amd64 = multi.manifests["linux/amd64"]
    cimg.create("algo", multi.ref)
    status = cimg.wait("algo", "Completed")["status"]
    assert multi.digest != amd64["digest"]
    assert status["imageSha256"] == amd64["digest"]
    assert status["pinnedImage"].endswith("@" + amd64["digest"])
    assert status["configSha256"] == amd64["config"] and status["sizeInRegistry"] == amd64["size"]


def test_pinned_digest_is_inspected(cimg, pushed):
    good = pushed["good"]
    cimg.create("pinned", good.ref.rsplit(":", 1)[0] + "@" + good.digest, followTag=True)
    status = cimg.wait("pinned", "Completed")["status"]
    assert status["imageSha256"] == good.digest


def test_duplicate_in_the_same_namespace_is_reported(cimg, pushed):
    cimg.create("algo-v1", pushed["good"].ref)
    cimg.wait("algo-v1", "Completed")
    cimg.create("algo-v2", pushed["good"].ref)
    obj = cimg.wait("algo-v2", "Failed")
    assert obj["status"]["message"].startswith(rules.DUPLICATE_MESSAGE)
    assert "'algo-v1'" in obj["status"]["message"]
    assert ready(obj)["reason"] == "Duplicate"
    assert cimg.get("algo-v1")["status"]["importStatus"] == "Completed"


def test_invalid_reference_fails_naming_the_field(cimg):
    cimg.create("algo", "127.0.0.1:5000/Tests/Algo:v1")
    obj = cimg.wait("algo", "Failed")
    assert ready(obj)["reason"] == "InvalidReference"
    assert "spec.image '127.0.0.1:5000/Tests/Algo:v1'" in obj["status"]["message"]
    assert "lower-case" in obj["status"]["message"]


def test_registry_outage_requeues_then_completes(cimg, testenv, tmp_path):
    reg = LocalRegistry(testenv.bin_dir, tmp_path / "registry")
    reg.start()
    try:
        pushed = oci_images.push_variant(reg.address, "good", tmp_path / "layouts", label="outage", env={**os.environ, **testenv.env})
        reg.stop()
        cimg.create("algo", pushed.ref)
        obj = cimg.wait("algo", "Re-Queued")
        cond = ready(obj)
        assert (cond["status"], cond["reason"]) == ("False", "RegistryUnreachable")
        assert "could not be reached" in obj["status"]["message"]
        reg.start()
        status = cimg.wait("algo", "Completed", timeout=120)["status"]
        assert status["imageSha256"] == pushed.digest
    finally:
        reg.stop()


def test_follow_tag_picks_up_a_moved_tag(cimg, testenv, tmp_path):
    env = {**os.environ, **testenv.env}
    tag = f"follow-{uuid.uuid4().hex[:8]}"
    first = oci_images.push_variant(testenv.env["TESTENV_REGISTRY"], "good", tmp_path / "a", repository="tests/follow", tag=tag, label=f"{tag}-1", env=env)
    cimg.create("algo", first.ref, followTag=True)
    cimg.wait("algo", "Completed", imageSha256=first.digest)
    second = oci_images.push_variant(testenv.env["TESTENV_REGISTRY"], "good", tmp_path / "b", repository="tests/follow", tag=tag, label=f"{tag}-2", env=env)
    assert second.digest != first.digest
    status = cimg.wait("algo", "Completed", imageSha256=second.digest, timeout=60)["status"]
    assert status["pinnedImage"].endswith("@" + second.digest)
    # moving the tag to a root image fails the image with the usual message
    oci_images.push(first.ref, [oci_images.ImageSpec(label=f"{tag}-root", user="0")], tmp_path / "c", env=env)
    obj = cimg.wait("algo", "Failed", timeout=60)
    assert ready(obj)["reason"] == "RootUser"
    cimg.delete("algo")  # the timer's finalizer is removed while the operator still runs


@pytest.fixture()
def auth_registry(testenv, tmp_path):
    """A private registry that wants a bearer token from a token service checking alice:s3cret."""
    open_registry = LocalRegistry(testenv.bin_dir, tmp_path / "auth-registry")
    open_registry.start()
    try:
        pushed = oci_images.push_variant(open_registry.address, "good", tmp_path / "layouts", label="auth", env={**os.environ, **testenv.env})
    finally:
        open_registry.stop()
    # crane refuses token realms on loopback, so authentication is switched on after the push.
    tokens = TokenServer("alice", "s3cret")
    reg = LocalRegistry(testenv.bin_dir, tmp_path / "auth-registry", auth_realm=tokens.realm, port=open_registry.port)
    reg.start()
    yield reg, tokens, pushed
    reg.stop()
    tokens.close()


def dockerconfig(registry: str, user: str, password: str) -> dict:
    return {"auths": {f"http://{registry}": {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


def pull_secret(core, namespace: str, name: str, docker_config: dict) -> None:
    data = {".dockerconfigjson": base64.b64encode(json.dumps(docker_config).encode()).decode()}
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name=name), type="kubernetes.io/dockerconfigjson", data=data)
    core.create_namespaced_secret(namespace, secret)


def test_pull_secret_with_bearer_token_challenge(cimg, core, namespace, auth_registry):
    reg, tokens, pushed = auth_registry
    pull_secret(core, namespace, "good-creds", dockerconfig(reg.address, "alice", "s3cret"))
    pull_secret(core, namespace, "bad-creds", dockerconfig(reg.address, "alice", "wrong"))
    cimg.create("with-secret", pushed.ref, pullSecretName="good-creds")
    cimg.create("wrong-password", pushed.ref, pullSecretName="bad-creds")
    cimg.create("anonymous", pushed.ref)
    assert cimg.wait("with-secret", "Completed")["status"]["imageSha256"] == pushed.digest
    for name in ("wrong-password", "anonymous"):
        obj = cimg.wait(name, "Failed")
        assert ready(obj)["reason"] == "Unauthorized"
        assert "refused" in obj["status"]["message"]
    assert "refused user 'alice'" in cimg.get("wrong-password")["status"]["message"]
    assert any(r["authorized"] for r in tokens.requests)


def test_missing_pull_secret_requeues_until_it_exists(cimg, core, namespace, auth_registry):
    reg, _, pushed = auth_registry
    cimg.create("algo", pushed.ref, pullSecretName="later")
    obj = cimg.wait("algo", "Re-Queued")
    assert ready(obj)["reason"] == "PullSecretNotFound"
    assert "spec.pullSecretName 'later'" in obj["status"]["message"]
    pull_secret(core, namespace, "later", dockerconfig(reg.address, "alice", "s3cret"))
    cimg.wait("algo", "Completed", timeout=120)


def test_https_registry_with_custom_ca(testenv, tmp_path):
    """The adapter alone: HTTPS with a CA bundle, and the error without it."""
    ca, crt, key = make_tls(tmp_path / "pki")
    reg = LocalRegistry(testenv.bin_dir, tmp_path / "tls-registry", tls=(crt, key))
    reg.start()
    try:
        env = {**os.environ, **testenv.env, "SSL_CERT_FILE": str(ca)}
        pushed = oci_images.push_variant(reg.address, "good", tmp_path / "layouts", label="tls", env=env)
        info = registry_adapter.inspect_image(pushed.ref, ca_file=str(ca))
        assert info.manifest_digest == pushed.digest and info.config["config"]["User"] == "1000:1000"
        with pytest.raises(registry_adapter.RegistryError) as err:
            registry_adapter.inspect_image(pushed.ref)
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) or "certificate" in str(err.value).lower()
    finally:
        reg.stop()
