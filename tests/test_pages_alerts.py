"""/alerts and /alerts/history: admins and managers see the rules and alerts the API gives the same person and
change rules through forms that accept and refuse what the API does; developers get 403, outsiders 404.
In Chromium: test_pages_alerts_browser.py."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from flask import Flask

from tests.support import Member, rule_body
from tests.test_alerts import AT, evaluator, executions, step_all
from tests.test_signin import TOKEN, bearer, sign_in
from weather_metrics.accounts import organizations as accounts
from weather_metrics.alerts.evaluator import AlertEvaluator
from weather_metrics.store.models import AlertEvent
from weather_metrics.webhooks import deliveries as webhooks

RULE = re.compile(r'<li class="rule-list__item" data-rule="([0-9a-f-]{36})" data-enabled="(true|false)"')
RULE_NAME = re.compile(r'<h2 class="rule-list__name" id="rule-\d+">([^<]*)</h2>')
ALERT = re.compile(r'<tr role="row" data-alert="([0-9a-f-]{36})" data-state="(firing|resolved)">')
PROBLEM = re.compile(r'<p class="field__problem" id="(\w+)-problem">([^<]*)</p>')


@pytest.fixture
def site(service, acme, globex) -> dict[str, Any]:
    """Acme with teams Core (manager, developer) and Ops, a rule of each scope; Globex with a rule of its own."""
    app = service()
    for part in vars(app.extensions["weather_metrics"]).values():  # only what a test steps happens
        if isinstance(part, (AlertEvaluator, webhooks.WebhookDeliverer)):
            part.close()
    org_id = acme["admin"].user.organization_id
    with app.app_context():
        core = accounts.create_team(org_id, "Core", "")
        ops = accounts.create_team(org_id, "Ops", "")
        accounts.add_member(core, acme["manager"].user, "lead")
        accounts.add_member(core, acme["developer"].user, "member")
    api = app.test_client()

    def make(member: Member, **changes: Any) -> str:
        answer = api.post("/api/alerts/rules", headers=bearer(api, member), json=rule_body(**changes))
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["id"])

    rules = {
        "Org errors": make(acme["admin"], name="Org errors"),
        "Ops calls": make(
            acme["admin"],
            name="Ops calls",
            metric="call_volume",
            comparison="lt",
            threshold=1,
            scope={"type": "team", "id": ops.id},
        ),
        "Core latency": make(
            acme["manager"],
            name="Core latency",
            metric="p95_latency_ms",
            threshold=800,
            scope={"type": "team", "id": core.id},
        ),
        "Globex errors": make(globex["admin"], name="Globex errors"),
    }
    return {"app": app, "rules": rules, "acme": acme, "globex": globex, "core": core.id, "ops": ops.id}


def browser_of(site: dict[str, Any], member: Member) -> Any:
    client = site["app"].test_client()
    assert sign_in(client, member).status_code == 303
    return client


def api(site: dict[str, Any], member: Member, method: str, path: str, **kwargs: Any) -> Any:
    client = site["app"].test_client()
    return client.open(path, method=method, headers=bearer(client, member), **kwargs)


def listed(client: Any) -> list[tuple[str, str]]:
    """(id, name) of each rule on /alerts, in the page's order."""
    page = client.get("/alerts")
    assert page.status_code == 200, page.text[:500]
    ids = [rule_id for rule_id, _ in RULE.findall(page.text)]
    return list(zip(ids, [unescape(name) for name in RULE_NAME.findall(page.text)], strict=True))


def token_of(client: Any, path: str = "/alerts") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found
    return found.group(1)


def form(**changes: str) -> dict[str, str]:
    """The new-rule form as a person fills it in: an organization error rate above 50 % over 10 minutes."""
    fields = {
        "name": "Failing",
        "metric": "error_rate",
        "metric_type": "",
        "scope_type": "organization",
        "scope_team": "",
        "scope_name": "",
        "comparison": "gt",
        "threshold": "50",
        "window_minutes": "10",
        "severity": "high",
        "cooldown_minutes": "0",
        "enabled": "on",
    }
    return {**fields, **changes}


