"""/api/keys: admins create, list and revoke the organization's API keys; secrets are shown once."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

import pytest

from tests.support import assert_api_error, seed_org
from weather_metrics.accounts import organizations as accounts
from weather_metrics.store.db import execute


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db)."""
    return service()


def create_key(client, member, name: str = "CI") -> dict[str, Any]:
    response = client.post("/api/keys", headers=member.headers, json={"name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def list_keys(client, member) -> dict[str, dict[str, Any]]:
    response = client.get("/api/keys", headers=member.headers)
    assert response.status_code == 200, response.get_json()
    return {key["id"]: key for key in response.get_json()["keys"]}


def stored_rows(app) -> list[dict[str, Any]]:
    """Every column of every api_keys row, as the database holds it."""
    with app.app_context():
        cursor = execute("SELECT * FROM api_keys")
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def test_the_secret_is_shown_once_with_its_prefix(client, acme):
    created = create_key(client, acme["admin"], "Deploy bot")
    secret = created["secret"]
    assert isinstance(secret, str) and len(secret) >= 32
    assert created["prefix"] == secret[:11]
    assert created["name"] == "Deploy bot" and created["revoked"] is False
    assert created["created_by"] == acme["admin"].user.id
    second = create_key(client, acme["admin"], "Deploy bot")
    assert second["secret"] != secret and second["id"] != created["id"]


def test_a_key_is_for_ingestion_unless_made_for_reading_and_lists_show_its_scope(client, acme):
    fleet = create_key(client, acme["admin"], "fleet")
    grafana = client.post("/api/keys", headers=acme["admin"].headers, json={"name": "grafana", "scope": "read"})
    assert grafana.status_code == 201, grafana.get_json()
    assert (fleet["scope"], grafana.get_json()["scope"]) == ("ingest", "read")
    listed = list_keys(client, acme["admin"])
    assert {key["name"]: key["scope"] for key in listed.values()} == {"fleet": "ingest", "grafana": "read"}
    created_at = datetime.fromisoformat(fleet["created_at"])
    assert created_at.tzinfo is not None and abs(created_at.timestamp() - time.time()) < 60
    assert fleet["last_used_at"] is None


def test_the_database_holds_only_the_sha256_of_the_secret(client, acme, tmp_path):
    created = create_key(client, acme["admin"])
    secret = created["secret"]
    rows = stored_rows(client.application)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == created["id"]
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert row["prefix"] == secret[:11]
    for column, value in row.items():
        assert not (isinstance(value, str) and secret in value), column
    for path in tmp_path.glob("metrics.db*"):
        assert secret.encode() not in path.read_bytes(), path.name


def test_the_list_shows_prefixes_and_never_a_secret(client, acme):
    first, second = create_key(client, acme["admin"], "one"), create_key(client, acme["admin"], "two")
    response = client.get("/api/keys", headers=acme["admin"].headers)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    listed = {key["id"]: key for key in response.get_json()["keys"]}
    assert set(listed) == {first["id"], second["id"]}
    for created in (first, second):
        key = listed[created["id"]]
        assert key["prefix"] == created["prefix"] and key["name"] == created["name"]
        assert not {"secret", "secret_hash"} & set(key), key
        assert created["secret"] not in text
        assert hashlib.sha256(created["secret"].encode()).hexdigest() not in text


def test_revoking_is_204_then_the_key_shows_revoked_and_a_second_revoke_is_404(client, acme):
    created = create_key(client, acme["admin"])
    kept = create_key(client, acme["admin"], "kept")
    revoked = client.delete(f"/api/keys/{created['id']}", headers=acme["admin"].headers)
    assert revoked.status_code == 204 and revoked.get_data() == b""
    listed = list_keys(client, acme["admin"])
    assert listed[created["id"]]["revoked"] is True
    assert listed[kept["id"]]["revoked"] is False
    assert_api_error(client.delete(f"/api/keys/{created['id']}", headers=acme["admin"].headers), 404)


def test_an_unknown_key_id_is_404(client, acme):
    assert_api_error(client.delete("/api/keys/no-such-key", headers=acme["admin"].headers), 404)


def test_another_organizations_key_is_404_and_stays_live(app, client, acme):
    other = seed_org(app, "Other")
    theirs = create_key(client, other["admin"], "theirs")
    ours = create_key(client, acme["admin"], "ours")
    response = client.delete(f"/api/keys/{theirs['id']}", headers=acme["admin"].headers)
    assert_api_error(response, 404)
    assert theirs["prefix"] not in response.get_data(as_text=True)
    assert list_keys(client, other["admin"])[theirs["id"]]["revoked"] is False
    assert set(list_keys(client, acme["admin"])) == {ours["id"]}
    assert set(list_keys(client, other["admin"])) == {theirs["id"]}
    with app.app_context():
        live = accounts.authenticate_api_key(theirs["secret"])
        assert live is not None and live.id == theirs["id"]


@pytest.mark.parametrize("role", ["manager", "developer"])
def test_managers_and_developers_are_refused_on_every_key_route(client, acme, role):
    existing = create_key(client, acme["admin"])
    headers = acme[role].headers
    assert_api_error(client.get("/api/keys", headers=headers), 403)
    assert_api_error(client.post("/api/keys", headers=headers, json={"name": "mine"}), 403)
    assert_api_error(client.delete(f"/api/keys/{existing['id']}", headers=headers), 403)
    listed = list_keys(client, acme["admin"])
    assert set(listed) == {existing["id"]} and listed[existing["id"]]["revoked"] is False


def test_authenticate_api_key_finds_the_key_until_it_is_revoked(app, client, acme):
    created = create_key(client, acme["admin"])
    with app.app_context():
        key = accounts.authenticate_api_key(created["secret"])
        assert key is not None and key.id == created["id"]
        assert key.organization_id == acme["admin"].user.organization_id
        assert accounts.authenticate_api_key(created["secret"] + "x") is None
        assert accounts.authenticate_api_key(created["prefix"]) is None
    assert client.delete(f"/api/keys/{created['id']}", headers=acme["admin"].headers).status_code == 204
    with app.app_context():
        assert accounts.authenticate_api_key(created["secret"]) is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "k", "organization_id": "x"},
        {"name": "k", "secret": "x"},
        {"name": "k", "scope": "write"},
        {"name": "k", "scope": ""},
        {"name": "k", "scope": ["read"]},
        {"name": "k", "scope": None},
    ],
)
def test_a_bad_create_body_is_400_and_creates_nothing(client, acme, body):
    assert_api_error(client.post("/api/keys", headers=acme["admin"].headers, json=body), 400)
    assert list_keys(client, acme["admin"]) == {}
