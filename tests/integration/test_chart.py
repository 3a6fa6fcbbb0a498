"""The Helm chart (charts/component-operator), rendered by a real helm, checked against the code.

No cluster: these tests only run helm (built from its Go module by ``testenv/scripts/build.sh
helm``, which ``make test`` runs before pytest) and the project's Python. They use none of the
control-plane fixtures, so they never start the testenv.

* ``helm lint --strict`` is clean, with the defaults and with cert-manager and a ServiceMonitor;
* the chart's CRDs are crds/*.yaml (the drift test; ``make crds`` regenerates both);
* the ClusterRole and Roles grant exactly what the code needs (tests/support/rbac_scan.py reads
  it from the source), in each mode, and nothing with '*';
* the Deployment meets Pod Security "restricted"; its arguments parse with the operator's own
  command line; its configuration loads as an OperatorConfig;
* values.schema.json refuses wrong types and unknown keys;
* the webhook paths are the ids of the operator's @kopf.on.validate handlers;
* ``make dist`` writes dist/install.yaml with everything in it;
* skaffold.yaml validates against skaffold's own JSON schema.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from component_operator import GROUP, VERSION
from component_operator.config import InstancePrice, ObjectStorage, OperatorConfig, Toleration

from ..support import rbac_scan
from ..support.cluster import REPO

CHART = REPO / "charts" / "component-operator"
RELEASE, NAMESPACE = "component-operator", "component-operator"
FULLNAME = "component-operator"  # the release name contains the chart name

#: Grants for code that is not written yet; each entry says why. When the code lands, the
#: scanner finds the need and the entry must move out of here (the test says so).
EXPECTED_EXTRA: dict[rbac_scan.Grant, str] = {}

NAMES = {"{webhookSecret}": f"{FULLNAME}-webhook-cert", "{webhookConfiguration}": FULLNAME}


@functools.lru_cache(maxsize=1)
def helm_bin() -> str:
    """helm from its Go module (cached: a second build does nothing). build.sh prints its bin dir last."""
    proc = subprocess.run([str(REPO / "testenv" / "scripts" / "build.sh"), "helm"], capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, f"testenv/scripts/build.sh helm failed:\n{proc.stderr[-4000:]}"
    helm = Path(proc.stdout.strip().splitlines()[-1]) / "helm"
    assert helm.is_file(), helm
    return str(helm)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    proc = subprocess.run([helm_bin(), *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def render(*sets: str, values: dict | None = None, tmp_path: Path | None = None) -> list[dict]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for item in sets:
        args += ["--set", item]
    if values is not None:
        assert tmp_path is not None
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


@functools.lru_cache(maxsize=None)
def render_cached(*sets: str) -> tuple[dict, ...]:
    return tuple(render(*sets))


def kinds(docs) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


def one(docs, kind: str) -> dict:
    found = kinds(docs).get(kind, [])
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


# --------------------------------------------------------------------------------------------
# (a) lint


@pytest.mark.parametrize("sets", [(), ("certManager.enabled=true", "metrics.serviceMonitor.enabled=true")],
                         ids=["defaults", "cert-manager+servicemonitor"])
def test_helm_lint_strict_is_clean(sets):
    args = ["lint", "--strict", str(CHART)]
    for item in sets:
        args += ["--set", item]
    proc = helm(*args)
    assert "0 chart(s) failed" in proc.stdout
    problems = [line for line in proc.stdout.splitlines() if line.startswith(("[WARNING]", "[ERROR]"))]
    assert not problems, proc.stdout


# --------------------------------------------------------------------------------------------
# (b) rendering and the CRDs


def test_chart_renders_the_expected_objects():
    by_kind = {k: len(v) for k, v in kinds(render_cached()).items()}
    assert by_kind == {
        "CustomResourceDefinition": 6, "ServiceAccount": 1, "ConfigMap": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
        "Role": 1, "RoleBinding": 1, "Service": 2, "Deployment": 1, "PodDisruptionBudget": 1,
        "ValidatingWebhookConfiguration": 1,
    }
    # Neither mode ships a caBundle or any Secret (the operator or cert-manager makes them).
    for sets in [(), ("certManager.enabled=true",)]:
        docs = render_cached(*sets)
        assert "Secret" not in kinds(docs)
        for hook in one(docs, "ValidatingWebhookConfiguration")["webhooks"]:
            assert "caBundle" not in hook["clientConfig"]


def _strip_keep(crd: dict) -> dict:
    crd = json.loads(json.dumps(crd))
    annotations = crd["metadata"].pop("annotations")
    assert annotations == {"helm.sh/resource-policy": "keep"}
    return crd


def test_chart_crds_are_the_generated_crds():
    """The drift test: `make crds` writes crds/ and the chart's copies; they must agree."""
    sync = subprocess.run([str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else "python3",
                           str(REPO / "scripts" / "sync_chart_crds.py"), "--check"], capture_output=True, text=True)
    assert sync.returncode == 0, f"the chart's CRDs are stale; run `make crds`:\n{sync.stderr}"
    # Byte for byte: each chart copy is its source plus the if-wrapper and the keep annotation.
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_chart_crds", REPO / "scripts" / "sync_chart_crds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sources = sorted((REPO / "crds").glob("*.yaml"))
    assert sources
    for source in sources:
        text = (CHART / "templates" / "crds" / source.name).read_text()
        assert text == module.render(source)
        inner = text.split("\n", 2)[2].rsplit("{{- end }}\n", 1)[0]
        assert inner.replace(module.KEEP, "") == source.read_text()
    # And as helm renders them.
    rendered = {c["metadata"]["name"]: c for c in kinds(render_cached())["CustomResourceDefinition"]}
    for source in sources:
        want = yaml.safe_load(source.read_text())
        assert _strip_keep(rendered.pop(want["metadata"]["name"])) == want, source.name
    assert sorted(rendered) == ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"]
    for name, scope in [("clusterkopfpeerings.kopf.dev", "Cluster"), ("kopfpeerings.kopf.dev", "Namespaced")]:
        crd = _strip_keep(rendered[name])
        assert crd["spec"]["group"] == "kopf.dev" and crd["spec"]["scope"] == scope
        assert crd["spec"]["names"]["plural"] == name.split(".")[0]
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        props = version["schema"]["openAPIV3Schema"]["properties"]
        assert props == {k: {"type": "object", "x-kubernetes-preserve-unknown-fields": True} for k in ("spec", "status")}


