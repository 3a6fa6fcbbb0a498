# shellcheck shell=bash
# The real node of the test environment: containerd + runc + the CNI bridge + a kubelet built
# from the same k8s.io/kubernetes module as the control plane. Sourced by testenv.sh, which
# provides DIR, PKI, HERE, API_PORT, log, die, start, alive and wait_for.
#
# Why it exists: kwok nodes prove the control flow, but only a kubelet proves that a job's
# pod really receives its inputs, runs under its memory limit, is killed at its time limit
# and writes logs that `kubectl logs` can read. The node registers as `127.0.0.1` (an IP
# node name keeps apiserver -> kubelet traffic on loopback), tainted so that only pods that
# ask for it land there, labelled and given fake `nvidia.com/gpu` capacity so GPU jobs can.
#
# Settings (environment):
#   TESTENV_REAL_NODE  auto (default): start it when the preflight passes, else say why and
#                      keep the simulated nodes; require: a failed preflight fails `up`;
#                      0: never start it.
#
# Layout: sockets and runtime state under /run/co-testenv (the containerd socket must fit
# the 108-byte sun_path limit), containerd's and the kubelet's roots under
# /var/lib/co-testenv, configuration and logs under $DIR/node. Everything is removed by
# `down`, in the order that leaves no mounts, shims, network namespaces or bridge behind.

NODE_NAME=127.0.0.1
NODE_RUN=${TESTENV_NODE_RUN:-/run/co-testenv}
NODE_LIB=${TESTENV_NODE_LIB:-/var/lib/co-testenv}
NODE_BRIDGE=co-testenv0
NODE_SUBNET=10.88.0.0/16
NODE_GATEWAY=10.88.0.1
NODE_GPU_PRODUCT=Tesla-T4          # nvidia-gfd label of the T4 type: GPU jobs for T4 may land here
NODE_GPUS=4
CNI_BIN_DIR=/usr/lib/cni
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack)
SERVICE_CIDR=10.0.0.0/24           # the apiserver's --service-cluster-ip-range

node_dir() { echo "$DIR/node"; }
ctr_node() { ctr --address "$NODE_RUN/containerd.sock" --namespace k8s.io "$@"; }

# Every reason this machine cannot run the node, one per line; empty when it can.
realnode_preflight() {
  local c
  [[ $(id -u) == 0 ]] || echo "not root: the kubelet and containerd need root (run as root or set TESTENV_REAL_NODE=0)"
  [[ $(uname -s) == Linux ]] || echo "not Linux"
  if [[ $(stat -fc %T /sys/fs/cgroup 2>/dev/null) != cgroup2fs ]]; then
    for c in cpu cpuacct cpuset memory pids; do
      awk -v c="$c" '$1 == c && $4 == 1 {f = 1} END {exit !f}' /proc/cgroups 2>/dev/null \
        || echo "cgroup v1 controller '$c' is not enabled (/proc/cgroups)"
      [[ -d /sys/fs/cgroup/$c ]] || echo "cgroup v1 controller '$c' is not mounted at /sys/fs/cgroup/$c"
    done
  fi
  grep -qw overlay /proc/filesystems 2>/dev/null || echo "the kernel has no overlay filesystem (containerd's overlayfs snapshotter needs it)"
  [[ -e /dev/kmsg ]] || echo "/dev/kmsg is missing (the kubelet's OOM watcher reads it)"
  for c in containerd containerd-shim-runc-v2 ctr runc iptables ip6tables iptables-restore; do
    command -v "$c" >/dev/null || echo "'$c' is not installed (Debian: apt-get install ${NODE_PACKAGES[*]})"
  done
  for c in bridge host-local loopback; do
    [[ -x $CNI_BIN_DIR/$c ]] || echo "CNI plugin $CNI_BIN_DIR/$c is missing (Debian: apt-get install containernetworking-plugins)"
  done
  if command -v ss >/dev/null && ss -Hltn 'sport = :10250' | grep -q .; then
    echo "port 10250 (kubelet) is already in use: $(ss -Hltnp 'sport = :10250' | head -n 1)"
  fi
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1 && ! [[ -d $NODE_RUN ]]; then
    echo "bridge $NODE_BRIDGE exists but no testenv node runs: a crashed run? ('ip link del $NODE_BRIDGE')"
  fi
}

