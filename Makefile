# Two entry points: `make demo` and `make test`. Each creates .venv if absent.
# CPU torch is installed first so that `pip install -e .` never pulls a CUDA build.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test venv clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# The demo needs only the package; the tests also need the dev extra (TRL, peft, scikit-learn, ...).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e .
	touch $(STAMP)

$(DEVSTAMP): $(STAMP)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(DEVSTAMP)

venv: $(DEVSTAMP)

demo: $(STAMP)
	$(BIN)/curate demo

test: $(DEVSTAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) curate-ws
