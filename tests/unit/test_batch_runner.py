"""The batch runner's pure parts (no cluster): items, the "already ran" digest, names, manifests,
messages, reading status, and ``run()``'s stages with a runner that decides ``has_run`` itself
(a hook, as in django-analyses) and ``dry=True`` (which touches no API).

We test these aspects:
* a representation becomes the item the operator expects (value, file, image);
* the digest the runner skips by is planning.identity's digest of the same ComponentJob;
* the default batch name is deterministic, DNS-1123 and at most 63 characters;
* the stages log django-analyses' messages with the right counts, in order;
* status is trusted only for the current generation;
* the command line refuses a bad manifest with field, value and rule (exit 2) before any API call.
"""

from __future__ import annotations

import logging
import re

import pytest

from component_operator.api.job import ComponentJobSpec
from component_operator.batch import File, Image, InvalidBatchError, QuerySetRunner, RunResult, messages
from component_operator.batch import cli as batch_cli
from component_operator.batch import items, manifest, state
from component_operator.batch.errors import BatchError, ImageNotReadyError
from component_operator.planning import identity

IMAGE_DIGEST = "sha256:" + "ab" * 32
SHA = "cd" * 32
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ANSI = re.compile("\x1b\\[")


def job_digest(inputs, **settings):
    """The digest the operator records for a ComponentJob with these inputs."""
    spec = ComponentJobSpec.model_validate({"image": "algo", "inputs": inputs, **settings})
    return identity.inputs_digest(identity.job_identity(spec, IMAGE_DIGEST))


# ---------------------------------------------------------------------------------------
# items
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("representation, item", [
    (7, {"value": 7}),
    (None, {"value": None}),
    ({"a": (1, 2.5)}, {"value": {"a": [1, 2.5]}}),
    (File("s3://data/a.csv"), {"file": {"uri": "s3://data/a.csv"}}),
    (File("s3://data/a.csv", SHA), {"file": {"uri": "s3://data/a.csv", "sha256": SHA}}),
    (Image("s3://data/ct.mha", SHA), {"image": {"uri": "s3://data/ct.mha", "sha256": SHA}}),
])
def test_representation_to_item(representation, item):
    assert items.to_item(representation) == item


@pytest.mark.parametrize("bad, error", [(object(), TypeError), ({1: "x"}, TypeError), (float("nan"), ValueError)])
def test_non_json_representation_is_refused(bad, error):
    with pytest.raises(error):
        items.to_item(bad)


def test_configuration_becomes_fixed_inputs():
    assert items.configuration_inputs({"threshold": 0.5, "atlas": File("s3://b/atlas.nii", SHA)}) == [
        {"interface": "threshold", "value": 0.5},
        {"interface": "atlas", "file": {"uri": "s3://b/atlas.nii", "sha256": SHA}},
    ]


def test_item_digest_is_the_jobs_inputs_digest():
    config = items.configuration_inputs({"it-prob": 0.5})
    ours = items.item_digest(IMAGE_DIGEST, config, "it-count", items.to_item(3))
    assert ours == job_digest([{"interface": "it-count", "value": 3}, {"interface": "it-prob", "value": 0.5}])
    assert ours != items.item_digest(IMAGE_DIGEST, config, "it-count", items.to_item(4))
    assert ours != items.item_digest("sha256:" + "ef" * 32, config, "it-count", items.to_item(3))
    # 3.0 and 3 are the same JSON number, so the same run.
    assert ours == items.item_digest(IMAGE_DIGEST, config, "it-count", items.to_item(3.0))


def test_item_digest_includes_model_and_files_by_content():
    model = {"uri": "s3://models/m.tar.gz", "sha256": SHA}
    item = items.to_item(File("s3://data/x.csv", SHA))
    with_model = items.item_digest(IMAGE_DIGEST, [], "table", item, model=model)
    assert with_model == job_digest([{"interface": "table", **item}], model=model)
    assert with_model != items.item_digest(IMAGE_DIGEST, [], "table", item)
    moved = items.to_item(File("s3://elsewhere/y.csv", SHA))  # same bytes, other place: the same run
    assert items.item_digest(IMAGE_DIGEST, [], "table", moved, model=model) == with_model


