# Two entry points that work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint clean

$(BIN)/python:
	$(shell command -v $(PYTHON) >/dev/null 2>&1 && echo $(PYTHON) || echo python3) -m venv $(VENV)

# The package asks for torch>=2.2; installing the local CPU wheel first keeps pip from
# fetching a multi-GB CUDA build (an installed torch that satisfies the range is kept).
# `make test` installs every extra; `make demo` only what the demo runs: the core (torch,
# scikit-learn, pandas, ...) and DEMO_EXTRAS (none by default: no Ray, no dice-ml and the
# xgboost/NCCL it pulls in, no matplotlib, no onnxruntime, no pyarrow, no FastAPI).
EXTRAS ?= dev,onnx,parquet,bench,serve,ray
DEMO_EXTRAS ?=
define install
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".$(if $(1),[$(1)])"
endef

$(STAMP): pyproject.toml | $(BIN)/python
	$(call install,$(EXTRAS))
	touch $(STAMP) $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(call install,$(DEMO_EXTRAS))
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/genre demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
