# The two commands of the README: `make demo` (set up, then run the study on the offline demo data)
# and `make test` (set up, then run the tests). Everything installs into ./.venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DVC stage commands say `python ...`: make that the venv's python.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup browser demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

# One Prefect server for the whole study: the stages report to it instead of each starting and stopping a
# temporary one (15-25 s a stage). PREFECT_API_URL, when set, names a server to use instead.
demo: setup
	$(BIN)/python -m pipelines.prefect_server $(BIN)/dvc repro

# Headless Chromium renders the report for its screenshot test (Debian's package; sudo when not root).
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup browser lint
	$(BIN)/pytest

# The quick subset: everything but the end-to-end runs of DVC, Prefect flows and servers (tests marked slow).
test-fast: setup lint
	$(BIN)/pytest -m "not slow"

bench: setup
	$(BIN)/python -m bench.prepare_celeba
	$(BIN)/python -m bench.generate --stage

# What git ignores under these folders (the venv, data, models, the report); tracked files (metrics/, plots/,
# dvc.lock) stay, and so does the DVC cache, from which `dvc checkout` restores the outputs.
clean:
	git clean -fdX -- $(VENV) data models reports
