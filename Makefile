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
SYNTH_DIR ?= data/synthetic
SYNTH_TRAIN ?= 4096
SYNTH_VAL ?= 512
WORKERS ?= 2
DATA ?= demo
ROOT ?=
SEEDS ?= 1
export PYOPENGL_PLATFORM ?= egl

.PHONY: help venv test lint pretrain pretrain-lift predict-samples finetune finetune-study ablate-losses compare-heads pose-baselines sheet synth synth-sheet bench clean

help:
	@echo "make test      ruff + pytest (sets everything up on first use)"
	@echo "make pretrain  the main job (EXPERIMENT=$(EXPERIMENT))"
	@echo "make pretrain-lift  the keypoint network (2D keypoints -> mesh), ~9 min on 2 cores"
	@echo "make predict-samples  predict on ../shared/real_samples -> docs/real_samples_predict.png"
	@echo "make finetune  weak supervision of its bundle (DATA=demo|rhd|stb ROOT=PATH)"
	@echo "make ablate-losses  Table 1: Full, -Normal, -Edge, -Laplacian, -3D Pose side by side"
	@echo "make compare-heads  Table 2: MANO-based, direct LBS and Graph CNN heads side by side"
	@echo "make pose-baselines Fig. 8: pose straight from the image, through the mesh, from the latent"
	@echo "make sheet     regenerate docs/handmodel.png (every gesture, two views)"
	@echo "make synth     render the default synthetic set into $(SYNTH_DIR) (resumable)"
	@echo "make bench     measure speeds; results in docs/benchmarks.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev,export]'
	@touch $(STAMP)

# Mesa's EGL lets pyrender render without a display; install it only where it is missing.
$(APT_STAMP): | $(STAMP)
	@bash scripts/ensure_render_packages.sh
	@touch $(APT_STAMP)

# MediaPipe's two networks, taken out of its pinned wheel into the user's cache (a no-op once there).
venv: $(STAMP) $(APT_STAMP)
	@$(BIN)/handshape setup

lint: venv
	$(BIN)/ruff check src tests scripts

test: venv
	$(BIN)/ruff check src tests scripts
	$(BIN)/python -m pytest

pretrain: venv
	$(BIN)/handshape pretrain --experiment $(EXPERIMENT)
	$(BIN)/python scripts/check_pretrain.py outputs/pretrain --experiment $(EXPERIMENT)

# The keypoint network predict uses; ship a new one with scripts/ship_keypoint_bundle.py.
pretrain-lift: venv
	$(BIN)/handshape pretrain --experiment lift

# Every photograph of ../shared/real_samples with its meshes (not committed: the photographs may
# not be redistributed here).
predict-samples: venv
	$(BIN)/handshape predict ../shared/real_samples/RHD ../shared/real_samples/FreiHAND \
		../shared/real_samples/STB/stb_SK_color_0.png --out outputs/predict-samples
	$(BIN)/python scripts/predict_sheet.py outputs/predict-samples --out docs/real_samples_predict.png

# Weak supervision from the pretrain bundle: DATA=rhd|stb ROOT=PATH, or the demo domain.
finetune: venv
	$(BIN)/handshape finetune --experiment $(EXPERIMENT) --data $(DATA) $(if $(ROOT),--root $(ROOT)) $(OVERRIDES)

finetune-study: venv
	$(BIN)/handshape study weak --seeds $(SEEDS) $(OVERRIDES)

ablate-losses: venv
	$(BIN)/handshape study losses --seeds $(SEEDS) $(OVERRIDES)

compare-heads: venv
	$(BIN)/handshape study heads --seeds $(SEEDS) $(OVERRIDES)

pose-baselines: venv
	$(BIN)/handshape study pose --seeds $(SEEDS) $(OVERRIDES)

sheet: venv
	$(BIN)/handshape handmodel sheet --out docs/handmodel.png

synth: venv
	$(BIN)/handshape synth --out $(SYNTH_DIR) --split train --num $(SYNTH_TRAIN) --workers $(WORKERS)
	$(BIN)/handshape synth --out $(SYNTH_DIR) --split val --num $(SYNTH_VAL) --workers $(WORKERS)

synth-sheet: synth
	$(BIN)/handshape synth-sheet --data $(SYNTH_DIR)/train --out docs/synthetic_samples.png

bench: venv
	$(BIN)/python scripts/bench_synth.py --out docs/benchmarks.md
	$(BIN)/python scripts/bench_net.py --out docs/benchmarks.md
	$(BIN)/python scripts/bench_render.py --out docs/benchmarks.md
	$(BIN)/python scripts/bench_readers.py
	$(BIN)/python scripts/bench_protocols.py
	$(BIN)/python scripts/bench_real_photos.py --out docs/benchmarks.md
	$(BIN)/python scripts/bench_startup.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
