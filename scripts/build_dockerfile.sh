#!/usr/bin/env bash
# Builds the top-level Dockerfile with Debian's buildah, daemonless and without Docker, from
# the project's own base image (component-operator-base, made by testenv/images/build.py) rather
# than a registry's: by default buildah reads it straight from build.py's OCI archive
# (FROM oci-archive:<tar>), so neither a registry nor the internet is needed for the base; the
# build stage still downloads the Python packages (PyPI, or the host pip's index and CA).
#
# Usage: scripts/build_dockerfile.sh [build]     build; the last stdout line is the image ID
#        scripts/build_dockerfile.sh buildah ARGS  run buildah on the same storage (inspect, from,
#                                                  run, rm, push ...), e.g. `... buildah images`
#        scripts/build_dockerfile.sh base          print the BASE_IMAGE reference it would use
# Settings:
#   TAG                  the image's name (default component-operator:dockerfile)
#   BASE_FROM            archive (default): oci-archive:<build.py's tar>;
#                        registry: <registry>/testenv/component-operator-base:<key>, pulled over
#                        plain HTTP (push it first: build.py push); or set BASE_IMAGE yourself
#   REGISTRY             the registry build.py names the images with (default 127.0.0.1:5000)
#   BUILDAH_STORAGE_DRIVER  overlay or vfs (default: overlay when this machine can mount it)
#   BUILDAH_ARGS         more arguments for `buildah bud` (e.g. --no-cache)
#   COMPONENT_OPERATOR_CACHE  buildah's storage goes to $COMPONENT_OPERATOR_CACHE/buildah
#                        (default ~/.cache/component-operator/buildah), not /var/lib/containers.
# Needs root (buildah with chroot isolation and root storage); installs buildah with apt-get
# when it is missing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE_ROOT=${COMPONENT_OPERATOR_CACHE:-$HOME/.cache/component-operator}
STORE=$CACHE_ROOT/buildah
TAG=${TAG:-component-operator:dockerfile}
REGISTRY=${REGISTRY:-127.0.0.1:5000}
BASE_FROM=${BASE_FROM:-archive}
PYTHON=python3
[[ -x $REPO/.venv/bin/python ]] && PYTHON=$REPO/.venv/bin/python

log() { printf 'build_dockerfile: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_buildah() {
  [[ $EUID -eq 0 ]] || die "needs root (buildah with chroot isolation and its storage as root; build.py's base needs root too)"
  if ! command -v buildah >/dev/null; then
    log "installing buildah (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends buildah >&2 \
      || { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends buildah >&2; }
  fi
}

# overlay when the kernel lets us mount it on the cache's file system, else vfs (slower, more disk).
storage_driver() {
  if [[ -n ${BUILDAH_STORAGE_DRIVER:-} ]]; then echo "$BUILDAH_STORAGE_DRIVER"; return; fi
  if [[ -f $STORE/driver ]]; then cat "$STORE/driver"; return; fi   # the storage cannot change driver
  local probe driver=vfs
  mkdir -p "$STORE"
  probe=$(mktemp -d "$STORE/.probe-XXXXXX")
  mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay
  fi
  rm -rf "$probe"
  echo "$driver" >"$STORE/driver"
  echo "$driver"
}

# buildah on the project's storage; the signature policy is the system's, or accept-anything
# (the base comes from our own archive or registry) when containers-common did not install one.
bah() {
  local policy=()
  if [[ ! -f /etc/containers/policy.json && $1 =~ ^(bud|build|from|pull|push)$ ]]; then
    mkdir -p "$STORE"
    echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$STORE/policy.json"
    policy=(--signature-policy "$STORE/policy.json")
  fi
  local driver; driver=$(storage_driver)
  local cmd=$1; shift
  buildah --root "$STORE/root" --runroot "$STORE/runroot" --storage-driver "$driver" "$cmd" \
    ${policy[@]+"${policy[@]}"} "$@"
}

images_json() {
  "$PYTHON" "$REPO/testenv/images/build.py" build --registry "$REGISTRY"
}

base_image() {
  if [[ -n ${BASE_IMAGE:-} ]]; then echo "$BASE_IMAGE"; return; fi
  local doc; doc=$(images_json)
  "$PYTHON" -c '
import json, sys
entry = next(e for e in json.load(sys.stdin)["images"] if e["name"] == "component-operator-base")
print(("oci-archive:" + entry["tar"]) if sys.argv[1] == "archive" else entry["ref"])' "$BASE_FROM" <<<"$doc"
}

# The host pip's index, trusted hosts and CA bundle (a mirror, an egress proxy's CA), as build
# arguments; the bundle is copied to $STORE/pip-ca and mounted read-only on /mnt, a directory
# every Debian image has (a new mount point would be left in the image as an empty file).
# Nothing when pip uses its defaults.
pip_args() {
  STORE=$STORE "$PYTHON" - <<'PY'
import os, shlex, shutil, subprocess, sys
listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
settings = {}
for line in listed.splitlines():  # site/user/global files first, then :env: (which wins)
    key, _, value = line.partition("=")
    settings[key.split(".", 1)[-1]] = value.strip().strip("'\"")
for key in ("index-url", "extra-index-url", "trusted-host", "cert"):
    value = os.environ.get("PIP_" + key.upper().replace("-", "_")) or settings.get(key)
    if not value:
        continue
    if key == "cert":
        if not os.path.isfile(value):
            continue
        directory = os.path.join(os.environ["STORE"], "pip-ca")
        os.makedirs(directory, exist_ok=True)
        shutil.copyfile(value, os.path.join(directory, "ca.pem"))
        print(shlex.quote(f"--volume={directory}:/mnt:ro"))
        value = "/mnt/ca.pem"
    print(shlex.quote(f"--build-arg=PIP_{key.upper().replace('-', '_')}={value}"))
PY
}

build() {
  need_buildah
  local base version extra=() start=$SECONDS tls=()
  base=$(base_image)
  version=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$REPO/pyproject.toml")
  eval "extra=($(pip_args))"
  [[ $base == oci-archive:* || $base == oci:* ]] || tls=(--tls-verify=false)
  log "buildah bud $TAG from $base (storage: $STORE, $(storage_driver)) ..."
  # shellcheck disable=SC2086  # BUILDAH_ARGS: words on purpose
  bah bud --isolation chroot --network host --layers --force-rm ${tls[@]+"${tls[@]}"} \
    --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$version" ${extra[@]+"${extra[@]}"} ${BUILDAH_ARGS:-} \
    -f "$REPO/Dockerfile" -t "$TAG" "$REPO" >&2
  log "built $TAG in $((SECONDS - start))s"
  bah images --quiet --no-trunc "$TAG" | head -n 1
}

case ${1:-build} in
  build) build ;;
  buildah) shift; need_buildah; bah "$@" ;;
  base) base_image ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command ${1} (build, buildah, base)" ;;
esac