# Installs the runtime from Debian when it is missing and this machine can (root + apt-get).
realnode_install() {
  command -v containerd >/dev/null && command -v runc >/dev/null && [[ -x $CNI_BIN_DIR/bridge ]] \
    && command -v iptables >/dev/null && command -v conntrack >/dev/null && return 0
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || return 0
  log "installing ${NODE_PACKAGES[*]} from Debian (once per machine)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${NODE_PACKAGES[@]}" >"$(node_dir)/apt.log" 2>&1 \
    || { apt-get update -q >>"$(node_dir)/apt.log" 2>&1 \
         && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${NODE_PACKAGES[@]}" >>"$(node_dir)/apt.log" 2>&1; } \
    || log "apt-get install failed (see $(node_dir)/apt.log)"
}

realnode_pki() {
  (
    cd "$PKI"
    # Simple identity: the kubelet is a cluster admin; the apiserver authenticates to the
    # kubelet with its own client certificate and checks the kubelet's serving certificate.
    cert kubelet "/O=system:masters/CN=testenv-kubelet" "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
    cert kubelet-serving "/CN=$NODE_NAME" "subjectAltName=IP:$NODE_NAME\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n"
  )
  sed -e "s#$PKI/admin.crt#$PKI/kubelet.crt#" -e "s#$PKI/admin.key#$PKI/kubelet.key#" -e "s#testenv-admin#testenv-kubelet#g" \
    "$DIR/admin.kubeconfig" >"$DIR/kubelet.kubeconfig"
}

# The apiserver flags that let `kubectl logs/exec` reach the kubelet (harmless without one).
realnode_apiserver_flags() {
  echo "--kubelet-client-certificate=$PKI/apiserver-kubelet-client.crt"
  echo "--kubelet-client-key=$PKI/apiserver-kubelet-client.key"
  echo "--kubelet-certificate-authority=$PKI/ca.crt"
  echo "--kubelet-preferred-address-types=InternalIP,Hostname"
}

realnode_configs() {
  local nd; nd=$(node_dir)
  mkdir -p "$nd/cni" "$NODE_RUN" "$NODE_LIB"
  # The conflist must exist before containerd starts, or the node never reports NetworkReady.
  cat >"$nd/cni/10-testenv.conflist" <<EOK
{"cniVersion": "1.0.0", "name": "testenv",
 "plugins": [
  {"type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$NODE_LIB/cni", "ranges": [[{"subnet": "$NODE_SUBNET"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}}
 ]}
EOK
  cat >"$nd/containerd.toml" <<EOK
version = 2
root = "$NODE_LIB/containerd"
state = "$NODE_RUN/containerd"
[grpc]
  address = "$NODE_RUN/containerd.sock"
[ttrpc]
  address = "$NODE_RUN/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/testenv/pause:1"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails on oom_score_adj.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$nd/cni"
  # Images are imported ahead of time; anything else comes from the local registry over HTTP.
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:${REGISTRY_PORT}"]
    endpoint = ["http://127.0.0.1:${REGISTRY_PORT}"]
  # The same registry under the address pods use for it (images the in-cluster operator inspected).
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${NODE_GATEWAY}:${REGISTRY_PORT}"]
    endpoint = ["http://127.0.0.1:${REGISTRY_PORT}"]
EOK
  cat >"$nd/kubelet.yaml" <<EOK
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false                 # 1.35+ refuse cgroup v1 and hybrid hosts unless told
cgroupDriver: cgroupfs              # containerd 1.6 has no RuntimeConfig: the kubelet's own setting is used
containerRuntimeEndpoint: unix://$NODE_RUN/containerd.sock
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
failSwapOn: false
oomScoreAdj: 0                      # no CAP_SYS_RESOURCE: -999 could not be applied anyway
evictionHard: {memory.available: "0%"}
imageGCHighThresholdPercent: 100    # images are imported, not pulled: never collect them
imageGCLowThresholdPercent: 99
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
registerNode: true
registerWithTaints: [{key: testenv/real-node, value: "true", effect: NoSchedule}]
rotateCertificates: false
serializeImagePulls: true
runtimeRequestTimeout: 2m
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 20s
containerLogMaxSize: 10Mi
EOK
  # Services on the real node: the operator's pod reaches the API server through the
  # `kubernetes` Service, and the API server reaches the webhook through its Service.
  cat >"$nd/kube-proxy.yaml" <<EOK
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$DIR/kubelet.kubeconfig"}
hostnameOverride: "$NODE_NAME"
clusterCIDR: $NODE_SUBNET
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["127.0.0.1/32"]
conntrack: {maxPerCore: 0}          # leave the host's conntrack table size alone
EOK
}

# Builds (cached) the project's images, imports them into containerd and pushes them to the
# local registry. Prints nothing on stdout.
realnode_images() {
  local python=python3 nd; nd=$(node_dir)
  [[ -x $HERE/../.venv/bin/python ]] && python=$HERE/../.venv/bin/python
  "$python" "$HERE/images/build.py" build --registry "127.0.0.1:$REGISTRY_PORT" >"$nd/images.json" 2>>"$nd/images.log" \
    || { tail -n 20 "$nd/images.log" >&2; return 1; }
  "$python" "$HERE/images/build.py" import --address "$NODE_RUN/containerd.sock" --registry "127.0.0.1:$REGISTRY_PORT" >>"$nd/images.log" 2>&1 \
    || { tail -n 20 "$nd/images.log" >&2; return 1; }
  "$python" "$HERE/images/build.py" push --registry "127.0.0.1:$REGISTRY_PORT" >>"$nd/images.log" 2>&1 \
    || { tail -n 20 "$nd/images.log" >&2; return 1; }
}

# The operator's configuration for jobs on this node: data plane on (MinIO through the bridge's
# gateway), the agent from the operator's own image, job pods steered to and tolerated here.
realnode_operator_config() {
  local agent_image
  agent_image=$(python3 -c 'import json, sys
for image in json.load(open(sys.argv[1]))["images"]:
    if image["name"] == "component-operator":
        print(image["ref"])' "$(node_dir)/images.json")
  [[ -n $agent_image ]] || { log "no component-operator image in $(node_dir)/images.json"; return 1; }
  cat >"$(node_dir)/operator-config.yaml" <<EOK
# Written by testenv.sh: the operator with the data plane on, its job pods on the real node.
resyncSeconds: 3
objectStorage:
  endpoint: http://127.0.0.1:$S3_PORT
  podEndpoint: http://$NODE_GATEWAY:$S3_PORT
  bucket: component-jobs
agentImage: $agent_image
podNodeSelector: {testenv/real-node: "true"}
podTolerations: [{key: testenv/real-node, operator: Exists, effect: NoSchedule}]
EOK
}

kubernetes_service_routed() { # kube-proxy has programmed the Service of the API server
  iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q -- "-d 10.0.0.1/32"
}

# The operator image's tag reference (for the chart), from the build's JSON.
realnode_operator_image() {
  python3 -c 'import json, sys
for image in json.load(open(sys.argv[1]))["images"]:
    if image["name"] == "component-operator":
        print(image["tag_ref"])' "$(node_dir)/images.json"
}

# Values for charts/component-operator on this environment: the operator on the real node,
# reaching MinIO through the bridge's gateway, its job pods on the real node too. The
# object-storage credentials come from a Secret named component-operator-s3 (keys accessKey,
# secretKey) that whoever installs the chart creates in the release namespace.
realnode_chart_values() {
  local image repository tag
  image=$(realnode_operator_image)
  repository=${image%:*} tag=${image##*:}
  cat >"$(node_dir)/chart-values.yaml" <<EOK
# Written by testenv.sh: charts/component-operator on the testenv's real node.
image: {repository: "$repository", tag: "$tag", pullPolicy: IfNotPresent}
nodeSelector: {testenv/real-node: "true"}
tolerations: [{key: testenv/real-node, operator: Exists, effect: NoSchedule}]
objectStorage: {existingSecret: component-operator-s3, accessKeyKey: accessKey, secretKeyKey: secretKey}
config:
  resyncSeconds: 3
  objectStorage:
    endpoint: http://$NODE_GATEWAY:$S3_PORT
    podEndpoint: http://$NODE_GATEWAY:$S3_PORT
    bucket: component-jobs
  podNodeSelector: {testenv/real-node: "true"}
  podTolerations: [{key: testenv/real-node, operator: Exists, effect: NoSchedule}]
EOK
}

kubelet_ready() {
  [[ $(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

gpu_capacity() {
  [[ $(kubectl get node "$NODE_NAME" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}' 2>/dev/null) == "$NODE_GPUS" ]]
}

# Starts the node; `t0` (seconds since the start of `up`) is used for the readiness time.
realnode_up() {
  local t0=$1 nd mode=${TESTENV_REAL_NODE:-auto} reasons bin
  nd=$(node_dir); mkdir -p "$nd"
  if [[ $mode == 0 ]]; then
    echo "disabled (TESTENV_REAL_NODE=0)" >"$nd/state"; return 0
  fi
  realnode_install
  reasons=$(realnode_preflight)
  if [[ -n $reasons ]]; then
    { echo "skipped: this machine cannot run the real node:"; sed 's/^/  - /' <<<"$reasons"; } >"$nd/state"
    log "real node: $(cat "$nd/state")"
    [[ $mode == require ]] && die "TESTENV_REAL_NODE=require and the preflight failed"
    log "continuing with the simulated nodes only"
    return 0
  fi
  bin=$("$HERE/scripts/build.sh" kubelet kube-proxy | tail -n 1)
  realnode_configs
  rm -rf "${NODE_RUN:?}"/containerd "$NODE_RUN/containerd.sock"
  start containerd containerd --config "$nd/containerd.toml" --log-level warn
  wait_for "containerd socket" 30 ctr --address "$NODE_RUN/containerd.sock" version
  realnode_images || { realnode_failed "the project's images could not be built or imported (see $nd/images.log)"; return $?; }
  # Node labels: ours, and those of the NVIDIA GPU feature discovery for one T4 type.
  start kubelet "$bin/kubelet" --config="$nd/kubelet.yaml" --kubeconfig="$DIR/kubelet.kubeconfig" \
    --hostname-override="$NODE_NAME" --root-dir="$NODE_LIB/kubelet" --cert-dir="$NODE_LIB/kubelet/pki" \
    --node-labels="testenv/real-node=true,nvidia.com/gpu.present=true,nvidia.com/gpu.product=$NODE_GPU_PRODUCT,nvidia.com/gpu.count=$NODE_GPUS" \
    --v=1
  wait_for "kubelet node Ready" 120 kubelet_ready || { realnode_failed "the kubelet did not become Ready"; return $?; }
  # Fake GPUs: no device plugin, so the capacity is patched in; pods get no device (none needed).
  kubectl patch node "$NODE_NAME" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$NODE_GPUS\"}]" >/dev/null
  wait_for "kubelet nvidia.com/gpu allocatable" 30 gpu_capacity || { realnode_failed "nvidia.com/gpu never became allocatable"; return $?; }
  start kube-proxy "$bin/kube-proxy" --config="$nd/kube-proxy.yaml" --v=1
  wait_for "kube-proxy healthz" 60 curl -fsS http://127.0.0.1:10256/healthz \
    || { realnode_failed "kube-proxy did not become healthy"; return $?; }
  wait_for "kube-proxy rules for the kubernetes Service" 60 kubernetes_service_routed \
    || { realnode_failed "the kubernetes Service is not routed by kube-proxy"; return $?; }
  realnode_operator_config
  realnode_chart_values
  echo "running" >"$nd/state"
  echo "$((SECONDS - t0))" >"$nd/ready-seconds"
  log "real node $NODE_NAME Ready $((SECONDS - t0))s after the start of up"
}

realnode_failed() {
  local nd; nd=$(node_dir)
  log "real node failed: $1; logs: $nd/../kubelet.log, $nd/../containerd.log"
  [[ -f $DIR/kubelet.log ]] && tail -n 15 "$DIR/kubelet.log" >&2
  realnode_down
  [[ ${TESTENV_REAL_NODE:-auto} == require ]] && die "TESTENV_REAL_NODE=require and the real node failed: $1"
  echo "failed: $1" >"$nd/state"
  return 0
}

realnode_running() { [[ -f $DIR/node/state && $(cat "$DIR/node/state") == running ]]; }

# Healthy when it is not supposed to run, or when it runs.
realnode_healthy() {
  [[ -f $DIR/node/state ]] || return 1
  if ! realnode_running; then
    [[ ${TESTENV_REAL_NODE:-auto} != require ]]; return
  fi
  alive containerd && alive kubelet
}

stop_pid() { # name: TERM, wait up to 5 s, KILL
  local pid
  alive "$1" || return 0
  pid=$(cat "$DIR/$1.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$DIR/$1.pid"
}

# Stops the node and removes all it left: containers first (shims outlive containerd), then
# the kubelet's mounts, the pods' network namespaces, the bridge and the state directories.
realnode_down() {
  local id ns p
  [[ -d $NODE_RUN || -d $NODE_LIB || -f $DIR/kubelet.pid ]] || return 0
  stop_pid kube-proxy
  local kp=${COMPONENT_OPERATOR_CACHE:-$HOME/.cache/component-operator}/bin/kube-proxy
  [[ -x $kp ]] && "$kp" --cleanup >/dev/null 2>&1 || true   # removes its iptables chains
  stop_pid kubelet
  if alive containerd; then
    for id in $(ctr_node tasks ls -q 2>/dev/null); do ctr_node tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    sleep 0.5
    for id in $(ctr_node tasks ls -q 2>/dev/null); do ctr_node tasks delete -f "$id" >/dev/null 2>&1 || true; done
    for id in $(ctr_node containers ls -q 2>/dev/null); do ctr_node containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  # Anything still in the pods' cgroups (e.g. after a crash of containerd) is ours.
  for p in $(cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null); do
    kill -9 "$p" 2>/dev/null || true
  done
  stop_pid containerd
  pkill -9 -f -- "-address $NODE_RUN/containerd.sock" 2>/dev/null || true
  # Mounts below our roots, deepest first (emptyDirs, configMaps, secrets, overlay rootfs).
  grep -oE " ($NODE_LIB|$NODE_RUN)/[^ ]*" /proc/self/mounts | sort -r | while read -r p; do
    umount -l "$p" 2>/dev/null || true
  done
  for ns in /run/netns/cni-*; do
    [[ -e $ns ]] || continue
    # Only network namespaces holding our bridge's addresses are ours.
    if ip netns exec "$(basename "$ns")" ip -4 -o addr 2>/dev/null | grep -q " ${NODE_SUBNET%.*.*}\."; then
      umount "$ns" 2>/dev/null || true; rm -f "$ns"
    fi
  done
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  rm -rf "$NODE_RUN" "$NODE_LIB"
}
