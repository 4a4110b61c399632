# Entry points over a local virtual environment (.venv), created and filled on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYNCED := nbs fastai_disclr pyproject.toml

.PHONY: demo test check-sync nbs-test pytest readme docs

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch!=2.13.0: the CPU-only torch 2.13.0 wheel on some machines cannot import the registry's (CUDA) torchvision
	$(BIN)/python -m pip install -q -e ".[dev]" "torch!=2.13.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fastai_disclr.demo

test: check-sync nbs-test pytest

# nbdev's CI checks: fail if nbdev-clean or nbdev-export would change a file (notebooks clean, library in sync),
# or if README.md is not what nbs/index.ipynb gives
check-sync: $(STAMP)
	@snap() { git status --porcelain --untracked-files=all -- $(SYNCED); git ls-files -z -- $(SYNCED) | xargs -0 sha1sum; }; \
	before="$$(snap)"; $(BIN)/nbdev-clean && $(BIN)/nbdev-export && after="$$(snap)"; \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-clean or nbdev-export changed these files: review and commit them"; git status --short -- $(SYNCED); exit 1; \
	fi; echo "notebooks clean, library in sync with nbs/"
	$(BIN)/python tools/nb2readme.py --check

nbs-test: $(STAMP)
	$(BIN)/nbdev-test --n-workers 2

pytest: $(STAMP)
	$(BIN)/python -m pytest tests

readme: $(STAMP)
	if command -v quarto >/dev/null; then $(BIN)/nbdev-readme; else $(BIN)/python tools/nb2readme.py; fi

# The docs site: nbdev-docs renders through Quarto. PyPI's quarto-cli is an sdist that downloads Quarto from GitHub
# while it builds, so it cannot be installed on an offline machine; install Quarto (quarto.org) where that is possible.
docs: $(STAMP)
	@command -v quarto >/dev/null || { echo "make docs needs Quarto on the PATH (https://quarto.org); pip's quarto-cli downloads it from GitHub at install time"; exit 1; }
	$(BIN)/nbdev-docs
