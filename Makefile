# geotijian: `make demo` runs the sample check-up, `make test` runs the test suite.
# Both create .venv with the system's python3 (>= 3.11) when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test bench sysdeps clean-outputs help

help:
	@echo "make demo   - set up .venv and run the whole check-up on the bundled sample (outputs/sample/)"
	@echo "make test   - set up .venv with the [test] extra and run the test suite"
	@echo "make bench  - run every benchmark under benchmarks/ (needs the [bench] extra)"

# pip runs with every compiler hidden (CC=false, CXX=false, a PATH without cc, gcc, g++,
# clang, gfortran or rustc; see scripts/no_compiler_path.sh): geotijian and all its
# dependencies install from wheels or pure Python, as on a laptop without a compiler,
# and the test suite runs in that install (issue 19).
NOCC := $(VENV)/no-compiler-bin
PIP   = CC=false CXX=false PATH="$(CURDIR)/$(NOCC)" $(BIN)/python -m pip

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "geotijian needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

$(NOCC): | $(BIN)/python
	bash scripts/no_compiler_path.sh $@
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(NOCC)
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(NOCC)
	$(PIP) install --quiet -e ".[test]"
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(NOCC)
	$(PIP) install --quiet -e ".[test,bench]"
	@touch $@ $(VENV)/.installed $(VENV)/.installed-test

# System packages (a CJK font for figures, Chromium for the browser test): best effort,
# only as root on Debian; tests that need them skip with the reason when they are absent.
sysdeps:
	@bash scripts/sysdeps.sh

# (bytecode compiled first, as pip does for an installed package: where PYTHONDONTWRITEBYTECODE
# is set, an editable install would compile every module again on each run, ~0.5 s)
demo: $(VENV)/.installed
	@$(BIN)/python -m compileall -q geotijian
	$(BIN)/geotijian run layers/sample/study.toml

# (the suite runs with the compilers hidden too: nothing at run time needs one; the
# command links are made again first, so the tools sysdeps just installed are on it)
test: $(VENV)/.installed-test sysdeps
	@bash scripts/no_compiler_path.sh $(NOCC)
	@CC=false CXX=false PATH="$(CURDIR)/$(BIN):$(CURDIR)/$(NOCC)" $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing loudly"; exit 1; fi; exit $$rc

bench: $(VENV)/.installed-bench
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-outputs:
	rm -rf outputs/*/