def test_file_without_sha256_has_no_digest_so_is_pending():
    assert items.item_digest(IMAGE_DIGEST, [], "table", items.to_item(File("s3://data/x.csv"))) is None
    assert items.is_existing(None, frozenset({"anything"})) is False


def test_existing_digests_are_succeeded_or_unfinished_jobs():
    jobs = [
        {"status": {"inputsDigest": "a", "phase": "Succeeded"}},
        {"status": {"inputsDigest": "b", "phase": "Executing"}},
        {"status": {"inputsDigest": "c", "phase": "Validating inputs"}},
        {"status": {"inputsDigest": "d", "phase": "Failed"}},
        {"status": {"inputsDigest": "e", "phase": "Cancelled"}},
        {"status": {"phase": "Succeeded"}},
        {"metadata": {"name": "new"}},
    ]
    assert items.existing_digests(jobs) == frozenset({"a", "b", "c"})


def test_split_keeps_order():
    existing, pending = items.split_existing(range(8), lambda i: i in {5, 0, 2})
    assert (existing, pending) == ([0, 2, 5], [1, 3, 4, 6, 7])


def test_default_batch_name_is_deterministic_and_dns_safe():
    config = items.configuration_inputs({"b": 1, "a": 2})
    name = items.default_batch_name("CountRunner", "algo", config, "it-count")
    assert name.startswith("count-runner-") and DNS_1123_LABEL.match(name) and len(name) <= 63
    assert name == items.default_batch_name("CountRunner", "algo", list(reversed(config)), "it-count")
    others = {
        items.default_batch_name("CountRunner", "algo", items.configuration_inputs({"b": 1, "a": 3}), "it-count"),
        items.default_batch_name("CountRunner", "algo2", config, "it-count"),
        items.default_batch_name("CountRunner", "algo", config, "it-other"),
        items.default_batch_name("OtherRunner", "algo", config, "it-count"),
    }
    assert name not in others and len(others) == 4
    long = items.default_batch_name("HTTPServer_Runner" * 10, "algo", [], "x")
    assert DNS_1123_LABEL.match(long) and len(long) == 63
    assert DNS_1123_LABEL.match(items.default_batch_name("___", "algo", [], "x"))


# ---------------------------------------------------------------------------------------
# manifests
# ---------------------------------------------------------------------------------------


def test_build_checks_against_the_crd_model():
    body = manifest.build(name="b", namespace="ns", image="algo", inputs=[], item_interface="it-count", outputs=[],
                          items=[{"value": 1}], job_settings={"parallelism": 3}, annotations={"x/y": "z"})
    assert body["spec"] == {"image": "algo", "inputs": [], "itemInterface": "it-count", "outputs": [],
                            "items": [{"value": 1}], "skipExisting": True, "parallelism": 3}
    assert body["metadata"] == {"name": "b", "namespace": "ns", "annotations": {"x/y": "z"}}
    with pytest.raises(InvalidBatchError) as err:
        manifest.build(name="b", namespace="ns", image="algo", inputs=[], item_interface="it-count", outputs=[],
                       items=[{"value": 1}], job_settings={"parallelism": 0, "timeLimit": 1}, annotations={})
    assert {e.path for e in err.value.errors} == {"spec.parallelism", "spec.timeLimit"}


def test_job_settings_cannot_override_what_the_runner_sets():
    with pytest.raises(InvalidBatchError) as err:
        manifest.build(name="b", namespace="ns", image="algo", inputs=[], item_interface="i", outputs=[],
                       items=[{"value": 1}], job_settings={"items": [], "image": "x"}, annotations={})
    assert [e.path for e in err.value.errors] == ["JOB_SETTINGS.image", "JOB_SETTINGS.items"]


def test_too_many_items_for_one_batch():
    with pytest.raises(InvalidBatchError, match="max_total"):
        manifest.build(name="b", namespace="ns", image="algo", inputs=[], item_interface="i", outputs=[],
                       items=[{"value": i} for i in range(10_001)], job_settings={}, annotations={})


