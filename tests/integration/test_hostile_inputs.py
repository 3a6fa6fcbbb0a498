"""The hostile-input suite (issue 12): thousands of objects any user could create, sent to the
real API server with the admission webhook out of the way, must not hurt the operator.

What is sent (``tests/support/hostile.py``): ComponentJobs, ComponentImages and a bounded
number of ComponentInterfaces generated with hypothesis from the CRDs' own OpenAPI schemas
(derandomized: the same objects every run), a share of them mutated to exercise admission,
plus the hand-written pathological cases of the issue and the minimised objects that broke the
operator before. The API server refuses many of them (counted as "refused at admission");
what it admits, the operator must handle.

What must hold, checked after the storm:
  * the operator process is alive and its watchers still work: a fresh valid job reaches a
    terminal phase;
  * the ``unexpected`` reconcile error counter is 0, and the operator's log shows no failed
    watcher;
  * no job is stuck: each admitted job is terminal, waiting for something outside the operator
    (a condition says what), or its pod is still pending or running;
  * every job the operator refused (Failed, Cancelled) carries a reason and a message.
What is measured and reported, not asserted: the send rate, and how long a valid probe job
takes from creation to its terminal phase with no storm (baseline) and during the storm.

Environment:
  HOSTILE_OBJECTS=10000               objects to send (hand-written cases included)
  HOSTILE_OPERATOR_PYTHONPATH=DIR     run the operator from DIR (e.g. /tmp/tree/operator of a
                                      ``git worktree``), with that tree's CRDs applied
  HOSTILE_EXCLUDE=tag,tag             leave out hand-written cases by tag or label (freeze,
                                      killer, kopf-deepcopy, deep, size, ...)
  HOSTILE_ONLY=tag,tag                only these hand-written cases (with HOSTILE_OBJECTS=0: no
                                      generated ones either), e.g. to time one case alone
  HOSTILE_SETTLE_SECONDS=600          how long admitted objects may take to settle (the operator
                                      drains a backlog of ~1,900 admitted jobs on 2 shared cores)
  HOSTILE_RESULTS=path.json           also write the report there (e.g. bench/results/...)
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from kubernetes import client

from ..support import hostile
from ..support.cluster import REPO, OperatorProcess, wait_until

pytestmark = pytest.mark.timeout(1500)

OBJECTS = int(os.environ.get("HOSTILE_OBJECTS", "10000"))
OPERATOR_PYTHONPATH = os.environ.get("HOSTILE_OPERATOR_PYTHONPATH") or None
EXCLUDE = {t for t in os.environ.get("HOSTILE_EXCLUDE", "").split(",") if t}
ONLY = {t for t in os.environ.get("HOSTILE_ONLY", "").split(",") if t}
SETTLE_SECONDS = float(os.environ.get("HOSTILE_SETTLE_SECONDS", "600"))
RESULTS = os.environ.get("HOSTILE_RESULTS") or None
SLOTS = ["s0", "s1", "s2", "s3"]
PROBE_INTERVAL = 2.0
PROBE_TIMEOUT = 60.0
#: The fresh job after the storm proves the watchers live; it may queue behind the backlog.
AFTER_PROBE_TIMEOUT = 300.0
WEBHOOK_CONFIGURATION = "validate.components.grand-challenge.org"

OPERATOR_CONFIG = """
podAnnotationPrefixes: ["sim.testenv/"]
resyncSeconds: 5
"""

# Prints where component_operator was imported from (the first line of the log), then runs it.
BOOT = ("import sys, component_operator; print('component_operator from', component_operator.__file__, flush=True); "
        "from component_operator.cli import main; sys.exit(main(sys.argv[1:]))")


class HostileOperator(OperatorProcess):
    """``component-operator run --webhook none``, optionally from another source tree."""

    def start(self) -> None:
        self.log_file = open(self.log_path, "ab")
        env = {**os.environ, **self.testenv.env, "COMPONENT_OPERATOR_IMAGE_RECHECK_SECONDS": "3", **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BOOT, "run", "--standalone", "--webhook", "none", *self.extra_args],
            env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL: an operator whose watcher died may not stop on SIGTERM (it did not at e07e551)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"the operator (pid {self.proc.pid}) ignored SIGTERM for 20 s: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.log_file.close()


def _die_with_parent() -> None:
    """In the child: SIGKILL when pytest dies. SIGKILL, not SIGTERM: a wedged operator may not
    stop on SIGTERM, and one left behind fights the next run's operator over the same jobs."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _probe_body(name: str, prefix: str) -> bytes:
    return hostile.dumps({
        "apiVersion": hostile.API_VERSION, "kind": "ComponentJob",
        "metadata": {"name": name, "annotations": {"sim.testenv/outcome": "succeed", "sim.testenv/after": "0s"}},
        "spec": {"image": "algo", "inputs": [{"interface": f"{prefix}-f-prob", "value": 0.5}],
                 "requiresMemoryGB": 1, "timeLimit": 300},
    })


