"""Who may open which page: every GET route of the pages blueprint against every kind of visitor.

The table PAGES declares, for each route, what anonymous visitors, Acme's admin, manager and
developer, and an outsider (the admin of Globex, another organization) get: a status, or
SIGN_IN (303 to the sign-in page, coming back afterwards). Path ids are Acme's, so the outsider
asks for ids that are not theirs and must get 404, as on /api (tests/test_authz_matrix.py,
whose rows each page's row follows). A GET route added to the pages without a row here fails.

Also: the navigation each role is shown links exactly the pages it may open, and every POST of
the pages refuses a form without this browser's token (403), whoever sends it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask

from tests import databases
from tests.support import Member, make_event, seeded_database
from tests.test_authz_matrix import PLACEHOLDER, fill
from tests.test_signin import sign_in
from weather_metrics import dashboards
from weather_metrics.accounts import organizations as accounts
from weather_metrics.alerts import rules as alerts
from weather_metrics.reports import jobs as reports
from weather_metrics.store.models import ReportJob
from weather_metrics.web.api.alert_schemas import RuleCreateSchema
from weather_metrics.web.api.dashboard_schemas import DashboardCreateSchema

VISITORS = ("anonymous", "admin", "manager", "developer", "outsider")
SIGN_IN = "sign-in"  # 303 to /sign-in?next=<the page>
TOOL = "get_forecast"


@dataclass
class Site:
    """Acme and Globex on one app, with one of each thing a page's path can name."""

    app: Flask
    acme: dict[str, Member]
    globex: dict[str, Member]
    ids: dict[str, str]

    def visitor(self, who: str) -> Any:
        """A browser of `who`, signed in through the sign-in form (anonymous: none)."""
        client = self.app.test_client()
        if who != "anonymous":
            member = self.globex["admin"] if who == "outsider" else self.acme[who]
            assert sign_in(client, member).status_code == 303
        return client


def _dashboard(app: Flask, owner: Any, name: str, scope: str, team_id: str | None = None) -> str:
    widget = {"id": "w1", "type": "line", "metric": "agents.calls", "position": {"x": 0, "y": 0, "w": 6, "h": 4}}
    body: dict[str, Any] = {"name": name, "scope": scope, "layout": [widget]}
    if team_id:
        body["team_id"] = team_id
    with app.app_context():
        return str(dashboards.create_dashboard(owner, DashboardCreateSchema().load(body)).id)


def _rule(app: Flask, admin: Any, scope: dict[str, str]) -> str:
    body = {
        "name": f"rule-{scope['type']}",
        "metric": "error_rate",
        "scope": scope,
        "comparison": "gt",
        "threshold": 50,
        "window_minutes": 10,
        "severity": "high",
        "cooldown_minutes": 0,
    }
    with app.app_context():
        return str(alerts.create_rule(admin, RuleCreateSchema().load(body), int(time.time())).id)


def _done_job(app: Flask, user: Any) -> str:
    state = app.extensions["weather_metrics"]
    with app.app_context():
        job = reports.create_job(user, "productivity", "csv", {}, datetime.now(UTC), 3600)
        deadline = time.monotonic() + 30
        while ReportJob.get_by_id(job.id).status != "done":
            assert time.monotonic() < deadline, "the export job did not finish"
            if not state.reports.run_once(datetime.now(UTC)):
                time.sleep(0.02)
    return str(job.id)


def _public_tool(app: Flask) -> None:
    """Anonymous calls of TOOL, so /tools/<name> has a page."""
    client = app.test_client()
    assert client.post("/v1/events", json={"events": [make_event(tool=TOOL)]}).status_code == 200
    deadline = time.monotonic() + 30
    while client.get(f"/v1/stats/tool/{TOOL}").status_code != 200:
        assert time.monotonic() < deadline, "the events were not written"
        time.sleep(0.05)


