# Full pipelines, driven by Make so that a re-run skips every stage already finished (each stage's target is a
# file written only when the stage succeeded; `run` itself resumes inside its stage).
#
#   make pipeline SRC=path/to/video.mp4 [MODE=damage|cuts|stride] [BACKEND=flow|rife|auto|semfi] [OUT=runs/pipeline/<name>]
#   make keyframes-pipeline KEYS=path/to/keyframes/ [GAP=3 | SHEET=exposure.csv] [FPS=12] [BACKEND=flow]
#
# BACKEND=auto picks per row (semfi for cuts and long gaps when it can run, else rife, else flow); rows from
# MODE=cuts need a generative backend (semfi, wan-flf2v) or RUN_ARGS=--allow-morph.
#
# Extra options go through DETECT_ARGS, RUN_ARGS, SPLICE_ARGS (e.g. DETECT_ARGS="--every 2").

SEMFI := $(BIN)/semfi-batch
MODE ?= damage
DETECT_ARGS ?= $(if $(filter stride,$(MODE)),--every 4,)
RUN_ARGS ?=
SPLICE_ARGS ?=

ifdef SRC
PIPE_NAME := $(basename $(notdir $(SRC)))
PIPE_OUT := $(or $(OUT),$(RUNS)/pipeline/$(PIPE_NAME)-$(MODE))
PIPE_VIDEO := $(PIPE_OUT)/$(PIPE_NAME).spliced$(suffix $(SRC))

$(PIPE_OUT)/manifest.parquet: $(SRC) | $(STAMP)
	@mkdir -p $(PIPE_OUT)
	$(SEMFI) detect $(SRC) -o $@ --mode $(MODE) $(DETECT_ARGS)

# Exit status 1 means some jobs failed: their ranges stay untouched in the splice and the report lists them.
$(PIPE_OUT)/.run-done: $(PIPE_OUT)/manifest.parquet
	$(SEMFI) run $< --out $(PIPE_OUT)/run --backend $(BACKEND) $(RUN_ARGS) || test $$? -eq 1
	@touch $@

$(PIPE_VIDEO): $(PIPE_OUT)/.run-done
	$(SEMFI) splice $(PIPE_OUT)/run -o $@ $(SPLICE_ARGS)

$(PIPE_OUT)/report.html: $(PIPE_OUT)/.run-done
	$(SEMFI) report $(PIPE_OUT)/run -o $@
endif

pipeline: install  ## footage -> detect -> run -> splice -> report (SRC=video [MODE=damage|cuts|stride] [BACKEND=flow])
	@test -n "$(SRC)" || { echo "usage: make pipeline SRC=path/to/video.mp4 [MODE=damage|cuts|stride] [BACKEND=flow]"; exit 2; }
	@$(MAKE) --no-print-directory $(PIPE_VIDEO) $(PIPE_OUT)/report.html
	@echo
	@echo "pipeline finished: $(abspath $(PIPE_OUT))"
	@echo "  manifest.parquet   the rows detect found ($(MODE))"
	@echo "  run/               generated frames (run/jobs/<pair_id>/frames), records, metrics.parquet"
	@echo "  $(notdir $(PIPE_VIDEO))  the source with the generated frames spliced in, audio kept"
	@echo "  report.html        summary, plots, contact sheets, failures"

ifdef KEYS
KEYS_NAME := $(notdir $(patsubst %/,%,$(KEYS)))
KEYS_OUT := $(or $(OUT),$(RUNS)/keyframes/$(KEYS_NAME))
GAP ?= 3
FPS ?= 12

$(KEYS_OUT)/manifest.parquet: $(wildcard $(KEYS)/*) | $(STAMP)
	@mkdir -p $(KEYS_OUT)
	$(SEMFI) manifest from-images $(KEYS) -o $@ $(if $(SHEET),--sheet $(SHEET),--gap $(GAP))

$(KEYS_OUT)/.run-done: $(KEYS_OUT)/manifest.parquet
	$(SEMFI) run $< --out $(KEYS_OUT)/run --backend $(BACKEND) $(RUN_ARGS) || test $$? -eq 1
	@touch $@

$(KEYS_OUT)/$(KEYS_NAME).mp4: $(KEYS_OUT)/.run-done
	$(SEMFI) assemble $(KEYS_OUT)/run -o $@ --fps $(FPS)

$(KEYS_OUT)/report.html: $(KEYS_OUT)/.run-done
	$(SEMFI) report $(KEYS_OUT)/run -o $@
endif

keyframes-pipeline: install  ## animation keyframes -> in-betweens -> finished clip (KEYS=folder [GAP=3|SHEET=csv] [FPS=12])
	@test -n "$(KEYS)" || { echo "usage: make keyframes-pipeline KEYS=path/to/keyframes/ [GAP=3 | SHEET=exposure.csv] [FPS=12]"; exit 2; }
	@$(MAKE) --no-print-directory $(KEYS_OUT)/$(KEYS_NAME).mp4 $(KEYS_OUT)/report.html
	@echo
	@echo "keyframes pipeline finished: $(abspath $(KEYS_OUT))"
	@echo "  $(KEYS_NAME).mp4  keyframes and in-betweens at $(FPS) fps"
	@echo "  run/              generated frames, metrics.parquet;  report.html"
