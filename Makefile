# Entry points over a local virtual environment (.venv), created and filled on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYNCED := nbs fastai_disclr pyproject.toml

.PHONY: demo test check-sync check-outputs nbs-test pytest readme nbs docs browser-check

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch!=2.13.0: the CPU-only torch 2.13.0 wheel on some machines cannot import the registry's (CUDA) torchvision
	$(BIN)/python -m pip install -q -e ".[dev]" "torch!=2.13.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fastai_disclr.demo

test: check-sync check-outputs nbs-test pytest browser-check

# nbdev's CI checks: fail if nbdev-clean or nbdev-export would change a file (notebooks clean, library in sync),
# or if README.md is not what nbs/index.ipynb gives
check-sync: $(STAMP)
	@snap() { git status --porcelain --untracked-files=all -- $(SYNCED); git ls-files -z -- $(SYNCED) | xargs -0 sha1sum; }; \
	before="$$(snap)"; $(BIN)/nbdev-clean && $(BIN)/nbdev-export && after="$$(snap)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-clean or nbdev-export changed these files: review and commit them"; git status --short -- $(SYNCED); exit 1; \
	fi; echo "notebooks clean, library in sync with nbs/"
	$(BIN)/python tools/nb2readme.py --check

# the notebooks are stored executed: their figures, tables and API sections are the docs (`make nbs` re-executes them)
check-outputs: $(STAMP)
	$(BIN)/python tools/check_nbs.py

nbs: $(STAMP)
	$(BIN)/nbdev-test --n-workers 2 --save
	$(BIN)/nbdev-clean
	$(BIN)/python tools/nb2readme.py

nbs-test: $(STAMP)
	$(BIN)/nbdev-test --n-workers 2

pytest: $(STAMP)
	$(BIN)/python -m pytest tests

# README.md from nbs/index.ipynb, its result tables from the notebooks' stored outputs (tools/nb2readme.py)
readme: $(STAMP)
	$(BIN)/python tools/nb2readme.py

# The docs site, offline: nbdev's own notebook processing (nbdev.serve.proc_nbs, no Quarto), rendered by Sphinx + MyST-NB
# into _docs/. Quarto (nbdev-docs) cannot be installed offline: PyPI's quarto-cli downloads its binaries from GitHub.
docs: $(STAMP)
	$(BIN)/python tools/build_docs.py

# Every page of the built site in headless Chromium: console errors, broken links, unloaded images, missing API sections
browser-check: docs
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then $(BIN)/python tools/check_site.py; \
	else echo "SKIPPED the browser check of the docs site: no chromium on the PATH (apt-get install chromium)"; fi
