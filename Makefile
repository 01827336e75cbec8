# Two commands do all set-up on a fresh machine with Python 3.11 and make:
#   make pipeline   the whole pipeline, locally, on the embedded default (no AWS account)
#   make test       lint and the test suite
# Both create .venv/ from the pinned, hashed requirements-dev.txt first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
CI := $(PY) -m ci
STAMP := $(VENV)/.installed

.PHONY: venv pipeline test lint format train lock lock-check build abi budget pins smoke deploy rollback bootstrap bench clean

venv: $(STAMP)

$(STAMP): requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %s); set PYTHON=/path/to/python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
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
