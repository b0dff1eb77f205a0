# `make run` serves on http://127.0.0.1:3000; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres lint bench clean config-example

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

# The tests whose results depend on the database, on the PostgreSQL server at 127.0.0.1:5432
# (docs/storage.md, "Tests"): storage, queries, accounts, alerts, webhooks, live updates and
# exports, and every documented answer (test_openapi_conformance). Pages, documents, settings,
# memory and HTTP handling read the database through the same code. tests/test_postgresql*.py
# use the server on either run, so `make test` runs them. POSTGRES_TESTS=tests runs every test there.
POSTGRES_TESTS ?= $(addprefix tests/,$(addsuffix .py,\
    test_writer test_totals test_smoke test_stats test_rowkinds test_agent_rollups \
    test_org_ingest test_org_queries test_org_extremes test_analytics test_team_rollups test_timestamps test_mcp \
    test_read_keys test_api_keys test_users_teams test_auth test_dashboards test_alerts \
    test_webhooks test_relay test_ws test_reports test_answers test_nul test_tool_sums \
    test_server test_org_e2e test_schema test_backup test_openapi_conformance test_stats_rollups test_pruning_events \
    test_loop_answers))

test-postgres: $(STAMP)
	WEATHER_METRICS_TEST_BACKEND=postgresql $(BIN)/python -m pytest -n $(TEST_WORKERS) $(POSTGRES_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy weather_metrics app.py bench

bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.stats
	$(BIN)/python -m bench.pages
	$(BIN)/python -m bench.org
	$(BIN)/python -m bench.org_pages
	$(BIN)/python -m bench.exports
	$(BIN)/python -m bench.live
	$(BIN)/python -m bench.live_instances
	$(BIN)/python -m bench.hostile
	$(BIN)/python -m bench.postgresql
	$(BIN)/python -m bench.transfer
	$(BIN)/python -m bench.scaling

# After changing a setting in weather_metrics/settings.py (a test fails until this is run).
config-example: $(STAMP)
	$(BIN)/python -c 'from weather_metrics.runtime.config_example import example_config; print(example_config(), end="")' > config.example.toml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