def test_same_spec_fills_in_defaults():
    written = {"image": "a", "itemInterface": "i", "items": [{"value": 1}]}
    stored = {**written, "parallelism": 10, "skipExisting": True, "timeLimit": 3600, "inputs": []}
    assert manifest.same_spec(written, stored)
    assert not manifest.same_spec(written, {**stored, "items": [{"value": 2}]})


def test_dry_run_copy_is_a_suspended_twin():
    doc = {"apiVersion": "x", "kind": "ComponentBatch", "metadata": {"name": "nightly", "resourceVersion": "9"},
           "spec": {"image": "a", "suspend": False}, "status": {"counts": {}}}
    twin = manifest.dry_run_copy(doc, "ns")
    assert twin["metadata"] == {"generateName": "nightly-dry-run-", "namespace": "ns"}
    assert twin["spec"] == {"image": "a", "suspend": True} and "status" not in twin
    assert doc["metadata"]["name"] == "nightly" and doc["spec"]["suspend"] is False  # the original is untouched


# ---------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------


def test_messages_keep_django_analyses_texts_without_colours():
    assert messages.PENDING_FOUND.format(n_existing=3, n_pending=5) == "3 existing runs found.\n5 instances pending execution."
    assert messages.FILTER_QUERYSET_END.format(n_candidates=8) == "8 execution candidates found."
    assert messages.INPUT_GENERATION_FINISHED.format(n_inputs=5) == "5 input specifications prepared."
    assert messages.BASE_QUERY_START.format(model_name="Scan") == "Querying Scan instances..."
    for name in dir(messages):
        if name.isupper():
            assert not ANSI.search(getattr(messages, name)), name


# ---------------------------------------------------------------------------------------
# run(): the stages, with has_run decided by the subclass and dry=True (no API)
# ---------------------------------------------------------------------------------------


class Counting(QuerySetRunner):
    IMAGE = "algo"
    NAMESPACE = "ns"
    CONFIGURATION = {"it-prob": 0.5}
    INPUT_KEY = "it-count"
    JOB_SETTINGS = {"requiresMemoryGB": 4, "parallelism": 2}
    ANNOTATIONS = {"sim.testenv/outcome": "succeed"}
    DATA = range(8)
    DATA_NAME = "count"
    DONE = {0, 1, 2}

    def filter_queryset(self, queryset, log_level=logging.INFO):
        self.log_filter_start(log_level)
        kept = [i for i in queryset if i != 99]
        self.log_filter_end(len(kept), log_level)
        return kept

    def has_run(self, instance):
        return instance in self.DONE

    def get_instance_representation(self, instance):
        if instance == 6:
            raise RuntimeError("cannot read count 6")
        return instance


def logged(caplog):
    return [r.getMessage() for r in caplog.records]


def test_dry_run_stages_and_counts(caplog):
    caplog.set_level(logging.INFO, logger="component_operator.batch")
    runner = Counting()
    result = runner.run(dry=True, prep_progressbar=False)
    text = "\n".join(logged(caplog))
    assert result == RunResult(candidates=8, existing=3, pending=5, inputs=4, failures=1, batch_name=None,
                               namespace="ns", dry=True, manifest=result.manifest)
    for expected in ["algo: Batch Execution", "Default execution queryset generation:", "Querying count instances...",
                     "8 instances found.", "8 execution candidates found.",
                     "Checking execution status for the default queryset",
                     "3 existing runs found.\n5 instances pending execution.", "Failed to preprocess count #6!",
                     "1 of 5 count instances failed to be preprocessed", "4 input specifications prepared.",
                     "Dry run: would have started algo execution over 4 count instances"]:
        assert expected in text, expected
    assert "Successfully started" not in text
    order = [text.index(s) for s in ["Batch Execution", "candidates found", "existing runs found",
                                     "input specifications prepared", "Dry run"]]
    assert order == sorted(order)
    body = result.manifest
    assert body["metadata"]["name"] == runner.get_batch_name() and body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["annotations"] == {"sim.testenv/outcome": "succeed"}
    assert body["spec"]["items"] == [{"value": 3}, {"value": 4}, {"value": 5}, {"value": 7}]
    assert body["spec"]["inputs"] == [{"interface": "it-prob", "value": 0.5}]
    assert body["spec"]["itemInterface"] == "it-count" and body["spec"]["skipExisting"] is True
    assert body["spec"]["parallelism"] == 2