class Prober:
    """Valid jobs in their own namespace: creation to terminal phase, seen by polling every 0.25 s."""

    def __init__(self, kube: hostile.Kube, namespace: str, prefix: str):
        self.kube, self.namespace, self.prefix = kube, namespace, prefix
        self.created: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.phase: dict[str, str] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def create(self, name: str) -> None:
        started = time.monotonic()
        status, data = self.kube.create("ComponentJob", self.namespace, _probe_body(name, self.prefix))
        if status != 201:
            self.errors.append(f"probe {name}: {status} {data[:300]!r}")
            return
        with self._lock:
            self.created[name] = started

    def poll(self) -> None:
        for job in self.kube.list("ComponentJob", self.namespace):
            name, phase = job["metadata"]["name"], (job.get("status") or {}).get("phase")
            with self._lock:
                if phase in hostile.TERMINAL and name not in self.done and name in self.created:
                    self.done[name] = time.monotonic() - self.created[name]
                    self.phase[name] = phase

    def run_one(self, name: str, timeout: float = PROBE_TIMEOUT) -> float | None:
        self.create(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            if name in self.done:
                return self.done[name]
            time.sleep(0.25)
        return None

    def background(self, names: str) -> threading.Thread:
        """Create ``<names>-<n>`` every PROBE_INTERVAL and poll, until ``stop``."""

        def loop() -> None:
            n, next_at = 0, 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_at:
                    self.create(f"{names}-{n}")
                    n, next_at = n + 1, time.monotonic() + PROBE_INTERVAL
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - a failed poll is retried; the API server is loaded
                    pass
                time.sleep(0.25)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread, grace: float = 30.0) -> None:
        self._stop.set()
        thread.join()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and set(self.created) - set(self.done):
            self.poll()
            time.sleep(0.5)

    def results(self, prefix: str) -> tuple[list[float], list[str]]:
        names = [n for n in self.created if n.startswith(prefix)]
        return [self.done[n] for n in names if n in self.done], [n for n in names if n not in self.done]


