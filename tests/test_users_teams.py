"""/api/users and /api/teams: listing, creating, editing, membership, and bad input."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest

from tests.support import assert_api_error, login, seed_org

MAX_BODY = 64 * 1024
NEW_PASSWORD = "correct horse battery"


@pytest.fixture
def app(service):
    """Each test on its own copy of the run's seeded database: Acme (`acme`) and Globex (`other`)."""
    return service()


@pytest.fixture
def other(globex):
    """The other organization's members."""
    return globex


def add_user(client, acme, email: str, role: str = "developer", **extra: Any) -> dict[str, Any]:
    response = client.post(
        "/api/users", headers=acme["admin"].headers, json={"email": email, "name": email, "role": role, **extra}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def add_team(client, member, name: str) -> dict[str, Any]:
    response = client.post("/api/teams", headers=member.headers, json={"name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def add_member(client, member, team_id: str, user_id: str, role: str = "member") -> Any:
    return client.post(f"/api/teams/{team_id}/members", headers=member.headers, json={"user_id": user_id, "role": role})


def emails(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [user["email"] for user in response.get_json()["users"]]


# --- listing users -------------------------------------------------------------------


def test_list_filters_by_role(client, acme):
    add_user(client, acme, "dev2@acme.test")
    admin = acme["admin"].headers
    assert sorted(emails(client.get("/api/users?role=developer", headers=admin))) == [
        "dev2@acme.test",
        "developer@acme.test",
    ]
    assert emails(client.get("/api/users?role=manager", headers=admin)) == ["manager@acme.test"]
    assert_api_error(client.get("/api/users?role=owner", headers=admin), 400)


def test_list_filters_by_team(client, acme):
    team = add_team(client, acme["manager"], "Platform")
    assert add_member(client, acme["manager"], team["id"], acme["developer"].user.id).status_code == 201
    # The manager who created it leads it already.
    admin = acme["admin"].headers
    listed = emails(client.get(f"/api/users?team_id={team['id']}", headers=admin))
    assert sorted(listed) == ["developer@acme.test", "manager@acme.test"]
    both = emails(client.get(f"/api/users?team_id={team['id']}&role=manager", headers=admin))
    assert both == ["manager@acme.test"]


def test_team_filter_with_another_organizations_team_is_404(client, acme, other):
    theirs = add_team(client, other["admin"], "Theirs")
    assert add_member(client, other["admin"], theirs["id"], other["developer"].user.id).status_code == 201
    response = client.get(f"/api/users?team_id={theirs['id']}", headers=acme["admin"].headers)
    assert_api_error(response, 404)
    assert "developer@globex.test" not in response.get_data(as_text=True)
    assert_api_error(client.get("/api/users?team_id=no-such-team", headers=acme["admin"].headers), 404)


def test_list_shows_only_the_callers_organization(client, acme, other):
    listed = emails(client.get("/api/users?limit=100", headers=acme["manager"].headers))
    assert sorted(listed) == ["admin@acme.test", "developer@acme.test", "manager@acme.test"]


def test_pagination_pages_through_every_user_once(client, acme):
    for n in range(5):
        add_user(client, acme, f"user{n}@acme.test")
    admin = acme["admin"].headers
    seen: list[str] = []
    for page in (1, 2, 3):
        body = client.get(f"/api/users?page={page}&limit=3", headers=admin).get_json()
        assert body["pagination"] == {"page": page, "limit": 3, "total": 8, "pages": 3}
        assert len(body["users"]) == (3 if page < 3 else 2)
        seen += [user["id"] for user in body["users"]]
    assert len(seen) == len(set(seen)) == 8
    beyond = client.get("/api/users?page=4&limit=3", headers=admin).get_json()
    assert beyond["users"] == [] and beyond["pagination"]["total"] == 8


def test_limit_100_is_allowed(client, acme):
    body = client.get("/api/users?limit=100", headers=acme["admin"].headers).get_json()
    assert body["pagination"]["limit"] == 100 and len(body["users"]) == 3


BAD_QUERIES = {
    "limit=101": "limit",
    "limit=0": "limit",
    "page=0": "page",
    "page=-1": "page",
    "page=abc": "page",
    "limit=1.5": "limit",
    "sort=email": "sort",
}


@pytest.mark.parametrize("path", ["/api/users", "/api/teams"])
def test_bad_list_queries_are_400_naming_the_parameter(client, acme, path):
    for query, field in BAD_QUERIES.items():
        error = assert_api_error(client.get(f"{path}?{query}", headers=acme["admin"].headers), 400)
        assert field in error["details"], (query, error)


@pytest.mark.parametrize("path", ["/api/users", "/api/teams"])
def test_an_enormous_page_number_is_not_a_server_error(client, acme, path):
    response = client.get(f"{path}?page={10**20}", headers=acme["admin"].headers)
    assert response.status_code in (200, 400), response.get_json()


def test_developers_list_only_themselves(client, acme):
    body = client.get("/api/users", headers=acme["developer"].headers).get_json()
    assert [user["id"] for user in body["users"]] == [acme["developer"].user.id]
    assert body["pagination"]["total"] == 1


@pytest.mark.parametrize("query", ["role=admin", "page=2"])
def test_a_developers_list_honours_filters_and_pages(client, acme, query):
    body = client.get(f"/api/users?{query}", headers=acme["developer"].headers).get_json()
    assert body["users"] == []


def test_a_developer_filtering_by_another_organizations_team_gets_404(client, acme, other):
    theirs = add_team(client, other["admin"], "Theirs")
    assert_api_error(client.get(f"/api/users?team_id={theirs['id']}", headers=acme["developer"].headers), 404)


# --- creating users ------------------------------------------------------------------


def test_create_without_a_password_returns_a_one_time_password_that_logs_in(client, acme):
    body = add_user(client, acme, "New.Person@Acme.test", role="manager")
    assert body["email"] == "new.person@acme.test"
    assert body["role"] == "manager" and body["active"] is True
    assert body["organization_id"] == acme["admin"].user.organization_id
    assert "password" not in body and "password_hash" not in body
    tokens = login(client, "new.person@acme.test", body["one_time_password"])
    assert tokens["user"]["id"] == body["id"]
    fetched = client.get(f"/api/users/{body['id']}", headers=acme["admin"].headers).get_json()
    assert "one_time_password" not in fetched


def test_create_with_a_password_returns_no_one_time_password(client, acme):
    body = add_user(client, acme, "chosen@acme.test", password=NEW_PASSWORD)
    assert "one_time_password" not in body
    assert login(client, "chosen@acme.test", NEW_PASSWORD)["user"]["id"] == body["id"]


@pytest.mark.parametrize("email", ["developer@acme.test", "DEVELOPER@Acme.Test"])
def test_a_duplicate_email_is_409(client, acme, email):
    response = client.post(
        "/api/users", headers=acme["admin"].headers, json={"email": email, "name": "Dup", "role": "developer"}
    )
    assert_api_error(response, 409)
    assert emails(client.get("/api/users?role=developer", headers=acme["admin"].headers)) == ["developer@acme.test"]


def test_changing_an_email_to_a_taken_one_is_409(client, acme):
    response = client.put(
        f"/api/users/{acme['developer'].user.id}",
        headers=acme["admin"].headers,
        json={"email": "Manager@ACME.test"},
    )
    assert_api_error(response, 409)
    login(client, "developer@acme.test", acme["developer"].password)


def test_a_password_shorter_than_12_characters_is_400(client, acme):
    response = client.post(
        "/api/users",
        headers=acme["admin"].headers,
        json={"email": "short@acme.test", "name": "S", "role": "developer", "password": "x" * 11},
    )
    assert "password" in assert_api_error(response, 400)["details"]
    assert emails(client.get("/api/users?role=developer", headers=acme["admin"].headers)) == ["developer@acme.test"]


def test_create_refuses_fields_it_does_not_take(client, acme, other):
    for field in ("id", "organization_id", "active", "teams"):
        body = {"email": "x@acme.test", "name": "X", "role": "developer", field: other["admin"].user.organization_id}
        error = assert_api_error(client.post("/api/users", headers=acme["admin"].headers, json=body), 400)
        assert field in error["details"], (field, error)
    assert "x@acme.test" not in emails(client.get("/api/users", headers=acme["admin"].headers))
    assert "x@acme.test" not in emails(client.get("/api/users", headers=other["admin"].headers))


@pytest.mark.parametrize("role", ["manager", "developer"])
def test_only_admins_create_users(client, acme, role):
    body = {"email": "x@acme.test", "name": "X", "role": "developer"}
    assert_api_error(client.post("/api/users", headers=acme[role].headers, json=body), 403)
    assert "x@acme.test" not in emails(client.get("/api/users", headers=acme["admin"].headers))


# --- reading and editing profiles ----------------------------------------------------


def test_admin_and_manager_read_any_profile_of_their_organization(client, acme):
    for reader in ("admin", "manager"):
        for person in ("admin", "manager", "developer"):
            response = client.get(f"/api/users/{acme[person].user.id}", headers=acme[reader].headers)
            assert response.status_code == 200
            assert response.get_json()["email"] == f"{person}@acme.test"


def test_a_developer_reads_their_own_profile_only(client, acme):
    me = acme["developer"]
    assert client.get(f"/api/users/{me.user.id}", headers=me.headers).get_json()["email"] == "developer@acme.test"
    for person in ("admin", "manager"):
        response = client.get(f"/api/users/{acme[person].user.id}", headers=me.headers)
        assert_api_error(response, 403)
        assert f"{person}@acme.test" not in response.get_data(as_text=True)


@pytest.mark.parametrize("caller", ["admin", "manager", "developer"])
def test_another_organizations_user_is_404_for_get_and_put(client, acme, other, caller):
    theirs = other["developer"].user.id
    headers = acme[caller].headers
    for response in (
        client.get(f"/api/users/{theirs}", headers=headers),
        client.put(f"/api/users/{theirs}", headers=headers, json={"name": "Hijacked"}),
    ):
        assert_api_error(response, 404)
        assert "developer@globex.test" not in response.get_data(as_text=True)
    assert client.get(f"/api/users/{theirs}", headers=other["admin"].headers).get_json()["name"] == "Developer"


def test_an_unknown_user_id_is_404(client, acme):
    assert_api_error(client.get("/api/users/no-such-user", headers=acme["admin"].headers), 404)
    assert_api_error(client.put("/api/users/no-such-user", headers=acme["admin"].headers, json={}), 404)


@pytest.mark.parametrize("caller", ["manager", "developer"])
def test_non_admins_edit_their_own_name_but_not_their_email(client, acme, other, caller):
    """A refused email change would tell whether an address has an account in another organization."""
    me = acme[caller]
    response = client.put(f"/api/users/{me.user.id}", headers=me.headers, json={"name": "Renamed"})
    assert response.status_code == 200, response.get_json()
    assert client.get(f"/api/users/{me.user.id}", headers=me.headers).get_json()["name"] == "Renamed"
    for email in (f"New.{caller}@acme.test", other["admin"].user.email):  # a free address, one taken elsewhere
        error = assert_api_error(client.put(f"/api/users/{me.user.id}", headers=me.headers, json={"email": email}), 403)
        assert error["details"] == {"email": "Only admins may change this"}
    admin = acme["admin"]
    changed = client.put(f"/api/users/{me.user.id}", headers=admin.headers, json={"email": f"New.{caller}@acme.test"})
    assert changed.status_code == 200, changed.get_json()
    login(client, f"new.{caller}@acme.test", me.password)


@pytest.mark.parametrize("caller", ["manager", "developer"])
def test_non_admins_may_not_edit_others(client, acme, caller):
    victim = acme["developer" if caller == "manager" else "manager"].user
    response = client.put(f"/api/users/{victim.id}", headers=acme[caller].headers, json={"name": "Renamed"})
    assert_api_error(response, 403)
    fetched = client.get(f"/api/users/{victim.id}", headers=acme["admin"].headers).get_json()
    assert fetched["name"] == victim.name


@pytest.mark.parametrize("caller", ["manager", "developer"])
def test_only_admins_set_role_or_active(client, acme, caller):
    me = acme[caller]
    for field, value in (("role", "admin"), ("active", False), ("role", caller)):
        response = client.put(f"/api/users/{me.user.id}", headers=me.headers, json={field: value, "name": "Renamed"})
        error = assert_api_error(response, 403)
        assert field in error["details"], (field, error)
    fetched = client.get(f"/api/users/{me.user.id}", headers=me.headers).get_json()
    assert (fetched["role"], fetched["active"], fetched["name"]) == (caller, True, caller.title())


@pytest.mark.parametrize("caller", ["admin", "developer"])
def test_update_refuses_fields_it_does_not_take(client, acme, other, caller):
    me = acme[caller]
    for field in ("id", "organization_id", "created_at", "teams"):
        value = other["admin"].user.organization_id if field != "created_at" else 0
        response = client.put(f"/api/users/{me.user.id}", headers=me.headers, json={field: value})
        assert field in assert_api_error(response, 400)["details"], field
    fetched = client.get(f"/api/users/{me.user.id}", headers=me.headers).get_json()
    assert fetched["id"] == me.user.id and fetched["organization_id"] == me.user.organization_id


def test_admin_changes_a_role_and_it_takes_effect_on_the_next_request(client, acme):
    manager = acme["manager"]
    response = client.put(f"/api/users/{manager.user.id}", headers=acme["admin"].headers, json={"role": "developer"})
    assert response.status_code == 200 and response.get_json()["role"] == "developer"
    # The same access token now carries a developer's rights.
    assert_api_error(client.post("/api/teams", headers=manager.headers, json={"name": "Late"}), 403)


# --- the last admin ----------------------------------------------------------------


@pytest.mark.parametrize("change", [{"role": "manager"}, {"role": "developer"}, {"active": False}])
def test_the_last_active_admin_cannot_be_demoted_or_deactivated(client, acme, change):
    admin = acme["admin"]
    response = client.put(f"/api/users/{admin.user.id}", headers=admin.headers, json=change)
    assert_api_error(response, 409)
    fetched = client.get(f"/api/users/{admin.user.id}", headers=admin.headers).get_json()
    assert fetched["role"] == "admin" and fetched["active"] is True


def test_an_inactive_second_admin_does_not_count(client, acme):
    second = add_user(client, acme, "second@acme.test", role="admin")
    admin = acme["admin"]
    put = client.put(f"/api/users/{second['id']}", headers=admin.headers, json={"active": False})
    assert put.status_code == 200 and put.get_json()["active"] is False
    assert_api_error(client.put(f"/api/users/{admin.user.id}", headers=admin.headers, json={"role": "manager"}), 409)


def test_with_a_second_admin_the_first_may_step_down(client, acme):
    add_user(client, acme, "second@acme.test", role="admin")
    admin = acme["admin"]
    response = client.put(f"/api/users/{admin.user.id}", headers=admin.headers, json={"role": "manager"})
    assert response.status_code == 200 and response.get_json()["role"] == "manager"
    assert_api_error(
        client.post("/api/users", headers=admin.headers, json={"email": "y@acme.test", "name": "Y", "role": "admin"}),
        403,
    )


# --- passwords and deactivation ------------------------------------------------------


@pytest.mark.parametrize("caller", ["admin", "developer"])
def test_changing_your_own_password_needs_the_current_one(client, acme, caller):
    me = acme[caller]
    path = f"/api/users/{me.user.id}"
    wrong = client.put(path, headers=me.headers, json={"password": NEW_PASSWORD, "current_password": "x" * 12})
    assert "current_password" in assert_api_error(wrong, 403)["details"]
    assert_api_error(client.put(path, headers=me.headers, json={"password": NEW_PASSWORD}), 403)
    login(client, me.user.email, me.password)  # still the old password

    right = client.put(path, headers=me.headers, json={"password": NEW_PASSWORD, "current_password": me.password})
    assert right.status_code == 200, right.get_json()
    assert login(client, me.user.email, NEW_PASSWORD)["user"]["id"] == me.user.id
    old = client.post("/api/auth/login", json={"email": me.user.email, "password": me.password})
    assert_api_error(old, 401)


def test_a_new_password_shorter_than_12_characters_is_400(client, acme):
    me = acme["developer"]
    response = client.put(
        f"/api/users/{me.user.id}", headers=me.headers, json={"password": "x" * 11, "current_password": me.password}
    )
    assert "password" in assert_api_error(response, 400)["details"]
    login(client, me.user.email, me.password)


def test_an_admin_resets_another_users_password_without_theirs(client, acme):
    dev = acme["developer"]
    response = client.put(f"/api/users/{dev.user.id}", headers=acme["admin"].headers, json={"password": NEW_PASSWORD})
    assert response.status_code == 200, response.get_json()
    assert login(client, dev.user.email, NEW_PASSWORD)["user"]["id"] == dev.user.id


def test_a_deactivated_user_is_shut_out_until_reactivated(client, acme):
    dev, admin = acme["developer"], acme["admin"].headers
    off = client.put(f"/api/users/{dev.user.id}", headers=admin, json={"active": False})
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert_api_error(client.get("/api/users", headers=dev.headers), 401)
    assert_api_error(client.post("/api/auth/login", json={"email": dev.user.email, "password": dev.password}), 401)
    assert_api_error(client.post("/api/auth/refresh", json={"refresh_token": dev.refresh_token}), 401)
    assert client.put(f"/api/users/{dev.user.id}", headers=admin, json={"active": True}).status_code == 200
    login(client, dev.user.email, dev.password)


# --- teams -------------------------------------------------------------------------


def teams_by_name(client, member, query: str = "") -> dict[str, dict[str, Any]]:
    response = client.get(f"/api/teams{query}", headers=member.headers)
    assert response.status_code == 200, response.get_json()
    return {team["name"]: team for team in response.get_json()["teams"]}


@pytest.mark.parametrize("creator", ["admin", "manager"])
def test_admins_and_managers_create_teams(client, acme, creator):
    response = client.post(
        "/api/teams", headers=acme[creator].headers, json={"name": "Platform", "description": "Runs things"}
    )
    assert response.status_code == 201
    team = response.get_json()
    leads = 1 if creator == "manager" else 0  # a manager leads the teams they create
    assert team["name"] == "Platform" and team["description"] == "Runs things" and team["member_count"] == leads
    assert team["organization_id"] == acme["admin"].user.organization_id
    assert teams_by_name(client, acme["developer"])["Platform"]["id"] == team["id"]


def test_a_duplicate_team_name_is_409_in_one_organization_only(client, acme, other):
    add_team(client, acme["admin"], "Platform")
    assert_api_error(client.post("/api/teams", headers=acme["manager"].headers, json={"name": "Platform"}), 409)
    assert list(teams_by_name(client, acme["admin"])) == ["Platform"]
    add_team(client, other["admin"], "Platform")  # another organization may use the name


def test_list_includes_members_only_when_asked(client, acme):
    team = add_team(client, acme["manager"], "Platform")
    assert add_member(client, acme["manager"], team["id"], acme["developer"].user.id).status_code == 201
    # The manager who created it leads it already.
    for query in ("", "?include_members=false"):
        plain = teams_by_name(client, acme["admin"], query)["Platform"]
        assert "members" not in plain and plain["member_count"] == 2
    full = teams_by_name(client, acme["admin"], "?include_members=true")["Platform"]
    assert {(m["user_id"], m["role"]) for m in full["members"]} == {
        (acme["developer"].user.id, "member"),
        (acme["manager"].user.id, "lead"),
    }
    assert_api_error(client.get("/api/teams?include_members=perhaps", headers=acme["admin"].headers), 400)


def test_teams_list_only_the_callers_organization(client, acme, other):
    add_team(client, acme["admin"], "Ours")
    add_team(client, other["admin"], "Theirs")
    assert list(teams_by_name(client, acme["developer"], "?include_members=true")) == ["Ours"]
    assert list(teams_by_name(client, other["developer"])) == ["Theirs"]


@pytest.mark.parametrize("role", ["lead", "member"])
def test_adding_a_member_returns_the_membership(client, acme, role):
    team = add_team(client, acme["manager"], "Platform")
    dev = acme["developer"].user
    response = add_member(client, acme["manager"], team["id"], dev.id, role)
    assert response.status_code == 201
    membership = response.get_json()
    assert (membership["team_id"], membership["user_id"], membership["role"]) == (team["id"], dev.id, role)
    assert membership["email"] == "developer@acme.test"
    profile = client.get(f"/api/users/{dev.id}", headers=acme["developer"].headers).get_json()
    assert [(t["name"], t["role"]) for t in profile["teams"]] == [("Platform", role)]
    listed = client.get(f"/api/users?team_id={team['id']}", headers=acme["manager"].headers).get_json()
    assert sorted(u["id"] for u in listed["users"]) == sorted([dev.id, acme["manager"].user.id])  # and its lead


def test_a_users_teams_carry_the_team_id(client, acme):
    team = add_team(client, acme["manager"], "Platform")
    dev = acme["developer"].user
    assert add_member(client, acme["manager"], team["id"], dev.id, "lead").status_code == 201
    profile = client.get(f"/api/users/{dev.id}", headers=acme["admin"].headers).get_json()
    assert profile["teams"] == [{"id": team["id"], "name": "Platform", "role": "lead"}]


def test_a_member_defaults_to_member_and_an_unknown_team_role_is_400(client, acme):
    team = add_team(client, acme["admin"], "Platform")
    path = f"/api/teams/{team['id']}/members"
    bad = client.post(path, headers=acme["admin"].headers, json={"user_id": acme["developer"].user.id, "role": "boss"})
    assert "role" in assert_api_error(bad, 400)["details"]
    response = client.post(path, headers=acme["admin"].headers, json={"user_id": acme["developer"].user.id})
    assert response.status_code == 201 and response.get_json()["role"] == "member"


def test_a_duplicate_membership_is_409(client, acme):
    team = add_team(client, acme["admin"], "Platform")
    dev = acme["developer"].user.id
    assert add_member(client, acme["admin"], team["id"], dev).status_code == 201
    assert_api_error(add_member(client, acme["admin"], team["id"], dev, "lead"), 409)
    members = teams_by_name(client, acme["admin"], "?include_members=true")["Platform"]["members"]
    assert [(m["user_id"], m["role"]) for m in members] == [(dev, "member")]


def test_adding_a_user_of_another_organization_is_404(client, acme, other):
    team = add_team(client, acme["admin"], "Platform")
    response = add_member(client, acme["admin"], team["id"], other["developer"].user.id)
    assert_api_error(response, 404)
    assert "developer@globex.test" not in response.get_data(as_text=True)
    assert_api_error(add_member(client, acme["admin"], team["id"], "no-such-user"), 404)
    assert teams_by_name(client, acme["admin"])["Platform"]["member_count"] == 0


def test_another_organizations_team_is_404_for_every_team_route(client, acme, other):
    theirs = add_team(client, other["admin"], "Theirs")
    assert add_member(client, other["admin"], theirs["id"], other["developer"].user.id).status_code == 201
    admin = acme["admin"]
    assert_api_error(add_member(client, admin, theirs["id"], acme["developer"].user.id), 404)
    path = f"/api/teams/{theirs['id']}/members/{other['developer'].user.id}"
    assert_api_error(client.delete(path, headers=admin.headers), 404)
    assert_api_error(client.delete(f"/api/teams/{theirs['id']}", headers=admin.headers), 404)
    assert teams_by_name(client, other["admin"])["Theirs"]["member_count"] == 1


def test_removing_a_member_is_204_then_404(client, acme):
    team = add_team(client, acme["manager"], "Platform")
    dev = acme["developer"].user.id
    assert add_member(client, acme["manager"], team["id"], dev).status_code == 201
    path = f"/api/teams/{team['id']}/members/{dev}"
    removed = client.delete(path, headers=acme["manager"].headers)
    assert removed.status_code == 204 and removed.get_data() == b""
    assert teams_by_name(client, acme["admin"])["Platform"]["member_count"] == 1  # its lead, the manager
    assert_api_error(client.delete(path, headers=acme["manager"].headers), 404)


def test_deleting_a_team_keeps_its_members_users(client, acme):
    team = add_team(client, acme["manager"], "Platform")
    dev = acme["developer"]
    assert add_member(client, acme["manager"], team["id"], dev.user.id, "lead").status_code == 201
    deleted = client.delete(f"/api/teams/{team['id']}", headers=acme["manager"].headers)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert teams_by_name(client, acme["admin"]) == {}
    profile = client.get(f"/api/users/{dev.user.id}", headers=dev.headers)
    assert profile.status_code == 200 and profile.get_json()["teams"] == []
    login(client, dev.user.email, dev.password)
    assert_api_error(client.delete(f"/api/teams/{team['id']}", headers=acme["manager"].headers), 404)
    add_team(client, acme["manager"], "Platform")  # the name is free again


def test_developers_cannot_change_teams(client, acme):
    team = add_team(client, acme["manager"], "Platform")
    dev = acme["developer"]
    assert_api_error(client.post("/api/teams", headers=dev.headers, json={"name": "Mine"}), 403)
    assert_api_error(add_member(client, dev, team["id"], dev.user.id, "lead"), 403)
    assert_api_error(client.delete(f"/api/teams/{team['id']}", headers=dev.headers), 403)
    assert list(teams_by_name(client, dev)) == ["Platform"]
    assert teams_by_name(client, dev)["Platform"]["member_count"] == 1  # its lead, the manager


# --- bad input on every POST and PUT -------------------------------------------------


def endpoints(acme) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Every /api POST/PUT that reads a body: method, path and the headers of a caller allowed to use it."""
    return {
        "create user": ("POST", "/api/users", acme["admin"].headers),
        "update user": ("PUT", f"/api/users/{acme['developer'].user.id}", acme["admin"].headers),
        "create team": ("POST", "/api/teams", acme["manager"].headers),
        "add member": ("POST", "/api/teams/{team}/members", acme["manager"].headers),
        "create key": ("POST", "/api/keys", acme["admin"].headers),
        "login": ("POST", "/api/auth/login", {}),
        "refresh": ("POST", "/api/auth/refresh", {}),
    }


WRONG_TYPES: dict[str, dict[str, Any]] = {
    "create user": {"email": "t@acme.test", "name": 7, "role": "developer"},
    "update user": {"active": "perhaps"},
    "create team": {"name": ["Platform"]},
    "add member": {"user_id": 42},
    "create key": {"name": {"n": 1}},
    "login": {"email": 5, "password": "x" * 12},
    "refresh": {"refresh_token": 5},
}
REQUIRED = {
    "create user": {"email", "name", "role"},
    "create team": {"name"},
    "add member": {"user_id"},
    "create key": {"name"},
    "login": {"email", "password"},
    "refresh": {"refresh_token"},
}


def send(client, acme, name: str, **kwargs: Any) -> Any:
    method, path, headers = endpoints(acme)[name]
    if "{team}" in path:
        path = path.format(team=add_team(client, acme["admin"], f"Bad input {uuid.uuid4().hex}")["id"])
    kwargs.setdefault("content_type", "application/json")
    return client.open(path, method=method, headers=headers, **kwargs)


ENDPOINT_NAMES = list(WRONG_TYPES)


NOT_AN_OBJECT = {
    "truncated": b'{"name": ',
    "single quotes": b"{'name': 'x'}",
    "not UTF-8": b"\xff\xfe{}",
    "empty": b"",
    "deeply nested": b"[" * 50_000,
    "array": b'[{"name": "x"}]',
    "string": b'"x"',
    "null": b"null",
    "number": b"42",
}


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_a_body_that_is_not_a_json_object_is_400(client, acme, name):
    for label, raw in NOT_AN_OBJECT.items():
        response = send(client, acme, name, data=raw)
        assert response.status_code == 400, label
        assert_api_error(response, 400)


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_wrong_types_are_400_naming_the_field(client, acme, name):
    error = assert_api_error(send(client, acme, name, json=WRONG_TYPES[name]), 400)
    assert set(error["details"]) & set(WRONG_TYPES[name]), error


@pytest.mark.parametrize("name", list(REQUIRED))
def test_missing_fields_are_400_naming_them(client, acme, name):
    error = assert_api_error(send(client, acme, name, json={}), 400)
    assert set(error["details"]) & REQUIRED[name], error


def oversized(size: int) -> bytes:
    head, tail = b'{"name": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_a_body_over_64_kib_is_413_with_or_without_content_length(client, acme, name):
    assert_api_error(send(client, acme, name, data=oversized(MAX_BODY + 1)), 413)
    # As under a server given a chunked request: no Content-Length, the stream ends by itself.
    response = send(
        client,
        acme,
        name,
        input_stream=io.BytesIO(oversized(MAX_BODY * 2)),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_api_error(response, 413)


def test_a_body_of_exactly_64_kib_is_read(client, acme):
    # Not 413: it is read, and refused for what it says (the name is too long).
    error = assert_api_error(send(client, acme, "create team", data=oversized(MAX_BODY)), 400)
    assert "name" in error["details"]


@pytest.mark.parametrize("name", ["create user", "update user", "create team", "create key", "login"])
def test_a_lone_surrogate_in_a_string_is_400(client, acme, name):
    body = {
        "create user": b'{"email": "s@acme.test", "name": "\\ud800", "role": "developer"}',
        "update user": b'{"name": "\\ud800"}',
        "create team": b'{"name": "\\ud800"}',
        "create key": b'{"name": "\\ud800"}',
        "login": b'{"email": "admin@acme.test", "password": "\\ud800xxxxxxxxxxxx"}',
    }[name]
    assert_api_error(send(client, acme, name, data=body), 400)


def test_a_password_change_signs_out_every_other_session(client, acme):
    me = acme["developer"]
    elsewhere = login(client, me.user.email, me.password)
    elsewhere_headers = {"Authorization": f"Bearer {elsewhere['access_token']}"}
    changed = client.put(
        f"/api/users/{me.user.id}", headers=me.headers, json={"password": NEW_PASSWORD, "current_password": me.password}
    )
    assert changed.status_code == 200
    assert client.get("/api/users", headers=me.headers).status_code == 200  # the session that changed it
    assert_api_error(client.get("/api/users", headers=elsewhere_headers), 401)
    assert_api_error(client.post("/api/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}), 401)


def test_an_admin_password_reset_signs_the_user_out_everywhere(client, acme):
    dev = acme["developer"]
    response = client.put(f"/api/users/{dev.user.id}", headers=acme["admin"].headers, json={"password": NEW_PASSWORD})
    assert response.status_code == 200
    assert_api_error(client.get("/api/users", headers=dev.headers), 401)
    assert client.get("/api/users", headers=acme["admin"].headers).status_code == 200


def test_developers_see_team_members_without_their_emails(client, acme):
    add_team(client, acme["manager"], "Platform")
    # The manager who created it leads it already.
    seen_by_developer = teams_by_name(client, acme["developer"], "?include_members=true")["Platform"]["members"]
    assert [(m["user_id"], m["name"], m["role"]) for m in seen_by_developer] == [
        (acme["manager"].user.id, "Manager", "lead")
    ]
    assert all("email" not in m for m in seen_by_developer)
    seen_by_admin = teams_by_name(client, acme["admin"], "?include_members=true")["Platform"]["members"]
    assert seen_by_admin[0]["email"] == acme["manager"].user.email


def test_a_users_profile_lists_their_teams_with_ids(client, acme):
    team = add_team(client, acme["manager"], "Platform")
    add_member(client, acme["manager"], team["id"], acme["developer"].user.id, "lead")
    profile = client.get(f"/api/users/{acme['developer'].user.id}", headers=acme["developer"].headers).get_json()
    assert profile["teams"] == [{"id": team["id"], "name": "Platform", "role": "lead"}]


def test_deactivation_ends_sessions_for_good(client, acme):
    dev, admin = acme["developer"], acme["admin"].headers
    assert client.put(f"/api/users/{dev.user.id}", headers=admin, json={"active": False}).status_code == 200
    assert client.put(f"/api/users/{dev.user.id}", headers=admin, json={"active": True}).status_code == 200
    assert_api_error(client.get("/api/users", headers=dev.headers), 401)  # the old token stays dead
    assert_api_error(client.post("/api/auth/refresh", json={"refresh_token": dev.refresh_token}), 401)
    login(client, dev.user.email, dev.password)


def test_current_password_guesses_share_the_accounts_login_limit(make_app):
    app = make_app(login_rate_limit_per_account="3 per hour")
    client = app.test_client()
    dev = seed_org(app)["developer"]  # its login used one of the three
    path = f"/api/users/{dev.user.id}"
    for _ in range(2):
        guess = client.put(path, headers=dev.headers, json={"password": NEW_PASSWORD, "current_password": "x" * 12})
        assert_api_error(guess, 403)
    limited = client.put(path, headers=dev.headers, json={"password": NEW_PASSWORD, "current_password": "x" * 12})
    assert_api_error(limited, 429)
    assert_api_error(client.post("/api/auth/login", json={"email": dev.user.email, "password": dev.password}), 429)
    # Changing your name is no guess: it is not limited.
    assert client.put(path, headers=dev.headers, json={"name": "Still Me"}).status_code == 200
