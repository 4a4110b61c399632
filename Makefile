# Entry points over a local virtual environment (.venv), created and filled on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN    := $(VENV)/.installed-run
DEV    := $(VENV)/.installed-dev
SYNCED := nbs fastai_disclr pyproject.toml
# torch!=2.13.0: the CPU-only torch 2.13.0 wheel on some machines cannot import the registry's (CUDA) torchvision
TORCH  := "torch!=2.13.0"

.PHONY: demo test check-sync check-outputs check-style nbs-test pytest readme nbs docs browser-check

# what the demo needs: the library, with fastai and torch
$(RUN): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing fastai_disclr, fastai and torch into $(VENV): torch's standard build is about 6 GB (its CUDA libraries"
	@echo "come even without a GPU), a few minutes on the first run; pip shows its progress."
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e . $(TORCH)
	touch $@

# and what the tests, the notebooks and the docs site need
$(DEV): $(RUN)
	@echo "Installing the development tools into $(VENV): nbdev, Sphinx, pytest, hypothesis, timm, transformers, ..."
	$(BIN)/python -m pip install -q -e ".[dev]" $(TORCH)
	touch $@

demo: $(RUN)
	$(BIN)/python -m fastai_disclr_examples.demo

test: check-sync check-outputs check-style nbs-test pytest browser-check

# nbdev's CI checks: fail if nbdev-clean or nbdev-export would change a file (notebooks clean, library in sync),
# or if README.md is not what nbs/index.ipynb gives
check-sync: $(DEV)
	@snap() { git status --porcelain --untracked-files=all -- $(SYNCED); git ls-files -z -- $(SYNCED) | xargs -0 sha1sum; }; \
	before="$$(snap)"; $(BIN)/nbdev-clean && $(BIN)/nbdev-export && after="$$(snap)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-clean or nbdev-export changed these files: review and commit them"; git status --short -- $(SYNCED); exit 1; \
	fi; echo "notebooks clean, library in sync with nbs/"
	$(BIN)/python tools/nb2readme.py --check

# the notebooks are stored executed: their figures, tables and API sections are the docs (`make nbs` re-executes them),
# and their prose quotes only what their outputs say
check-outputs: $(DEV)
	$(BIN)/python tools/check_nbs.py

# lines that fit on a screen, as in fastai's callbacks: ruff's E501 at 120 characters ([tool.ruff] in pyproject.toml)
check-style: $(DEV)
	$(BIN)/ruff check fastai_disclr

# every notebook, `slow` cells included (full-size results), outputs stored and tidied as Jupyter shows them
nbs: $(DEV)
	$(BIN)/nbdev-test --n-workers 2 --save --flags slow
	$(BIN)/python tools/tidy_outputs.py
	$(BIN)/nbdev-clean
	$(BIN)/python tools/nb2readme.py

# the notebooks' tests; `slow` cells are skipped, their small versions run
nbs-test: $(DEV)
	$(BIN)/nbdev-test --n-workers 2

# two workers: the machine CI runs on has 2 cores
pytest: $(DEV)
	$(BIN)/python -m pytest -n 2 tests

# README.md from nbs/index.ipynb, its result tables from the notebooks' stored outputs (tools/nb2readme.py)
readme: $(DEV)
	$(BIN)/python tools/nb2readme.py

# The docs site, offline: nbdev's own notebook processing (nbdev.serve.proc_nbs, no Quarto), rendered by Sphinx + MyST-NB
# into _docs/. Quarto (nbdev-docs) cannot be installed offline: PyPI's quarto-cli downloads its binaries from GitHub.
docs: $(DEV)
	$(BIN)/python tools/build_docs.py

# Every page of the built site in headless Chromium: console errors, broken links, unloaded images, raw Markdown,
# text cut off by its box, empty indexes, missing API sections, properties shown as methods
browser-check: docs
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then $(BIN)/python tools/check_site.py; \
	else echo "SKIPPED the browser check of the docs site: no chromium on the PATH (apt-get install chromium)"; fi