def _order(generated: list[hostile.Case], hand: list[hostile.Case]) -> list[tuple[int, hostile.Case]]:
    """Generated objects in order; hand-written cases spread over the first third of the storm,
    except the ones that kill the operator (at 85 %, so that most of the storm is measured first)."""
    killers = [c for c in hand if "killer" in c.tags]
    rest = [c for c in hand if "killer" not in c.tags]
    ordered: list[hostile.Case] = list(generated)
    span = max(len(ordered) // 3, 1)
    for i, case in enumerate(rest):
        ordered.insert(1 + (i * span) // max(len(rest), 1) + i, case)
    at = int(len(ordered) * 0.85)
    for case in killers:
        ordered.insert(at, case)
    return list(enumerate(ordered))


_SIGNATURE_FILE = re.compile(r'File "(?:[^"]*/)?((?:component_operator|kopf)/[^"]+)", line (\d+), in (\S+)')


def analyse_log(text: str) -> dict:
    """Error signatures in the operator's log: the exception and its innermost project/kopf frame."""
    lines = text.splitlines()
    signatures: Counter[str] = Counter()
    examples: dict[str, str] = {}
    subjects: dict[str, Counter] = {}
    for i, line in enumerate(lines):
        if not line.startswith("Traceback"):
            continue
        # Only the operator's own records name the object (kopf's do not, in this log format).
        m = re.search(r"job (\S+/\S+): unexpected error", lines[i - 1]) if i else None
        subject = m.group(1) if m else "?"
        frames, j = [], i + 1
        while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
            f = _SIGNATURE_FILE.search(lines[j])
            if f:
                frames.append(f"{f.group(1)}:{f.group(2)} {f.group(3)}")
            j += 1
        exc = lines[j].strip() if j < len(lines) else "?"
        exc_short = re.sub(r"\d{3,}", "N", exc)[:160]
        where = next((f for f in reversed(frames) if f.startswith("component_operator/")), frames[-1] if frames else "?")
        key = f"{exc_short} @ {where}"
        signatures[key] += 1
        examples.setdefault(key, "\n".join(lines[max(0, i - 1): min(j + 1, i + 60)])[-4000:])
        subjects.setdefault(key, Counter())[subject] += 1
    return {
        "watcher_failed": [l for l in lines if "Watcher for" in l and "has failed" in l][:5],
        "unrecoverable": [l for l in lines if "unrecoverable error" in l][:5],
        "throttled": sum("Throttling for" in l for l in lines),
        "unexpected_lines": sum("unexpected error" in l for l in lines),
        "module": next((l for l in lines if l.startswith("component_operator from")), "?"),
        "signatures": [{"count": n, "signature": s, "objects": dict(subjects.get(s, Counter()).most_common(5)),
                        "example": examples[s]} for s, n in signatures.most_common(25)],
    }


@pytest.fixture()
def hostile_setup(testenv, core, custom, operator_process, good_image_ref, push_image, tmp_path):
    """Everything the storm needs; swaps the session's operator out and back, cleans up."""
    prefix = f"hx{uuid.uuid4().hex[:6]}"
    tree = Path(OPERATOR_PYTHONPATH).resolve().parent if OPERATOR_PYTHONPATH else REPO
    crd_dir = tree / "crds"
    kube = hostile.Kube(testenv.kubeconfig, maxsize=32)
    namespaces = {slot: f"{prefix}-{slot}" for slot in [*SLOTS, "hc", "probe"]}
    state: dict = {"prefix": prefix, "kube": kube, "namespaces": namespaces, "tree": str(tree), "good_image": good_image_ref}

    # Generate while the rest is set up (mostly waiting for the API server and the registry).
    schemas = hostile.load_crd_schemas(crd_dir)
    corpus: dict = {}

    def generate() -> None:
        started = time.monotonic()
        hand = [c for c in hostile.hand_written_cases(good_image_ref, testenv.env["TESTENV_REGISTRY"], other_images)
                if not (EXCLUDE & {*c.tags, c.label}) and (not ONLY or ONLY & {*c.tags, c.label})]
        corpus["hand"] = hand
        corpus["generated"] = hostile.generate_corpus(schemas, testenv.env["TESTENV_REGISTRY"], max(OBJECTS - len(hand), 0),
                                                      namespaces=len(SLOTS))
        corpus["seconds"] = time.monotonic() - started

    other_images = (push_image("tests/hostile-late", label="hostile-late").ref,
                    push_image("tests/hostile-gone", label="hostile-gone").ref)
    generator = threading.Thread(target=generate)
    generator.start()

    if tree != REPO:
        testenv.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir))
    operator_process.kill()
    testenv.kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")
    op = None
    try:
        for ns in namespaces.values():
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        hc = namespaces["hc"]
        # Foreign objects that hold the deterministic child names of three jobs (hand-written cases).
        core.create_namespaced_pod(hc, {"metadata": {"name": "coll-pod-0"}, "spec": {
            "nodeSelector": {"hostile/never": "true"}, "containers": [{"name": "c", "image": "foreign:1"}]}})
        core.create_namespaced_config_map(hc, {"metadata": {"name": "coll-cm-0-inputs"}, "data": {"x": "foreign"}})
        core.create_namespaced_secret(hc, {"metadata": {"name": "coll-secret-0-agent"}, "stringData": {"x": "foreign"}})
        for name, spec in hostile.FIXTURE_INTERFACES.items():
            status, data = kube.create("ComponentInterface", None, hostile.dumps(
                {"apiVersion": hostile.API_VERSION, "kind": "ComponentInterface", "metadata": {"name": f"{prefix}-{name}"}, "spec": spec}))
            assert status == 201, data[:300]

        workdir = tmp_path / "operator"
        workdir.mkdir()
        (workdir / "config.yaml").write_text(OPERATOR_CONFIG)
        port = _free_port()
        env = {"PYTHONPATH": OPERATOR_PYTHONPATH} if OPERATOR_PYTHONPATH else {}
        op = HostileOperator(testenv, workdir / "operator.log",
                             ["--config", str(workdir / "config.yaml"), "--metrics-port", str(port)], env=env)
        op.metrics_port = port
        op.start()
        for ns in namespaces.values():
            status, data = kube.create("ComponentImage", ns, hostile.dumps(
                {"apiVersion": hostile.API_VERSION, "kind": "ComponentImage", "metadata": {"name": "algo"},
                 "spec": {"image": good_image_ref, "insecureRegistry": True}}))
            assert status == 201, data[:300]

        def images_ready() -> bool:
            assert op.proc.poll() is None, f"the operator exited:\n{op.log_tail()}"
            for ns in namespaces.values():
                image = kube.get("ComponentImage", ns, "algo") or {}
                if not any(c["type"] == "Ready" and c["status"] == "True" for c in (image.get("status") or {}).get("conditions") or []):
                    return False
            return True

        wait_until(images_ready, timeout=120, interval=0.5, message="the storm's images Ready")
        generator.join()
        state.update(op=op, corpus=corpus, schemas=schemas)
        yield state
    finally:
        generator.join()
        try:
            _cleanup(testenv, kube, prefix, namespaces, op)
        finally:
            if op is not None and op.proc.poll() is None:
                op.proc.kill()
            if tree != REPO:
                testenv.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
            operator_process.start()


