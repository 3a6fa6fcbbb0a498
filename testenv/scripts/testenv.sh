#!/usr/bin/env bash
# Local control plane for tests, benchmarks and the demo: real etcd, kube-apiserver,
# kube-scheduler, kube-controller-manager and kwok (simulated nodes), plus a MinIO object
# store and a distribution registry, all as plain processes on loopback.
#
#   testenv.sh up      start (idempotent: a healthy running environment is reused);
#                      the last line printed is the admin kubeconfig path
#   testenv.sh down    stop what `up` started, by pid, and remove its state
#   testenv.sh status  exit 0 when everything answers
#   testenv.sh env     print shell exports for the running environment
#   testenv.sh restart NAME [SIGNAL] [SECONDS]
#                      stop one component (SIGTERM unless SIGNAL, e.g. KILL), leave it down
#                      SECONDS (default 0), start it again with its state kept; returns when
#                      it answers (the chaos tests)
#
# Settings (environment): TESTENV_DIR (state, default ~/.cache/component-operator/testenv),
# TESTENV_BENCH=1 (lift API rate limits, as kwok's own benchmarks do).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
DIR=${TESTENV_DIR:-$HOME/.cache/component-operator/testenv}
PKI=$DIR/pki
ETCD_PORT=${TESTENV_ETCD_PORT:-2379}
API_PORT=${TESTENV_API_PORT:-6443}
S3_PORT=${TESTENV_S3_PORT:-9000}
REGISTRY_PORT=${TESTENV_REGISTRY_PORT:-5000}
S3_USER=testenv
S3_PASSWORD=testenv-secret-key
# Order matters: started in this order, stopped in reverse. (The real node's containerd, kubelet
# and kube-proxy are started and stopped by realnode.sh.)
COMPONENTS=(etcd kube-apiserver kube-scheduler kube-controller-manager kwok minio registry)
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTPS_PROXY HTTP_PROXY https_proxy http_proxy

# shellcheck source=realnode.sh
source "$HERE/scripts/realnode.sh"

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

alive() { [[ -s $DIR/$1.pid ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

wait_for() { # description timeout-seconds command...
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      log "timed out after ${timeout}s waiting for $what"
      local comp=${what%% *}
      [[ -f $DIR/$comp.log ]] && tail -n 30 "$DIR/$comp.log" >&2
      return 1
    fi
    sleep 0.3
  done
}

start() { # name command...
  local name=$1; shift
  printf '%q ' "$@" >"$DIR/$name.cmd"   # for `restart` (the chaos tests)
  setsid "$@" >>"$DIR/$name.log" 2>&1 </dev/null 9>&- &   # 9: the lock, not for children
  echo $! >"$DIR/$name.pid"
}

ready() { # name: the component answers (or at least runs, for those without a probe here)
  case $1 in
    etcd) curl -fsS "http://127.0.0.1:$ETCD_PORT/health" ;;
    kube-apiserver) apiserver_ready ;;
    kube-scheduler) curl -fsSk https://127.0.0.1:10259/readyz ;;
    kube-controller-manager) curl -fsSk https://127.0.0.1:10257/healthz ;;
    minio) curl -fsS "http://127.0.0.1:$S3_PORT/minio/health/live" ;;
    registry) curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" ;;
    *) alive "$1" ;;
  esac
}

# One component stopped (SIGTERM, or the signal given) and started again with the command line
# it was started with, its state kept (etcd's data directory, MinIO's objects); returns once it
# answers again. For the chaos tests: a control plane that restarts under a running operator.
restart() { # name [signal] [seconds down]
  local name=${1:-} sig=${2:-TERM} down_for=${3:-0} pid
  [[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "restart: unknown component '$name' (one of: ${COMPONENTS[*]})"
  [[ -s $DIR/$name.cmd ]] || die "restart: no recorded command line for $name (started by an older testenv.sh: run down, then up)"
  if alive "$name"; then
    pid=$(cat "$DIR/$name.pid")
    kill -s "$sig" "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  sleep "$down_for"   # an outage longer than a client's retries (kopf's: about 54 s)
  local -a cmd
  eval "cmd=($(cat "$DIR/$name.cmd"))"
  printf '\ntestenv: restarted at %s after SIG%s\n' "$(date -u +%FT%TZ)" "$sig" >>"$DIR/$name.log"
  start "$name" "${cmd[@]}"
  wait_for "$name ready" 90 ready "$name"
  log "$name restarted"
}

apiserver_ready() {
  curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$API_PORT/readyz"
}

healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  apiserver_ready >/dev/null 2>&1 || return 1
  curl -fsS "http://127.0.0.1:$S3_PORT/minio/health/live" >/dev/null 2>&1 || return 1
  curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1 || return 1
  realnode_healthy
}

cert() { # name subject extensions: a key and a certificate signed by the testenv CA (cwd: $PKI)
  openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}

make_pki() {
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj "/CN=component-operator-testenv-ca" -days 30 -out ca.crt 2>/dev/null
    cert apiserver "/CN=kube-apiserver" "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1,IP:$NODE_GATEWAY\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    cert admin "/O=system:masters/CN=testenv-admin" "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    cert webhook "/CN=127.0.0.1" "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    openssl genrsa -out sa.key 2048 2>/dev/null
  )
  cat >"$DIR/admin.kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$PKI/ca.crt"}
