# The targets here are the commands the README gives.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint typecheck unit demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@bash deploy/setup.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check storenode contracts tests
	$(BIN)/ruff format --check storenode contracts tests

typecheck: setup
	$(BIN)/mypy storenode contracts tests

unit: setup
	$(BIN)/python -m pytest -q tests

test: lint typecheck unit

demo: setup
	$(BIN)/storenode demo

bench: setup
	$(BIN)/storenode bench coding

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
