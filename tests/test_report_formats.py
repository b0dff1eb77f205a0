"""weather_metrics.reports.builder and formats: export files parsed back and compared with the API."""

from __future__ import annotations

import csv
import json
import re
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from xlsxwriter.worksheet import Worksheet

from tests.support import KEEP_HISTORY, Member
from tests.test_org_queries import add_executions, add_productivity, execution, metric
from weather_metrics.accounts import organizations as accounts
from weather_metrics.core.errors import OutOfScope, QueryError, UnknownTarget
from weather_metrics.reports import formats
from weather_metrics.reports.builder import AGENT_FIGURES, ReportTooLarge, build_report
from weather_metrics.reports.contents import COUNT, NUMBER, RATE
from weather_metrics.reports.figures import figure_text
from weather_metrics.reports.filters import check_filters
from weather_metrics.reports.formats import Sheet, write_xlsx
from weather_metrics.store.models import ReportJob

CREATED = int(datetime(2026, 3, 10, tzinfo=UTC).timestamp())
MARCH = {"start_date": "2026-03-02", "end_date": "2026-03-04"}
INJECTIONS = ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database (conftest's seeded_db), keeping data of past dates."""
    return service(**KEEP_HISTORY)


@pytest.fixture
def org_id(acme) -> str:
    return acme["admin"].user.organization_id  # type: ignore[no-any-return]


@pytest.fixture
def march(app, acme, org_id) -> None:
    """Executions of the admin and the developer, with commands a spreadsheet would misread."""
    admin, developer = acme["admin"].user, acme["developer"].user
    items = [
        execution("2026-03-02T10:15:00+00:00", "reviewer", 100.0, True, admin),
        execution("2026-03-02T10:45:00+00:00", "reviewer", 300.0, False, developer),
        execution("2026-03-03T09:00:00+00:00", "writer", 50.0, True, developer),
    ]
    for index, command in enumerate(['a, "quoted"\nline', "Zürich ✓", *INJECTIONS]):
        item, user_id = execution(f"2026-03-04T0{index}:30:00+00:00", "writer", 10.0 + index, True, admin)
        items.append(({**item, "command": command}, user_id))
    add_executions(app, org_id, *items)


def job(app, member: Member, report_type: str, fmt: str, **filters: Any) -> ReportJob:
    with app.app_context():
        return ReportJob.create(
            id=str(uuid.uuid4()),
            organization=member.user.organization_id,
            user=member.user.id,
            report_type=report_type,
            format=fmt,
            filters=json.dumps(filters),
            status="running",
            progress=0,
            rows_written=0,
            attempts=1,
            created_at=CREATED,
            expires_at=CREATED + 86400,
        )


def build(app, member: Member, report_type: str, fmt: str, path: Path, max_rows: int = 1000, **filters: Any) -> int:
    """Build the report; checks that progress is a percentage that reaches 99 (100 is the runner's, once stored)."""
    record = job(app, member, report_type, fmt, **filters)
    seen: list[int] = []
    with app.app_context():
        written = build_report(record, path, max_rows, seen.append)
    assert all(0 <= percent <= 99 for percent in seen) and seen == sorted(seen)
    if written and report_type != "teams":  # teams reports have no row count ahead of time
        assert seen[-1] == 99
    return written


def api(client, member: Member, url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, headers=member.headers, query_string=params)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as source:
        return list(csv.reader(source))


def ooxml_text(value: str) -> str:
    """Text as a spreadsheet shows it: OOXML writes control characters as _xHHHH_ (openpyxl leaves them)."""
    return re.sub(r"_x([0-9A-F]{4})_", lambda match: chr(int(match.group(1), 16)), value)


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def test_csv_quotes_neutralizes_and_matches_the_rows(app, acme, march, tmp_path):
    path = tmp_path / "agents.csv"
    assert build(app, acme["admin"], "agents", "csv", path, **MARCH) == 11
    raw = path.read_bytes()
    assert b'"a, ""quoted""\nline"' in raw and "Zürich ✓".encode() in raw and raw.count(b"\r\n") >= 11
    header, *rows = read_csv(path)
    assert header == ["occurred_at (UTC)", "user", "agent_name", "command", "duration_ms", "success", "error_details"]
    assert rows[0] == ["2026-03-02T10:15:00.000+00:00", "admin@acme.test", "reviewer", "run", "100.0", "true", ""]
    assert rows[1][1:6] == ["developer@acme.test", "reviewer", "run", "300.0", "false"]
    commands = [row[3] for row in rows[3:]]
    assert commands == ['a, "quoted"\nline', "Zürich ✓", *("'" + text for text in INJECTIONS)]
    assert [row[4] for row in rows[3:]] == [str(10.0 + i) for i in range(8)]  # numbers untouched


def test_xlsx_types_header_and_frozen_pane(app, acme, march, tmp_path):
    path = tmp_path / "agents.xlsx"
    assert build(app, acme["admin"], "agents", "xlsx", path, **MARCH) == 11
    book = load_workbook(path)
    assert book.sheetnames == ["Summary", "Data"]
    data = book["Data"]
    assert data.freeze_panes == "A2"
    rows = list(data.iter_rows(values_only=True))
    assert rows[0][0] == "occurred_at (UTC)" and len(rows) == 12
    assert rows[1][:6] == (datetime(2026, 3, 2, 10, 15), "admin@acme.test", "reviewer", "run", 100, True)
    assert isinstance(rows[1][4], int | float) and rows[2][5] is False and rows[2][4] == 300
    expected = ['a, "quoted"\nline', "Zürich ✓", *("'" + text for text in INJECTIONS)]
    assert [ooxml_text(row[3]) for row in rows[4:]] == expected
    assert data.cell(2, 1).is_date
    summary = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row and row[0]}
    assert summary["Organization"] == "Acme" and summary["calls"] == 11