users:
- name: testenv-admin
  user: {client-certificate: "$PKI/admin.crt", client-key: "$PKI/admin.key"}
contexts:
- name: testenv
  context: {cluster: testenv, user: testenv-admin, namespace: default}
current-context: testenv
EOK
  realnode_pki
}

kwok_config() { # our settings + kwok's standard stages (from the module cache) + our outcome stages
  local kwok_dir
  kwok_dir=$(cd "$HERE/tools/kwok" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  [[ -d $kwok_dir/kustomize/stage ]] || (cd "$HERE/tools/kwok" && go mod download sigs.k8s.io/kwok)
  {
    cat <<EOK
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.0.0.0/16
  manageAllNodes: false
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  nodeLeaseDurationSeconds: 40
  podPlayStageParallelism: 16
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  enablePodsOnNodeSyncStreamWatch: true
EOK
    local f
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-delete.yaml; do
      echo "---"; cat "$kwok_dir/kustomize/stage/$f"
    done
    echo "---"; cat "$HERE/kwok/stages.yaml"
  } >"$DIR/kwok.yaml"
}

up() {
  local bin
  bin=$("$HERE/scripts/build.sh" | tail -n 1)
  export PATH=$bin:$PATH
  if healthy; then
    log "reusing the running environment in $DIR"
    echo "$DIR/admin.kubeconfig"
    return 0
  fi
  [[ -d $DIR ]] && { log "cleaning a stale environment"; down >/dev/null 2>&1 || true; }
  mkdir -p "$DIR"
  local t0=$SECONDS
  make_pki
  local qps=()
  # Client rate limits of the scheduler and the controller-manager: default, or lifted (bench).
  local sched_qps=50 sched_burst=100 kcm_qps=20 kcm_burst=30
  if [[ -n ${TESTENV_BENCH:-} ]]; then
    qps=(--max-requests-inflight=0 --max-mutating-requests-inflight=0 --enable-priority-and-fairness=false)
    sched_qps=500 sched_burst=1000 kcm_qps=500 kcm_burst=1000
  fi

  start etcd "$bin/etcd" --name=testenv --data-dir="$DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls="http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster="testenv=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync=true \
    --auto-compaction-retention=1 --quota-backend-bytes=8589934592 --log-level=warn
  wait_for "etcd health" 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

  # Who did what, for the operator's ServiceAccounts only (the RBAC test reads it); the rest is noise.
  cat >"$DIR/audit-policy.yaml" <<EOK
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
EOK
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --etcd-prefix=/registry \
    --bind-address=0.0.0.0 --advertise-address="$NODE_GATEWAY" --secure-port="$API_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
    --service-account-issuer="https://127.0.0.1:$API_PORT" \
    --service-account-key-file="$PKI/sa.key" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=RBAC --allow-privileged=true \
    --endpoint-reconciler-type=lease --audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/audit.log" \
    --audit-log-maxsize=200 --audit-log-maxbackup=1 \
    --cert-dir="$DIR/apiserver-certs" --feature-gates=PodLogsQuerySplitStreams=true "${qps[@]}" $(realnode_apiserver_flags)
  wait_for "kube-apiserver readyz" 90 apiserver_ready

  cat >"$DIR/scheduler.yaml" <<EOK
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: "$DIR/admin.kubeconfig"
  qps: $sched_qps
  burst: $sched_burst
leaderElection:
  leaderElect: false
EOK
  start kube-scheduler "$bin/kube-scheduler" --config="$DIR/scheduler.yaml" --bind-address=127.0.0.1 \
    --secure-port=10259 --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$DIR/admin.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=10257 \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --use-service-account-credentials=false --concurrent-job-syncs=5 \
    --kube-api-qps="$kcm_qps" --kube-api-burst="$kcm_burst" \
    --node-monitor-period=5s --node-monitor-grace-period=40s

  kwok_config
  start kwok "$bin/kwok" --kubeconfig="$DIR/admin.kubeconfig" --config="$DIR/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake

  mkdir -p "$DIR/s3"
  start minio env MINIO_ROOT_USER=$S3_USER MINIO_ROOT_PASSWORD=$S3_PASSWORD MINIO_BROWSER=off MINIO_UPDATE=off \
    "$bin/minio" server --quiet --address ":$S3_PORT" "$DIR/s3"   # pods reach it via the bridge

  cat >"$DIR/registry.yaml" <<EOK
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: "$DIR/registry"}
  delete: {enabled: true}
http:
  addr: ":$REGISTRY_PORT"   # pods (the operator's, in the cluster) reach it through the bridge
EOK
  start registry env OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true "$bin/registry" serve "$DIR/registry.yaml"

  export KUBECONFIG=$DIR/admin.kubeconfig
  wait_for "kube-scheduler readyz" 60 curl -fsSk https://127.0.0.1:10259/readyz
  wait_for "kube-controller-manager healthz" 60 curl -fsSk https://127.0.0.1:10257/healthz
  wait_for "minio health" 60 curl -fsS "http://127.0.0.1:$S3_PORT/minio/health/live"
  wait_for "registry /v2/" 30 curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/"
  wait_for "kube-apiserver default namespace" 30 kubectl get namespace default
  kubectl apply -f "$HERE/kwok/nodes.yaml" >/dev/null
  wait_for "kwok nodes Ready" 90 kubectl wait --for=condition=Ready node --all --timeout=5s
  realnode_up "$t0"
  write_env
  log "up in $((SECONDS - t0))s: $(kubectl get nodes --no-headers | wc -l) nodes; logs in $DIR"
  echo "$DIR/admin.kubeconfig"
}

