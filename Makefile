# Two entry points on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of PyTorch by default; see README for the CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null

$(VENV)/.installed-train: $(BIN)/python pyproject.toml
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[train]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-train
	$(BIN)/pip install -e ".[train,keys,lsl,test]"
	touch $@

demo: $(VENV)/.installed-train
	$(BIN)/neurohand demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-train
	$(BIN)/neurohand bench features

clean:
	rm -rf $(VENV) build *.egg-info demo_out