def _cleanup(testenv, kube: hostile.Kube, prefix: str, namespaces: dict[str, str], op) -> None:
    """Stop the operator, delete everything the storm made, strip the finalizers kopf left.

    Nothing of it may outlive the test: a deeply nested object left behind would stop the next
    operator of the session before it handles anything.
    """
    if op is not None:
        op.stop()  # first: nothing is left to reconcile a namespace being deleted
    for ns in namespaces.values():
        kube.request("DELETE", f"/api/v1/namespaces/{ns}")
    for name in [i["metadata"]["name"] for i in kube.list("ComponentInterface") if i["metadata"]["name"].startswith(prefix)]:
        kube.delete("ComponentInterface", None, name)

    def gone() -> bool:
        left = _leftovers(kube, prefix, namespaces)
        for kind, ns, name in left:
            kube.patch(kind, ns, name, {"metadata": {"finalizers": None}})
        return not left and not any(kube.request("GET", f"/api/v1/namespaces/{ns}")[0] == 200 for ns in namespaces.values())

    wait_until(gone, timeout=240, interval=2, message="the storm's objects and namespaces gone")


def _leftovers(kube: hostile.Kube, prefix: str, namespaces: dict[str, str]) -> list[tuple[str, str | None, str]]:
    left = [("ComponentInterface", None, i["metadata"]["name"]) for i in kube.list("ComponentInterface")
            if i["metadata"]["name"].startswith(prefix)]
    for ns in namespaces.values():
        for kind in ("ComponentImage", "ComponentJob"):
            left += [(kind, ns, o["metadata"]["name"]) for o in kube.list(kind, ns) if o["metadata"].get("finalizers")]
    return left