def send(client: Any, path: str, **fields: str) -> Any:
    return client.post(path, data={"csrf_token": token_of(client), **fields})


@pytest.mark.parametrize(
    ("who", "names"), [("admin", ["Core latency", "Ops calls", "Org errors"]), ("manager", ["Core latency"])]
)
def test_admins_and_managers_list_the_rules_the_api_lists_for_them(site, who, names):
    member = site["acme"][who]
    shown = listed(browser_of(site, member))
    rules = api(site, member, "GET", "/api/alerts/rules").get_json()["rules"]
    assert shown == [(rule["id"], rule["name"]) for rule in rules]
    assert [name for _, name in shown] == names
    page = browser_of(site, member).get("/alerts").text
    assert 'href="/alerts" aria-current="page">Alerts</a>' in page  # in the navigation, marked as here
    assert "Team Core" in page and "95th percentile duration" in page and '&gt; <span class="nowrap">800 ms' in page


def test_developers_are_refused_as_by_the_api_and_see_no_alerts_in_the_navigation(site):
    developer = browser_of(site, site["acme"]["developer"])
    assert api(site, site["acme"]["developer"], "GET", "/api/alerts/rules").status_code == 403
    rule_id = site["rules"]["Core latency"]
    for path in ("/alerts", "/alerts/history", "/alerts/new", f"/alerts/{rule_id}/edit", f"/alerts/{rule_id}/delete"):
        page = developer.get(path)
        assert page.status_code == 403 and "text/html" in page.content_type, path
        assert "admin or manager" in page.text
    token = token_of(developer, "/account")
    for path, fields in (
        ("/alerts/new", form()),
        (f"/alerts/{rule_id}/edit", form(name="Mine now")),
        (f"/alerts/{rule_id}/enabled", {"enabled": "false"}),
        (f"/alerts/{rule_id}/delete", {}),
    ):
        assert developer.post(path, data={"csrf_token": token, **fields}).status_code == 403, path
    assert 'href="/alerts"' not in developer.get("/account").text
    rule = api(site, site["acme"]["admin"], "GET", f"/api/alerts/rules/{rule_id}").get_json()
    assert (rule["name"], rule["enabled"]) == ("Core latency", True)
    assert len(api(site, site["acme"]["admin"], "GET", "/api/alerts/rules").get_json()["rules"]) == 3


def test_an_outsider_sees_only_their_own_rules_and_404_for_anothers(site):
    outsider = browser_of(site, site["globex"]["admin"])
    assert [name for _, name in listed(outsider)] == ["Globex errors"]
    token = token_of(outsider)
    for name in ("Org errors", "Ops calls", "Core latency"):
        rule_id = site["rules"][name]
        for path in (f"/alerts/{rule_id}/edit", f"/alerts/{rule_id}/delete"):
            page = outsider.get(path)
            assert page.status_code == 404 and "No alert rule of yours" in page.text, path
        for path, fields in (
            (f"/alerts/{rule_id}/edit", form(name="Taken")),
            (f"/alerts/{rule_id}/enabled", {"enabled": "false"}),
            (f"/alerts/{rule_id}/delete", {}),
        ):
            assert outsider.post(path, data={"csrf_token": token, **fields}).status_code == 404, path
    rules = api(site, site["acme"]["admin"], "GET", "/api/alerts/rules").get_json()["rules"]
    assert sorted((r["name"], r["enabled"]) for r in rules) == [
        ("Core latency", True),
        ("Ops calls", True),
        ("Org errors", True),
    ]


def test_a_manager_gets_404_for_a_rule_of_a_team_not_theirs(site):
    manager = browser_of(site, site["acme"]["manager"])
    rule_id = site["rules"]["Ops calls"]
    assert manager.get(f"/alerts/{rule_id}/edit").status_code == 404
    assert send(manager, f"/alerts/{rule_id}/delete").status_code == 404
    assert api(site, site["acme"]["admin"], "GET", f"/api/alerts/rules/{rule_id}").status_code == 200


