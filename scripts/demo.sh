#!/usr/bin/env bash
# The demo: local control plane, CRDs, the operator as a local process, the examples, and
# what the operator made of them. Run through `make demo` (which installs the project first).
#   scripts/demo.sh        set up and show
#   scripts/demo.sh stop   stop the operator and the control plane
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TESTENV=testenv/scripts/testenv.sh

if [[ ${1:-} == stop ]]; then
  exec "$TESTENV" down
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. local control plane (etcd, kube-apiserver, scheduler, controller-manager, kwok, MinIO, registry)"
KUBECONFIG=$("$TESTENV" up | tail -n 1)
source "$(dirname "$KUBECONFIG")/env"
export PATH=$TESTENV_BIN:$PATH
kubectl get nodes -L nvidia.com/gpu.product

say "2. CRDs generated from the pydantic models"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd -l app.kubernetes.io/name=component-operator --timeout=60s
for _ in $(seq 1 50); do
  [[ $(kubectl api-resources --categories=components -o name | wc -l) -ge 3 ]] && break; sleep 0.2
done

say "3. the operator, as a local process"
OPLOG=$TESTENV_DIR/operator.log
if [[ -s $TESTENV_DIR/operator.pid ]] && kill -0 "$(cat "$TESTENV_DIR/operator.pid")" 2>/dev/null; then
  echo "operator already running (pid $(cat "$TESTENV_DIR/operator.pid"))"
else
  setsid .venv/bin/component-operator run --standalone --metrics-port 8080 >"$OPLOG" 2>&1 </dev/null &
  echo $! >"$TESTENV_DIR/operator.pid"
  echo "operator started (pid $!), log: $OPLOG"
fi

say "4. the examples"
kubectl apply -f examples/interfaces.yaml -f examples/image.yaml -f examples/job.yaml -f examples/gpu-job.yaml

say "5. an invalid object is refused by the API server"
kubectl apply -f - <<'EOK' || true
apiVersion: components.grand-challenge.org/v1alpha1
kind: ComponentJob
metadata: {name: too-short, namespace: default}
spec: {image: lesion-classifier, timeLimit: 10}
EOK

say "6. what the operator made of them"
for _ in $(seq 1 100); do
  n=$(kubectl get iface -o jsonpath='{range .items[*]}{.status.superKind}{"\n"}{end}' | grep -c . || true)
  [[ $n -ge 6 ]] && break; sleep 0.2
done
kubectl get components -A
echo
kubectl get iface
echo
echo "The operator keeps running (log: $OPLOG). Stop everything with: make demo-stop"