def test_crd_switches():
    assert "CustomResourceDefinition" not in kinds(render_cached("crds.install=false"))
    crds = kinds(render_cached("crds.keep=false"))["CustomResourceDefinition"]
    assert len(crds) == 6 and all("annotations" not in c["metadata"] for c in crds)
    names = {c["metadata"]["name"] for c in kinds(render_cached("crds.kopfPeering=false"))["CustomResourceDefinition"]}
    assert names == {f"{p}.{GROUP}" for p in ("componentinterfaces", "componentimages", "componentjobs", "componentbatches")}


# --------------------------------------------------------------------------------------------
# (c) RBAC: exactly what the code needs


def granted(docs) -> set[rbac_scan.Grant]:
    """Every (scope, group, resource, verb, name) the rendered roles grant; refuses wildcards."""
    bindings = {(b["roleRef"]["kind"], b["roleRef"]["name"], b["metadata"].get("namespace")): b
                for b in docs if b["kind"] in ("ClusterRoleBinding", "RoleBinding")}
    out: set[rbac_scan.Grant] = set()
    for role in docs:
        if role["kind"] not in ("ClusterRole", "Role"):
            continue
        ns = role["metadata"].get("namespace")
        binding = bindings.get((role["kind"], role["metadata"]["name"], ns))
        assert binding, f"{role['kind']} {role['metadata']['name']} is not bound"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
        scope = "cluster" if role["kind"] == "ClusterRole" else ("release" if ns == NAMESPACE else f"namespace:{ns}")
        for rule in role["rules"]:
            assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
            for key, values in rule.items():
                assert "*" not in values and not any("*" in v for v in values), f"wildcard in {role['kind']}: {rule}"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [None]:
                            out.add(rbac_scan.Grant(scope, group, resource, verb, name))
    return out


