# Two commands do all set-up on a fresh machine with Python 3 and make:
#   make pipeline   the whole pipeline, locally, on the embedded default (no AWS account)
#   make test       lint and the test suite
# Both create .venv/ from the pinned, hashed requirements-dev.txt first, with the Python of the
# Lambda runtime in pipeline.toml ([target] runtime): `python3 -m ci.python` (standard library only)
# says which version and finds it (PATH, uv, pyenv). PYTHON=/path/to/python3.X overrides the search.

BOOTSTRAP ?= python3
TARGET_PYTHON := $(shell $(BOOTSTRAP) -m ci.python --version)
VENV := .venv
PY := $(VENV)/bin/python
CI := $(PY) -m ci
# One stamp per target Python: switching [target] runtime rebuilds the venv instead of reusing it.
STAMP := $(VENV)/.installed-python$(TARGET_PYTHON)

.PHONY: emulation venv pipeline test lint format train lock lock-check build abi budget pins smoke deploy rollback bootstrap bench clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt
	@test -n "$(TARGET_PYTHON)" || { echo "error: cannot read [target] runtime (see above)"; exit 1; }
	@set -e; python="$(PYTHON)"; [ -n "$$python" ] || python="$$($(BOOTSTRAP) -m ci.python)"; \
	$$python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(0 if v == "$(TARGET_PYTHON)" else "error: %s is Python %s, pipeline.toml targets $(TARGET_PYTHON); fix: PYTHON=/path/to/python$(TARGET_PYTHON)" % (sys.executable, v))'; \
	if ! $(BOOTSTRAP) -m ci.python --check-venv $(VENV); then echo "recreating $(VENV) with $$python"; rm -rf $(VENV); fi; \
	echo "$$python -m venv $(VENV)"; $$python -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.txt
	@touch $(STAMP)

# The same commands, in the same order, as the GitHub workflows run them.
pipeline: venv
	$(CI) lock --check
	$(PY) -m training
	$(CI) build
	$(CI) abi
	$(CI) budget
	$(CI) pins --installed
	$(CI) smoke
	$(CI) deploy

test: lint
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy ci handler training

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

train: venv
	$(PY) -m training

lock: venv
	$(CI) lock

lock-check: venv
	$(CI) lock --check

build abi budget smoke deploy rollback bootstrap bench: venv
	$(CI) $@

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
