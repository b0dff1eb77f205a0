"""/exports: everyone signed in requests exports through a form that accepts and refuses what POST
/api/reports/export does, follows the jobs the API shows them and downloads the same file; another person's or
organization's export is 404. In Chromium: test_pages_exports_browser.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from tests.support import Member
from tests.test_signin import TOKEN, bearer, sign_in
from weather_metrics.accounts import organizations as accounts
from weather_metrics.store.models import ReportJob

JOB = re.compile(r'<li class="export-list__item" data-job="([0-9a-f-]{36})" data-status="(\w+)">')
PROBLEM = re.compile(r'<p class="field__problem" id="(\w+)-problem">([^<]*)</p>')
ROLES = ("admin", "manager", "developer")


@pytest.fixture
def site(service, acme, globex) -> dict[str, Any]:
    """Acme with team Core (manager, developer) and Ops; the runner stopped, so each test runs jobs itself."""
    app = service()
    app.extensions["weather_metrics"].reports.close()
    org_id = acme["admin"].user.organization_id
    with app.app_context():
        core = accounts.create_team(org_id, "Core", "")
        ops = accounts.create_team(org_id, "Ops", "")
        accounts.add_member(core, acme["manager"].user, "lead")
        accounts.add_member(core, acme["developer"].user, "member")
    return {"app": app, "acme": acme, "globex": globex, "core": core.id, "ops": ops.id}


def browser_of(site: dict[str, Any], member: Member) -> Any:
    client = site["app"].test_client()
    assert sign_in(client, member).status_code == 303
    return client


def api(site: dict[str, Any], member: Member, method: str, path: str, **kwargs: Any) -> Any:
    client = site["app"].test_client()
    return client.open(path, method=method, headers=bearer(client, member), **kwargs)


def token_of(client: Any) -> str:
    found = TOKEN.search(client.get("/exports").text)
    assert found
    return found.group(1)


def form(**changes: str) -> dict[str, str]:
    """The form as a person fills it in: a CSV of the productivity metrics, by day, with its rows."""
    return {"report_type": "productivity", "format": "csv", "aggregation": "day", "include_rows": "on", **changes}


def send(client: Any, **fields: str) -> Any:
    return client.post("/exports", data={"csrf_token": token_of(client), **form(**fields)})


def listed(client: Any) -> list[tuple[str, str]]:
    """(id, status) of each export on /exports, in the page's order."""
    page = client.get("/exports")
    assert page.status_code == 200, page.text[:500]
    return JOB.findall(page.text)


def run_all(site: dict[str, Any]) -> int:
    ran = 0
    with site["app"].app_context():
        while site["app"].extensions["weather_metrics"].reports.run_once(datetime.now(UTC)):
            ran += 1
    return ran


def all_jobs(site: dict[str, Any]) -> list[ReportJob]:
    with site["app"].app_context():
        return list(ReportJob.select())


@pytest.mark.parametrize("who", ROLES)
def test_everyone_signed_in_sees_exports_in_the_navigation_and_the_form(site, who):
    page = browser_of(site, site["acme"][who]).get("/exports")
    assert page.status_code == 200
    assert 'href="/exports" aria-current="page">Exports</a>' in page.text
    assert '<form class="form" method="post" action="/exports"' in page.text
    assert "No exports yet" in page.text
    assert ("Teams compared" in page.text) is (who != "developer")  # teams reports: admins and managers


