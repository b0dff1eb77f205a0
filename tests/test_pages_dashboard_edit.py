"""Creating, editing and deleting dashboards on the pages: each person may do with the forms exactly what the API lets
them do, every change reads back through GET /api/dashboards/<id>, and a refused form shows each problem beside its
field. In Chromium: test_pages_dashboard_edit_browser.py."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

from tests.test_signin import TOKEN, sign_in
from weather_metrics.accounts import organizations as accounts

PROBLEM = re.compile(r'<p class="field__problem" id="([\w-]+)-problem">([^<]*)</p>')
EDIT_LINK = re.compile(r'href="/dashboards/([0-9a-f-]{36})/edit"')


@pytest.fixture
def site(service, acme, globex) -> dict[str, Any]:
    """Acme with teams Core (manager, developer) and Ops (nobody), a dashboard of each kind; Globex with one."""
    app = service()
    org_id = acme["admin"].user.organization_id
    with app.app_context():
        core = accounts.create_team(org_id, "Core", "")
        ops = accounts.create_team(org_id, "Ops", "")
        accounts.add_member(core, acme["manager"].user, "lead")
        accounts.add_member(core, acme["developer"].user, "member")
    client = app.test_client()

    def make(member: Any, **body: Any) -> str:
        answer = client.post("/api/dashboards", headers=member.headers, json=body)
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["id"])

    boards = {
        "Org board": make(acme["admin"], name="Org board", scope="organization"),
        "Admin's own": make(acme["admin"], name="Admin's own"),
        "Developer's own": make(acme["developer"], name="Developer's own"),
        "Core board": make(acme["manager"], name="Core board", scope="team", team_id=core.id),
        "Ops board": make(acme["admin"], name="Ops board", scope="team", team_id=ops.id),
        "Globex board": make(globex["admin"], name="Globex board"),
    }
    teams = {"core": core.id, "ops": ops.id}
    return {"app": app, "boards": boards, "teams": teams, "acme": acme, "globex": globex}


def member_of(site: dict[str, Any], who: str) -> Any:
    return site["globex"]["admin"] if who == "outsider" else site["acme"][who]


def browser_of(site: dict[str, Any], who: str) -> Any:
    client = site["app"].test_client()
    assert sign_in(client, member_of(site, who)).status_code == 303
    return client


def api(site: dict[str, Any], who: str, method: str, path: str, **kwargs: Any) -> Any:
    """A request of `who` to the API, with the access token seeded with them (it lasts a day)."""
    return site["app"].test_client().open(path, method=method, headers=member_of(site, who).headers, **kwargs)


def token_of(client: Any, path: str = "/dashboards") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found
    return found.group(1)


def send(client: Any, path: str, **fields: str) -> Any:
    return client.post(path, data={"csrf_token": token_of(client), **fields})


HIDDEN = re.compile(r'<input type="hidden" name="([\w-]+)" value="([^"]*)">')


def hidden(client: Any, board_id: str, action: str) -> dict[str, str]:
    """The hidden fields but the token (versions, ids) of the edit page's form that posts to `action`."""
    page = client.get(f"/dashboards/{board_id}/edit").text
    start = page.find(f'action="{action}"')
    if start < 0:
        return {}
    form = page[start : page.index("</form>", start)]
    return {name: unescape(value) for name, value in HIDDEN.findall(form) if name != "csrf_token"}


def problems(page: Any) -> dict[str, str]:
    return {name: unescape(text) for name, text in PROBLEM.findall(page.text)}


def stored(site: dict[str, Any], board_id: str) -> dict[str, Any]:
    answer = api(site, "admin", "GET", f"/api/dashboards/{board_id}")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()  # type: ignore[no-any-return]


WIDGET = {"add-type": "bar", "add-metric": "agents.calls", "add-title": "", "add-range": "30d"}
WIDGET.update({"add-aggregation": "week", "add-x": "0", "add-y": "0", "add-w": "6", "add-h": "4"})


@pytest.mark.parametrize("who", ["admin", "manager", "developer", "outsider"])
@pytest.mark.parametrize("scope", ["user", "team:core", "team:ops", "organization"])
def test_each_role_may_create_with_the_form_the_scopes_the_api_allows_them(site, who, scope):
    kind, _, team = scope.partition(":")
    team_id = site["teams"][team] if team else ""
    body: dict[str, Any] = {"name": "Made", "scope": kind, **({"team_id": team_id} if team else {})}
    by_api = api(site, who, "POST", "/api/dashboards", json=body).status_code
    page = send(browser_of(site, who), "/dashboards/new", name="Made", description="", scope=kind, team_id=team_id)
    assert {201: 303, 403: 403, 404: 400}[by_api] == page.status_code, page.text[:300]
    if page.status_code == 303:
        board = api(site, who, "GET", "/api/dashboards/" + page.headers["Location"].split("/")[2]).get_json()
        assert (board["scope"], board["team_id"]) == (kind, team_id or None)
    elif page.status_code == 403:
        assert "scope" in problems(page)


