# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/phone-emu migrate --phones 50 --method bulk

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/ruff check tvs phone_emu tests benchmarks
	$(BIN)/mypy tvs phone_emu

bench: $(STAMP)
	$(BIN)/python benchmarks/tvs_load.py
	$(BIN)/python benchmarks/tftp_load.py
	$(BIN)/python benchmarks/capf_load.py
	$(BIN)/python benchmarks/http_load.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
