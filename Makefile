# Two entry points on a fresh machine: `make demo` and `make test`; `make install` sets up without running anything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of PyTorch by default; see README for the CUDA build.
TORCH_SPEC ?= torch==2.13.0

# The device side on real old interpreters (tests/test_old_pythons.py): Python 3.6 as on JetPack 4.6 and 3.8 as on
# JetPack 5, from pyenv. `make test` builds the venvs of those it finds; CI (.ci/run) requires both.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)
PY36 ?= $(PYENV_ROOT)/versions/3.6.15/bin/python3.6
PY38 ?= $(PYENV_ROOT)/versions/3.8.18/bin/python3.8
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' __init__.py)
# The pure-Python wheel the Jetson installs (the same wheel serves every Python >= 3.6).
DEVICE_WHEEL := dist/neurohand-$(VERSION)-py3-none-any.whl
WHEEL_SOURCES := pyproject.toml $(wildcard *.py) \
	$(shell find decoder firmware_bridge deploy training calibration -type f -not -path '*/__pycache__/*' \
		-not -path 'firmware_bridge/firmware/*' -not -path 'deploy/arm64/*' 2>/dev/null)
# One wheel cache for every venv (pip's default location, made explicit); quiet about old pips.
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
DEVICE_VENVS := $(if $(wildcard $(PY36)),.venv-py36/.installed) $(if $(wildcard $(PY38)),.venv-py38/.installed)

.PHONY: install demo test lint bench clean device-wheel device-venvs device-test-arm64

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null

$(VENV)/.installed-train: $(BIN)/python pyproject.toml
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[train]"
	touch $@

# Every extra a user needs: training and reports, the keyboard sink, Lab Streaming Layer, NWB files.
$(VENV)/.installed-user: $(VENV)/.installed-train
	$(BIN)/pip install -e ".[train,keys,lsl,nwb]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-user
	$(BIN)/pip install -e ".[train,keys,lsl,nwb,test]"
	touch $@

install: $(VENV)/.installed-user
	@echo "installed: $(BIN)/neurohand ($$($(BIN)/neurohand --version)); activate with: . $(BIN)/activate"

demo: $(VENV)/.installed-train
	$(BIN)/neurohand demo

test: $(VENV)/.installed-test $(DEVICE_VENVS)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

device-wheel: $(DEVICE_WHEEL)

# Built from a clean build/ (setuptools would otherwise keep files deleted since the last build).
$(DEVICE_WHEEL): $(BIN)/python $(WHEEL_SOURCES)
	rm -rf build dist/neurohand-*.whl
	$(BIN)/pip wheel --no-deps -q -w dist .
	rm -rf build
	@test -f $@ || { echo "expected $@ (is __version__ in __init__.py right?)"; ls dist; exit 1; }

# Each venv is installed as the Jetson guide says: a newer pip first (Ubuntu 18.04's pip 9.0.1 and 20.04's 20.0.2
# cannot read the manylinux2014 / manylinux_2_27 tags of numpy's and onnxruntime's wheels; pip 21.3.1 is the last for
# Python 3.6), then the JetPack's pinned requirements and the wheel in one pip command. A new wheel of the same
# version replaces the installed code.
device-venvs: $(DEVICE_VENVS)
	@test -n "$(DEVICE_VENVS)" || { echo "no Python 3.6/3.8 found at $(PY36) / $(PY38)"; exit 1; }

.venv-py36/.installed: deploy/requirements/jetpack4.txt $(DEVICE_WHEEL)
	$(call device_venv,$(PY36),.venv-py36,jetpack4.txt,pip<22)

.venv-py38/.installed: deploy/requirements/jetpack5.txt $(DEVICE_WHEEL)
	$(call device_venv,$(PY38),.venv-py38,jetpack5.txt,pip)

define device_venv
	test -x $(2)/bin/python || $(1) -m venv $(2)
	$(2)/bin/python -m pip install -q --upgrade '$(4)'
	$(2)/bin/pip install -q -r deploy/requirements/$(3) $(DEVICE_WHEEL)
	$(2)/bin/pip install -q --force-reinstall --no-deps $(DEVICE_WHEEL)
	touch $(2)/.installed
endef

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-train
	$(BIN)/neurohand bench features

clean:
	rm -rf $(VENV) .venv-py36 .venv-py38 build dist *.egg-info demo_out

# The device side on ARM64 (a Jetson's instruction set), emulated by qemu-user: a Debian 12 arm64 sysroot, a venv of
# aarch64 wheels and the device wheel; the same decoding as here within 1e-5 (deploy/arm64/device_test.sh).
device-test-arm64: $(DEVICE_WHEEL) $(VENV)/.installed-train
	bash deploy/arm64/device_test.sh $(DEVICE_WHEEL) $(BIN)/python build/arm64