def test_max_total_limits_what_is_prepared(caplog):
    caplog.set_level(logging.INFO, logger="component_operator.batch")
    result = Counting().run(max_total=2, dry=True, prep_progressbar=False)
    assert (result.pending, result.inputs, result.failures) == (5, 2, 0)
    assert result.manifest["spec"]["items"] == [{"value": 3}, {"value": 4}]
    assert "2 input specifications prepared." in logged(caplog)


def test_a_given_queryset_is_filtered_too(caplog):
    caplog.set_level(logging.INFO, logger="component_operator.batch")
    result = Counting().run(queryset=[1, 3, 99], dry=True, prep_progressbar=False)
    text = "\n".join(logged(caplog))
    assert "Input queryset validation:" in text and "Checking execution status for the input queryset" in text
    assert (result.candidates, result.existing, result.pending) == (2, 1, 1)
    assert result.manifest["spec"]["items"] == [{"value": 3}]


@pytest.mark.parametrize("data, queryset, message", [
    (range(3), None, "Congratulations! No pending count instances were detected in the dataset"),
    ((), None, "No execution candidates detected in count queryset!"),
    (range(8), [0, 1], "All 2 provided count instances have been processed already"),
])
def test_nothing_pending_messages(caplog, data, queryset, message):
    caplog.set_level(logging.INFO, logger="component_operator.batch")
    runner = type("Done", (Counting,), {"DATA": data})()
    result = runner.run(queryset=queryset, dry=True, prep_progressbar=False)
    assert message in "\n".join(logged(caplog))
    assert result.pending == 0 and result.manifest is None and result.batch_name is None
    assert runner.wait() is None  # nothing was started: nothing to wait for


def test_input_specification_must_have_only_the_input_key():
    class TwoKeys(Counting):
        def create_input_specification(self, instance):
            return {"it-count": instance, "other": 1}

    with pytest.raises(BatchError, match="one item interface"):
        TwoKeys().run(dry=True, prep_progressbar=False)


def test_default_has_run_uses_the_job_digest():
    """A runner that knows the image's digest itself (the query_image_digest hook) skips exactly the
    items whose job digest is among the existing ones."""

    class Pinned(Counting):
        has_run = QuerySetRunner.has_run
        get_instance_representation = QuerySetRunner.get_instance_representation

        def query_image_digest(self):
            return IMAGE_DIGEST

        def query_existing_digests(self, log_level=logging.DEBUG):
            return frozenset(job_digest([{"interface": "it-prob", "value": 0.5}, {"interface": "it-count", "value": v}],
                                        requiresMemoryGB=16) for v in (1, 4))

    runner = Pinned()
    result = runner.run(dry=True, prep_progressbar=False)
    assert (result.existing, result.pending) == (2, 6)
    assert [i["value"] for i in result.manifest["spec"]["items"]] == [0, 2, 3, 5, 6, 7]

    class Forced(Pinned):
        JOB_SETTINGS = {"skipExisting": False}

    assert Forced().run(dry=True, prep_progressbar=False).pending == 8


# ---------------------------------------------------------------------------------------
# reading status
# ---------------------------------------------------------------------------------------


def batch(generation=1, observed=1, conditions=(), **counts):
    return {"metadata": {"name": "b", "namespace": "ns", "generation": generation},
            "spec": {"image": "algo"},
            "status": {"observedGeneration": observed, "counts": counts,
                       "conditions": [{"type": t, "status": s, "reason": "R", "message": m, "observedGeneration": g}
                                      for t, s, m, g in conditions]}}


