"""ComponentImage rules and status decisions, without a registry or a cluster."""

from __future__ import annotations

import pytest

from component_operator.api.image import ComponentImageStatus
from component_operator.planning import images
from component_operator.planning.conditions import get_condition, status_changes

NOW = "2025-01-01T00:00:00Z"
LATER = "2025-01-01T00:05:00Z"
DIGEST = "sha256:" + "a" * 64
CONFIG = "sha256:" + "c" * 64


def config(user="1000", arch="amd64", os_="linux", entrypoint=("/run",), cmd=None, **inner):
    cfg = {"User": user, **inner}
    if entrypoint is not None:
        cfg["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        cfg["Cmd"] = cmd
    doc = {"architecture": arch, "os": os_, "config": cfg}
    if arch is None:
        del doc["architecture"]
    return doc


def info(cfg=None, **kw):
    kw.setdefault("manifest_digest", DIGEST)
    kw.setdefault("pinned_image", f"reg.example/algo@{DIGEST}")
    kw.setdefault("config_digest", CONFIG)
    kw.setdefault("size", 1234)
    return images.ManifestInfo(config=config() if cfg is None else cfg, **kw)


def reasons(problems):
    return [p.reason for p in problems]


# --- the root user rule (grand-challenge step 6) ---


@pytest.mark.parametrize("user", ["", "root", "ROOT", "Root", "0", "0:0", "0:1000", "root:root", "ROOT:users", "root:0",
                                  "00", "000:1000", ":1000"])  # fmt: skip
def test_root_user_spellings_are_refused(user):
    """grand-challenge's spellings, and (beyond its string rule) every USER whose uid is 0."""
    problems = images.check_image_config(config(user=user), info())
    assert reasons(problems) == ["RootUser"]
    assert problems[0].message == images.ROOT_USER_MESSAGE
    assert problems[0].field == "config.User" and problems[0].value == user


@pytest.mark.parametrize("user", ["1000", "1000:0", "algorithm", "nobody:nogroup", "65534", "10", "rooty"])
def test_non_root_users_are_accepted(user):
    """Names pass here because nothing looked into the image (info() has no user_files);
    resolving them is tested in test_image_user.py."""
    assert images.check_image_config(config(user=user), info()) == []


def test_missing_user_key_means_root():
    cfg = config()
    del cfg["config"]["User"]
    assert reasons(images.check_image_config(cfg, info())) == ["RootUser"]


def test_missing_inner_config_means_root_and_no_entrypoint():
    assert reasons(images.check_image_config({"architecture": "amd64", "os": "linux"}, info())) == ["RootUser", "NoEntrypoint"]


def test_root_message_is_grand_challenges_verbatim():
    assert images.ROOT_USER_MESSAGE == (
        "The container runs as root. Please add a user, group and USER instruction to your Dockerfile, rebuild, "
        "test and upload the container again, see https://docs.docker.com/develop/develop-images/dockerfile_best-practices/#user"
    )


# --- architecture (step 7) ---


def test_arm64_is_refused_with_python_repr():
    problems = images.check_image_config(config(arch="arm64"), info())
    assert reasons(problems) == ["UnsupportedArchitecture"]
    assert problems[0].message == "Architecture type 'arm64' is not supported. Please provide a container image built for 'amd64'."


def test_absent_architecture_shows_none():
    problems = images.check_image_config(config(arch=None), info())
    assert problems[0].message.startswith("Architecture type None is not supported.")


def test_index_platforms_are_listed_when_no_amd64():
    problems = images.check_image_config(config(arch="arm64"), info(platforms=("linux/arm64/v8", "linux/s390x")))
    assert problems[0].message.endswith("The image index offers: linux/arm64/v8, linux/s390x.")


def test_windows_is_refused():
    problems = images.check_image_config(config(os_="windows"), info())
    assert reasons(problems) == ["UnsupportedOS"]
    assert "'windows'" in problems[0].message


# --- entrypoint / cmd ---


@pytest.mark.parametrize(
    "entrypoint,cmd,ok",
    [(("/run",), None, True), (None, ["python", "x.py"], True), (None, "python x.py", True), (None, None, False), ((), [], False)],
)
def test_entrypoint_or_cmd_required(entrypoint, cmd, ok):
    problems = images.check_image_config(config(entrypoint=entrypoint, cmd=cmd), info())
    assert (problems == []) is ok
    if not ok:
        assert reasons(problems) == ["NoEntrypoint"]
        assert problems[0].message == images.NO_ENTRYPOINT_MESSAGE


def test_all_problems_are_reported_in_grand_challenge_order():
    problems = images.check_image_config(config(user="root", arch="arm64", entrypoint=None), info())
    assert reasons(problems) == ["RootUser", "UnsupportedArchitecture", "NoEntrypoint"]


# --- missing configuration (step 4, registry wording) ---


def test_missing_config_is_refused():
    assert reasons(images.check_image_config(None)) == ["MissingConfig"]
    missing = images.ManifestInfo(manifest_digest=DIGEST, pinned_image="x", config_digest=CONFIG, config=None, config_error="404 BLOB_UNKNOWN")
    problems = images.check_image_config(None, missing)
    assert problems[0].message.startswith("Could not find the config file in the container image")
    assert "404 BLOB_UNKNOWN" in problems[0].message
    assert problems[0].value == CONFIG


def test_config_with_wrong_digest_uses_sha256_message():
    bad = images.ManifestInfo(manifest_digest=DIGEST, pinned_image="x", config_digest=CONFIG, config_error="mismatch", config_error_reason="InvalidSha256")
    problems = images.check_image_config(None, bad)
    assert reasons(problems) == ["InvalidSha256"]
    assert problems[0].message == "The container image file does not have a valid sha256 hash."


# --- duplicates (step 8) ---


def test_duplicate_is_the_younger_image_with_the_same_config():
    older = images.Peer("algo-v1", CONFIG, "2025-01-01T00:00:00Z", images.COMPLETED)
    assert images.find_duplicate("algo-v2", "2025-01-02T00:00:00Z", CONFIG, [older]) == older
    younger = images.Peer("algo-v2", CONFIG, "2025-01-02T00:00:00Z", images.COMPLETED)
    assert images.find_duplicate("algo-v1", "2025-01-01T00:00:00Z", CONFIG, [younger]) is None


def test_duplicate_ignores_self_other_digests_and_failed_images():
    peers = [
        images.Peer("me", CONFIG, "2024-01-01T00:00:00Z", images.COMPLETED),
        images.Peer("other", "sha256:" + "d" * 64, "2024-01-01T00:00:00Z", images.COMPLETED),
        images.Peer("failed-dup", CONFIG, "2024-01-01T00:00:00Z", images.FAILED),
    ]
    assert images.find_duplicate("me", "2025-01-01T00:00:00Z", CONFIG, peers) is None


def test_duplicate_ties_are_broken_by_name():
    a = images.Peer("a", CONFIG, NOW, images.COMPLETED)
    b = images.Peer("b", CONFIG, NOW, images.COMPLETED)
    assert images.find_duplicate("b", NOW, CONFIG, [a, b]) == a
    assert images.find_duplicate("a", NOW, CONFIG, [a, b]) is None


def test_duplicate_decision_uses_grand_challenge_message():
    older = images.Peer("algo-v1", CONFIG, "2024-01-01T00:00:00Z", images.COMPLETED)
    status = decide(info(), name="algo-v2", created=NOW, peers=[older])
    assert status["importStatus"] == images.FAILED
    assert status["message"].startswith(images.DUPLICATE_MESSAGE)
    assert "algo-v1" in status["message"]
    assert ready(status)["reason"] == "Duplicate"


# --- status decisions ---


def decide(observation, status=None, generation=1, now=NOW, spec=None, **kw):
    spec = spec or {"image": "reg.example/algo:1.0"}
    return images.decide_image_status(spec, status, observation, generation, now, **kw)


def ready(status):
    return get_condition(status["conditions"], "Ready")


def test_good_image_completes_with_every_fact_recorded():
    status = decide(info(config(user="1000:0", cmd=["--fast"], WorkingDir="/opt/app")))
    assert status["importStatus"] == "Completed"
    assert status["isManifestValid"] is True and status["isInRegistry"] is True
    assert status["imageSha256"] == DIGEST and status["configSha256"] == CONFIG
    assert status["pinnedImage"] == f"reg.example/algo@{DIGEST}"
    assert status["sizeInRegistry"] == 1234
    assert (status["architecture"], status["os"], status["user"]) == ("amd64", "linux", "1000:0")
    assert status["entrypoint"] == ["/run"] and status["cmd"] == ["--fast"] and status["workingDir"] == "/opt/app"
    assert status["observedGeneration"] == 1 and status["lastInspectedAt"] == NOW
    cond = ready(status)
    assert (cond["status"], cond["reason"], cond["observedGeneration"]) == ("True", "Ready", 1)
    # the decision is valid against the status model the CRD is generated from
    ComponentImageStatus.model_validate({k: v for k, v in status.items() if v is not None})


def test_root_image_fails_with_field_and_value_in_the_condition():
    status = decide(info(config(user="root")))
    assert status["importStatus"] == "Failed" and status["isManifestValid"] is False
    assert status["message"] == images.ROOT_USER_MESSAGE
    cond = ready(status)
    assert cond["status"] == "False" and cond["reason"] == "RootUser"
    assert cond["message"].startswith("config.User is 'root': The container runs as root.")
    assert status["user"] == "root" and status["isInRegistry"] is True


@pytest.mark.parametrize(
    "reason,permanent_status",
    [("ManifestUnknown", None), ("Unauthorized", None), ("InvalidManifest", False), ("InvalidReference", None)],
)
def test_permanent_registry_errors_fail(reason, permanent_status):
    status = decide(images.RegistryFailure(reason, "The manifest 'v9' was not found (404).", transient=False))
    assert status["importStatus"] == "Failed"
    assert status["isManifestValid"] is permanent_status
    assert status["isInRegistry"] is False and status["imageSha256"] is None
    assert ready(status)["reason"] == reason
    assert "spec.image 'reg.example/algo:1.0'" in ready(status)["message"]


def test_transient_error_requeues_and_never_fails():
    failure = images.RegistryFailure("RegistryUnreachable", "The registry could not be reached: connection refused.", transient=True)
    status = decide(failure)
    assert status["importStatus"] == "Re-Queued"
    assert ready(status)["status"] == "False" and ready(status)["reason"] == "RegistryUnreachable"
    assert "retried" in status["message"]
    # retried again and again: still Re-Queued, and nothing to write the second time
    again = decide(failure, status=status, now=LATER)
    assert again["importStatus"] == "Re-Queued"
    assert status_changes(status, again) == {}


def test_transient_error_after_completion_keeps_the_completed_status():
    done = decide(info())
    kept = decide(images.RegistryFailure("RegistryUnreachable", "timeout", transient=True), status=done, now=LATER)
    assert status_changes(done, kept) == {}


def test_transient_error_after_spec_change_requeues():
    done = decide(info(), generation=1)
    status = decide(images.RegistryFailure("RegistryUnreachable", "timeout", transient=True), status=done, generation=2, now=LATER)
    assert status["importStatus"] == "Re-Queued" and status["imageSha256"] is None
    assert status["observedGeneration"] == 2


def test_requeued_image_completes_when_registry_returns():
    requeued = decide(images.RegistryFailure("RegistryUnreachable", "refused", transient=True))
    done = decide(info(), status=requeued, now=LATER)
    assert done["importStatus"] == "Completed"
    assert ready(done)["lastTransitionTime"] == LATER


def test_unchanged_recheck_writes_nothing():
    done = decide(info())
    again = decide(info(), status=done, now=LATER)
    assert status_changes(done, again) == {}
    assert again["lastInspectedAt"] == NOW


def test_moved_tag_is_recorded():
    done = decide(info())
    moved_digest = "sha256:" + "b" * 64
    moved = decide(info(manifest_digest=moved_digest, pinned_image=f"reg.example/algo@{moved_digest}"), status=done, now=LATER)
    changes = status_changes(done, moved)
    assert changes["imageSha256"] == moved_digest and changes["lastInspectedAt"] == LATER
    assert "conditions" in changes  # the Ready message names the new pinned image
    assert ready(moved)["lastTransitionTime"] == NOW  # still True: no transition


def test_failed_image_becomes_ready_when_fixed():
    failed = decide(info(config(user="root")))
    fixed = decide(info(config(user="app")), status=failed, generation=2, now=LATER)
    assert fixed["importStatus"] == "Completed"
    assert ready(fixed)["lastTransitionTime"] == LATER and ready(fixed)["observedGeneration"] == 2


# --- scheduling helpers ---


@pytest.mark.parametrize(
    "status,generation,expected",
    [
        ({}, 1, True),
        ({"importStatus": "Completed", "observedGeneration": 1, "runAsUser": 1000}, 1, False),
        ({"importStatus": "Completed", "observedGeneration": 1}, 1, True),  # inspected before runAsUser existed
        ({"importStatus": "Failed", "observedGeneration": 1}, 1, False),
        ({"importStatus": "Completed", "observedGeneration": 1, "runAsUser": 1000}, 2, True),
        ({"importStatus": "Re-Queued", "observedGeneration": 1}, 1, True),
        ({"importStatus": "Started", "observedGeneration": 1}, 1, True),
    ],
)
def test_needs_inspection(status, generation, expected):
    assert images.needs_inspection(status, generation) is expected


@pytest.mark.parametrize(
    "spec,expected",
    [
        ({"image": "reg/algo:latest", "followTag": True}, True),
        ({"image": "reg/algo:latest"}, False),
        ({"image": f"reg/algo@{DIGEST}", "followTag": True}, False),
        ({"image": f"reg/algo:1@{DIGEST}", "followTag": True}, False),
    ],
)
def test_only_unpinned_tags_are_followed(spec, expected):
    assert images.follows_tag(spec) is expected


def test_retry_delay_backs_off_and_caps():
    delays = [images.retry_delay(n) for n in range(12)]
    assert delays == sorted(delays) and delays[0] == 2 and delays[-1] == 300
    assert images.retry_delay(None) == 2
