# mia-lightning: the two fresh-machine commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FMNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: install data demo test test-fast test-slurm check-gpu bench clean-outputs

$(PY):
	$(PYTHON) -m venv $(VENV)

# (re)install whenever pyproject.toml changes; torch/torchvision resolve to the local wheels
$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST from Debian's dataset-fashion-mnist, when missing and apt-get is usable
data:
	@if [ ! -d $(FMNIST_DIR) ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) || \
	    echo "warning: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"; \
	  else \
	    echo "note: $(FMNIST_DIR) missing and apt-get unusable; see README (Simulated tasks) for other ways"; \
	  fi; \
	fi

demo: install data
	$(VENV)/bin/mia

# The suite in parallel (pytest-xdist): one worker per CPU core, at most TEST_WORKERS_MAX (each
# worker builds its own session fixtures and loads torch), one torch thread each, so that
# workers do not fight over cores. On 2 cores: 8 min 35 s against 13 min 7 s serially.
TEST_WORKERS_MAX ?= 4
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n auto --maxprocesses=$(TEST_WORKERS_MAX)

test: install data
	$(PYTEST)

test-fast: install
	$(PYTEST) -m "not slow"

# The cluster path on a real one-node SLURM (root; installs slurm-wlm, munge & co. from apt
# when missing): starts the daemons, runs tests/slurm, always stops them. 2-6 min (2 on
# CI's machine, 5-6 on a slower 2-core one).
test-slurm: install
	timeout --foreground -k 120 720 tests/slurm/one_node_cluster.sh \
	  timeout -k 10 600 $(PY) -m pytest tests/slurm -rA

# On a machine with a CUDA GPU: the GPU tests (tests/gpu), mia-bench on cuda with stacks
# 1-16 and the 64-shadow attack stage, into one JSON (outputs/check_gpu.json). < 8 minutes.
check-gpu: install
	timeout --foreground -k 30 480 $(PY) scripts/check_gpu.py --json outputs/check_gpu.json

bench: install
	$(VENV)/bin/mia-bench

clean-outputs:
	rm -rf outputs/2* outputs/multirun outputs/store
