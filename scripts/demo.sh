#!/usr/bin/env bash
# The demo: local control plane, CRDs, the operator as a local process (with its admission
# webhook) for the simulated nodes, the examples, and what the operator made of them; then the
# operator installed with its Helm chart on the real node, running a real algorithm.
# Run it through `make demo`.
#   scripts/demo.sh        set up and show
#   scripts/demo.sh stop   stop the operator and the control plane
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TESTENV=testenv/scripts/testenv.sh
PY=.venv/bin/python

if [[ ${1:-} == stop ]]; then
  exec "$TESTENV" down
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { # seconds command...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < deadline)) || return 1; sleep 0.5; done
}
phase_is() { [[ $(kubectl get cjob "$1" -o jsonpath='{.status.phase}') == "$2" ]]; }
terminal() { [[ $(kubectl get cjob "$1" -o jsonpath='{.status.phase}') =~ ^(Succeeded|Failed|Cancelled)$ ]]; }

say "1. local control plane: etcd, kube-apiserver, scheduler, controller-manager, kwok, MinIO, registry"
KUBECONFIG=$("$TESTENV" up | tail -n 1)
source "$(dirname "$KUBECONFIG")/env"
export PATH=$TESTENV_BIN:$PATH
kubectl get nodes -L nvidia.com/gpu.product

say "2. CRDs generated from the pydantic models"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd -l app.kubernetes.io/name=component-operator --timeout=60s
wait_for 30 bash -c '[[ $(kubectl api-resources --categories=components -o name | wc -l) -ge 3 ]]'

say "3. example algorithm images, built without Docker and pushed to the local registry"
$PY scripts/push_example_images.py "$TESTENV_REGISTRY"

say "4. the operator, as a local process, with its validating webhook on 127.0.0.1:9443"
OPLOG=$TESTENV_DIR/operator.log
if [[ -s $TESTENV_DIR/operator.pid ]] && kill -0 "$(cat "$TESTENV_DIR/operator.pid")" 2>/dev/null; then
  echo "operator already running (pid $(cat "$TESTENV_DIR/operator.pid"))"
else
  setsid .venv/bin/component-operator run --standalone --config testenv/operator-config.yaml \
    --webhook local --webhook-cert "$TESTENV_WEBHOOK_CERT" --webhook-key "$TESTENV_WEBHOOK_KEY" \
    --webhook-ca "$TESTENV_CA" >"$OPLOG" 2>&1 </dev/null &
  echo $! >"$TESTENV_DIR/operator.pid"
  echo "operator started (pid $!), log: $OPLOG"
fi
wait_for 60 kubectl get validatingwebhookconfiguration validate.components.grand-challenge.org

say "5. the examples"
kubectl apply -f examples/interfaces.yaml -f examples/image.yaml -f examples/image-root.yaml
wait_for 60 bash -c "kubectl get cimg lesion-classifier -o jsonpath='{.status.importStatus}' | grep -qx Completed"
kubectl apply -f examples/job.yaml -f examples/gpu-job.yaml -f examples/simulated-outcomes.yaml

say "6. invalid objects are refused at admission, with the field and the rule"
kubectl apply -f - <<'EOK' || true
apiVersion: components.grand-challenge.org/v1alpha1
kind: ComponentJob
metadata: {name: malformed-box, namespace: default}
spec:
  image: lesion-classifier
  inputs:
  - interface: lesion-bounding-box
    value: {version: {major: 1, minor: 0}, type: 2D bounding box, corners: [[0, 0, 0], [1, 0, 0], [1, 1, 0]]}
EOK
kubectl apply -f - <<'EOK' || true
apiVersion: components.grand-challenge.org/v1alpha1
kind: ComponentInterface
metadata: {name: many-boxes}
spec: {kind: Multiple 2D bounding boxes, relativePath: boxes.txt}
EOK
kubectl apply -f - <<'EOK' || true
apiVersion: components.grand-challenge.org/v1alpha1
kind: ComponentJob
metadata: {name: too-short, namespace: default}
spec: {image: lesion-classifier, timeLimit: 10}
EOK

say "7. cancel a running job (spec.cancel)"
wait_for 60 phase_is cancelled-by-user Executing
kubectl patch cjob cancelled-by-user --type=merge -p '{"spec":{"cancel":true}}'