def test_the_pages_need_someone_signed_in(site):
    client = site["app"].test_client()
    for path in ("/exports", "/exports/jobs", "/exports/0/download"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["Location"] == "/sign-in?next=" + path
    assert client.post("/exports", data=form()).status_code == 403  # no token: refused before anything
    token = TOKEN.search(client.get("/sign-in").text).group(1)  # type: ignore[union-attr]
    answer = client.post("/exports", data={"csrf_token": token, **form()})
    assert answer.status_code == 303 and answer.headers["Location"] == "/sign-in?next=/exports"
    assert all_jobs(site) == []


def test_the_pages_allowance_of_exports_is_the_apis(site):
    app = site["app"]
    app.extensions["weather_metrics"].settings["export_rate_limit"] = "2 per hour"
    client = browser_of(site, site["acme"]["developer"])
    assert [send(client).status_code for _ in range(3)] == [303, 303, 429]
    assert len(all_jobs(site)) == 2
    assert client.get("/exports").status_code == 200  # the other pages still answer


def test_the_page_and_the_api_spend_one_allowance_of_exports(site):
    """export_rate_limit is a person's, wherever they ask: two through the API leave one for the page."""
    app = site["app"]
    app.extensions["weather_metrics"].settings["export_rate_limit"] = "3 per hour"
    developer = site["acme"]["developer"]
    body = {"report_type": "productivity", "format": "csv"}
    assert [api(site, developer, "POST", "/api/reports/export", json=body).status_code for _ in range(2)] == [202, 202]
    client = browser_of(site, developer)
    assert [send(client).status_code for _ in range(2)] == [303, 429]
    assert api(site, developer, "POST", "/api/reports/export", json=body).status_code == 429
    assert len(all_jobs(site)) == 3
    other = browser_of(site, site["acme"]["manager"])  # another person's allowance is untouched
    assert send(other).status_code == 303


def test_a_form_without_this_browsers_token_is_refused_and_queues_nothing(site):
    admin = browser_of(site, site["acme"]["admin"])
    other = browser_of(site, site["acme"]["admin"])
    for token in (None, "0" * 64, token_of(other)):
        data = {} if token is None else {"csrf_token": token}
        assert admin.post("/exports", data={**data, **form()}).status_code == 403
    assert all_jobs(site) == []


def test_an_export_requested_on_the_page_is_the_job_the_api_shows(site):
    developer = site["acme"]["developer"]
    client = browser_of(site, developer)
    answer = send(client, start_date="2025-11-01", end_date="2025-11-10", aggregation="week", agent_name="x")
    assert answer.status_code == 303 and answer.headers["Location"] == "/exports?done=requested"
    assert "The export is queued" in client.get(answer.headers["Location"]).text
    [(job_id, status)] = listed(client)
    job = api(site, developer, "GET", f"/api/reports/{job_id}").get_json()
    assert status == job["status"] == "queued"
    assert (job["report_type"], job["format"]) == ("productivity", "csv")
    # agent_name is no filter of productivity reports: the page leaves it out, as the form's hint says
    assert job["filters"] == {
        "start_date": "2025-11-01",
        "end_date": "2025-11-10",
        "aggregation": "week",
        "include_rows": True,
    }


def test_the_list_and_its_json_are_the_jobs_the_api_shows_each_person(site):
    acme, globex = site["acme"], site["globex"]
    mine = {who: send(browser_of(site, acme[who]), format="xlsx") for who in ROLES}
    assert all(answer.status_code == 303 for answer in mine.values())
    assert send(browser_of(site, globex["admin"])).status_code == 303
    run_all(site)
    for who, count in (("admin", 3), ("manager", 1), ("developer", 1)):
        member = acme[who]
        client = browser_of(site, member)
        shown = listed(client)
        assert len(shown) == count
        polled = client.get("/exports/jobs").get_json()["jobs"]
        for (job_id, status), job in zip(shown, polled, strict=True):
            from_api = api(site, member, "GET", f"/api/reports/{job_id}").get_json()
            assert status == from_api["status"] == "done"
            assert job.pop("page_download_url") == f"/exports/{job_id}/download"
            assert job == from_api
    assert len(listed(browser_of(site, globex["admin"]))) == 1  # Globex's own, none of Acme's


def test_a_download_is_the_file_the_api_serves(site):
    developer = site["acme"]["developer"]
    add_executions(site, developer)
    client = browser_of(site, developer)
    assert send(client, report_type="agents").status_code == 303
    [(job_id, _)] = listed(client)
    assert client.get(f"/exports/{job_id}/download").status_code == 409  # still queued
    assert run_all(site) == 1
    page = client.get("/exports").text
    assert f'href="/exports/{job_id}/download" aria-describedby="job-1">Download</a>' in page
    mine = client.get(f"/exports/{job_id}/download")
    theirs = api(site, developer, "GET", f"/api/reports/{job_id}/download")
    assert mine.status_code == theirs.status_code == 200
    assert mine.data == theirs.data
    assert mine.data.startswith(b"occurred_at (UTC),") and mine.data.count(b"reviewer") == 3
    for header in ("Content-Type", "Content-Disposition", "Content-Length", "Cache-Control"):
        assert mine.headers[header] == theirs.headers[header]
    # the admin may download it too, as on the API; the manager of the developer's team may not, nor an outsider
    assert browser_of(site, site["acme"]["admin"]).get(f"/exports/{job_id}/download").data == mine.data
    for outsider in (site["acme"]["manager"], site["globex"]["admin"]):
        assert browser_of(site, outsider).get(f"/exports/{job_id}/download").status_code == 404
        assert api(site, outsider, "GET", f"/api/reports/{job_id}/download").status_code == 404


def test_a_file_recorded_by_another_host_downloads_from_this_hosts_folder(site):
    """A shared export folder may be mounted elsewhere on the host that built the file (docs/scaling.md)."""
    developer = site["acme"]["developer"]
    add_executions(site, developer)
    client = browser_of(site, developer)
    assert send(client, report_type="agents").status_code == 303
    [(job_id, _)] = listed(client)
    assert run_all(site) == 1
    with site["app"].app_context():
        job = ReportJob.get_by_id(job_id)
        job.file_path = "/mnt/elsewhere/" + Path(job.file_path).name
        job.save()
    mine = client.get(f"/exports/{job_id}/download")
    theirs = api(site, developer, "GET", f"/api/reports/{job_id}/download")
    assert mine.status_code == theirs.status_code == 200
    assert mine.data == theirs.data


def add_executions(site: dict[str, Any], member: Member) -> None:
    """Three calls of the agent `reviewer` by `member`, an hour apart, in the last hours."""
    hour = int(datetime.now(UTC).timestamp()) // 3600 * 3600
    items = [
        {
            "agent_name": "reviewer",
            "command": "review",
            "execution_time_ms": 100 + n,
            "success": n != 1,
            "timestamp": datetime.fromtimestamp(hour - n * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": member.user.id,
        }
        for n in range(3)
    ]
    assert api(site, member, "POST", "/api/metrics/agents", json=items).status_code == 201


def problems_of(answer: Any) -> dict[str, str]:
    return {name: unescape(text) for name, text in PROBLEM.findall(answer.text)}


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"format": "docx"}, {"format": "Must be one of: csv, xlsx, pdf."}),
        ({"report_type": "weather"}, {"report_type": "Must be one of: productivity, agents, teams."}),
        ({"start_date": "2025-13-40"}, {"start_date": ""}),
        ({"aggregation": "fortnight"}, {"aggregation": "Must be one of: hour, day, week, month."}),
        ({"include_rows": ""}, {"include_rows": "A CSV file is its data rows: ask for a pdf or xlsx report"}),
        ({"metric_type": "no spaces allowed"}, {"metric_type": ""}),
    ],
)
def test_a_refused_form_comes_back_with_each_problem_beside_its_field(site, changes, problems):
    client = browser_of(site, site["acme"]["admin"])
    answer = send(client, **changes)
    assert answer.status_code == 400
    shown = problems_of(answer)
    assert shown.keys() == problems.keys()
    for name, start in problems.items():
        assert shown[name].startswith(start)
    assert f'id="{name}"' in answer.text and 'aria-invalid="true"' in answer.text
    assert all_jobs(site) == []
    body = {"report_type": "productivity", "format": "csv", "filters": {"aggregation": "day"}}
    for key, value in changes.items():
        if key in ("format", "report_type"):
            body[key] = value
        else:
            body["filters"][key] = False if key == "include_rows" else value  # type: ignore[index]
    assert api(site, site["acme"]["admin"], "POST", "/api/reports/export", json=body).status_code == 400


