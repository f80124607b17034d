# converge: `make test` installs what the build needs when it is missing, lints, builds and runs every test.
SHELL := /bin/bash
DEBIAN_PACKAGES := pkg-config libyaml-dev libcurl4-openssl-dev libsqlite3-dev
SWIFT_FORMAT := swift format

.PHONY: deps python-tools build install lint format test validate schemas demo bench

## TEST_DEBIAN_PACKAGES: what `make test` needs beyond the build: systemd-analyze (package systemd) checks the unit of
## manifests/deploy/; openssl makes the certificates of the TLS tests, and curl is their client; postgresql is the
## server every PostgreSQL test runs on (a throwaway one, started for the run).
TEST_DEBIAN_PACKAGES := systemd openssl curl postgresql

## BENCH_DEBIAN_PACKAGES: what `make bench` needs beyond the build: the PostgreSQL server its PostgreSQL rows run on.
BENCH_DEBIAN_PACKAGES := postgresql

## deps: install the Debian packages the build needs (and, for `make test` and `make bench`, TEST_DEBIAN_PACKAGES and
## BENCH_DEBIAN_PACKAGES), and python3 for the example provisioner the tests and the demo run (as root with apt-get;
## otherwise print the command).
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES) $(if $(filter test,$(MAKECMDGOALS)),$(TEST_DEBIAN_PACKAGES)) \
	  $(if $(filter bench,$(MAKECMDGOALS)),$(BENCH_DEBIAN_PACKAGES)); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	command -v python3 >/dev/null 2>&1 || missing="$$missing python3"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get install -y$$missing"; \
	    exit 1; \
	  fi; \
	fi

## python-tools: install the Python tools the tests use, pinned, into a virtual environment in $(PYTHON_VENV), once:
## moto in server mode (the AWS emulator the cloud drivers' tests run against), jsonschema and PyYAML (the checks of
## the editor schemas and the CI example), and kubernetes-validate (the check of the Kubernetes manifests, against the
## schemas it bundles: no network). The stamp file names the versions installed, so a second run does nothing and a
## change of a version reinstalls.
PYTHON_TOOLS := moto[server]==5.2.5 jsonschema==4.26.0 PyYAML==6.0.3 kubernetes-validate==1.37.0
PYTHON_VENV := .build/python-venv
PYTHON := $(PYTHON_VENV)/bin/python
PYTHON_STAMP := $(PYTHON_VENV)/.installed-$(shell echo '$(PYTHON_TOOLS)' | tr -c 'A-Za-z0-9.=\n' '_')
python-tools: $(PYTHON_STAMP)

