"""/explore/...: each role sees the figures the API gives the same person for the same filters, filters the
API refuses come back 400 beside their field, and users or teams outside the viewer's scope are 403 or 404.
In Chromium: test_pages_explore_browser.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support import KEEP_HISTORY
from tests.test_dashboards import record_executions, record_productivity
from tests.test_signin import bearer, sign_in
from weather_metrics.accounts import organizations as accounts

CHART_BLOCK = re.compile(r'<script type="application/json" id="chart-\d+-data">(.*?)</script>')
TODAY = datetime.now(UTC).date()
DATES = {"start_date": (TODAY - timedelta(days=6)).isoformat(), "end_date": TODAY.isoformat()}
ROLES = ("admin", "manager", "developer")


@pytest.fixture
def site(service, acme, globex) -> dict[str, Any]:
    """Acme with a team Core (manager, developer), Ops (nobody), executions and commits of both."""
    app = service(**KEEP_HISTORY)
    org_id = acme["admin"].user.organization_id
    with app.app_context():
        core = accounts.create_team(org_id, "Core", "")
        ops = accounts.create_team(org_id, "Ops", "")
        accounts.add_member(core, acme["manager"].user, "lead")
        accounts.add_member(core, acme["developer"].user, "member")
    record_executions(app, acme["developer"], [("reviewer", 100.0, True), ("reviewer", 300.0, False)])
    record_executions(app, acme["manager"], [("writer", 200.0, True), ("reviewer", 500.0, True)])
    record_executions(app, acme["admin"], [("planner", 50.0, True)])
    record_productivity(app, acme["developer"], "commits", [3, 5])
    record_productivity(app, acme["manager"], "commits", [10])
    record_productivity(app, acme["admin"], "reviews", [4])
    return {"app": app, "acme": acme, "globex": globex, "core": core.id, "ops": ops.id}


def browser_of(site: dict[str, Any], member: Any) -> Any:
    client = site["app"].test_client()
    assert sign_in(client, member).status_code == 303
    return client


def api(site: dict[str, Any], member: Any, path: str, query: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    client = site["app"].test_client()
    answer = client.get(path + "?" + urlencode(query, doseq=True), headers=bearer(client, member))
    return answer.status_code, answer.get_json()


def page(site: dict[str, Any], member: Any, path: str, query: dict[str, Any]) -> Any:
    return browser_of(site, member).get(path + "?" + urlencode(query, doseq=True))


def charts(html: str) -> list[dict[str, Any]]:
    return [json.loads(block) for block in CHART_BLOCK.findall(html)]


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert found, name
    return unescape(found.group(1))


@pytest.mark.parametrize("who", ROLES)
def test_the_agent_explorer_shows_what_the_api_gives_the_same_person(site, who):
    member = site["acme"][who]
    query = {**DATES, "aggregation": "day"}
    status, body = api(site, member, "/api/metrics/agents", query)
    shown = page(site, member, "/explore/agents", query)
    assert status == shown.status_code == 200, shown.text[:800]
    calls, duration = charts(shown.text)
    assert calls["labels"] == [p["period"][:10] for p in body["series"]]
    assert [d["key"] for d in calls["datasets"]] == ["successes", "failures"]
    for dataset in calls["datasets"] + duration["datasets"]:
        assert dataset["values"] == [p[dataset["key"]] for p in body["series"]]
    assert (
        figure(shown.text, "calls")
        == str(body["totals"]["calls"])
        == {"admin": "5", "manager": "4", "developer": "2"}[who]
    )
    assert figure(shown.text, "success_rate") == f"{body['totals']['success_rate'] * 100:.1f} %"
    rows = re.findall(r'<tr data-agent="([^"]+)">', shown.text)
    assert rows == [a["agent_name"] for a in body["agents"]]


@pytest.mark.parametrize("who", ROLES)
def test_the_productivity_explorer_shows_what_the_api_gives_the_same_person(site, who):
    member = site["acme"][who]
    status, body = api(site, member, "/api/metrics/productivity", DATES)
    shown = page(site, member, "/explore/productivity", DATES)
    assert status == shown.status_code == 200, shown.text[:800]
    (chart,) = charts(shown.text)
    assert [d["label"] for d in chart["datasets"]] == [t["metric_type"] for t in body["totals"]]
    for dataset in chart["datasets"]:
        assert dataset["values"] == [p["metrics"].get(dataset["key"], {}).get("sum", 0) for p in body["series"]]
    sums = dict(
        re.findall(
            r'<tr data-metric="([^"]+)">\s*<th[^>]*>[^<]*</th>\s*<td class="num" data-figure="sum">([^<]*)<', shown.text
        )
    )
    assert sums == {t["metric_type"]: f"{t['sum']:,.0f}" for t in body["totals"]}
    assert (
        sums
        == {"admin": {"commits": "18", "reviews": "4"}, "manager": {"commits": "18"}, "developer": {"commits": "8"}}[
            who
        ]
    )


@pytest.mark.parametrize("who", ROLES)
def test_the_trends_page_shows_the_api_answer_and_its_insights(site, who):
    member = site["acme"][who]
    query = {**DATES, "comparison_period": "previous"}
    status, body = api(site, member, "/api/analytics/productivity-trends", query)
    shown = page(site, member, "/explore/trends", query)
    assert status == shown.status_code == 200, shown.text[:800]
    (chart,) = charts(shown.text)
    assert [d["key"] for d in chart["datasets"]] == [m["metric_type"] for m in body["metrics"]]
    for dataset, metric in zip(chart["datasets"], body["metrics"], strict=True):
        assert dataset["values"] == [p["total"] for p in metric["series"]]
    insights = [
        unescape(text) for text in re.findall(r'<li class="insight[^"]*" data-kind="[^"]+">([^<]*)</li>', shown.text)
    ]
    assert insights == [i["message"] for i in body["insights"]] and insights  # new data: "new" insights at least


@pytest.mark.parametrize("who", ["admin", "manager"])
def test_team_comparison_shows_what_the_api_gives(site, who):
    member = site["acme"][who]
    status, body = api(site, member, "/api/analytics/team-comparison", {})
    shown = page(site, member, "/explore/teams", {})
    assert status == shown.status_code == 200, shown.text[:800]
    assert re.findall(r'<tr data-team="([^"]+)">', shown.text) == [t["team_id"] for t in body["teams"]]
    assert [t["name"] for t in body["teams"]] == {"admin": ["Core", "Ops"], "manager": ["Core"]}[who]
    drawn = charts(shown.text)
    assert [c["datasets"][0]["key"] for c in drawn] == body["metric_types"]
    for chart in drawn:
        key = chart["datasets"][0]["key"]
        assert chart["labels"] == [t["name"] for t in body["teams"]]
        assert chart["datasets"][0]["values"] == [t["metrics"][key] for t in body["teams"]]


def test_developers_may_not_compare_teams_as_in_the_api(site):
    developer = site["acme"]["developer"]
    assert api(site, developer, "/api/analytics/team-comparison", {})[0] == 403
    shown = page(site, developer, "/explore/teams", {})
    assert shown.status_code == 403 and "text/html" in shown.content_type
    agents = page(site, developer, "/explore/agents", {}).text
    assert 'href="/explore/teams"' not in agents and 'href="/explore/trends"' in agents
    assert page(site, site["acme"]["manager"], "/explore/agents", {}).text.count('href="/explore/teams"') == 1


CASES = [
    # who, path, API path, filters, status
    ("manager", "/explore/agents", "/api/metrics/agents", {"team_id": "ops"}, 403),
    ("developer", "/explore/agents", "/api/metrics/agents", {"user_id": "manager"}, 403),
    ("developer", "/explore/productivity", "/api/metrics/productivity", {"team_id": "core"}, 403),
    ("admin", "/explore/agents", "/api/metrics/agents", {"team_id": "no-such-team"}, 404),
    ("admin", "/explore/productivity", "/api/metrics/productivity", {"user_id": "globex"}, 404),
    ("manager", "/explore/trends", "/api/analytics/productivity-trends", {"team_id": "ops"}, 403),
    ("manager", "/explore/teams", "/api/analytics/team-comparison", {"team_ids": "ops"}, 403),
    ("admin", "/explore/teams", "/api/analytics/team-comparison", {"team_ids": "no-such-team"}, 404),
]


def resolved(site: dict[str, Any], filters: dict[str, str]) -> dict[str, str]:
    ids = {"ops": site["ops"], "core": site["core"], "manager": site["acme"]["manager"].user.id}
    ids["globex"] = site["globex"]["developer"].user.id
    return {name: ids.get(value, value) for name, value in filters.items()}


@pytest.mark.parametrize(("who", "path", "api_path", "filters", "status"), CASES)
def test_users_and_teams_outside_the_scope_answer_as_the_api_does(site, who, path, api_path, filters, status):
    member, query = site["acme"][who], resolved(site, filters)
    code, body = api(site, member, api_path, query)
    shown = page(site, member, path, query)
    assert code == shown.status_code == status, shown.text[:800]
    assert unescape(body["error"]["message"]) in unescape(shown.text)
    assert 'role="alert"' in shown.text and "<form" in shown.text  # the form again, to change the filter
    assert not charts(shown.text)


BAD = [
    ("/explore/agents", "/api/metrics/agents", {"start_date": "yesterday"}, "start_date"),
    ("/explore/agents", "/api/metrics/agents", {"aggregation": "year"}, "aggregation"),
    ("/explore/agents", "/api/metrics/agents", {"start_date": "2025-03-01", "end_date": "2025-02-01"}, "start_date"),
    ("/explore/productivity", "/api/metrics/productivity", {"metric_type": "Commits!"}, "metric_type"),
    ("/explore/productivity", "/api/metrics/productivity", {"page": "0"}, "page"),
    ("/explore/trends", "/api/analytics/productivity-trends", {"comparison_period": "lately"}, "comparison_period"),
    ("/explore/teams", "/api/analytics/team-comparison", {"date_range": "forever"}, "date_range"),
    ("/explore/teams", "/api/analytics/team-comparison", {"metric_types": "Bad Type"}, "metric_types"),
]


@pytest.mark.parametrize(("path", "api_path", "filters", "field"), BAD)
def test_a_filter_the_api_refuses_comes_back_400_with_its_message(site, path, api_path, filters, field):
    admin = site["acme"]["admin"]
    code, body = api(site, admin, api_path, filters)
    shown = page(site, admin, path, filters)
    assert code == shown.status_code == 400, shown.text[:800]
    message = body["error"]["details"][field]
    beside = re.search(rf'<p class="field__problem" id="{field}-problem">([^<]*)</p>', shown.text)
    listed = re.search(rf"<p><code>{field}</code>: ([^<]*)</p>", shown.text)  # a field the form does not show
    assert unescape((beside or listed).group(1)) == message, shown.text[:3000]
    if beside:
        assert f'aria-describedby="{field}-problem"' in shown.text or f"{field}-problem" in shown.text
    assert not charts(shown.text)


def test_empty_fields_of_the_form_count_as_not_given(site):
    shown = page(site, site["acme"]["admin"], "/explore/agents", {"team_id": "", "user_id": "", "agent_name": ""})
    assert shown.status_code == 200 and figure(shown.text, "calls") == "5"
    narrowed = page(site, site["acme"]["admin"], "/explore/agents", {"agent_name": "reviewer", "success_only": "true"})
    assert figure(narrowed.text, "calls") == "2"


def test_an_outsider_sees_only_their_organization(site):
    outsider = site["globex"]["admin"]
    shown = page(site, outsider, "/explore/agents", DATES)
    assert shown.status_code == 200 and figure(shown.text, "calls") == "0"
    assert "Core" not in shown.text and "Ops" not in shown.text
    assert page(site, outsider, "/explore/agents", {"team_id": site["core"]}).status_code == 404
    assert page(site, outsider, "/explore/teams", {"team_ids": site["core"]}).status_code == 404


def test_the_explorers_need_someone_signed_in(site):
    client = site["app"].test_client()
    for path in ("/explore/agents", "/explore/productivity", "/explore/trends", "/explore/teams"):
        answer = client.get(path + "?aggregation=week")
        assert answer.status_code == 303 and "/sign-in" in answer.headers["Location"], path


def test_the_header_links_to_the_explorers_once_signed_in(site):
    client = site["app"].test_client()
    assert 'href="/explore/agents"' not in client.get("/sign-in").text
    text = browser_of(site, site["acme"]["developer"]).get("/account").text
    assert '<a href="/explore/agents">Explore</a>' in text