def test_pages_need_someone_signed_in(site):
    client = site["app"].test_client()
    for path in ("/alerts", "/alerts/history", "/alerts/new"):
        page = client.get(path)
        assert page.status_code == 303 and page.headers["Location"] == "/sign-in?next=" + path


def test_a_form_without_this_browsers_token_is_refused_and_changes_nothing(site):
    admin = browser_of(site, site["acme"]["admin"])
    other = browser_of(site, site["acme"]["admin"])  # another browser of the same person: another token
    rule_id = site["rules"]["Org errors"]
    for token in (None, "0" * 64, token_of(other)):
        data = {} if token is None else {"csrf_token": token}
        assert admin.post("/alerts/new", data={**data, **form()}).status_code == 403
        assert admin.post(f"/alerts/{rule_id}/enabled", data={**data, "enabled": "false"}).status_code == 403
        assert admin.post(f"/alerts/{rule_id}/delete", data=data).status_code == 403
    rules = api(site, site["acme"]["admin"], "GET", "/api/alerts/rules").get_json()["rules"]
    assert len(rules) == 3 and all(rule["enabled"] for rule in rules)


def test_a_rule_created_through_the_form_is_the_one_the_api_shows(site):
    admin = browser_of(site, site["acme"]["admin"])
    fields = form(name="Core slow", metric="p95_latency_ms", scope_type="team", scope_team=site["core"])
    fields.update(threshold="1500.5", severity="critical", cooldown_minutes="30")
    answer = send(admin, "/alerts/new", **fields)
    assert answer.status_code == 303 and answer.headers["Location"] == "/alerts?done=created"
    assert "The rule is created" in admin.get("/alerts?done=created").text
    rules = {r["name"]: r for r in api(site, site["acme"]["admin"], "GET", "/api/alerts/rules").get_json()["rules"]}
    made = rules["Core slow"]
    assert made["scope"] == {"type": "team", "id": site["core"]}
    assert (made["metric"], made["comparison"], made["threshold"], made["window_minutes"]) == (
        "p95_latency_ms",
        "gt",
        1500.5,
        10,
    )
    assert (made["severity"], made["cooldown_minutes"], made["enabled"], made["metric_type"]) == (
        "critical",
        30,
        True,
        None,
    )
    assert made["id"] in dict(listed(admin))


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"name": "  "}, {"name": "Must not be blank."}),
        ({"threshold": "lots", "window_minutes": "0"}, {"threshold": "Must be a number.", "window_minutes": None}),
        ({"window_minutes": "1.5", "cooldown_minutes": ""}, {"window_minutes": None, "cooldown_minutes": None}),
        ({"threshold": "150"}, {"threshold": "Must be between 0 and 100 for error_rate."}),
        ({"metric": "productivity"}, {"metric_type": "Required when metric is productivity."}),
        ({"scope_type": "team"}, {"scope_team": "Required for scope type team."}),
        ({"scope_type": "team", "scope_team": "no-such-team"}, {"scope_team": "Team no-such-team not found."}),
        ({"scope_type": "agent", "scope_name": "a" * 300}, {"scope_name": None}),
        ({"severity": "apocalyptic"}, {"severity": None}),
    ],
)
def test_a_refused_form_comes_back_with_each_problem_beside_its_field(site, changes, problems):
    admin = browser_of(site, site["acme"]["admin"])
    page = send(admin, "/alerts/new", **form(**{"name": "Kept as typed", **changes}))
    assert page.status_code == 400, page.text[:500]
    shown = dict(PROBLEM.findall(page.text))
    assert set(shown) == set(problems), shown
    for name, text in problems.items():
        assert text is None or unescape(shown[name]) == text, shown
        assert (
            f'aria-invalid="true" aria-describedby="{name}-' in page.text
            or f'aria-describedby="{name}-hint {name}-problem"' in page.text
        )
    assert f'value="{changes.get("name", "Kept as typed")}"' in page.text  # the form keeps what was typed
    assert len(api(site, site["acme"]["admin"], "GET", "/api/alerts/rules").get_json()["rules"]) == 3