def test_terminal_condition_only_for_the_current_generation():
    assert state.terminal_condition(batch(conditions=[("Complete", "True", "", 1)])) == "Complete"
    assert state.terminal_condition(batch(conditions=[("Failed", "True", "", 1)])) == "Failed"
    assert state.terminal_condition(batch(conditions=[("Complete", "False", "", 1)])) is None
    assert state.terminal_condition(batch(generation=2, observed=1, conditions=[("Complete", "True", "", 1)])) is None
    assert state.terminal_condition(batch(generation=2, observed=2, conditions=[("Complete", "True", "", 1)])) is None
    assert state.planned(batch(conditions=[("Suspended", "True", "", 1)]))
    assert not state.planned(batch(generation=1, observed=None, conditions=[("Suspended", "True", "", 1)]))


def test_settled_is_total_minus_pending_and_running():
    b = batch(total=8, pending=2, running=3, succeeded=3)
    assert state.settled(b) == (3, 8)
    assert state.settled({"metadata": {}}) == (0, 0)


def test_plan_and_status_texts():
    b = batch(conditions=[("Suspended", "True", "spec.suspend is true", 1)], found=10, total=8, existing=3, pending=4,
              invalid=1)
    b["status"]["invalidItems"] = [{"index": 6, "item": "6", "reason": "InvalidItem", "message": "not an integer"}]
    plan = state.format_plan(b)
    assert re.search(r"existing\s+3", plan) and re.search(r"pending\s+4", plan) and "not an integer" in plan
    text = state.format_status(b)
    assert "Suspended" in text and "Invalid items (first 1 of 1)" in text
    assert state.status_document(b)["counts"]["found"] == 10


def test_image_must_be_ready_with_a_digest():
    ready = {"status": {"imageSha256": IMAGE_DIGEST, "conditions": [{"type": "Ready", "status": "True"}]}}
    assert state.image_digest(ready, "ns", "algo") == IMAGE_DIGEST
    failed = {"status": {"importStatus": "Failed", "message": "Could not pull the image",
                         "conditions": [{"type": "Ready", "status": "False"}]}}
    with pytest.raises(ImageNotReadyError, match=r"ns/algo .*Failed.*Could not pull the image"):
        state.image_digest(failed, "ns", "algo")
    with pytest.raises(ImageNotReadyError, match="does not exist"):
        state.image_digest(None, "ns", "algo")


# ---------------------------------------------------------------------------------------
# the command line, before it needs a cluster
# ---------------------------------------------------------------------------------------


def test_cli_refuses_an_invalid_manifest(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: components.grand-challenge.org/v1alpha1\nkind: ComponentBatch\n"
                    "metadata: {name: nightly}\nspec:\n  image: algo\n  itemInterface: it-count\n"
                    "  items: [{value: 1}, {file: {uri: nope}}]\n  parallelism: 0\n")
    assert batch_cli.main(["run", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ComponentBatch/nightly: spec.items[1].file.uri: String should have at least 6 characters (got 'nope')" in err
    assert "spec.parallelism: Input should be greater than or equal to 1 (got 0)" in err


def test_cli_usage_errors(tmp_path, capsys):
    path = tmp_path / "two.yaml"
    path.write_text("kind: ComponentBatch\n---\nkind: ComponentBatch\n")
    assert batch_cli.main(["run", "-f", str(path)]) == 2
    assert batch_cli.main(["run", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert batch_cli.main(["wait", "b", "--for", "Done"]) == 2
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: components.grand-challenge.org/v1alpha1\nkind: ComponentBatch\n"
                    "metadata: {name: nightly, namespace: a}\nspec: {image: algo, itemInterface: i, items: [{value: 1}]}\n")
    assert batch_cli.main(["run", "-f", str(good), "-n", "b"]) == 2
    assert "does not match -n b" in capsys.readouterr().err


def test_a_class_level_queryset_is_queried_again_each_run():
    """A Django queryset caches its rows once evaluated; the runner asks it for a fresh one (``.all()``)."""

    class Rows:
        model = "Scan"

        def __init__(self):
            self.rows = [3, 4]

        def all(self):
            return list(self.rows)

    rows = Rows()
    runner = type("Fresh", (Counting,), {"DATA": rows, "DONE": set()})()
    assert runner.run(dry=True, prep_progressbar=False).pending == 2
    rows.rows.append(5)
    assert runner.run(dry=True, prep_progressbar=False).pending == 3
