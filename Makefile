# leanconv: the README's commands and the development loop.
#
#   make demo    set up .venv, build, run the main job on built-in defaults
#   make test    set up .venv, build, run the test suite
#   make dev     incremental build of leanconv/_C into python/leanconv (PYTHONPATH=python)
#
# Variables: PYTHON (interpreter that creates the venv), VENV (its folder),
# TORCH_SPEC (the torch to install, e.g. torch==2.13.0 for a CPU-only build),
# LEANCONV_CUDA (AUTO/ON/OFF), TORCH_CUDA_ARCH_LIST (e.g. 9.0).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.14.1
# optional extras installed with leanconv (timm needs a torchvision matching torch)
EXTRAS ?= test,timm
BIN := $(VENV)/bin
PY := $(BIN)/python
BUILD_DEPS := 'scikit-build-core>=0.10' 'pybind11>=2.12' ninja 'cmake>=3.28'
DEPS_STAMP := $(VENV)/.leanconv-deps

.PHONY: setup install test demo info bench dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(DEPS_STAMP): $(PY) pyproject.toml Makefile
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(BUILD_DEPS)
	echo "$(TORCH_SPEC)" > $@

setup: $(DEPS_STAMP)

# Editable install; scikit-build-core keeps the build folder (build/<tag>),
# so a rerun recompiles only what changed.
install: setup
	$(PY) -m pip install -q --no-build-isolation -Cbuild-dir=build/$(notdir $(VENV)) -e ".[$(EXTRAS)]"

test: install
	$(PY) -m pytest -q

demo: install
	$(BIN)/leanconv demo

info: install
	$(BIN)/leanconv info

bench: install
	$(BIN)/leanconv bench all

# Development build driven by CMake directly, copying _C next to the sources.
DEV_BUILD ?= build/dev
dev:
	$(BIN)/cmake -S . -B $(DEV_BUILD) -G Ninja -DPython_EXECUTABLE=$(abspath $(PY)) \
	  -DCMAKE_MAKE_PROGRAM=$(abspath $(BIN))/ninja \
	  -DLEANCONV_INPLACE_DIR=$(CURDIR)/python/leanconv
	$(BIN)/cmake --build $(DEV_BUILD)

clean:
	rm -rf build python/leanconv/_C*.so