write_env() {
  cat >"$DIR/env" <<EOK
export KUBECONFIG=$DIR/admin.kubeconfig
export TESTENV_DIR=$DIR
export TESTENV_BIN=$(dirname "$(command -v kube-apiserver)")
export TESTENV_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export TESTENV_S3_ACCESS_KEY=$S3_USER
export TESTENV_S3_SECRET_KEY=$S3_PASSWORD
export TESTENV_REGISTRY=127.0.0.1:$REGISTRY_PORT
export TESTENV_POD_REGISTRY=$NODE_GATEWAY:$REGISTRY_PORT
export TESTENV_WEBHOOK_CERT=$PKI/webhook.crt
export TESTENV_WEBHOOK_KEY=$PKI/webhook.key
export TESTENV_CA=$PKI/ca.crt
export TESTENV_NODE_STATE=$DIR/node/state
export TESTENV_NODE_NAME=$NODE_NAME
export TESTENV_NODE_SOCKET=$NODE_RUN/containerd.sock
export TESTENV_NODE_IMAGES=$DIR/node/images.json
export TESTENV_NODE_OPERATOR_CONFIG=$DIR/node/operator-config.yaml
export TESTENV_POD_S3_ENDPOINT=http://$NODE_GATEWAY:$S3_PORT
export TESTENV_AUDIT_LOG=$DIR/audit.log
export TESTENV_CHART_VALUES=$DIR/node/chart-values.yaml
export TESTENV_OPERATOR_IMAGE=$(realnode_operator_image 2>/dev/null)
EOK
}

down() {
  [[ -d $DIR ]] || { log "nothing to stop"; return 0; }
  local i c pid f
  realnode_down
  # Processes started next to the environment (the demo's operator) go first.
  for f in "$DIR"/*.pid; do
    c=$(basename "$f" .pid)
    [[ " ${COMPONENTS[*]} " == *" $c "* ]] && continue
    alive "$c" && kill "$(cat "$f")" 2>/dev/null || true
  done
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[$i]}
    if alive "$c"; then
      pid=$(cat "$DIR/$c.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  # Safety net for processes whose pid file was lost (e.g. an interrupted `up`): anything
  # still running with this environment's state directory on its command line is ours.
  if pkill -f -- "$DIR/" 2>/dev/null; then
    log "stopped leftover processes of $DIR"
    sleep 1
    pkill -9 -f -- "$DIR/" 2>/dev/null || true
  fi
  rm -rf "$DIR"
  log "stopped"
}

reload_kwok() { # apply changed stages without touching the rest of the environment
  healthy || die "not running"
  local bin; bin=$("$HERE/scripts/build.sh" kwok | tail -n 1)
  kill "$(cat "$DIR/kwok.pid")"; sleep 0.5
  kwok_config
  start kwok "$bin/kwok" --kubeconfig="$DIR/admin.kubeconfig" --config="$DIR/kwok.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
  log "kwok restarted with $DIR/kwok.yaml"
}

# One `up`/`down` at a time: two racing `up`s would orphan each other's processes.
lock() {
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock -w 600 9 || die "another testenv.sh holds $DIR.lock"
}

case ${1:-} in
  up) lock; up ;;
  reload-kwok) lock; reload_kwok ;;
  down) lock; down ;;
  restart) lock; restart "${2:-}" "${3:-TERM}" "${4:-0}" ;;
  status) healthy && log "healthy; real node: $(head -n 1 "$DIR/node/state")" ;;
  env) [[ -f $DIR/env ]] && cat "$DIR/env" || die "not running (no $DIR/env)" ;;
  *) echo "usage: $0 up|down|status|env|restart NAME [SIGNAL] [SECONDS]" >&2; exit 2 ;;
esac
