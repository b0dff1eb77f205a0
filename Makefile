# `make run` serves on http://127.0.0.1:3000; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean config-example

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt --group dev
	touch $(STAMP)

run: $(STAMP) config.toml
	PATH="$(CURDIR)/$(BIN):$$PATH" sh -c "$$(sed -n 's/^web: //p' Procfile)"

# First run only: a private config with a random token-signing secret (see config.example.toml).
config.toml:
	umask 077 && $(BIN)/python -c 'import secrets; print("# Written by make run; every setting is in config.example.toml.\njwt_secret = \"%s\"" % secrets.token_urlsafe(48))' > config.toml

# Tests run in TEST_WORKERS processes (pytest-xdist); TEST_WORKERS=0 runs them in this one.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy weather_metrics app.py bench

bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.stats
	$(BIN)/python -m bench.pages
	$(BIN)/python -m bench.org
	$(BIN)/python -m bench.exports
	$(BIN)/python -m bench.live
	$(BIN)/python -m bench.hostile
	$(BIN)/python -m bench.postgresql

# After changing a setting in weather_metrics/settings.py (a test fails until this is run).
config-example: $(STAMP)
	$(BIN)/python -c 'from weather_metrics.settings import example_config; print(example_config(), end="")' > config.example.toml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
