"""ComponentBatches over object storage, with a CEL filter, against the real MinIO and API server:
the prefix, the glob and the filter select exactly the right objects; an object that already ran
under another URI (same bytes, so the same inputs digest) is existing; a filter that does not
evaluate for an item makes that item invalid, with the field and the index. (One that does not
compile is refused at admission: tests/integration/test_batches.py.)"""

from __future__ import annotations

import hashlib

import pytest

from component_operator import GROUP, VERSION
from component_operator.adapters import s3

from .conftest import wait_until
from .test_batches import batch_jobs, create_batch, events_of, get_batch
from .test_dataplane_jobs import dataplane_operator  # noqa: F401 - the operator with object storage on
from .test_jobs import create as create_job

BUCKET = "it-batch-datasets"
CSV = {  # key below the prefix -> content
    "a.csv": b"metric,value\n" + b"a" * 100,
    "b.csv": b"m,v\n",
    "c.csv": b"metric,value\n" + b"c" * 200,
    "notes.txt": b"not a csv at all, and long enough to pass the size filter",
    "sub/d.csv": b"metric,value\n" + b"d" * 300,
}


@pytest.fixture()
def dataset(testenv, namespace):
    store = s3.ObjectStore(s3.S3Settings(testenv.env["TESTENV_S3_ENDPOINT"],
                                         access_key=testenv.env["TESTENV_S3_ACCESS_KEY"],
                                         secret_key=testenv.env["TESTENV_S3_SECRET_KEY"]))
    store.ensure_bucket(BUCKET)
    prefix = f"s3://{BUCKET}/{namespace}/scans/"
    for key, data in CSV.items():
        store.put_bytes(prefix + key, data)
    store.put_bytes(f"s3://{BUCKET}/{namespace}/copy-of-a.csv", CSV["a.csv"])
    yield prefix
    store.delete_prefix(f"s3://{BUCKET}/{namespace}/")


@pytest.fixture()
def ns(namespace, ready_image, job_interfaces):
    ready_image(namespace, "algo")
    return namespace


def storage_batch(name, prefix, **spec):
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ComponentBatch",
        "metadata": {"name": name, "annotations": {"sim.testenv/outcome": "hang"}},
        "spec": {"image": "algo", "itemInterface": "dp-metrics", "requiresMemoryGB": 1, "timeLimit": 300,
                 "fromObjectStorage": {"uri": prefix, "glob": "*.csv"}, "parallelism": 10, **spec},
    }


def test_prefix_glob_and_filter_select_the_items(custom, core, ns, dataset, dataplane_operator):
    # The bytes of a.csv already run under another name: same digest, so a.csv is existing.
    earlier = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ComponentJob",
               "metadata": {"name": "earlier-a", "annotations": {"sim.testenv/outcome": "hang"}},
               "spec": {"image": "algo", "requiresMemoryGB": 1, "timeLimit": 300, "inputs": [
                   {"interface": "dp-metrics", "file": {"uri": dataset.replace("scans/", "copy-of-a.csv"),
                                                        "sha256": hashlib.sha256(CSV["a.csv"]).hexdigest()}}]}}
    create_job(custom, ns, earlier)
    wait_until(lambda: (custom.get_namespaced_custom_object(GROUP, VERSION, ns, "componentjobs", "earlier-a")
                        .get("status") or {}).get("inputsDigest"), timeout=60, message="earlier-a's digest")

    create_batch(custom, ns, storage_batch("from-storage", dataset, filter="size > 10 && !key.endsWith('b.csv')"))

    def planned():
        status = get_batch(custom, ns, "from-storage").get("status") or {}
        return status if status.get("counts", {}).get("running") == 2 else None

    status = wait_until(planned, timeout=90, message="two jobs started")
    counts = status["counts"]
    assert counts["found"] == 4, "the glob keeps the four .csv objects (b.csv included), not notes.txt"
    assert counts["total"] == 3, "the filter drops b.csv (5 bytes)"
    assert counts["existing"] == 1 and counts["invalid"] == 0
    uid = get_batch(custom, ns, "from-storage")["metadata"]["uid"]
    jobs = batch_jobs(custom, ns, uid)
    files = sorted(j["spec"]["inputs"][0]["file"]["uri"] for j in jobs)
    assert files == [dataset + "c.csv", dataset + "sub/d.csv"]
    for job in jobs:
        (item,) = job["spec"]["inputs"]
        key = item["file"]["uri"].removeprefix(dataset)
        assert item["file"]["sha256"] == hashlib.sha256(CSV[key]).hexdigest(), "the job carries the hashed content"
    messages = events_of(core, ns, "from-storage")
    assert "4 instances found." in messages and "3 execution candidates found." in messages, messages
    assert "1 existing runs found." in messages, messages


def test_a_filter_error_for_one_item_makes_it_invalid(custom, ns, dataset, dataplane_operator):
    # int(key) fails for every key but c.csv's (short-circuited): those items are invalid, with their index.
    create_batch(custom, ns, storage_batch("item-errors", dataset, filter="key.endsWith('c.csv') || int(key) > 0"))

    def planned():
        status = get_batch(custom, ns, "item-errors").get("status") or {}
        return status if status.get("counts", {}).get("total") == 4 else None

    status = wait_until(planned, timeout=60, message="the plan")
    assert status["counts"]["invalid"] == 3
    assert sorted(i["index"] for i in status["invalidItems"]) == [0, 1, 3]
    assert all(i["reason"] == "FilterError" and "spec.filter" in i["message"] for i in status["invalidItems"])
