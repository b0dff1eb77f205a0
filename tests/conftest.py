from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests import databases
from tests.routing import SharedBuilderRule
from tests.support import TEST_JWT_SECRET, Member, chromium, seed_org, seeded_database
from weather_metrics import create_app

# Tests set what they need; a developer's ./config.toml (made by `make run`) must not leak in.
os.environ["WEATHER_METRICS_CONFIG"] = os.devnull
# Apps built here share their URL builders (tests/routing.py): half the cost of building one.
Flask.url_rule_class = SharedBuilderRule


@pytest.fixture(autouse=True)
def _drop_test_databases(request: pytest.FixtureRequest) -> Iterator[None]:
    """On PostgreSQL, the schemas of a test's databases (paths in its tmp_path) become spares when it ends."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if tmp_path is not None:
        databases.release_under(tmp_path)


def pytest_sessionfinish(session: pytest.Session) -> None:
    databases.finish()


@pytest.fixture
def make_app(tmp_path) -> Iterator[Callable[..., Flask]]:  # type: ignore[no-untyped-def]
    """Build apps on a temporary SQLite file; each is shut down (writer drained) afterwards."""
    apps: list[Flask] = []

    def build(**settings: Any) -> Flask:
        config = {
            "database": databases.location(tmp_path / "metrics.db"),
            **databases.files_beside(tmp_path / "metrics.db"),
            "rate_limit_per_minute": 100_000,
            "jwt_secret": TEST_JWT_SECRET,
            # The cheapest Argon2id the settings allow: tests hash many passwords.
            "password_time_cost": 2,
            "password_memory_kib": 19456,
            **settings,
        }
        app = create_app(config)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["weather_metrics"].close()


@pytest.fixture
def one_minute_window() -> None:
    """A limit of "N per minute" counts in a sliding window that weighs the last minute by how much of the
    current one is left: at 12:00:00.1, three hits at 11:59:59 count as 2.99, under a limit of 3. A test that
    fills such a limit and expects 429 starts at least 20 s before a minute turns."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.05)


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Member]]]:
    """The shared organization, written once per test run: Acme (admin, manager, developer) and Globex,
    the outsiders' organization, with each member logged in. Modules that need more seed their own file."""
    path = tmp_path_factory.mktemp("template") / "metrics.db"
    return path, seeded_database(path, lambda app: {"acme": seed_org(app, "Acme"), "globex": seed_org(app, "Globex")})


@pytest.fixture
def acme(seeded_db: tuple[Path, Any]) -> Any:
    """The shared organization's members; a copy, so a test that changes one changes it for itself only."""
    return copy.deepcopy(seeded_db[1]["acme"])


@pytest.fixture
def globex(seeded_db: tuple[Path, Any]) -> Any:
    """Members of another organization: the outsiders."""
    return copy.deepcopy(seeded_db[1]["globex"])


@pytest.fixture
def service(make_app: Callable[..., Flask], seeded_db: tuple[Path, Any], tmp_path: Path) -> Callable[..., Flask]:
    """`make_app` on this test's copy of the module's `seeded_db` file; call it once per test."""

    def build(**settings: Any) -> Flask:
        databases.copy(seeded_db[0], tmp_path / "metrics.db")
        return make_app(**settings)

    return build


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a test module (tests/support.py chromium())."""
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()