def test_the_api_refuses_what_the_form_refuses(site):
    """The same body through the API: the same fields named (the form reads into the API's body)."""
    bad = rule_body(threshold=150)
    answer = api(site, site["acme"]["admin"], "POST", "/api/alerts/rules", json=bad)
    assert answer.status_code == 400 and set(answer.get_json()["error"]["details"]) == {"threshold"}


def test_a_manager_may_not_keep_a_rule_outside_their_teams(site):
    manager = browser_of(site, site["acme"]["manager"])
    page = send(manager, "/alerts/new", **form(name="Everyone"))
    assert page.status_code == 403
    assert dict(PROBLEM.findall(page.text)) == {
        "scope_type": "Managers may only keep alert rules scoped to one of their teams."
    }
    page = send(manager, "/alerts/new", **form(name="Ops too", scope_type="team", scope_team=site["ops"]))
    assert page.status_code == 403
    # Only their own teams are offered.
    new = manager.get("/alerts/new").text
    assert f'<option value="{site["core"]}">Core</option>' in new and site["ops"] not in new
    answer = send(manager, "/alerts/new", **form(name="Core errors", scope_type="team", scope_team=site["core"]))
    assert answer.status_code == 303
    assert [name for _, name in listed(manager)] == ["Core errors", "Core latency"]


def test_editing_through_the_form_changes_what_the_api_shows(site):
    admin = browser_of(site, site["acme"]["admin"])
    rule_id = site["rules"]["Org errors"]
    page = admin.get(f"/alerts/{rule_id}/edit").text
    assert 'value="Org errors"' in page and 'value="50"' in page and '<option value="gt" selected>' in page
    fields = form(name="Org errors, strict", threshold="5", comparison="gte", scope_type="agent", scope_name="reviewer")
    answer = send(admin, f"/alerts/{rule_id}/edit", **fields)
    assert answer.status_code == 303 and answer.headers["Location"] == "/alerts?done=saved"
    rule = api(site, site["acme"]["admin"], "GET", f"/api/alerts/rules/{rule_id}").get_json()
    assert (rule["name"], rule["threshold"], rule["comparison"]) == ("Org errors, strict", 5.0, "gte")
    assert rule["scope"] == {"type": "agent", "name": "reviewer"}
    page = send(admin, f"/alerts/{rule_id}/edit", **form(name="", threshold="5"))
    assert page.status_code == 400 and "name" in dict(PROBLEM.findall(page.text))
    assert api(site, site["acme"]["admin"], "GET", f"/api/alerts/rules/{rule_id}").get_json()["name"] == (
        "Org errors, strict"
    )


def test_disable_enable_and_delete_show_in_the_api(site):
    admin = browser_of(site, site["acme"]["admin"])
    rule_id = site["rules"]["Ops calls"]

    def enabled() -> bool:
        return bool(api(site, site["acme"]["admin"], "GET", f"/api/alerts/rules/{rule_id}").get_json()["enabled"])

    assert send(admin, f"/alerts/{rule_id}/enabled", enabled="false").headers["Location"] == "/alerts?done=disabled"
    assert not enabled()
    assert (rule_id, "false") in RULE.findall(admin.get("/alerts").text)
    assert send(admin, f"/alerts/{rule_id}/enabled", enabled="true").status_code == 303 and enabled()
    assert send(admin, f"/alerts/{rule_id}/enabled", enabled="maybe").status_code == 400 and enabled()
    question = admin.get(f"/alerts/{rule_id}/delete")
    assert question.status_code == 200 and "Delete “Ops calls”?" in question.text
    assert f'action="/alerts/{rule_id}/delete"' in question.text
    assert send(admin, f"/alerts/{rule_id}/delete").headers["Location"] == "/alerts?done=deleted"
    assert api(site, site["acme"]["admin"], "GET", f"/api/alerts/rules/{rule_id}").status_code == 404
    assert send(admin, f"/alerts/{rule_id}/delete").status_code == 404  # a second time: gone


