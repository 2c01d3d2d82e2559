# `make install` then `make test` (what CI runs: .ci/run).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install test test-paper run bench fmnist reproduce-cpu clean slurm-up slurm-down

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
# on 2 cores, measured 2026-12-02 (README, "results/"); `--only`/`--paper` run a part, two parts at a time halve it.
reproduce-cpu:
	$(BIN)/python scripts/reproduce_cpu.py --fresh

clean:
	rm -rf outputs multirun .pytest_cache