def seed_site(app: Flask, acme: dict[str, Member]) -> dict[str, str]:
    """Acme with team Core (manager leads, developer in it) and Ops (nobody), a dashboard of each scope,
    an organization rule and one of each team, an admin's finished export, and public stats of one tool."""
    admin = acme["admin"].user
    with app.app_context():
        core = accounts.create_team(admin.organization_id, "Core", "", lead=acme["manager"].user)
        accounts.add_member(core, acme["developer"].user, "member")
        ops = accounts.create_team(admin.organization_id, "Ops", "")
        key, _ = accounts.create_api_key(admin.organization_id, "fleet", admin.id)
    _public_tool(app)
    return {
        "dashboard_id": _dashboard(app, admin, "Everyone's", "organization"),
        "core_dashboard": _dashboard(app, admin, "Core's", "team", core.id),
        "ops_dashboard": _dashboard(app, admin, "Ops's", "team", ops.id),
        "own_dashboard": _dashboard(app, acme["developer"].user, "Mine", "user"),
        "widget_id": "w1",  # each dashboard's one widget
        "no_widget": "w2",  # a widget no dashboard has
        "rule_id": _rule(app, admin, {"type": "organization"}),
        "core_rule": _rule(app, admin, {"type": "team", "id": core.id}),
        "job_id": _done_job(app, admin),
        "developer_job": _done_job(app, acme["developer"].user),
        "tool_name": TOOL,
        "filename": "pages.css",
        "core": core.id,
        "ops": ops.id,
        "key_id": key.id,
        "team_id": core.id,
        "user_id": acme["developer"].user.id,
        "developer": acme["developer"].user.id,
        "admin": admin.id,
    }


