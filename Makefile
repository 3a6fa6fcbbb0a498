# component-operator developer commands. Everything runs from a fresh clone:
#   make demo   set up everything (venv, control plane, CRDs, operator) and run the demo
#   make test   run every test tier: unit, integration (kwok nodes), e2e (the real node)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TESTENV := testenv/scripts/testenv.sh
PYTEST_ARGS ?=

.PHONY: install test unit integration e2e chaos images bench-realnode demo demo-stop testenv-up testenv-down testenv-build agent crds dist bench bench-validation bench-jobs bench-batch bench-install bench-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

testenv-build:
	@testenv/scripts/build.sh >/dev/null

agent: install
	testenv/scripts/build_agent.sh

testenv-up:
	@$(TESTENV) up

testenv-down:
	@$(TESTENV) down

# The CRDs from the pydantic models, and their copies in the Helm chart (templates/crds/).
crds: install
	$(BIN)/component-operator crds --write crds/
	$(BIN)/python scripts/sync_chart_crds.py

# dist/install.yaml: the chart rendered with its default values, for `kubectl apply --server-side`.
# helm template creates no namespace, so a Namespace manifest comes first.
dist:
	@mkdir -p dist
	@helm=$$(testenv/scripts/build.sh helm | tail -n 1)/helm && { \
	  printf '%s\n' '# component-operator $(shell sed -n "s/^appVersion: *//p" charts/component-operator/Chart.yaml | tr -d \") (rendered by make dist)' \
	    'apiVersion: v1' 'kind: Namespace' 'metadata:' '  name: component-operator' '  labels:' \
	    '    pod-security.kubernetes.io/enforce: restricted'; \
	  $$helm template component-operator charts/component-operator --namespace component-operator; \
	} > dist/install.yaml.tmp && mv dist/install.yaml.tmp dist/install.yaml
	@echo dist/install.yaml

# The Go builds and the images are made before pytest: cold, they take longer than a test's timeout.
test: install testenv-build images
	$(BIN)/python -m pytest tests/unit tests/integration tests/chaos tests/e2e $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: install testenv-build
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: install testenv-build images
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

# Faults of the control plane under a running operator (restarts the shared testenv's parts).
chaos: install testenv-build
	$(BIN)/python -m pytest tests/chaos $(PYTEST_ARGS)

# The project's OCI images (pause, operator with the static agent, test algorithms); cached.
# The operator's image needs root (debootstrap, chroot); so does the real node that runs them.
# Without root the e2e tier skips with the reason (under CI it fails), so skip the build too.
images: install
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python testenv/images/build.py build >/dev/null; \
	else echo "images: not root, not built (the operator image and the e2e tier need root)"; fi

demo: install
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

# Benchmarks (docs/benchmarks.md). The cluster ones bring the testenv up with TESTENV_BENCH=1 (the
# API rate limits lifted: the goals are defined so), install the CRDs and print the mode. An
# environment that is already up WITHOUT the bench limits is not restarted (other work may be
# using it): bench-env refuses with a message; `make testenv-down && make bench` restarts it,
# BENCH_ALLOW_LIMITS=1 runs anyway (every header then says RATE-LIMITED).
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_JOBS ?= 1000
BENCH_ARGS ?=

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench-install: $(BENCH_STAMP)

bench-env: bench-install
	@TESTENV_BENCH=1 $(TESTENV) up >/dev/null
	@$(BIN)/python bench/benchenv.py --require-bench

bench: bench-validation bench-jobs bench-batch bench-realnode

bench-validation: install
	$(BIN)/python bench/bench_validation.py

# ComponentJob vs batch/v1 Job: throughput, writes per job, the API server's ceiling, reaction, memory.
bench-jobs: bench-env
	$(BIN)/python bench/bench_controllers.py --jobs $(BENCH_JOBS) $(BENCH_ARGS)

bench-batch: bench-env
	$(BIN)/python bench/bench_batch.py --items 1000 --parallelism 200

bench-realnode: bench-env
	$(BIN)/python bench/bench_realnode.py --runs 5

clean:
	rm -rf $(VENV) build *.egg-info operator/*.egg-info