@functools.lru_cache(maxsize=1)
def facts() -> rbac_scan.Facts:
    return rbac_scan.scan()


def expected(*, namespaces: list[str] | None = None, webhook: str = "operator-certs") -> set[rbac_scan.Grant]:
    needs = rbac_scan.required_grants(facts(), namespaces=namespaces, webhook=webhook)
    extra = {g for g in EXPECTED_EXTRA if not (namespaces and g.resource == "clusterkopfpeerings")}
    if webhook != "operator-certs":
        extra = {g for g in extra if g.resource_name is None}
    return {rbac_scan.Grant(g.scope, g.group, g.resource, g.verb, NAMES.get(g.resource_name, g.resource_name))
            for g in set(needs) | extra}


def _diff(want: set, have: set) -> str:
    fmt = lambda g: f"{g.scope}: {g.group or 'core'}/{g.resource} {g.verb}" + (f" [{g.resource_name}]" if g.resource_name else "")
    missing = "\n".join(sorted(f"  missing {fmt(g)}" for g in want - have))
    extra = "\n".join(sorted(f"  extra   {fmt(g)}" for g in have - want))
    return f"the chart's RBAC differs from what the code needs:\n{missing}\n{extra}"


MODES = {
    "defaults": ((), {}),
    "cert-manager": (("certManager.enabled=true",), {"webhook": "cert-manager"}),
    "no-webhook": (("webhook.enabled=false",), {"webhook": "off"}),
    "watch-namespaces": (("watchNamespaces={team-a,team-b}",), {"namespaces": ["team-a", "team-b"]}),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_rbac_grants_exactly_what_the_code_needs(mode):
    sets, kwargs = MODES[mode]
    want, have = expected(**kwargs), granted(render_cached(*sets))
    assert have == want, _diff(want, have)


def test_rbac_scanner_sees_the_code():
    """The scanner reads what it should (a scanner that finds nothing would make the test vacuous)."""
    needs = {(n.group, n.resource, n.verb) for n in facts().needs}
    for need in [("", "pods", "create"), ("", "pods/log", "get"), (GROUP, "componentjobs/status", "patch"),
                 (GROUP, "componentinterfaces/status", "patch"), ("networking.k8s.io", "networkpolicies", "create"),
                 (GROUP, "componentimages", "watch"), ("", "pods", "watch")]:
        assert need in needs, need
    # Needs found by the scanner must not also sit in EXPECTED_EXTRA.
    for grant, why in EXPECTED_EXTRA.items():
        assert (grant.group, grant.resource, grant.verb) not in needs or grant.scope != "cluster", \
            f"the scanner now finds {grant} ({why}): remove it from EXPECTED_EXTRA"


def test_rbac_never_grants_what_local_mode_needs():
    """kopf's managed webhook configuration (create) is for --webhook local only."""
    reasons = [n for n in facts().needs if n.resource == "validatingwebhookconfigurations" and n.verb == "create"]
    assert reasons and all("options.webhook == 'local'" in n.guards for n in reasons)
    assert not any(g.resource == "validatingwebhookconfigurations" and g.verb == "create" for g in granted(render_cached()))


def test_rbac_off():
    docs = render_cached("rbac.create=false")
    assert not {"ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"} & set(kinds(docs))


# --------------------------------------------------------------------------------------------
# (d) the Deployment


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def assert_restricted(pod: dict) -> None:
    """Pod Security Standards, "restricted" profile (baseline included), field by field."""
    spec = pod
    psc = spec.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(host), host
    assert psc.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost")
    assert psc.get("runAsUser", 1) != 0
    assert not psc.get("sysctls")
    for volume in spec.get("volumes") or []:
        kind = set(volume) - {"name"}
        assert kind <= ALLOWED_VOLUMES, volume
    containers = (spec.get("initContainers") or []) + spec["containers"] + (spec.get("ephemeralContainers") or [])
    for c in containers:
        sc = c.get("securityContext") or {}
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert not sc.get("privileged"), c["name"]
        assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), c["name"]
        assert set((sc.get("capabilities") or {}).get("add", [])) <= {"NET_BIND_SERVICE"}, c["name"]
        assert (sc.get("runAsNonRoot") if "runAsNonRoot" in sc else psc.get("runAsNonRoot")) is True, c["name"]
        assert sc.get("runAsUser", psc.get("runAsUser", 1)) != 0, c["name"]
        assert sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") in ("RuntimeDefault", "Localhost")
        assert not sc.get("procMount") or sc["procMount"] == "Default"
        assert "seLinuxOptions" not in sc and not (sc.get("windowsOptions") or {}).get("hostProcess")
        for port in c.get("ports") or []:
            assert not port.get("hostPort"), port


