# Two commands do all set-up on a fresh machine with Python 3 and make:
#   make pipeline   the whole pipeline, locally, on the embedded default (no AWS account)
#   make test       lint and the test suite
# Both create .venv/ first, with the Python of the Lambda runtime in pipeline.toml ([target] runtime):
# `python3 -m ci.python` (standard library only) says which version and finds it (PATH, uv, pyenv);
# PYTHON=/path/to/python3.X overrides the search. `python3 -m ci.venv` bootstraps uv from the hashed
# requirements-bootstrap.txt, then syncs the hashed locks: requirements-pipeline.txt for the pipeline,
# plus requirements-dev.txt (linters, test tools, emulators) for make test.

# The project's .venv is ours: its bytecode is written once, by the first command importing each module,
# and every later command reuses it. With PYTHONDONTWRITEBYTECODE set (as CI images often do) each of the
# hundreds of commands make test runs compiled scikit-learn, SciPy and pandas again (~60 CPU-s in all).
unexport PYTHONDONTWRITEBYTECODE

BOOTSTRAP ?= python3
TARGET_PYTHON := $(shell $(BOOTSTRAP) -m ci.python --version)
VENV := .venv
PY := $(VENV)/bin/python
CI := $(PY) -m ci
MAKE_VENV := $(BOOTSTRAP) -m ci.venv $(if $(PYTHON),--python "$(PYTHON)")
# One stamp per lock set and target Python: switching [target] runtime recreates the venv, and a
# changed lock re-syncs it. The dev set includes the pipeline set.
STAMP := $(VENV)/.synced-pipeline-python$(TARGET_PYTHON)
DEV_STAMP := $(VENV)/.synced-dev-python$(TARGET_PYTHON)

.PHONY: emulation venv venv-dev pipeline test lint format train model-report lock lock-check build abi budget pins smoke deploy rollback bootstrap bench bench-ci clean

venv: $(STAMP)

venv-dev: $(DEV_STAMP)

$(STAMP): requirements-pipeline.txt requirements-bootstrap.txt ci/venv.py
	@test -n "$(TARGET_PYTHON)" || { echo "error: cannot read [target] runtime (see above)"; exit 1; }
	$(MAKE_VENV)
	@rm -f $(DEV_STAMP); touch $@

$(DEV_STAMP): requirements-pipeline.txt requirements-dev.txt requirements-bootstrap.txt ci/venv.py
	@test -n "$(TARGET_PYTHON)" || { echo "error: cannot read [target] runtime (see above)"; exit 1; }
	$(MAKE_VENV) --dev
	@touch $(STAMP) $@

# The same commands, in the same order, as the GitHub workflows run them. model-report (this model
# against the base branch's) informs and never stops the pipeline; training's own gate judges quality.
pipeline: venv
	$(CI) lock --check
	$(PY) -m training
	$(CI) model-report
	$(CI) build
	$(CI) abi
	$(CI) budget
	$(CI) pins --installed
	$(CI) smoke
	$(CI) deploy

# Every core (pytest-xdist): whole files, longest first, the session build once (tests/scheduling.py).
# One worker more than cores: the suite waits about 50 s in all on PyPI, moto and deliberate timeouts,
# and the extra worker runs CPU work in those gaps.
TEST_WORKERS ?= $(shell echo $$(( $$(getconf _NPROCESSORS_ONLN) + 1 )))
test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# Seconds, and first: CI runs it before the test suite (actionlint runs shellcheck on every run: script).
lint: venv-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy ci handler training
	$(VENV)/bin/lint-imports --cache-dir build/cache/import-linter
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/actionlint

format: venv-dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

train: venv
	$(PY) -m training

lock: venv
	$(CI) lock

lock-check: venv
	$(CI) lock --check

model-report build abi budget smoke deploy rollback bootstrap bench: venv
	$(CI) $@

# Side by side: make venv cold and warm, a fresh clone's make pipeline, each check job, make test (ci/bench.py).
bench-ci: venv
	$(CI) bench --ci

# Training runs in .venv (make train), so the installed versions are checked against its lock too.
pins: venv
	$(CI) pins --installed

clean:
	rm -rf build

# arm64 under user-mode emulation on an x86_64 Debian host (as root): qemu, the aarch64 binutils and
# Debian's aarch64 CPython unpacked into build/cache/sysroot-aarch64 (python -m ci.arch.sysroot).
# Optional: without it an arm64 build names the proofs it could not make and the deploy gate refuses it.
emulation:
	apt-get update -qq
	apt-get install -y -qq qemu-user-static binutils-aarch64-linux-gnu
	dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
	$(BOOTSTRAP) -m ci.arch.sysroot
