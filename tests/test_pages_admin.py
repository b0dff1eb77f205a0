"""/admin/users, /admin/teams, /admin/keys and /admin/organization: each role may do there what the API lets it
do, every change shows through the API, forms need this browser's token, another organization's ids are 404.
In Chromium: test_pages_admin_browser.py."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

from tests.test_signin import TOKEN, bearer, sign_in

ADMIN_PAGES = ["/admin/users", "/admin/teams", "/admin/organization"]
PROBLEM = re.compile(r'<p class="field__problem" id="([^"]+)-problem">([^<]+)</p>')
SECRET = re.compile(r'<textarea id="secret" class="secret__value"[^>]*>([^<]+)</textarea>')


@pytest.fixture
def site(service, acme, globex) -> dict[str, Any]:
    """Acme (admin, manager, developer) with a team Core the manager leads, the developer in it, and Ops; Globex."""
    from weather_metrics.accounts import organizations as accounts

    app = service()
    with app.app_context():
        org_id = acme["admin"].user.organization_id
        core = accounts.create_team(org_id, "Core", "", lead=acme["manager"].user)
        accounts.add_member(core, acme["developer"].user, "member")
        ops = accounts.create_team(org_id, "Ops", "")
        key, _ = accounts.create_api_key(org_id, "fleet", acme["admin"].user.id)
    return {"app": app, "acme": acme, "globex": globex, "core": core.id, "ops": ops.id, "key": key.id}


def browser(site: dict[str, Any], who: str, org: str = "acme") -> Any:
    client = site["app"].test_client()
    assert sign_in(client, site[org][who]).status_code == 303
    return client


def submit(client: Any, action: str, page: str = "/admin/users", **fields: str) -> Any:
    """Post a form with the token of a page this browser may see (the account page for everyone)."""
    shown = client.get(page)
    found = TOKEN.search((shown if shown.status_code == 200 else client.get("/account")).text)
    assert found
    return client.post(action, data={"csrf_token": found.group(1), **fields})


def api(site: dict[str, Any], path: str, who: str = "admin") -> Any:
    client = site["app"].test_client()
    answer = client.get(path, headers=bearer(client, site["acme"][who]))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def api_user(site: dict[str, Any], email: str) -> dict[str, Any]:
    return next(u for u in api(site, "/api/users?limit=100")["users"] if u["email"] == email)


def api_team(site: dict[str, Any], name: str) -> dict[str, Any] | None:
    teams = api(site, "/api/teams?include_members=true&limit=100")["teams"]
    return next((t for t in teams if t["name"] == name), None)


def problems(page: Any) -> dict[str, str]:
    return {field: unescape(text) for field, text in PROBLEM.findall(page.text)}


# --- who may use which page ----------------------------------------------------------------------


@pytest.mark.parametrize(("who", "linked"), [("admin", True), ("manager", True), ("developer", False)])
def test_the_header_links_to_administration_for_admins_and_managers(site, who, linked):
    page = browser(site, who).get("/account")
    assert ('href="/admin/users"' in page.text and ">Administration</a>" in page.text) == linked


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("admin", ADMIN_PAGES + ["/admin/keys"]), ("manager", ADMIN_PAGES), ("developer", [])],
)
def test_each_role_reaches_its_pages_and_gets_403_for_the_others(site, who, allowed):
    client = browser(site, who)
    for path in ADMIN_PAGES + ["/admin/keys"]:
        page = client.get(path)
        assert page.status_code == (200 if path in allowed else 403), (path, page.status_code)
        assert "text/html" in page.content_type
        assert page.headers["Cache-Control"] == "no-store"


def test_nobody_signed_in_is_sent_to_sign_in(site):
    client = site["app"].test_client()
    for path in ADMIN_PAGES + ["/admin/keys"]:
        page = client.get(path)
        assert page.status_code == 303 and page.headers["Location"] == f"/sign-in?next={path}"


# --- users ---------------------------------------------------------------------------------------


def test_the_user_list_shows_what_the_api_lists(site):
    for who in ("admin", "manager"):
        page = browser(site, who).get("/admin/users")
        for user in api(site, "/api/users?limit=100", who)["users"]:
            assert user["email"] in page.text and user["name"] in page.text
        assert "Core (lead)" in page.text  # the manager's team, as /api/users shows it
    assert "Globex" not in page.text and "admin@globex.test" not in page.text
    assert "Add a user" not in page.text and 'name="role"' not in page.text  # managers only read


def test_an_admin_adds_a_user_who_gets_a_one_time_password_shown_once(site):
    client = browser(site, "admin")
    page = submit(client, "/admin/users", email="New@Acme.test", name="Newcomer", role="developer")
    assert page.status_code == 201, page.text[:1000]
    assert page.headers["Cache-Control"] == "no-store"
    one_time = SECRET.search(page.text).group(1)  # type: ignore[union-attr]
    assert api_user(site, "new@acme.test")["role"] == "developer"
    login = site["app"].test_client().post("/api/auth/login", json={"email": "new@acme.test", "password": one_time})
    assert login.status_code == 200
    assert one_time not in client.get("/admin/users").text


def test_an_admin_may_choose_the_password_instead(site):
    page = submit(browser(site, "admin"), "/admin/users", email="chosen@acme.test", name="C", role="manager",
                  password="a long enough password")  # fmt: skip
    assert page.status_code == 201 and "secret__value" not in page.text
    login = (
        site["app"]
        .test_client()
        .post("/api/auth/login", json={"email": "chosen@acme.test", "password": "a long enough password"})
    )
    assert login.status_code == 200


def test_a_refused_new_user_says_why_beside_each_field(site):
    client = browser(site, "admin")
    page = submit(client, "/admin/users", email="not an email", name="", role="owner", password="short")
    assert page.status_code == 400
    assert set(problems(page)) == {"email", "name", "role", "password"}
    assert 'value="not an email"' in page.text and 'value="short"' not in page.text
    taken = submit(client, "/admin/users", email="developer@acme.test", name="Again", role="developer")
    assert taken.status_code == 409 and "already exists" in problems(taken)["email"]
    assert len(api(site, "/api/users?limit=100")["users"]) == 3


def test_an_admin_changes_a_role_and_access_and_the_api_agrees(site):
    client = browser(site, "admin")
    developer = site["acme"]["developer"].user
    changed = submit(client, f"/admin/users/{developer.id}/role", role="manager")
    assert changed.status_code == 303 and changed.headers["Location"] == "/admin/users"
    assert api_user(site, developer.email)["role"] == "manager"
    assert submit(client, f"/admin/users/{developer.id}/active", active="false").status_code == 303
    assert api_user(site, developer.email)["active"] is False
    refused = (
        site["app"]
        .test_client()
        .post("/api/auth/login", json={"email": developer.email, "password": site["acme"]["developer"].password})
    )
    assert refused.status_code == 401
    assert submit(client, f"/admin/users/{developer.id}/active", active="true").status_code == 303
    assert api_user(site, developer.email)["active"] is True


def test_deactivating_ends_the_user_s_sessions_and_reactivating_brings_none_back(site):
    from tests.test_signin import signed_in_as

    admin, developer = browser(site, "admin"), browser(site, "developer")
    user = site["acme"]["developer"].user
    assert signed_in_as(developer) == user.email
    assert submit(admin, f"/admin/users/{user.id}/active", active="false").status_code == 303
    assert submit(admin, f"/admin/users/{user.id}/active", active="true").status_code == 303
    assert signed_in_as(developer) is None


def test_the_last_admin_stays_an_admin(site):
    client = browser(site, "admin")
    admin = site["acme"]["admin"].user
    for field, value in (("role", "developer"), ("active", "false")):
        page = submit(client, f"/admin/users/{admin.id}/{field}", **{field: value})
        assert page.status_code == 409 and "at least one active admin" in page.text
    assert api_user(site, admin.email)["role"] == "admin" and api_user(site, admin.email)["active"]


def test_a_bad_role_is_shown_beside_that_user_s_field(site):
    developer = site["acme"]["developer"].user
    page = submit(browser(site, "admin"), f"/admin/users/{developer.id}/role", role="owner")
    assert page.status_code == 400 and list(problems(page)) == [f"role-{developer.id}"]
    assert api_user(site, developer.email)["role"] == "developer"


def test_managers_and_developers_change_no_user(site):
    developer = site["acme"]["developer"].user
    for who in ("manager", "developer"):
        client = browser(site, who)
        assert submit(client, "/admin/users", email="x@acme.test", name="X", role="admin").status_code == 403
        assert submit(client, f"/admin/users/{developer.id}/role", role="admin").status_code == 403
        assert submit(client, f"/admin/users/{developer.id}/active", active="false").status_code == 403
    assert api_user(site, developer.email)["role"] == "developer"
    assert len(api(site, "/api/users?limit=100")["users"]) == 3


# --- teams ---------------------------------------------------------------------------------------


def test_an_admin_creates_fills_empties_and_deletes_a_team(site):
    client = browser(site, "admin")
    assert submit(client, "/admin/teams", "/admin/teams", name="Data", description="Pipelines").status_code == 303
    team = api_team(site, "Data")
    assert team is not None and team["description"] == "Pipelines" and team["members"] == []
    manager = site["acme"]["manager"].user
    added = submit(client, f"/admin/teams/{team['id']}/members", "/admin/teams", user_id=manager.id, role="lead")
    assert added.status_code == 303
    assert [(m["user_id"], m["role"]) for m in api_team(site, "Data")["members"]] == [(manager.id, "lead")]  # type: ignore[index]
    again = submit(client, f"/admin/teams/{team['id']}/members", "/admin/teams", user_id=manager.id)
    assert again.status_code == 409 and "already a member" in problems(again)[f"user_id-{team['id']}"]
    removed = submit(client, f"/admin/teams/{team['id']}/members/{manager.id}/remove", "/admin/teams")
    assert removed.status_code == 303 and api_team(site, "Data")["members"] == []  # type: ignore[index]
    assert submit(client, f"/admin/teams/{team['id']}/delete", "/admin/teams").status_code == 303
    assert api_team(site, "Data") is None


def test_a_refused_team_says_why_beside_the_field(site):
    client = browser(site, "admin")
    empty = submit(client, "/admin/teams", "/admin/teams", name="", description="x" * 2001)
    assert empty.status_code == 400 and set(problems(empty)) == {"name", "description"}
    nul = submit(client, "/admin/teams", "/admin/teams", name="Co\x00re", description="\x00")
    assert nul.status_code == 400 and set(problems(nul)) == {"name", "description"}
    taken = submit(client, "/admin/teams", "/admin/teams", name="Core")
    assert taken.status_code == 409 and "already exists" in problems(taken)["name"]
    bad_role = submit(client, f"/admin/teams/{site['ops']}/members", "/admin/teams",
                      user_id=site["acme"]["developer"].user.id, role="boss")  # fmt: skip
    assert bad_role.status_code == 400 and list(problems(bad_role)) == [f"role-{site['ops']}"]
    assert [t["name"] for t in api(site, "/api/teams")["teams"]] == ["Core", "Ops"]


def test_a_manager_changes_only_the_teams_they_lead_and_only_developers(site):
    client = browser(site, "manager")
    page = client.get("/admin/teams").text
    assert f"/admin/teams/{site['core']}/delete" in page and f"/admin/teams/{site['ops']}/delete" not in page
    assert f"/admin/teams/{site['ops']}/members" not in page
    developer, admin = site["acme"]["developer"].user, site["acme"]["admin"].user
    assert f"/admin/teams/{site['core']}/members/{developer.id}/remove" in page
    assert f'<option value="{admin.id}">' not in page  # a manager adds developers only
    assert submit(client, f"/admin/teams/{site['ops']}/delete", "/admin/teams").status_code == 403
    refused = submit(client, f"/admin/teams/{site['ops']}/members", "/admin/teams", user_id=developer.id)
    assert refused.status_code == 403
    assert submit(client, f"/admin/teams/{site['core']}/members", "/admin/teams", user_id=admin.id).status_code == 403
    removed = submit(client, f"/admin/teams/{site['core']}/members/{developer.id}/remove", "/admin/teams")
    assert removed.status_code == 303
    assert [m["role"] for m in api_team(site, "Core")["members"]] == ["lead"]  # type: ignore[index]
    assert [m["user_id"] for m in api_team(site, "Ops")["members"]] == []  # type: ignore[index]
    assert submit(client, "/admin/teams", "/admin/teams", name="Mobile").status_code == 303
    led = api_team(site, "Mobile")["members"]  # type: ignore[index]
    assert [(m["user_id"], m["role"]) for m in led] == [(site["acme"]["manager"].user.id, "lead")]


def test_developers_change_no_team(site):
    client = browser(site, "developer")
    assert submit(client, "/admin/teams", "/admin/teams", name="Mine").status_code == 403
    assert submit(client, f"/admin/teams/{site['core']}/delete", "/admin/teams").status_code == 403
    assert api_team(site, "Mine") is None and api_team(site, "Core") is not None


# --- API keys ------------------------------------------------------------------------------------


def test_a_new_key_s_secret_is_shown_once_and_works(site):
    client = browser(site, "admin")
    page = submit(client, "/admin/keys", "/admin/keys", name="grafana", scope="read")
    assert page.status_code == 201 and page.headers["Cache-Control"] == "no-store"
    secret = SECRET.search(page.text).group(1)  # type: ignore[union-attr]
    listed = {k["name"]: k for k in api(site, "/api/keys")["keys"]}
    assert listed["grafana"]["scope"] == "read" and secret.startswith(listed["grafana"]["prefix"])
    reads = site["app"].test_client().get("/api/metrics/agents", headers={"X-API-Key": secret})
    assert reads.status_code == 200
    keys_page = client.get("/admin/keys").text
    assert secret not in keys_page and listed["grafana"]["prefix"] in keys_page
    assert "Read (metrics and analytics)" in keys_page and "Never" in keys_page


def test_a_revoked_key_is_refused_and_cannot_be_revoked_twice(site):
    client = browser(site, "admin")
    assert submit(client, f"/admin/keys/{site['key']}/revoke", "/admin/keys").status_code == 303
    assert [k["revoked"] for k in api(site, "/api/keys")["keys"]] == [True]
    assert submit(client, f"/admin/keys/{site['key']}/revoke", "/admin/keys").status_code == 404
    assert "Revoked" in client.get("/admin/keys").text


def test_a_refused_key_says_why_and_managers_make_none(site):
    page = submit(browser(site, "admin"), "/admin/keys", "/admin/keys", name="", scope="write")
    assert page.status_code == 400 and set(problems(page)) == {"name", "scope"}
    assert submit(browser(site, "admin"), "/admin/keys", "/admin/keys", name="\x00").status_code == 400
    manager = browser(site, "manager")
    assert submit(manager, "/admin/keys", name="sneaky").status_code == 403
    assert submit(manager, f"/admin/keys/{site['key']}/revoke").status_code == 403
    assert [(k["name"], k["revoked"]) for k in api(site, "/api/keys")["keys"]] == [("fleet", False)]


# --- the organization ----------------------------------------------------------------------------


def test_an_admin_sets_the_time_zone_as_the_api_checks_it(site):
    client = browser(site, "admin")
    saved = submit(client, "/admin/organization", "/admin/organization", time_zone="Europe/Berlin")
    assert saved.status_code == 303
    assert api(site, "/api/organization")["time_zone"] == "Europe/Berlin"
    assert "The time zone is now Europe/Berlin" in client.get(saved.headers["Location"]).text
    for bad in ("Mars/Olympus", "localtime", ""):
        page = submit(client, "/admin/organization", "/admin/organization", time_zone=bad)
        assert page.status_code == 400 and "time_zone" in problems(page), bad
        refused = site["app"].test_client()
        answer = refused.put(
            "/api/organization", headers=bearer(refused, site["acme"]["admin"]), json={"time_zone": bad}
        )
        assert answer.status_code == 400, bad
    assert api(site, "/api/organization")["time_zone"] == "Europe/Berlin"


def test_a_manager_sees_the_time_zone_but_cannot_change_it(site):
    client = browser(site, "manager")
    page = client.get("/admin/organization")
    assert "UTC" in page.text and 'name="time_zone"' not in page.text
    assert submit(client, "/admin/organization", time_zone="Asia/Tokyo").status_code == 403
    assert api(site, "/api/organization")["time_zone"] == "UTC"


# --- forms from elsewhere, and other organizations -----------------------------------------------


def test_a_form_without_this_browser_s_token_changes_nothing(site):
    client, other = browser(site, "admin"), browser(site, "manager")
    foreign = TOKEN.search(other.get("/account").text).group(1)  # type: ignore[union-attr]
    developer = site["acme"]["developer"].user
    for token in (None, "0" * 64, foreign):
        data = {"role": "admin"} if token is None else {"role": "admin", "csrf_token": token}
        assert client.post(f"/admin/users/{developer.id}/role", data=data).status_code == 403
        assert client.post("/admin/keys", data={**data, "name": "x"}).status_code == 403
        assert client.post("/admin/teams", data={**data, "name": "x"}).status_code == 403
    assert api_user(site, developer.email)["role"] == "developer"
    assert len(api(site, "/api/keys")["keys"]) == 1 and api_team(site, "x") is None
    assert submit(client, "/admin/teams", "/admin/teams", name="y").status_code == 303  # with the page's own token


def test_an_outsider_gets_404_for_every_id_of_another_organization(site):
    client = browser(site, "admin", org="globex")
    developer = site["acme"]["developer"].user
    for action, fields in (
        (f"/admin/users/{developer.id}/role", {"role": "admin"}),
        (f"/admin/users/{developer.id}/active", {"active": "false"}),
        (f"/admin/teams/{site['core']}/delete", {}),
        (f"/admin/teams/{site['core']}/members", {"user_id": developer.id}),
        (f"/admin/teams/{site['core']}/members/{developer.id}/remove", {}),
        (f"/admin/keys/{site['key']}/revoke", {}),
    ):
        page = submit(client, action, **fields)
        assert page.status_code == 404 and "text/html" in page.content_type, action
    globex_admin = site["globex"]["admin"].user
    assert submit(client, f"/admin/teams/{site['core']}/members", user_id=globex_admin.id).status_code == 404
    for path in ("/admin/users", "/admin/teams", "/admin/keys"):
        assert "acme" not in client.get(path).text.lower(), path
    assert api_user(site, developer.email)["active"] and api_team(site, "Core") is not None
    assert [k["revoked"] for k in api(site, "/api/keys")["keys"]] == [False]


def test_a_bad_page_number_is_400(site):
    client = browser(site, "admin")
    for bad in ("0", "-1", "x", "1e3", "99999999"):
        assert client.get(f"/admin/users?page={bad}").status_code == 400, bad
        assert client.get(f"/admin/teams?page={bad}").status_code == 400, bad
    assert client.get("/admin/users?page=2").status_code == 200