@pytest.mark.parametrize("sets", [(), ("certManager.enabled=true",), ("webhook.enabled=false",)],
                         ids=["defaults", "cert-manager", "no-webhook"])
def test_deployment_is_restricted_and_hardened(sets):
    deployment = one(render_cached(*sets), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert_restricted(pod)
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert pod["automountServiceAccountToken"] is True
    assert c["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": "health"}, "initialDelaySeconds": 10,
                                  "periodSeconds": 10, "failureThreshold": 3}
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "384Mi"}, "limits": {"memory": "1536Mi"}}
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    if "webhook.enabled=false" in sets:
        assert "readinessProbe" not in c and ports == {"metrics": 8080, "health": 8081}
    else:
        assert c["readinessProbe"]["tcpSocket"] == {"port": "webhook"}
        assert ports == {"webhook": 9443, "metrics": 8080, "health": 8081}
    assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]


def _args(*sets: str) -> list[str]:
    (c,) = one(render_cached(*sets), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "command" not in c  # the image's entrypoint is component-operator
    return c["args"]


def test_deployment_arguments():
    base = ["run", "--config", "/etc/component-operator/config.yaml", "--peering", FULLNAME, "--priority", "random",
            "--liveness", "http://0.0.0.0:8081/healthz", "--metrics-addr", "0.0.0.0", "--metrics-port", "8080"]
    assert _args() == base + ["--webhook", "cluster", "--webhook-port", "9443",
                              "--webhook-secret", f"{FULLNAME}-webhook-cert", "--webhook-service", f"{FULLNAME}-webhook",
                              "--webhook-configuration", FULLNAME]
    assert _args("certManager.enabled=true") == base + [
        "--webhook", "cluster", "--webhook-port", "9443",
        "--webhook-cert", "/var/run/webhook-certs/tls.crt", "--webhook-key", "/var/run/webhook-certs/tls.key"]
    assert _args("webhook.enabled=false", "metrics.enabled=false", "verbose=true", "watchNamespaces={a,b}",
                 "extraArgs={--standalone}", "peering.name=ops") == [
        *base[:4], "ops", *base[5:-1], "0", "--verbose", "-n", "a", "-n", "b", "--standalone"]


@pytest.mark.parametrize("sets", [(), ("certManager.enabled=true",), ("webhook.enabled=false", "verbose=true",
                                                                         "watchNamespaces={a}")])
def test_deployment_arguments_parse_with_the_operators_cli(sets):
    from component_operator.cli import build_parser

    args = build_parser().parse_args(_args(*sets))
    assert args.command == "run" and args.config == "/etc/component-operator/config.yaml"


def test_cert_manager_mode_mounts_the_certificate():
    docs = render_cached("certManager.enabled=true")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "webhook-certs", "secret": {"secretName": f"{FULLNAME}-webhook-cert"}} in pod["volumes"]
    assert {"name": "webhook-certs", "mountPath": "/var/run/webhook-certs", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    cert = one(docs, "Certificate")
    svc = f"{FULLNAME}-webhook"
    assert cert["spec"]["secretName"] == f"{FULLNAME}-webhook-cert"
    assert sorted(cert["spec"]["dnsNames"]) == sorted([svc, f"{svc}.{NAMESPACE}", f"{svc}.{NAMESPACE}.svc",
                                                       f"{svc}.{NAMESPACE}.svc.cluster.local"])
    issuer = one(docs, "Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    assert cert["spec"]["issuerRef"] == {"name": issuer["metadata"]["name"], "kind": "Issuer", "group": "cert-manager.io"}
    vwc = one(docs, "ValidatingWebhookConfiguration")
    assert vwc["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": f"{NAMESPACE}/{cert['metadata']['name']}"}
    # A given issuer: no self-signed one.
    docs = render_cached("certManager.enabled=true", "certManager.issuerRef.name=corp-ca", "certManager.issuerRef.kind=ClusterIssuer")
    assert "Issuer" not in kinds(docs)
    assert one(docs, "Certificate")["spec"]["issuerRef"] == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_image_reference_and_config(tmp_path):
    def image(*sets):
        return one(render_cached(*sets), "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]

    def config(docs):
        return yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])

    assert image() == "component-operator:0.1.0"
    assert image("image.tag=v2") == "component-operator:v2"
    digest = "sha256:" + "a" * 64
    assert image("image.repository=reg.example/co", f"image.digest={digest}") == f"reg.example/co@{digest}"
    # agentImage defaults to the operator's own image; the config loads as an OperatorConfig.
    assert config(render_cached()) == {"agentImage": "component-operator:0.1.0"}
    assert config(render_cached("image.tag=v2")) == {"agentImage": "component-operator:v2"}
    values = {
        "image": {"repository": "registry.local/component-operator", "tag": "dev", "pullPolicy": "IfNotPresent"},
        "nodeSelector": {"testenv/real-node": "true"},
        "tolerations": [{"key": "testenv/real-node", "operator": "Exists", "effect": "NoSchedule"}],
        "objectStorage": {"existingSecret": "component-operator-s3", "accessKeyKey": "accessKey", "secretKeyKey": "secretKey"},
        "config": {"resyncSeconds": 3, "taxRate": 0.2, "gpuLabelPreset": "gke",
                   "objectStorage": {"endpoint": "http://10.0.0.1:9000", "podEndpoint": "http://10.0.0.1:9000",
                                     "bucket": "component-jobs", "egressCidrs": ["10.0.0.1/32"], "egressPort": 9000},
                   "podNodeSelector": {"testenv/real-node": "true"},
                   "podTolerations": [{"key": "testenv/real-node", "operator": "Exists", "effect": "NoSchedule"}],
                   "prices": [{"name": "small", "memoryGb": 8, "usdCentsPerHour": 10}],
                   "agentImage": "elsewhere/agent:1"},
    }
    docs = render(values=values, tmp_path=tmp_path)
    loaded = OperatorConfig.model_validate(config(docs))
    assert loaded.agent_image == "elsewhere/agent:1" and loaded.object_storage.bucket == "component-jobs"
    c = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("valueFrom") for e in c["env"]}
    assert env["COMPONENT_OPERATOR_S3_ACCESS_KEY"] == {"secretKeyRef": {"name": "component-operator-s3", "key": "accessKey"}}
    assert env["COMPONENT_OPERATOR_S3_SECRET_KEY"] == {"secretKeyRef": {"name": "component-operator-s3", "key": "secretKey"}}
    # Another configuration, another checksum: the pods roll.
    checksum = lambda d: one(d, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum(docs) != checksum(render_cached())


def test_metrics_service_monitor_and_pdb():
    docs = render_cached("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
    services = {s["metadata"]["name"]: s for s in kinds(docs)["Service"]}
    metrics = services[f"{FULLNAME}-metrics"]
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["metadata"]["labels"]["release"] == "prom"
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert all(metrics["metadata"]["labels"].get(k) == v for k, v in selected.items())
    assert not all(services[f"{FULLNAME}-webhook"]["metadata"]["labels"].get(k) == v for k, v in selected.items())
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    webhook = services[f"{FULLNAME}-webhook"]
    assert webhook["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert "ServiceMonitor" not in kinds(render_cached())
    off = kinds(render_cached("metrics.enabled=false", "podDisruptionBudget.enabled=false"))
    assert [s["metadata"]["name"] for s in off["Service"]] == [f"{FULLNAME}-webhook"] and "PodDisruptionBudget" not in off


# --------------------------------------------------------------------------------------------
# (e) values.schema.json


@pytest.mark.parametrize("sets", [("replicaCount=two",), ("nosuchvalue=1",), ("webhook.failurePolicy=Sometimes",),
                                  ("config.noSuchField=1",), ("config.objectStorage.bucket=b",),
                                  ("image.digest=latest",), ("metrics.port=0",)],
                         ids=["wrong-type", "unknown-top-level", "enum", "unknown-config-key", "config-required",
                              "digest-format", "port-range"])
def test_schema_refuses_bad_values(sets):
    for command in (["template", RELEASE, str(CHART)], ["lint", "--strict", str(CHART)]):
        args = list(command)
        for item in sets:
            args += ["--set", item]
        proc = helm(*args, check=False)
        assert proc.returncode != 0, f"helm {' '.join(args)} accepted it:\n{proc.stdout[-2000:]}"
        assert "schema" in (proc.stderr + proc.stdout).lower(), proc.stderr


def _props(schema: dict) -> set[str]:
    if "oneOf" in schema:
        schema = next(s for s in schema["oneOf"] if s.get("type") == "object")
    return set(schema["properties"])


def _aliases(model) -> set[str]:
    return {f.alias or n for n, f in model.model_fields.items()}


def test_schema_config_is_the_operator_config():
    """The schema's config is OperatorConfig field by field (and refuses what it refuses)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    assert _props(config) == _aliases(OperatorConfig)
    assert _props(config["properties"]["objectStorage"]) == _aliases(ObjectStorage)
    assert _props(config["properties"]["prices"]["items"]) == _aliases(InstancePrice)
    assert _props(config["properties"]["gpuTolerations"]["items"]) == _aliases(Toleration)
    # Every default of the operator is a valid config, and so is the testenv's file.
    validator = jsonschema.Draft7Validator(config)
    validator.validate(json.loads(OperatorConfig().model_dump_json(by_alias=True)))
    validator.validate(yaml.safe_load((REPO / "testenv" / "operator-config.yaml").read_text()))
    # The defaults in values.yaml validate, and every top-level value is documented there.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)
    assert set(values) == set(schema["properties"]) - {"global"}


# --------------------------------------------------------------------------------------------
# (f) the webhook paths are the handler ids


def test_webhook_paths_are_the_admission_handler_ids():
    handlers = facts().validate_handlers()
    assert handlers, "no @kopf.on.validate handler found"
    scopes = {yaml.safe_load(p.read_text())["spec"]["names"]["plural"]: yaml.safe_load(p.read_text())["spec"]["scope"]
              for p in (REPO / "crds").glob("*.yaml")}
    vwc = one(render_cached(), "ValidatingWebhookConfiguration")
    by_path = {w["clientConfig"]["service"]["path"]: w for w in vwc["webhooks"]}
    assert len(by_path) == len(vwc["webhooks"]) == len(handlers)
    for (group, plural), handler_id, origin in handlers:
        assert handler_id, f"{origin}: give the handler an explicit id= (it is the webhook's URL path)"
        hook = by_path["/" + handler_id]
        assert hook["name"] == f"{handler_id}.{GROUP}"
        assert hook["clientConfig"]["service"] == {"name": f"{FULLNAME}-webhook", "namespace": NAMESPACE,
                                                   "path": "/" + handler_id, "port": 443}
        (rule,) = hook["rules"]
        assert rule == {"apiGroups": [group], "apiVersions": [VERSION], "resources": [plural],
                        "operations": ["CREATE", "UPDATE"], "scope": scopes[plural]}
        assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
        assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] == 10 and hook["matchPolicy"] == "Equivalent"
    assert sorted(by_path) == ["/validate-batch", "/validate-interface", "/validate-job"]


# --------------------------------------------------------------------------------------------
# make dist


def test_make_dist_writes_the_install_manifest():
    proc = subprocess.run(["make", "-C", str(REPO), "dist"], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = [d for d in yaml.safe_load_all((REPO / "dist" / "install.yaml").read_text()) if d]
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    by_kind = kinds(docs)
    crds = {c["metadata"]["name"] for c in by_kind["CustomResourceDefinition"]}
    assert {f"{p}.{GROUP}" for p in ("componentinterfaces", "componentimages", "componentjobs")} <= crds
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crds
    for kind in ("Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                 "ValidatingWebhookConfiguration", "ConfigMap", "Service"):
        assert kind in by_kind, kind
    for doc in docs[1:]:
        if doc["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
    # The same objects as the chart with its defaults.
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs[1:]) == \
        sorted((d["kind"], d["metadata"]["name"]) for d in render_cached())


# --------------------------------------------------------------------------------------------
# skaffold.yaml against skaffold's own schema

#: The skaffold release whose schemas we validate against (Go module proxy, checked against the
#: checksum database). v2.19.0 is served too, but sum.golang.org has no record of it (404), so
#: Go refuses it; v2.16.1 is the newest we found that verifies.
SKAFFOLD_MODULE = "github.com/GoogleContainerTools/skaffold/v2@v2.16.1"


def test_skaffold_yaml_matches_skaffolds_schema():
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    proc = subprocess.run(["go", "mod", "download", "-json", SKAFFOLD_MODULE], capture_output=True, text=True,
                          timeout=1200, env=env, cwd=str(REPO))
    info = json.loads(proc.stdout or "{}")
    assert proc.returncode == 0 and "Dir" in info, f"go mod download {SKAFFOLD_MODULE}: {proc.stderr}{info.get('Error', '')}"
    schemas = Path(info["Dir"]) / "docs-v2" / "content" / "en" / "schemas"
    version = config["apiVersion"].split("/", 1)[1]
    schema_file = schemas / f"{version}.json"
    assert schema_file.is_file(), f"{config['apiVersion']} is not a schema of {SKAFFOLD_MODULE}"
    schema = json.loads(schema_file.read_text())
    # The newest schema version of that release (skaffold's "latest" for it).
    latest = (Path(info["Dir"]) / "pkg" / "skaffold" / "schema" / "latest" / "config.go").read_text()
    assert f'const Version string = "{config["apiVersion"]}"' in latest
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors)
    # And it deploys this chart with the image skaffold built.
    (release,) = config["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"]).resolve() == CHART
    assert release["setValueTemplates"] == {"image.repository": "{{.IMAGE_REPO_component_operator}}",
                                            "image.tag": "{{.IMAGE_TAG_component_operator}}"}
    (artifact,) = config["build"]["artifacts"]
    assert artifact["image"] == "component-operator" and artifact["docker"]["dockerfile"] == "Dockerfile"