@pytest.fixture(scope="module")
def seeded_db(seeded_db: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run's Acme and Globex, and everything a page's path can name (`ids`), written once for the module:
    its two exports are built by child processes. Each test has a copy of the file and its exports (`site`)."""
    path = tmp_path_factory.mktemp("pages_matrix") / "metrics.db"
    databases.copy(seeded_db[0], path)
    people = seeded_db[1]
    return path, {**people, "ids": seeded_database(path, lambda app: seed_site(app, people["acme"]))}


@pytest.fixture
def site(service, acme, globex, seeded_db, tmp_path) -> Site:
    shutil.copytree(seeded_db[0].parent / "exports", tmp_path / "exports")
    return Site(service(), acme, globex, dict(seeded_db[1]["ids"]))


@dataclass(frozen=True)
class Row:
    anonymous: int | str
    admin: int | str
    manager: int | str
    developer: int | str
    outsider: int | str
    values: dict[str, str] | None = None  # path placeholder -> key of Site.ids, where not the same name
    query: dict[str, str] | None = None  # query parameter -> key of Site.ids
    linked: bool = False  # a page of its own the navigation must link, for whoever may open it

    def expected(self, who: str) -> int | str:
        return getattr(self, who)  # type: ignore[no-any-return]


def everyone(status: int, **kwargs: Any) -> Row:
    return Row(status, status, status, status, status, **kwargs)


def members(admin: int, manager: int, developer: int, outsider: int, **kwargs: Any) -> Row:
    """A signed-in page: anonymous visitors are sent to sign in."""
    return Row(SIGN_IN, admin, manager, developer, outsider, **kwargs)


# fmt: off
# Columns: anonymous, then admin manager developer outsider (Globex's admin, with Acme's ids).
PAGES: dict[str, Row] = {
    "/":                                 everyone(200, linked=True),
    "/tools/<tool_name>":                everyone(200),
    "/static/<path:filename>":           everyone(200),
    "/sign-in":                          Row(200, 303, 303, 303, 303, linked=True),
    "/sign-in/oidc":                     everyone(404),  # no OpenID provider configured
    "/sign-in/oidc/callback":            everyone(404),
    "/account":                          members(200, 200, 200, 200, linked=True),
    # GET /api/dashboards, /api/dashboards/<id>/data: an organization's dashboard is everyone's in it.
    "/dashboards":                       members(200, 200, 200, 200, linked=True),
    "/dashboards/<dashboard_id>":        members(200, 200, 200, 404),
    # PUT and DELETE /api/dashboards/<id>: an organization's dashboard is its admins' to change.
    "/dashboards/<dashboard_id>/edit":   members(200, 403, 403, 404),
    "/dashboards/<dashboard_id>/delete": members(200, 403, 403, 404),
    "/dashboards/<dashboard_id>/widgets/<widget_id>": members(200, 403, 403, 404),
    # GET /api/metrics/*, /api/analytics/productivity-trends: everyone; team-comparison: admins and managers.
    "/explore/agents":                   members(200, 200, 200, 200, linked=True),
    "/explore/productivity":             members(200, 200, 200, 200, linked=True),
    "/explore/trends":                   members(200, 200, 200, 200, linked=True),
    "/explore/teams":                    members(200, 200, 403, 200, linked=True),
    # GET /api/alerts/rules and /api/alerts: admins and managers; an organization rule is not a manager's (404).
    "/alerts":                           members(200, 200, 403, 200, linked=True),
    "/alerts/history":                   members(200, 200, 403, 200, linked=True),
    "/alerts/new":                       members(200, 200, 403, 200),
    "/alerts/<rule_id>/edit":            members(200, 404, 403, 404),
    "/alerts/<rule_id>/delete":          members(200, 404, 403, 404),
    # POST /api/reports/export: everyone; a job is its requester's, and its organization's admins'.
    "/exports":                          members(200, 200, 200, 200, linked=True),
    "/exports/jobs":                     members(200, 200, 200, 200),
    "/exports/<job_id>/download":        members(200, 404, 404, 404),
    # GET /api/users, /api/teams, /api/organization: admins and managers here; /api/keys: admins.
    "/admin/users":                      members(200, 200, 403, 200, linked=True),
    "/admin/teams":                      members(200, 200, 403, 200, linked=True),
    "/admin/keys":                       members(200, 403, 403, 200, linked=True),
    "/admin/organization":               members(200, 200, 403, 200, linked=True),
}

# Further cells of a route in PAGES: other ids, or a query naming someone else's data (as the API's EXTRA_CELLS).
EXTRA: dict[tuple[str, str], Row] = {
    ("/dashboards/<dashboard_id>", "a team's, the manager's and developer's"):
        members(200, 200, 200, 404, values={"dashboard_id": "core_dashboard"}),
    ("/dashboards/<dashboard_id>", "a team's nobody calling is in"):
        members(200, 404, 404, 404, values={"dashboard_id": "ops_dashboard"}),
    ("/dashboards/<dashboard_id>", "the developer's own"):
        members(404, 404, 200, 404, values={"dashboard_id": "own_dashboard"}),
    ("/dashboards/<dashboard_id>/edit", "a team's: its manager's to change"):
        members(200, 200, 403, 404, values={"dashboard_id": "core_dashboard"}),
    ("/dashboards/<dashboard_id>/edit", "a team's nobody calling is in"):
        members(200, 404, 404, 404, values={"dashboard_id": "ops_dashboard"}),
    ("/dashboards/<dashboard_id>/edit", "the developer's own"):
        members(404, 404, 200, 404, values={"dashboard_id": "own_dashboard"}),
    ("/dashboards/<dashboard_id>/delete", "the developer's own"):
        members(404, 404, 200, 404, values={"dashboard_id": "own_dashboard"}),
    ("/dashboards/<dashboard_id>/widgets/<widget_id>", "a team's: its manager's to change"):
        members(200, 200, 403, 404, values={"dashboard_id": "core_dashboard"}),
    ("/dashboards/<dashboard_id>/widgets/<widget_id>", "the developer's own"):
        members(404, 404, 200, 404, values={"dashboard_id": "own_dashboard"}),
    ("/dashboards/<dashboard_id>/widgets/<widget_id>", "a widget it does not have"):
        members(404, 403, 403, 404, values={"widget_id": "no_widget"}),
    ("/alerts/<rule_id>/edit", "the manager's team's"):
        members(200, 200, 403, 404, values={"rule_id": "core_rule"}),
    ("/alerts/<rule_id>/delete", "the manager's team's"):
        members(200, 200, 403, 404, values={"rule_id": "core_rule"}),
    ("/exports/<job_id>/download", "the developer's"):
        members(200, 404, 200, 404, values={"job_id": "developer_job"}),
    ("/explore/agents", "user_id of the developer"):
        members(200, 200, 200, 404, query={"user_id": "developer"}),
    ("/explore/agents", "user_id of the admin"):
        members(200, 403, 403, 404, query={"user_id": "admin"}),
    ("/explore/productivity", "user_id of the admin"):
        members(200, 403, 403, 404, query={"user_id": "admin"}),
    ("/explore/trends", "team_id of a team nobody calling is in"):
        members(200, 403, 403, 404, query={"team_id": "ops"}),
    ("/explore/teams", "team_ids of a team nobody calling is in"):
        members(200, 403, 403, 404, query={"team_ids": "ops"}),
}
# fmt: on


def page_routes(app: Flask, method: str) -> list[str]:
    """Every rule of the pages blueprint that answers `method`."""
    return sorted(
        {
            rule.rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("pages.") and method in rule.methods
        }
    )


def url_of(site: Site, rule: str, row: Row) -> str:
    names = {name: (row.values or {}).get(name, name) for name in PLACEHOLDER.findall(rule)}
    path = fill(rule, {name: site.ids[key] for name, key in names.items()})
    if row.query:
        path += "?" + urlencode({name: site.ids[key] for name, key in row.query.items()})
    return path


def check(client: Any, who: str, path: str, want: int | str) -> str | None:
    """One visit; what went wrong, or None."""
    response = client.get(path)
    status, body = response.status_code, response.get_data(as_text=True)
    response.close()  # a file or a download is streamed
    if want == SIGN_IN:
        location = response.headers.get("Location", "")
        if status != 303 or urlsplit(location).path != "/sign-in":
            return f"{who:>9} {path}: expected a redirect to sign in, got {status} {location}"
        return None
    if status != want:
        return f"{who:>9} {path}: expected {want}, got {status} {body[:200]!r}"
    return None


def test_the_table_covers_every_page_and_nothing_else(app):
    served = set(page_routes(app, "GET"))
    assert served, "no page routes found: is the pages blueprint registered?"
    missing, stale = sorted(served - set(PAGES)), sorted(set(PAGES) - served)
    assert not missing, f"add a row to PAGES for each new page: {missing}"
    assert not stale, f"rows in PAGES for pages that no longer exist: {stale}"
    assert not [key for key in EXTRA if key[0] not in served]


@pytest.mark.parametrize("who", VISITORS)
def test_each_visitor_gets_what_the_table_says(site, who):
    client = site.visitor(who)
    cells = [(rule, PAGES.get(rule), "") for rule in page_routes(site.app, "GET")]
    cells += [(rule, row, f" [{label}]") for (rule, label), row in EXTRA.items()]
    problems = []
    for rule, row, label in cells:
        if row is None:
            problems.append(f"{rule}: no row in PAGES")
            continue
        problem = check(client, who, url_of(site, rule, row), row.expected(who))
        if problem:
            problems.append(problem + label)
    assert not problems, "\n".join(problems)


class Links(HTMLParser):
    """The hrefs of a page: those in its navigation (pagers aside), and all of them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.nav: set[str] = set()
        self.every: set[str] = set()
        self._navs: list[bool] = []  # for each open <nav>: whether it is a navigation (not a pager)
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "nav":
            self._navs.append("pager" not in (found.get("class") or ""))
        elif tag == "a" and found.get("href"):
            href = str(found["href"])
            self.every.add(href)
            if any(self._navs):
                self.nav.add(urlsplit(href).path)

    def handle_endtag(self, tag: str) -> None:
        if tag == "nav" and self._navs:
            self._navs.pop()


def own_path(href: str) -> bool:
    parts = urlsplit(href)
    return not parts.scheme and not parts.netloc and href.startswith("/")


@pytest.mark.parametrize("who", ["anonymous", "admin", "manager", "developer"])
def test_the_navigation_links_exactly_the_pages_the_visitor_may_open(site, who):
    """No link to a page that answers 403, and a link to every page of its own the visitor may open."""
    client = site.visitor(who)
    shown = [(rule, url_of(site, rule, row)) for rule, row in PAGES.items() if row.expected(who) == 200]
    nav: set[str] = set()
    every: set[str] = set()
    for _rule, path in shown:
        page = client.get(path)
        if page.mimetype == "text/html":
            links = Links(page.get_data(as_text=True))
            nav |= links.nav
            every |= {href for href in links.every if own_path(href)}
        page.close()
    refused = []
    for href in sorted(every):
        answer = client.get(href)
        answer.close()
        if answer.status_code == 403 or (urlsplit(href).path in nav and answer.status_code != 200):
            refused.append(f"{href}: {answer.status_code}")
    assert not refused, f"{who} is shown links to pages it may not open: {refused}"
    must = {path for rule, path in shown if PAGES[rule].linked}
    assert not sorted(must - nav), f"{who} may open these pages, yet no navigation links them: {sorted(must - nav)}"


@pytest.mark.parametrize("who", VISITORS)
def test_every_form_of_the_pages_needs_this_browser_s_token(site, who):
    """Each POST of the pages, sent without a token (but with every cookie of the visitor), is refused: 403."""
    client = site.visitor(who)
    site.ids["user_id"] = site.acme["developer"].user.id
    problems = []
    for rule in page_routes(site.app, "POST"):
        path = url_of(site, rule, Row(0, 0, 0, 0, 0))
        answer = client.post(path, data={"name": "x", "role": "developer", "enabled": "false"})
        if answer.status_code != 403:
            problems.append(f"{who} POST {path}: {answer.status_code}")
    assert not problems, "\n".join(problems)
    assert client.get("/account").status_code == (303 if who == "anonymous" else 200)  # still signed in