@pytest.mark.parametrize(
    ("who", "scopes", "teams"),
    [
        ("admin", ["Personal", "Team", "Organization"], ["Core", "Ops"]),
        ("manager", ["Personal", "Team"], ["Core"]),
        ("developer", [], []),
    ],
)
def test_the_new_dashboard_form_offers_only_the_scopes_and_teams_the_role_may_use(site, who, scopes, teams):
    page = browser_of(site, who).get("/dashboards").text
    form = page[page.index('id="new-board"') :]
    select = re.search(r'<select id="scope".*?</select>', form, re.S)
    offered = re.findall(r'<option value="\w+"(?: selected)?>(\w+)</option>', select.group(0)) if select else []
    assert offered == scopes
    team_select = re.search(r'<select id="team_id".*?</select>', form, re.S)
    assert (
        re.findall(r'<option value="[0-9a-f-]{36}">(\w+)</option>', team_select.group(0)) if team_select else []
    ) == teams
    if not scopes:
        assert '<input type="hidden" name="scope" value="user">' in form


@pytest.mark.parametrize("who", ["admin", "manager", "developer", "outsider"])
def test_the_edit_pages_and_link_follow_the_apis_rule_for_each_dashboard(site, who):
    browser = browser_of(site, who)
    for name, board_id in site["boards"].items():
        by_api = api(site, who, "PUT", f"/api/dashboards/{board_id}", json={"description": "touched"}).status_code
        expected = {200: 200, 403: 403, 404: 404}[by_api]
        assert browser.get(f"/dashboards/{board_id}/edit").status_code == expected, name
        assert browser.get(f"/dashboards/{board_id}/delete").status_code == expected, name
        shown = browser.get(f"/dashboards/{board_id}")
        assert shown.status_code == (404 if expected == 404 else 200), name
        assert (board_id in EDIT_LINK.findall(shown.text)) == (expected == 200), name
        seen = hidden(browser, board_id, f"/dashboards/{board_id}/edit")
        answer = send(browser, f"/dashboards/{board_id}/edit", name="Renamed " + name, description="", **seen)
        assert answer.status_code == (303 if expected == 200 else expected), name
        assert (stored_name(site, board_id) == "Renamed " + name) == (expected == 200), name


def stored_name(site: dict[str, Any], board_id: str) -> str:
    owner = "outsider" if board_id == site["boards"]["Globex board"] else "admin"
    if board_id == site["boards"]["Developer's own"]:
        owner = "developer"
    return str(api(site, owner, "GET", f"/api/dashboards/{board_id}").get_json()["name"])


def test_a_developer_builds_a_dashboard_and_each_change_reads_back_through_the_api(site):
    developer = browser_of(site, "developer")
    made = send(developer, "/dashboards/new", name="Mine", description="My figures", scope="user", team_id="")
    assert made.status_code == 303
    board_id = made.headers["Location"].split("/")[2]
    edit = f"/dashboards/{board_id}/edit"
    assert made.headers["Location"] == edit + "?done=created"
    assert send(developer, f"/dashboards/{board_id}/widgets", **WIDGET).status_code == 303
    more = {**WIDGET, "add-type": "number", "add-metric": "productivity.commits", "add-range": "", "add-y": "4"}
    more.update({"add-title": "Commits", "add-aggregation": ""})
    assert send(developer, f"/dashboards/{board_id}/widgets", **more).status_code == 303
    board = api(site, "developer", "GET", f"/api/dashboards/{board_id}").get_json()
    assert (board["name"], board["description"], board["scope"]) == ("Mine", "My figures", "user")
    first, second = board["layout"]
    assert (first["type"], first["metric"], first["filters"]) == (
        "bar",
        "agents.calls",
        {"range": "30d", "aggregation": "week"},
    )
    assert (second["type"], second["title"], second["filters"]) == ("number", "Commits", {})
    assert second["position"] == {"x": 0, "y": 4, "w": 6, "h": 4}
    layout = {"layout-0-id": first["id"], "layout-0-title": "Calls", "layout-0-x": "6", "layout-0-y": "1"}
    layout.update({"layout-0-w": "6", "layout-0-h": "3", "layout-1-id": second["id"], "layout-1-title": "Commits"})
    layout.update({"layout-1-x": "0", "layout-1-y": "0", "layout-1-w": "12", "layout-1-h": "2"})
    layout.update(hidden(developer, board_id, f"/dashboards/{board_id}/layout"))
    assert send(developer, f"/dashboards/{board_id}/layout", **layout).status_code == 303
    board = api(site, "developer", "GET", f"/api/dashboards/{board_id}").get_json()
    assert [(w["title"], w["position"]) for w in board["layout"]] == [
        ("Calls", {"x": 6, "y": 1, "w": 6, "h": 3}),
        ("Commits", {"x": 0, "y": 0, "w": 12, "h": 2}),
    ]
    assert board["layout"][0]["filters"] == first["filters"]  # what the form does not show is kept
    page = developer.get(f"/dashboards/{board_id}").text
    assert page.index('data-widget="' + second["id"]) < page.index('data-widget="' + first["id"])  # drawn by y
    details = hidden(developer, board_id, edit)
    assert send(developer, edit, name="Still mine", description="", **details).status_code == 303
    remove = f"/dashboards/{board_id}/widgets/{first['id']}/delete"
    assert send(developer, remove, **hidden(developer, board_id, remove)).status_code == 303
    board = api(site, "developer", "GET", f"/api/dashboards/{board_id}").get_json()
    assert (board["name"], board["description"], [w["id"] for w in board["layout"]]) == (
        "Still mine",
        "",
        [second["id"]],
    )
    assert send(developer, f"/dashboards/{board_id}/widgets/{first['id']}/delete").status_code == 404
    assert "Delete “Still mine”?" in developer.get(f"/dashboards/{board_id}/delete").text
    gone = send(developer, f"/dashboards/{board_id}/delete")
    assert gone.status_code == 303 and gone.headers["Location"] == "/dashboards?done=deleted"
    assert api(site, "developer", "GET", f"/api/dashboards/{board_id}").status_code == 404
    assert developer.get(edit).status_code == 404


