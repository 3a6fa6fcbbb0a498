#!/usr/bin/env bash
# Builds the local control plane and its companion services from Go modules.
#
# Each tool lives in its own Go module under testenv/tools/<name> (go.mod + go.sum
# committed, `tool` directives name the mains) so their dependency graphs never
# clash. Binaries go to a cache outside the repository, keyed by a hash of the
# module files and build flags: a second run with unchanged modules builds nothing.
#
# Usage: testenv/scripts/build.sh [tool ...]   (default: all)
# Prints the bin directory on its last line.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
CACHE_ROOT=${COMPONENT_OPERATOR_CACHE:-$HOME/.cache/component-operator}
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
export GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE)} GOCACHE=${GOCACHE:-$(go env GOCACHE)}

K8S_VERSION=v1.36.3
K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=36 \
-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitTreeState=clean \
-X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"

# tool-module -> "output-name=package ..." and ldflags
declare -A PKGS LDFLAGS
PKGS[k8s]="kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubectl=k8s.io/kubernetes/cmd/kubectl \
etcd=go.etcd.io/etcd/server/v3"
LDFLAGS[k8s]=$K8S_LDFLAGS
PKGS[kubelet]="kubelet=k8s.io/kubernetes/cmd/kubelet"
LDFLAGS[kubelet]=$K8S_LDFLAGS
PKGS[kube-proxy]="kube-proxy=k8s.io/kubernetes/cmd/kube-proxy"
LDFLAGS[kube-proxy]=$K8S_LDFLAGS
PKGS[helm]="helm=helm.sh/helm/v4/cmd/helm"
LDFLAGS[helm]="-s -w"
PKGS[kwok]="kwok=sigs.k8s.io/kwok/cmd/kwok"
LDFLAGS[kwok]="-s -w"
PKGS[minio]="minio=github.com/minio/minio"
LDFLAGS[minio]="-s -w"
PKGS[registry]="registry=github.com/distribution/distribution/v3/cmd/registry"
LDFLAGS[registry]="-s -w"
PKGS[crane]="crane=github.com/google/go-containerregistry/cmd/crane"
LDFLAGS[crane]="-s -w"

module_dir() { case $1 in kubelet) echo "$HERE/tools/k8s";; *) echo "$HERE/tools/$1";; esac; }

key_of() { # hash of the module files, the Go version and the flags
  local dir; dir=$(module_dir "$1")
  { cat "$dir/go.mod" "$dir/go.sum"; go env GOVERSION; echo "${PKGS[$1]} ${LDFLAGS[$1]}"; } | sha256sum | cut -c1-16
}

build_one() {
  local tool=$1 dir key out stamp
  dir=$(module_dir "$tool"); key=$(key_of "$tool")
  out="$CACHE_ROOT/bin"; stamp="$CACHE_ROOT/stamps/$tool-$key"
  mkdir -p "$out" "$CACHE_ROOT/stamps"
  if [[ -e $stamp ]]; then return 0; fi
  echo "building $tool (key $key) ..." >&2
  local start=$SECONDS pair name pkg
  for pair in ${PKGS[$tool]}; do
    name=${pair%%=*}; pkg=${pair#*=}
    (cd "$dir" && go build -trimpath -tags=selinux,notest -ldflags "${LDFLAGS[$tool]}" -o "$out/$name.tmp" "$pkg")
    mv -f "$out/$name.tmp" "$out/$name"
  done
  touch "$stamp"
  echo "built $tool in $((SECONDS - start))s" >&2
}

tools=("$@")
[[ ${#tools[@]} -gt 0 ]] || tools=(k8s kubelet kube-proxy kwok minio registry crane helm)
for t in "${tools[@]}"; do build_one "$t"; done
echo "$CACHE_ROOT/bin"