def _pods_by_job(kube: hostile.Kube, namespace: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for pod in kube.list("Pod", namespace, labelSelector="app.kubernetes.io/managed-by=component-operator"):
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "ComponentJob":
                out.setdefault(ref["name"], []).append(pod)
    return out


def _observe(kube: hostile.Kube, namespaces: list[str], accepted: dict[tuple[str, str], hostile.Sent]) -> dict:
    """Classify every admitted job as it is now (against the images and interfaces that exist)."""
    verdicts: dict[tuple[str, str], tuple[str, str, dict]] = {}
    interfaces = {i["metadata"]["name"] for i in kube.list("ComponentInterface")}
    for ns in namespaces:
        pods = _pods_by_job(kube, ns)
        ready = {i["metadata"]["name"] for i in kube.list("ComponentImage", ns)
                 if any(c.get("type") == "Ready" and c.get("status") == "True" for c in (i.get("status") or {}).get("conditions") or [])}
        for job in kube.list("ComponentJob", ns):
            key = (ns, job["metadata"]["name"])
            if key in accepted:
                verdicts[key] = (*hostile.classify_job(job, pods, ready, interfaces), job.get("status") or {})
    return verdicts


def test_hostile_inputs(hostile_setup, tmp_path):
    s = hostile_setup
    kube, prefix, namespaces, op = s["kube"], s["prefix"], s["namespaces"], s["op"]
    generated, hand = s["corpus"]["generated"], s["corpus"]["hand"]
    prober = Prober(kube, namespaces["probe"], prefix)

    # 1. Baseline: probe jobs one at a time, no storm.
    baseline = [prober.run_one(f"baseline-{i}") for i in range(5)]

    # 2. The storm, with a probe job every PROBE_INTERVAL.
    storm = hostile.Storm(kube=kube, prefix=prefix, namespaces=namespaces, good_image=s["good_image"], threads=24)
    ordered = _order(generated, hand)
    probes = prober.background("storm")
    storm_started = time.monotonic()
    send_seconds = storm.send_all(ordered)

    # 3. Let the admitted objects settle (stop early once nothing is stuck).
    accepted = {(x.namespace, x.name): x for x in storm.sent if x.status == 201 and x.case.kind == "ComponentJob"}
    job_namespaces = [namespaces[slot] for slot in [*SLOTS, "hc"]]
    settle_started = time.monotonic()
    verdicts: dict = {}
    while True:
        try:
            verdicts = _observe(kube, job_namespaces, accepted)
        except AssertionError:
            verdicts = verdicts or {}
        stuck = [k for k, v in verdicts.items() if v[0] == "stuck"]
        dead = op.proc.poll() is not None
        elapsed = time.monotonic() - settle_started
        if (not stuck and len(verdicts) == len(accepted)) or elapsed > SETTLE_SECONDS or (dead and elapsed > 15):
            break
        time.sleep(5)
    settle_seconds = time.monotonic() - settle_started
    prober.stop(probes, grace=10)
    storm_latencies, storm_unfinished = prober.results("storm-")

    # 4. After the storm: a fresh valid job must still be handled (the watchers live). The storm's
    # jobs fill every kwok node (most end Unschedulable), so they are deleted first (their pods go
    # with them): the probe then measures the operator, not the cluster's capacity.
    for ns in job_namespaces:
        kube.request("DELETE", kube.path("ComponentJob", ns))
    def job_pods_left() -> int:  # the hand-written cases' foreign pods are not jobs' and stay
        return sum(len(kube.list("Pod", ns, labelSelector="components.grand-challenge.org/job-uid"))
                   for ns in job_namespaces)

    freed_by = time.monotonic() + 180
    while job_pods_left() and time.monotonic() < freed_by:
        time.sleep(2)
    after = prober.run_one("after-storm", timeout=AFTER_PROBE_TIMEOUT) if op.proc.poll() is None else None
    unexpected = hostile.scrape_unexpected(op.metrics_port)
    alive = op.proc.poll() is None
    log = analyse_log(op.log_path.read_text(errors="replace"))

    # 5. Images and interfaces the API server admitted: each got a status from the operator.
    other_stuck = []
    for x in storm.sent:
        if x.status != 201 or x.case.kind == "ComponentJob" or "deleted" in x.case.tags:
            continue
        obj = kube.get(x.case.kind, x.namespace, x.name)
        status = (obj or {}).get("status") or {}
        if obj is not None and not any(c.get("type") == "Ready" for c in status.get("conditions") or []):
            other_stuck.append(f"{x.case.kind} {x.namespace or ''}/{x.name} ({x.case.label}): status {json.dumps(status)[:200]}")

    # 6. Figures.
    codes = Counter(x.status for x in storm.sent)
    by_verdict = Counter(v[0] for v in verdicts.values())
    missing = [k for k in accepted if k not in verdicts]
    stuck = sorted(k for k, v in verdicts.items() if v[0] == "stuck")
    bad_refusals = []
    for key, (_, _, status) in verdicts.items():
        ok, why = hostile.refused_by_operator_ok({"status": status})
        if not ok:
            bad_refusals.append(f"{key[0]}/{key[1]} ({accepted[key].case.label}): {why}")
    reasons = Counter(f"{v[2].get('phase')}/{v[2].get('reason')}" for v in verdicts.values())
    accepted_by_kind = Counter(x.case.kind for x in storm.sent if x.status == 201)
    t0 = prober.created.get("baseline-0", storm_started)
    hand_results = {x.case.label: {"status": x.status, "message": x.message[:200], "sent_at": round(x.at - t0, 1),
                                   "verdict": (verdicts.get((x.namespace, x.name)) or ("", "", {}))[:2],
                                   "phase": (verdicts.get((x.namespace, x.name)) or ("", "", {}))[2].get("phase"),
                                   "reason": (verdicts.get((x.namespace, x.name)) or ("", "", {}))[2].get("reason"),
                                   "errorMessage": (verdicts.get((x.namespace, x.name)) or ("", "", {}))[2].get("errorMessage")}
                    for x in storm.sent if "hand" in x.case.tags}
    report = {
        "operator": {"module": log["module"], "tree": s["tree"], "pythonpath": OPERATOR_PYTHONPATH, "log": str(op.log_path)},
        "excluded": sorted(EXCLUDE), "only": sorted(ONLY),
        "objects_tried": len(storm.sent),
        "generated": len(generated), "hand_written": len(hand), "generation_seconds": round(s["corpus"]["seconds"], 1),
        "refused_by_api_server": sum(n for c, n in codes.items() if c != 201),
        "refused_by_status": {str(c): n for c, n in sorted(codes.items()) if c != 201},
        "accepted": sum(accepted_by_kind.values()),
        "accepted_by_kind": dict(accepted_by_kind),
        "send_seconds": round(send_seconds, 1),
        "send_rate_per_second": round(len(storm.sent) / send_seconds, 1) if send_seconds else None,
        "settle_seconds": round(settle_seconds, 1),
        "operator_alive": alive,
        "crashes": 0 if alive else 1,
        "watcher_failures": log["watcher_failed"],
        "unrecoverable": log["unrecoverable"],
        "kopf_throttled_errors": log["throttled"],
        "unexpected_counter": unexpected,
        "jobs_by_verdict": dict(by_verdict),
        "jobs_missing_from_listing": len(missing),
        "stuck_objects": len(stuck) + len(other_stuck),
        "stuck_jobs_sample": [f"{k[0]}/{k[1]} ({accepted[k].case.label}): {verdicts[k][1]}" for k in stuck[:40]],
        "stuck_images_interfaces": other_stuck[:40],
        "refused_by_operator_without_message": bad_refusals[:40],
        "jobs_by_phase_reason": dict(reasons.most_common(40)),
        "probe_baseline_seconds": hostile.summarize([b for b in baseline if b is not None]),
        "probe_baseline_unfinished": sum(b is None for b in baseline),
        "probe_storm_seconds": hostile.summarize(storm_latencies),
        "probe_storm_unfinished": len(storm_unfinished),
        "probe_after_storm_seconds": after,
        "probe_create_errors": prober.errors[:10],
        "storm_started_at": round(storm_started - t0, 1),
        "probes": {n: {"created_at": round(prober.created[n] - t0, 1),
                       "seconds": round(prober.done[n], 2) if n in prober.done else None} for n in prober.created},
        "hand_written": hand_results,
        "error_signatures": log["signatures"],
    }
    out = tmp_path / "hostile-report.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    if RESULTS:
        Path(RESULTS).parent.mkdir(parents=True, exist_ok=True)
        Path(RESULTS).write_text(json.dumps(report, indent=2, default=str))
    with open(tmp_path / "objects.jsonl", "w") as f:
        for x in storm.sent:
            v = verdicts.get((x.namespace, x.name))
            f.write(json.dumps({"label": x.case.label, "kind": x.case.kind, "namespace": x.namespace, "name": x.name[:80],
                                "status": x.status, "message": x.message[:200], "verdict": v[:2] if v else None,
                                "phase": v[2].get("phase") if v else None, "reason": v[2].get("reason") if v else None}) + "\n")
    bl, sl = report["probe_baseline_seconds"], report["probe_storm_seconds"]
    print("\nHostile-input suite" + (f" (operator from {OPERATOR_PYTHONPATH})" if OPERATOR_PYTHONPATH else ""))
    print(hostile.table([
        ("objects tried", report["objects_tried"]),
        ("refused by the API server", f"{report['refused_by_api_server']} {report['refused_by_status']}"),
        ("accepted", f"{report['accepted']} {dict(accepted_by_kind)}"),
        ("send rate", f"{report['send_rate_per_second']} objects/s ({report['send_seconds']} s)"),
        ("crashes (operator exited)", report["crashes"]),
        ("watcher failures", len(log["watcher_failed"]) + len(log["unrecoverable"])),
        ("kopf-swallowed errors (throttled)", log["throttled"]),
        ("unexpected counter", unexpected),
        ("jobs by verdict", dict(by_verdict)),
        ("stuck objects", report["stuck_objects"]),
        ("probe latency, no storm (median / max)", f"{bl['median']} / {bl['max']} s (n={bl['n']})"),
        ("probe latency, storm (median / max)", f"{sl['median']} / {sl['max']} s (n={sl['n']}, unfinished {len(storm_unfinished)})"),
        ("fresh probe after the storm", f"{after} s" if after is not None else "never finished"),
        ("settle time", f"{report['settle_seconds']} s"),
    ]))
    print(f"report: {out}\noperator log: {op.log_path}")
    for sig in log["signatures"][:10]:
        print(f"  {sig['count']:5d}x {sig['signature']}  e.g. {list(sig['objects'])[:2]}")

    problems = []
    if not alive:
        problems.append(f"the operator exited ({op.proc.returncode})")
    if log["watcher_failed"] or log["unrecoverable"]:
        problems.append(f"a watcher failed: {(log['watcher_failed'] + log['unrecoverable'])[:2]}")
    if after is None:
        problems.append("a valid job created after the storm never reached a terminal phase")
    if unexpected != 0:
        problems.append(f"unexpected reconcile errors: {unexpected}")
    if stuck or other_stuck or missing:
        problems.append(f"{len(stuck)} stuck jobs, {len(other_stuck)} stuck images/interfaces, {len(missing)} jobs missing: "
                        f"{(report['stuck_jobs_sample'] + other_stuck)[:8]}")
    if bad_refusals:
        problems.append(f"{len(bad_refusals)} refused jobs without reason/message: {bad_refusals[:5]}")
    assert not problems, "\n".join(problems) + f"\n(report: {out})"