def test_refused_forms_come_back_with_each_problem_beside_its_field_and_change_nothing(site):
    admin = browser_of(site, "admin")
    page = send(admin, "/dashboards/new", name="  ", description="x" * 501, scope="team", team_id="")
    assert page.status_code == 400
    assert set(problems(page)) == {"name", "description"}  # the schema first, as the API
    assert 'id="description" name="description" type="text" value="' + "x" * 501 in page.text  # as typed
    page = send(admin, "/dashboards/new", name="No team", description="", scope="team", team_id="")
    assert page.status_code == 400 and problems(page) == {"team_id": "Required when scope is team."}
    page = send(admin, "/dashboards/new", name="Lost team", description="", scope="team", team_id="no-such-team")
    assert page.status_code == 400 and "team_id" in problems(page)
    board_id = site["boards"]["Org board"]
    page = send(
        admin, f"/dashboards/{board_id}/widgets", **{**WIDGET, "add-x": "8", "add-y": "two", "add-type": "radar"}
    )
    assert page.status_code == 400
    assert problems(page) == {
        "add-type": "Must be one of: line, bar, area, pie, number, table.",
        "add-y": "Must be an integer.",
    }
    page = send(admin, f"/dashboards/{board_id}/widgets", **{**WIDGET, "add-x": "8", "add-metric": "agents.nothing"})
    assert page.status_code == 400
    assert problems(page) == {"add-w": "x + w must not exceed 12."}
    page = send(admin, f"/dashboards/{board_id}/widgets", **{**WIDGET, "add-metric": "agents.nothing"})
    assert page.status_code == 400
    assert problems(page) == {"add-metric": "Unknown metric; use agents.<metric> or productivity.<type>."}
    assert send(admin, f"/dashboards/{board_id}/widgets", **WIDGET).status_code == 303
    widget = stored(site, board_id)["layout"][0]
    layout = {"layout-0-id": widget["id"], "layout-0-title": "t" * 101, "layout-0-x": "12", "layout-0-y": ""}
    layout.update({"layout-0-w": "6", "layout-0-h": "25"})
    layout["layout-0-version"] = hidden(admin, board_id, f"/dashboards/{board_id}/layout")["layout-0-version"]
    page = send(admin, f"/dashboards/{board_id}/layout", **layout)
    assert page.status_code == 400
    assert set(problems(page)) == {"layout-0-title", "layout-0-x", "layout-0-y", "layout-0-h"}
    page = send(admin, f"/dashboards/{board_id}/edit", name="", description="")
    assert page.status_code == 400 and set(problems(page)) == {"name"}
    board = stored(site, board_id)
    assert (board["name"], board["layout"]) == ("Org board", [widget])
    assert [b["name"] for b in api(site, "admin", "GET", "/api/dashboards").get_json()["dashboards"]].count(
        "Lost team"
    ) == 0


def test_a_form_without_this_browsers_token_is_refused_and_changes_nothing(site):
    admin = browser_of(site, "admin")
    other = browser_of(site, "admin")  # another browser of the same person: another token
    board_id = site["boards"]["Org board"]
    before = stored(site, board_id)
    for token in (None, "0" * 64, token_of(other)):
        data = {} if token is None else {"csrf_token": token}
        assert admin.post("/dashboards/new", data={**data, "name": "Sneaky", "scope": "user"}).status_code == 403
        assert admin.post(f"/dashboards/{board_id}/edit", data={**data, "name": "Taken"}).status_code == 403
        assert admin.post(f"/dashboards/{board_id}/widgets", data={**data, **WIDGET}).status_code == 403
        assert admin.post(f"/dashboards/{board_id}/delete", data=data).status_code == 403
    assert stored(site, board_id) == before
    names = [b["name"] for b in api(site, "admin", "GET", "/api/dashboards").get_json()["dashboards"]]
    assert "Sneaky" not in names


def test_the_forms_need_someone_signed_in(site):
    client = site["app"].test_client()
    board_id = site["boards"]["Org board"]
    for path in (f"/dashboards/{board_id}/edit", f"/dashboards/{board_id}/delete"):
        page = client.get(path)
        assert page.status_code == 303 and page.headers["Location"] == "/sign-in?next=" + path