def test_a_user_or_team_outside_the_scope_is_refused_as_by_the_api(site):
    acme = site["acme"]
    developer = browser_of(site, acme["developer"])
    answer = send(developer, report_type="teams")
    assert answer.status_code == 403 and "Teams reports are for admins and managers." in answer.text
    assert send(developer, team_id=site["ops"]).status_code == 403
    assert send(developer, user_id=acme["admin"].user.id).status_code == 403
    manager = browser_of(site, acme["manager"])
    assert send(manager, report_type="teams", team_ids=site["ops"]).status_code == 403
    assert send(manager, team_id=site["core"]).status_code == 303
    stranger = site["globex"]["admin"].user.id
    assert send(browser_of(site, acme["admin"]), user_id=stranger).status_code == 404
    assert len(all_jobs(site)) == 1


def test_the_form_offers_only_the_people_and_teams_of_the_viewers_scope(site):
    acme = site["acme"]
    page = browser_of(site, acme["developer"]).get("/exports").text
    assert acme["developer"].user.email in page and acme["admin"].user.email not in page
    assert ">Core</option>" not in page  # a developer's scope has no team
    page = browser_of(site, acme["manager"]).get("/exports").text
    assert ">Core</option>" in page and ">Ops</option>" not in page
    page = browser_of(site, acme["admin"]).get("/exports").text
    assert ">Core</option>" in page and ">Ops</option>" in page and acme["developer"].user.email in page