def test_pdf_figures_equal_the_api(app, client, acme, march, tmp_path):
    """The PDF prints the API's figures, each in its unit (reports/figures.py)."""
    path = tmp_path / "agents.pdf"
    assert build(app, acme["admin"], "agents", "pdf", path, **MARCH) == 11
    text = pdf_text(path)
    body = api(client, acme["admin"], "/api/metrics/agents", **MARCH)
    assert "Agent usage report" in text and "Organization: Acme" in text
    assert "Period: 2026-03-02 to 2026-03-04 (UTC)" in text and "Calls per day" in text
    for column in AGENT_FIGURES:
        assert f"{column.heading}\n{figure_text(body['totals'][column.name], column.unit)}" in text, column.name
    assert body["totals"]["calls"] == 11
    for agent in body["agents"]:
        figures = [
            figure_text(agent[k], unit) for k, unit in (("calls", COUNT), ("successes", COUNT), ("success_rate", RATE))
        ]
        assert " ".join([agent["agent_name"], *figures[:2]]) in text.replace("\n", " ")
        assert figures[2].endswith(" %") and figures[2] in text


def test_pdf_keeps_the_first_rows_and_says_so(app, acme, org_id, tmp_path):
    admin = acme["admin"].user
    add_executions(
        app,
        org_id,
        *(execution(f"2026-03-02T{h:02d}:{m:02d}:00+00:00", user=admin) for h in range(24) for m in range(0, 60, 2)),
    )
    path = tmp_path / "many.pdf"
    assert build(app, acme["admin"], "agents", "pdf", path, **MARCH) == 720
    assert "First 500 of 720 rows; the CSV and XLSX exports hold all of them." in pdf_text(path)