say "8. what the operator made of them"
for job in classify-lesion-1 classify-lesion-gpu fails-with-message runs-out-of-memory cancelled-by-user needs-more-memory-than-any-node; do
  wait_for 90 terminal "$job" || echo "($job is not terminal yet)"
done
kubectl get components -A
echo
kubectl get iface
echo
kubectl get cjob -o custom-columns='NAME:.metadata.name,PHASE:.status.phase,REASON:.status.reason,GPU:.spec.requiresGPUType,NODE:.status.runtimeMetrics.instance.node,ERROR:.status.errorMessage'

say "9. a batch over a dataset (ComponentBatch): items that already ran are skipped"
# Its first item is classify-lesion-1's input: that run exists, so 5 of the 6 items run.
kubectl apply -f examples/batch.yaml
kubectl wait --for=condition=Complete cbatch/classify-lesions --timeout=180s || true
kubectl get cbatch classify-lesions -o wide
.venv/bin/component-operator batch status classify-lesions -n default || true
kubectl get events --field-selector involvedObject.kind=ComponentBatch,involvedObject.name=classify-lesions \
  --sort-by=.metadata.creationTimestamp -o custom-columns=REASON:.reason,MESSAGE:.message

say "10. a real algorithm on the real node (containerd + kubelet), outputs from the job's status"
if [[ $(head -n 1 "$TESTENV_NODE_STATE") != running ]]; then
  echo "the real node is not running on this machine:"; cat "$TESTENV_NODE_STATE"
else
  kubectl get node "$TESTENV_NODE_NAME" -L nvidia.com/gpu.product -L testenv/real-node
  # Simulated pods cannot run the data-plane agent: the local process (the development loop)
  # makes way for the operator installed as users install it, with the chart, on the real node.
  kill "$(cat "$TESTENV_DIR/operator.pid")" 2>/dev/null || true
  wait_for 30 bash -c "! kill -0 $(cat "$TESTENV_DIR/operator.pid") 2>/dev/null"
  kubectl create namespace component-operator --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label --overwrite namespace component-operator pod-security.kubernetes.io/enforce=restricted >/dev/null
  kubectl -n component-operator create secret generic component-operator-s3 --dry-run=client -o yaml \
    --from-literal=accessKey="$TESTENV_S3_ACCESS_KEY" --from-literal=secretKey="$TESTENV_S3_SECRET_KEY" | kubectl apply -f - >/dev/null
  # The CRDs were applied in step 2 with kubectl; the release takes them over.
  for crd in $(kubectl get crd -o name | grep -E '\.(components\.grand-challenge\.org|kopf\.dev)$'); do
    kubectl label --overwrite "$crd" app.kubernetes.io/managed-by=Helm >/dev/null
    kubectl annotate --overwrite "$crd" meta.helm.sh/release-name=component-operator meta.helm.sh/release-namespace=component-operator >/dev/null
  done
  kubectl delete validatingwebhookconfiguration validate.components.grand-challenge.org --ignore-not-found >/dev/null
  echo "helm upgrade --install component-operator charts/component-operator -f $TESTENV_CHART_VALUES"
  helm upgrade --install component-operator charts/component-operator -n component-operator \
    -f "$TESTENV_CHART_VALUES" --wait --timeout 5m
  kubectl -n component-operator get pods -o wide
  kubectl apply -f examples/real-node/namespace.yaml
  kubectl delete cjob -n real-node segment-lesion --ignore-not-found >/dev/null
  # Inside the cluster the local registry is reached through the bridge, not loopback.
  sed "s#127.0.0.1:5000#$TESTENV_POD_REGISTRY#" examples/real-node/algorithm.yaml | kubectl apply -f -
  if wait_for 180 bash -c "kubectl get cjob -n real-node segment-lesion -o jsonpath='{.status.phase}' | grep -Eqx 'Succeeded|Failed'"; then
    kubectl get cjob -n real-node -o wide
    kubectl get cjob -n real-node segment-lesion -o json | $PY scripts/show_job.py
  else
    echo "segment-lesion did not finish in 180 s:"; kubectl get cjob -n real-node segment-lesion -o yaml | tail -n 40
  fi
fi
echo
echo "The operator keeps running (in the cluster: kubectl -n component-operator logs deploy/component-operator;"
echo "the local process's log: $OPLOG). Stop everything with: make demo-stop"
