# Two commands matter: `make run` (the service on embedded defaults) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: run test check install dev-install bench messages clean

run: install
	$(BIN)/yunkan serve --demo

test: dev-install
	PATH="$(abspath $(BIN)):$$PATH" ./scripts/check

install: $(VENV)/.installed
dev-install: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

bench: dev-install
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/booking.py
	$(BIN)/python bench/letters.py

messages:
	$(BIN)/pybabel extract -F babel.cfg -k _ -o var/messages.pot .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