def test_productivity_report_matches_the_api(app, client, acme, org_id, tmp_path):
    developer = acme["developer"].user
    add_productivity(
        app,
        org_id,
        metric("2026-03-02T10:00:00+00:00", "commits", 3, developer),
        metric("2026-03-03T10:00:00+00:00", "commits", 4, developer),
        metric("2026-03-03T11:00:00+00:00", "deployments", 1.5, acme["admin"].user),
    )
    path = tmp_path / "productivity.pdf"
    assert build(app, acme["admin"], "productivity", "pdf", path, **MARCH) == 3
    text = pdf_text(path).replace("\n", " ")
    body = api(client, acme["admin"], "/api/metrics/productivity", **MARCH)
    for total in body["totals"]:
        figures = (figure_text(total[k], NUMBER) for k in ("sum", "avg", "min", "max"))
        assert " ".join([total["metric_type"], str(total["samples"]), *figures]) in text
    assert "commits 2 7 3.50 3 4" in text and "deployments 1 1.50 1.50 1.50 1.50" in text
    csv_path = tmp_path / "productivity.csv"
    build(app, acme["developer"], "productivity", "csv", csv_path, **MARCH)
    rows = read_csv(csv_path)[1:]
    assert [(r[1], float(r[2]), r[3]) for r in rows] == [
        ("commits", 3.0, "developer@acme.test"),
        ("commits", 4.0, "developer@acme.test"),
    ]
    mine = api(client, acme["developer"], "/api/metrics/productivity", **MARCH)
    assert sum(float(r[2]) for r in rows) == sum(t["sum"] for t in mine["totals"])


def test_a_developer_exports_only_their_executions(app, client, acme, march, tmp_path):
    path = tmp_path / "mine.csv"
    assert build(app, acme["developer"], "agents", "csv", path, **MARCH) == 2
    rows = read_csv(path)[1:]
    assert {row[1] for row in rows} == {"developer@acme.test"}
    assert len(rows) == api(client, acme["developer"], "/api/metrics/agents", **MARCH)["totals"]["calls"]


def test_filters_narrow_the_rows(app, acme, march, tmp_path):
    path = tmp_path / "ok.csv"
    assert build(app, acme["admin"], "agents", "csv", path, agent_name="reviewer", success_only=True, **MARCH) == 1


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "pdf"])
def test_too_many_rows_fail_and_leave_no_file(app, acme, march, tmp_path, fmt):
    path = tmp_path / f"big.{fmt}"
    with pytest.raises(ReportTooLarge, match="more than 5 rows"):
        build(app, acme["admin"], "agents", fmt, path, max_rows=5, **MARCH)
    assert not path.exists()


def test_teams_report_ranks_teams(app, acme, org_id, tmp_path):
    with app.app_context():
        platform = accounts.create_team(org_id, "Platform", "")
        mobile = accounts.create_team(org_id, "Mobile", "")
    add_productivity(
        app,
        org_id,
        metric("2026-03-02T10:00:00+00:00", "commits", 5, team=platform),
        metric("2026-03-02T11:00:00+00:00", "commits", 2, team=mobile),
    )
    path = tmp_path / "teams.xlsx"
    filters = {**MARCH, "team_ids": [platform.id, mobile.id], "metric_types": ["commits"]}
    assert build(app, acme["admin"], "teams", "xlsx", path, **filters) == 2
    rows = list(load_workbook(path)["Data"].iter_rows(values_only=True))
    assert rows[0] == ("team", "team_id", "members", "commits", "commits rank")
    assert rows[1:] == [("Platform", platform.id, 0, 5, 1), ("Mobile", mobile.id, 0, 2, 2)]
    assert "Commits by team" in pdf_text(_pdf(app, acme, tmp_path, filters))


def _pdf(app, acme, tmp_path: Path, filters: dict[str, Any]) -> Path:
    path = tmp_path / "teams.pdf"
    build(app, acme["admin"], "teams", "pdf", path, **filters)
    return path


