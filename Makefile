# Every target bootstraps what it needs: a .venv in the repo (torch 2.13.0 CPU build first, then the
# project), and the Debian packages headless rendering uses. Re-running is cheap: a stamp file marks
# a finished install and is only redone when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt-ok
TORCH_VERSION ?= 2.13.0
EXPERIMENT ?= quick
export PYOPENGL_PLATFORM ?= egl

.PHONY: help venv test lint pretrain sheet clean

help:
	@echo "make test      ruff + pytest (sets everything up on first use)"
	@echo "make pretrain  the main job (EXPERIMENT=$(EXPERIMENT))"
	@echo "make sheet     regenerate docs/handmodel.png (every gesture, two views)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Mesa's EGL lets pyrender render without a display; install it only where it is missing.
$(APT_STAMP): | $(STAMP)
	@bash scripts/ensure_render_packages.sh
	@touch $(APT_STAMP)

venv: $(STAMP) $(APT_STAMP)

lint: venv
	$(BIN)/ruff check src tests scripts

test: venv
	$(BIN)/ruff check src tests scripts
	$(BIN)/python -m pytest

pretrain: venv
	$(BIN)/handshape pretrain --experiment $(EXPERIMENT)

sheet: venv
	$(BIN)/handshape handmodel sheet --out docs/handmodel.png

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