$(PYTHON_STAMP): | deps
	@python3 -c "import ensurepip, venv" 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: python3-venv"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else \
	    echo "python3 cannot make a virtual environment; run: sudo apt-get install -y python3-venv"; exit 1; \
	  fi; }
	@echo "installing $(PYTHON_TOOLS) into $(PYTHON_VENV)"
	python3 -m venv --clear $(PYTHON_VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check $(foreach tool,$(PYTHON_TOOLS),"$(tool)")
	$(PYTHON) -c "import moto.server, jsonschema, yaml, kubernetes_validate"
	@touch $@

build: deps
	swift build

lint:
	$(SWIFT_FORMAT) lint --strict -r Sources Tests Benchmarks

format:
	$(SWIFT_FORMAT) format -i -r Sources Tests Benchmarks

## test: also checks that the editor schemas accept the examples (Tests/Scripts/check_schemas.py), the CI
## example's structure (Tests/Scripts/check_ci_workflow.py), and the Kubernetes manifests and the systemd unit of
## manifests/deploy/ (Tests/Scripts/check_deploy.py). The tests run with a throwaway PostgreSQL on loopback
## (Tests/Scripts/postgres), stopped and removed afterwards, also when they fail; TEST_FILTER narrows them
## (`make test TEST_FILTER=PostgresStore`). The store tests (on both engines, many PostgreSQL connections) and the
## suites that run several daemons under load (DAEMON_TESTS) each run after the others, on their own, so that none
## starves another's timing on a two-core machine.
STORE_TESTS := ConvergeStoreTests
DAEMON_TESTS := HighAvailabilityTests|PauseTests|FaultTests
test: deps lint python-tools
	swift build --build-tests
	$(PYTHON) Tests/Scripts/check_schemas.py .build/debug/converge
	$(PYTHON) Tests/Scripts/check_ci_workflow.py .build/debug/converge "$(DEBIAN_PACKAGES)"
	$(PYTHON) Tests/Scripts/check_deploy.py .build/debug/converge
	@postgres=$$(mktemp -d /tmp/converge-test-postgres.XXXXXX); \
	trap 'Tests/Scripts/postgres stop "$$postgres"' EXIT; \
	eval "$$(Tests/Scripts/postgres start "$$postgres")"; \
	echo "PostgreSQL for the tests: $$CONVERGE_TEST_POSTGRES_URL"; \
	if [ -n "$(TEST_FILTER)" ]; then swift test --skip-build --disable-xctest --filter '$(TEST_FILTER)'; else \
	  swift test --skip-build --disable-xctest --skip '$(STORE_TESTS)|$(DAEMON_TESTS)' && \
	  swift test --skip-build --disable-xctest --filter '$(STORE_TESTS)' && \
	  swift test --skip-build --disable-xctest --filter '$(DAEMON_TESTS)'; fi

validate: build
	swift run converge validate examples/gitops

## install: build converge in release (the configuration to run a daemon with) and install it as
## $(PREFIX)/bin/converge (default /usr/local; `make install PREFIX=~/.local` needs no root); DESTDIR is honoured.
PREFIX ?= /usr/local
install: deps
	swift build -c release --product converge
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 .build/release/converge $(DESTDIR)$(PREFIX)/bin/converge

## demo: the daemon on a copy of examples/gitops (in $(DEMO_DIR)/manifests, its webhook moved to PROVISIONER_PORT)
## with SQLite, after the example provisioner answers on PROVISIONER_PORT, printing a new admin token for the CLI
## first (and creating the secrets key $(DEMO_DIR)/converge.key once); Ctrl-C stops both.
## `make demo PORT=9787 PROVISIONER_PORT=9790` moves both; PROVISIONER_DELAY is the provisioner's seconds per apply.
DEMO_DIR ?= .demo
PORT ?= 8787
PROVISIONER_PORT ?= 8790
PROVISIONER_DELAY ?= 2
CONVERGE ?= .build/debug/converge
demo: build
	@mkdir -p $(DEMO_DIR)
	@test -f $(DEMO_DIR)/converge.key || $(CONVERGE) init-key --secrets-key-file $(DEMO_DIR)/converge.key
	@rm -rf $(DEMO_DIR)/manifests && cp -R examples/gitops $(DEMO_DIR)/manifests && \
	sed -i -e 's|127.0.0.1:8790|127.0.0.1:$(PROVISIONER_PORT)|' \
	  -e 's|\.\./provisioners/provisioner\.py|$(CURDIR)/examples/provisioners/provisioner.py|' \
	  $(DEMO_DIR)/manifests/provisioners.yaml
	@echo "export CONVERGE_TOKEN=$$($(CONVERGE) token create --name demo-$$(date +%s) --role admin \
	  --tokens-file $(DEMO_DIR)/converge.tokens)   # for the CLI, from another terminal"
	@export CONVERGE_EXAMPLE_WEBHOOK_SECRET=demo-secret CONVERGE_EXAMPLE_STATE_DIR=$(abspath $(DEMO_DIR))/state; \
	python3 examples/provisioners/provisioner.py serve --port $(PROVISIONER_PORT) --delay $(PROVISIONER_DELAY) & \
	provisioner=$$!; \
	trap 'kill $$provisioner 2>/dev/null' EXIT INT TERM; \
	for attempt in $$(seq 100); do \
	  (exec 3<>/dev/tcp/127.0.0.1/$(PROVISIONER_PORT)) 2>/dev/null && break; \
	  kill -0 $$provisioner 2>/dev/null && [ $$attempt -lt 100 ] || \
	    { echo "the example provisioner does not answer on port $(PROVISIONER_PORT)"; exit 1; }; \
	  sleep 0.1; \
	done; \
	$(CONVERGE) serve --manifests $(DEMO_DIR)/manifests --db sqlite:$(DEMO_DIR)/converge.sqlite \
	  --listen 127.0.0.1:$(PORT) --poll-seconds 5 --tokens-file $(DEMO_DIR)/converge.tokens \
	  --secrets-key-file $(DEMO_DIR)/converge.key

## schemas: regenerate manifests/schemas/ from the kinds' Swift description (a test fails when they differ).
schemas: build
	for kind in project environment resource bundle provisioner instance preview; do \
	  swift run converge schema $$kind > manifests/schemas/$$kind.json; \
	done

## bench: build in release, generate the inputs under $(BENCH_DIR)/ (reused while they match) and print one table of
## every figure beside its ceiling, also written to bench/results.md and README.md. BENCH_RUNS, BENCH_SIZES,
## BENCH_QUICK=1 (a smoke run at 1k) and the other BENCH_* variables of converge-bench --help tune it. The PostgreSQL
## rows run on a throwaway PostgreSQL of their own on loopback (Tests/Scripts/postgres, as `make test` starts one),
## stopped and removed afterwards, also when the bench fails.
BENCH_DIR ?= .bench
BENCH_RUNS ?= 3
BENCH_CONFIGURATION ?= release
bench: deps
	swift build -c $(BENCH_CONFIGURATION) --product converge
	swift build -c $(BENCH_CONFIGURATION) --product converge-bench
	@postgres=$$(mktemp -d /tmp/converge-bench-postgres.XXXXXX); \
	trap 'Tests/Scripts/postgres stop "$$postgres"' EXIT; \
	eval "$$(Tests/Scripts/postgres start "$$postgres")"; \
	echo "PostgreSQL for the bench: $$CONVERGE_TEST_POSTGRES_URL"; \
	BENCH_POSTGRES_URL="$$CONVERGE_TEST_POSTGRES_URL" BENCH_DIR=$(BENCH_DIR) BENCH_RUNS=$(BENCH_RUNS) \
	  .build/$(BENCH_CONFIGURATION)/converge-bench \
	  --converge .build/$(BENCH_CONFIGURATION)/converge --output bench/results.md --readme README.md