NOW = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("report_type", "filters", "key"),
    [
        ("agents", {"colour": "red"}, "filters.colour"),
        ("agents", {"success_only": "yes"}, "filters.success_only"),
        ("agents", {"start_date": 20260301}, "filters.start_date"),
        ("agents", {"start_date": "yesterday"}, "filters.start_date"),
        ("productivity", {"aggregation": "year"}, "filters.aggregation"),
        ("productivity", {"metric_type": "Bad Type"}, "filters.metric_type"),
        ("productivity", {"agent_name": "reviewer"}, "filters.agent_name"),
        ("teams", {"team_ids": "abc"}, "filters.team_ids"),
        ("teams", {"user_id": "abc"}, "filters.user_id"),
    ],
)
def test_check_filters_rejects_bad_filters(app, acme, report_type, filters, key):
    with app.app_context(), pytest.raises(QueryError) as caught:
        check_filters(report_type, filters, acme["admin"].user, NOW, 400, fmt="pdf")
    assert key in caught.value.details


def test_check_filters_scope(app, acme, globex):
    other = globex
    with app.app_context():
        foreign = accounts.create_team(other["admin"].user.organization_id, "Foreign", "")
        with pytest.raises(UnknownTarget):
            check_filters("productivity", {"team_id": foreign.id}, acme["admin"].user, NOW, 400, fmt="pdf")
        with pytest.raises(UnknownTarget):
            check_filters("teams", {"team_ids": [foreign.id]}, acme["admin"].user, NOW, 400, fmt="pdf")
        with pytest.raises(OutOfScope):
            check_filters("agents", {"user_id": acme["admin"].user.id}, acme["developer"].user, NOW, 400, fmt="pdf")
        with pytest.raises(OutOfScope):
            check_filters("teams", {}, acme["developer"].user, NOW, 400, fmt="pdf")
        normalized = check_filters(
            "agents", {"start_date": " 2026-03-02 "}, acme["developer"].user, NOW, 400, fmt="pdf"
        )
    assert normalized == {"start_date": "2026-03-02", "aggregation": "day", "success_only": False}


class PlainSheet(Worksheet):
    """XlsxWriter's own worksheet, each row through write_row: what RowSheet must write byte for byte."""

    def append_row(self, row: int, values: Any) -> None:
        self.write_row(row, 0, values)


AWKWARD_TEXT = [
    "plain",
    "",
    " leading",
    "trailing ",
    "tab\there",
    "line\nbreak",
    'a & b < c > "d"',
    "_x0041_ looks escaped",
    "<r>rich?</r>",
    "\x01\x1f control",
    "\ufffe\uffff",
    "Zürich ✓ 😀",
    "😀" * 17_000,  # past half the cell limit: measured in UTF-16 units, then cut
    *INJECTIONS,
]
AWKWARD_VALUES = [
    0,
    -0.0,
    1.5,
    1e-300,
    2**53 + 1,
    10**20,
    True,
    False,
    None,
    datetime(2026, 3, 2, 10, 15, 30, 123456),
    datetime(2026, 3, 2, 10, 15, tzinfo=UTC),
    datetime(1900, 2, 28),
]


def test_xlsx_rows_are_byte_for_byte_what_xlsxwriter_writes(tmp_path, monkeypatch):
    rows = [
        (text, AWKWARD_VALUES[i % len(AWKWARD_VALUES)], None, AWKWARD_VALUES[(i * 5) % len(AWKWARD_VALUES)])
        for i, text in enumerate(AWKWARD_TEXT * 3)
    ]
    rows += [(), ("only one",), (None, None, None, 7)]

    def workbook(path: Path) -> dict[str, bytes]:
        sheets = [
            Sheet("Summary", (), [("Report", "x"), (), ("calls", 3)], data=False),
            Sheet("Data", ("text", "value", "nothing", "other"), rows),
        ]
        assert write_xlsx(path, sheets) == len(rows)
        with zipfile.ZipFile(path) as archive:
            # docProps/core.xml holds the time the file was made
            return {name: archive.read(name) for name in archive.namelist() if name != "docProps/core.xml"}

    ours = workbook(tmp_path / "ours.xlsx")
    monkeypatch.setattr(formats, "RowSheet", PlainSheet)
    theirs = workbook(tmp_path / "theirs.xlsx")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name] == theirs[name], name