def fire_everything(site: dict[str, Any]) -> None:
    """Failures and slow calls of Core's members in the minute before AT, then every due rule evaluated at AT."""
    app: Flask = site["app"]
    acme = site["acme"]
    org = acme["admin"].user.organization_id
    rows = [
        (AT - 60, acme["developer"].user.id, "a", "c", 2000.0, False),
        (AT - 50, acme["manager"].user.id, "a", "c", 900.0, False),
    ]
    executions(app, org, rows)
    assert step_all(app, evaluator(), AT) == 4  # every rule once; Globex's reads no executions of its own
    with app.app_context():
        assert AlertEvent.select().count() == 3


@pytest.mark.parametrize(("who", "count"), [("admin", 3), ("manager", 1)])
def test_the_history_shows_the_alerts_the_api_gives_the_same_person(site, who, count):
    fire_everything(site)
    member = site["acme"][who]
    client = browser_of(site, member)
    page = client.get("/alerts/history")
    assert page.status_code == 200
    shown = [alert_id for alert_id, _ in ALERT.findall(page.text)]
    listed_by_api = api(site, member, "GET", "/api/alerts").get_json()["alerts"]
    assert shown == [alert["id"] for alert in listed_by_api] and len(shown) == count
    assert 'id="alerts-live" data-csrf="' in page.text and "alerts.js" in page.text
    if who == "manager":
        assert "Core latency" in page.text and "Org errors" not in page.text and "2,000 ms" in page.text
    outsider = browser_of(site, site["globex"]["admin"]).get("/alerts/history").text
    assert ALERT.findall(outsider) == [] and "No alerts" in outsider


def test_the_history_pages_and_filters_as_the_api_does(site):
    fire_everything(site)
    admin = browser_of(site, site["acme"]["admin"])
    every = [a["id"] for a in api(site, site["acme"]["admin"], "GET", "/api/alerts").get_json()["alerts"]]
    first, second = admin.get("/alerts/history?limit=2"), admin.get("/alerts/history?limit=2&page=2")
    assert [i for i, _ in ALERT.findall(first.text)] + [i for i, _ in ALERT.findall(second.text)] == every
    assert "Page 1 of 2" in first.text and 'href="/alerts/history?page=2&amp;limit=2" rel="next"' in first.text
    high = admin.get("/alerts/history?severity=high&state=firing")
    assert len(ALERT.findall(high.text)) == 3
    assert ALERT.findall(admin.get("/alerts/history?severity=low").text) == []
    for query in ("page=0", "limit=1000", "state=asleep", "colour=red"):
        assert admin.get("/alerts/history?" + query).status_code == 400, query


def test_a_rule_whose_team_was_deleted_can_still_be_edited_and_disabled(site):
    app, rule_id = site["app"], site["rules"]["Ops calls"]
    with app.app_context():
        accounts.delete_team(accounts.find_team(site["acme"]["admin"].user.organization_id, site["ops"]))
    admin = browser_of(site, site["acme"]["admin"])
    assert "Team no longer in the organization" in admin.get("/alerts").text
    fields = form(name="Ops calls, renamed", metric="call_volume", comparison="lt", threshold="1")
    fields.update(scope_type="team", scope_team=site["ops"])  # as the edit form sends it back
    assert send(admin, f"/alerts/{rule_id}/edit", **fields).status_code == 303
    assert send(admin, f"/alerts/{rule_id}/enabled", enabled="false").status_code == 303
    rule = api(site, site["acme"]["admin"], "GET", f"/api/alerts/rules/{rule_id}").get_json()
    assert (rule["name"], rule["enabled"], rule["scope"]) == (
        "Ops calls, renamed",
        False,
        {"type": "team", "id": site["ops"]},
    )
    moved = send(admin, f"/alerts/{site['rules']['Org errors']}/edit", **{**fields, "name": "Moved"})
    assert moved.status_code == 400 and dict(PROBLEM.findall(moved.text)) == {
        "scope_team": f"Team {site['ops']} not found."
    }
