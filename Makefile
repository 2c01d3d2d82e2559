# `make install` then `make test` (what CI runs: .ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install test test-paper docs lint format run bench fmnist reproduce-cpu reproduce-gpu gpu-check gpu-bundle clean slurm-up slurm-down sync

install: fmnist
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -c "import torch, torchvision, hydra, wandb, submitit, pyhessian; print('noisereg environment ready: torch', torch.__version__)"

# Real Fashion-MNIST from Debian's package where we can install it; otherwise say what to do.
fmnist:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST found in $(FMNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "could not install dataset-fashion-mnist; FMNIST runs need it or dataset.root=<folder with FashionMNIST/raw>"; \
	else \
		echo "Fashion-MNIST missing: run 'sudo apt-get install -y dataset-fashion-mnist', or set dataset.root to a folder holding FashionMNIST/raw/*-ubyte[.gz]"; \
	fi

test:
	$(BIN)/python -m pytest

# The documentation site (mkdocs.yml, docs/; docs/hooks.py generates the reference pages from the code and results/)
# into site/, which git ignores: a broken link, a missing page or a failing generator fails the build.
# ruff's lint and format check over the code (configured in pyproject.toml); `make format` applies both.
LINTED := src scripts tests examples docs run.py
lint:
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

format:
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

docs:
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# A single-node SLURM on this machine to try hydra/launcher=slurm (scripts/slurm.sh; exit 3 = cannot here, said why).
slurm-up:
	@scripts/slurm.sh up || test $$? -eq 3

slurm-down:
	@scripts/slurm.sh down

test-paper:
	$(BIN)/python -m pytest --paper-scale -m paper_scale

run:
	$(BIN)/python run.py

bench:
	$(BIN)/python scripts/bench_noise.py

# Regenerate results/ (records, figures, their data, REPORT.md) from scratch on a CPU: about 3.3 hours of job time
# on 2 cores, measured 2026-12-02 (docs/reproducing.md); `--only`/`--paper` run a part, two parts at a time halve it.
reproduce-cpu:
	$(BIN)/python scripts/reproduce_cpu.py --fresh

# The Fashion-MNIST experiments at the papers' widths on one GPU, fitted into --budget-minutes (default 8), with the
# plan's estimated times printed first (scripts/reproduce_gpu.py). ARGS passes options: ARGS="--scale smoke" runs
# the same plan in about 2 minutes on a CPU. Runs with the project's venv, or on a bare GPU machine with the
# machine's python3 and the bundle's wheels (docs/clusters.md, "On a GPU").
GPU_PYTHON := $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
reproduce-gpu:
	PYTHONPATH=$(CURDIR)/src$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PYTHON) scripts/reproduce_gpu.py $(ARGS)

# What a GPU loan should measure first (scripts/gpu_check.py), into DIR (default outputs/gpu_check).
DIR ?= outputs/gpu_check
gpu-check:
	bash scripts/gpu_check.sh $(DIR) $(ARGS)

# The wheels and Fashion-MNIST files a bare GPU machine needs, into gpu_bundle/ (git ignores it; carry it).
gpu-bundle:
	bash scripts/gpu_bundle.sh gpu_bundle

# Upload every offline W&B run under DIR (a sweep's folder), 4 at a time, skipping those synced before.
sync:
	@test "$(origin DIR)" = "command line" || { echo "make sync DIR=<folder>: the folder whose offline W&B runs to upload, e.g. DIR=multirun/fig3" >&2; exit 2; }
	$(BIN)/python scripts/sync_wandb.py $(DIR) $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
