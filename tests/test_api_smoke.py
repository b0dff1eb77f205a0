"""The organization surface, end to end through the test client."""

from __future__ import annotations

from tests.support import login, seed_org


def test_admin_adds_a_user_who_logs_in_with_the_one_time_password(app, client):
    acme = seed_org(app)
    created = client.post(
        "/api/users",
        headers=acme["admin"].headers,
        json={"email": "New@Acme.test", "name": "New", "role": "developer"},
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body["email"] == "new@acme.test" and body["role"] == "developer"
    tokens = login(client, "new@acme.test", body["one_time_password"])
    assert tokens["user"]["id"] == body["id"]
    listed = client.get("/api/users", headers=acme["manager"].headers).get_json()
    assert listed["pagination"]["total"] == 4
