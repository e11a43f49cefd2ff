# The book's two commands on a fresh machine (see README.md):
#
#   make book    create .venv from requirements.txt if needed, then build the HTML book
#   make test    the same, then the whole test suite, then the notebooks again under other
#                numeric code paths (the stored outputs must reproduce on any CPU)
#
# Both need Python 3.10+ with venv; npm (for the offline MathJax/widget assets) and Chromium
# (for the browser tests) are used when present. Variables:
#   PYTHON=python3.11          the interpreter that creates .venv
#   TORCH_INDEX=URL            install torch from that index first, e.g. PyTorch's CPU wheels
#                              https://download.pytorch.org/whl/cpu (PyPI's Linux torch is the
#                              large CUDA build)
#   BOOK_OFFLINE_ASSETS=1      fail unless the pages use the local assets (CI sets it)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TORCH_INDEX ?=

# The second and third numeric configurations of the notebooks (see `make portable`):
# another OpenBLAS kernel set, ATen without vector extensions, MKL on its AVX2 code path with
# reproducible results, one thread. OpenBLAS picks Haswell kernels on AMD Zen as well as on
# AVX2 Intel, so Sandybridge (AVX, no FMA) is the run that differs there.
NUMERICS_HASWELL := OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=default \
	MKL_ENABLE_INSTRUCTIONS=AVX2 MKL_CBWR=AVX2 OMP_NUM_THREADS=1
NUMERICS_SANDYBRIDGE := OPENBLAS_CORETYPE=Sandybridge ATEN_CPU_CAPABILITY=default \
	MKL_ENABLE_INSTRUCTIONS=AVX2 MKL_CBWR=AVX2 OMP_NUM_THREADS=1

.PHONY: help venv assets book test suite portable clean

help:
	@sed -n '1,16p' Makefile

$(INSTALLED): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --disable-pip-version-check \
		"$$(grep -E '^torch==' requirements.txt)" --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(INSTALLED)

# Offline copies of MathJax, require.js and the widget manager (package-lock.json); the book
# falls back to CDNs without them unless BOOK_OFFLINE_ASSETS=1.
assets:
	@if command -v npm >/dev/null 2>&1; then \
		[ node_modules/.package-lock.json -nt package-lock.json ] || \
		npm ci --ignore-scripts --no-audit --no-fund; \
	else echo "npm not found: the pages will load MathJax and the widget manager from CDNs"; fi

# -W turns every Sphinx warning into a failure; the grep also fails on warnings that reach the
# log without setting the exit status ("[IPKernelApp] WARNING | ..." lines are not Sphinx's).
book: venv assets
	@mkdir -p _build/logs
	set -o pipefail; $(BIN)/jupyter-book build . -W --keep-going 2>&1 | tee _build/logs/build.log
	@if sed 's/\x1b\[[0-9;]*m//g' _build/logs/build.log \
		| grep -E '(^|: )(WARNING|ERROR|CRITICAL|SEVERE):'; then \
		echo "FAILED: the book build reported the warnings above"; exit 1; fi

# Everything CI runs: the book first (the browser tests read it), then pytest, then the
# notebooks again under two other numeric configurations.
test: book suite portable

suite: venv
	$(BIN)/pytest

portable: venv
	env $(NUMERICS_HASWELL) $(BIN)/pytest book -q
	env $(NUMERICS_SANDYBRIDGE) $(BIN)/pytest book -q

clean:
	rm -rf _build
