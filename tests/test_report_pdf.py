"""weather_metrics.reports.pdf: PDF reports drawn by poppler and read back as a reader would see them.

Pages are rendered with pdftoppm and words placed with pdftotext (Debian's poppler-utils,
which .ci/run installs); without them these tests skip, or fail under
WEATHER_METRICS_TEST_STRICT=1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from tests.support import KEEP_HISTORY, PdfWord, pdf_page_image, pdf_words, poppler
from tests.test_org_queries import add_executions, add_productivity, execution, metric
from tests.test_report_formats import MARCH, NOW, build, pdf_text
from weather_metrics.accounts import organizations as accounts
from weather_metrics.core.errors import QueryError
from weather_metrics.reports.charts import BAR
from weather_metrics.reports.contents import COUNT, RATE, Chart, Column, Figure, Report, Table
from weather_metrics.reports.filters import check_filters
from weather_metrics.reports.pdf import write_pdf


@pytest.fixture(autouse=True)
def _poppler() -> None:
    poppler()


@pytest.fixture
def app(service):  # type: ignore[no-untyped-def]
    """A copy of the shared seeded database, keeping data of past dates."""
    return service(**KEEP_HISTORY)


@pytest.fixture
def org_id(acme) -> str:
    return acme["admin"].user.organization_id  # type: ignore[no-any-return]


@pytest.fixture
def executions(app, acme, org_id) -> None:
    """Three executions with durations that print with separators, and non-Latin-1 commands."""
    admin, developer = acme["admin"].user, acme["developer"].user
    items = [
        execution("2026-03-02T10:15:00+00:00", "reviewer", 2641.6, True, admin),
        execution("2026-03-03T09:00:00+00:00", "reviewer", 958.4, True, developer),
        execution("2026-03-04T08:00:00+00:00", "writer", 4324.8, False, developer),
    ]
    commands = ["Zürich ✓ deploy", "Łódź build", "東京 sync"]
    commanded = (({**item, "command": text}, user) for (item, user), text in zip(items, commands, strict=True))
    add_executions(app, org_id, *commanded)


def checked_build(app, acme, report_type: str, fmt: str, path: Path, **filters: Any) -> int:
    """Build a report from filters normalized as the API does (defaults filled in)."""
    with app.app_context():
        normalized = check_filters(report_type, filters, acme["admin"].user, NOW, 400, fmt=fmt)
    return build(app, acme["admin"], report_type, fmt, path, **normalized)


def words_on(words: list[PdfWord], page: int) -> list[PdfWord]:
    return [word for word in words if word.page == page]


def heading_at(words: list[PdfWord], text: str) -> PdfWord:
    """The first word of a heading that is printed once."""
    first, *rest = text.split()
    found = [
        word
        for index, word in enumerate(words)
        if word.text == first and [w.text for w in words[index + 1 : index + 1 + len(rest)]] == rest
    ]
    assert len(found) == 1, (text, found)
    return found[0]


def is_bar(pixel: Sequence[int]) -> bool:
    return all(abs(channel - want) < 40 for channel, want in zip(pixel, BAR, strict=True))


def bar_pixels(image: Any, top: float, bottom: float) -> int:
    """Pixels of the bar colour between two heights (in points, at 72 dpi)."""
    width = image.size[0]
    return sum(is_bar(image.getpixel((x, y))) for y in range(int(top), int(bottom)) for x in range(0, width, 2))


def test_header_lines_give_the_period_once_and_only_filters_that_narrow(app, acme, executions, tmp_path):
    path = tmp_path / "agents.pdf"
    assert checked_build(app, acme, "agents", "pdf", path, **MARCH) == 3
    text = pdf_text(path)
    assert text.count("Period:") == 1 and text.count("2026-03-02 to 2026-03-04") == 1, text
    assert "Period: 2026-03-02 to 2026-03-04 (UTC)" in text
    assert "Filters: none" in text
    for hidden in ("start_date", "end_date", "success_only", "successful calls only", "aggregation", "false"):
        assert hidden not in text, hidden
    narrowed = tmp_path / "narrowed.pdf"
    checked_build(app, acme, "agents", "pdf", narrowed, **MARCH, agent_name="reviewer", success_only=True)
    assert "Filters: agent: reviewer; successful calls only: yes" in pdf_text(narrowed)


def test_figures_read_as_percentages_durations_and_separated_thousands(app, acme, executions, org_id, tmp_path):
    path = tmp_path / "agents.pdf"
    checked_build(app, acme, "agents", "pdf", path, **MARCH)
    text = pdf_text(path)
    assert "success rate\n66.7 %" in text and "avg duration\n2,642 ms" in text, text
    assert "reviewer 2 2 0 100.0 % 1,800 ms" in text.replace("\n", " ")
    for raw in ("0.6667", "2641.6", "958.4", "1800.0", "T00:00"):
        assert raw not in text, raw
    add_productivity(app, org_id, metric("2026-03-03T10:00:00+00:00", "lines_added", 1668.0, acme["admin"].user))
    productivity = tmp_path / "productivity.pdf"
    checked_build(app, acme, "productivity", "pdf", productivity, **MARCH)
    text = pdf_text(productivity)
    assert "lines_added 1 1,668 1,668 1,668 1,668" in text.replace("\n", " ")
    assert "1668" not in text


def test_numbers_are_right_aligned_and_text_left_aligned(app, acme, executions, tmp_path):
    path = tmp_path / "agents.pdf"
    checked_build(app, acme, "agents", "pdf", path, **MARCH)
    words = pdf_words(path)
    heading = heading_at(words, "Data rows")
    rows = [w for w in words_on(words, heading.page) if w.top > heading.bottom]
    units = [w for w in rows if w.text == "ms"]
    numbers = [rows[rows.index(w) - 1] for w in units]
    assert [n.text for n in numbers] == ["2,642", "958", "4,325"]
    assert max(w.right for w in units) - min(w.right for w in units) < 0.5  # one right edge...
    assert max(n.left for n in numbers) - min(n.left for n in numbers) > 1  # ...whatever the width
    users = [w for w in rows if w.text.endswith("@acme.test")]
    assert len(users) == 3 and max(w.left for w in users) - min(w.left for w in users) < 0.5


def test_table_cells_after_a_chart_are_not_filled_with_the_bar_colour(app, acme, executions, tmp_path):
    path = tmp_path / "agents.pdf"
    checked_build(app, acme, "agents", "pdf", path, **MARCH)
    words = pdf_words(path)
    chart, data = heading_at(words, "Calls per day"), heading_at(words, "Data rows")
    assert (chart.page, chart.top) < (data.page, data.top)
    image = pdf_page_image(path, data.page)
    cells = [w for w in words_on(words, data.page) if w.text.endswith("@acme.test") and w.top > data.bottom]
    assert len(cells) == 3
    for cell in cells:
        middle = int((cell.top + cell.bottom) / 2)
        beside = [image.getpixel((int(cell.right) + dx, middle)) for dx in range(2, 6)]
        assert all(min(pixel) > 200 for pixel in beside), beside  # white paper, not the bar colour
    assert bar_pixels(image, min(c.top for c in cells), max(c.bottom for c in cells)) == 0
    if chart.page == data.page:  # the check can see the bar colour where there is some
        assert bar_pixels(image, chart.bottom, data.top) > 100


def synthetic(agents: int) -> Report:
    """A report whose breakdown is `agents` rows long, pushing the chart's heading down the page."""
    return Report(
        title="Agent usage report",
        organization="Acme",
        period="2026-03-01 to 2026-03-30 (UTC)",
        filters=[],
        summary=[Figure("calls", 1234, COUNT), Figure("success rate", 0.876, RATE)],
        breakdown=Table(
            "By agent", (Column("agent"), Column("calls", COUNT)), [(f"agent-{i}", i) for i in range(agents)]
        ),
        charts=[
            Chart(
                "Calls per day",
                [f"{day} Mar" for day in range(1, 31)],
                [float(d % 7) for d in range(30)],
                COUNT,
                "calls",
                "day",
            )
        ],
        columns=(Column("n", COUNT),),
        rows=[(n,) for n in range(5)],
    )


def test_a_chart_heading_is_never_left_at_the_foot_of_a_page(tmp_path):
    moved = 0
    for agents in range(4, 40, 3):
        path = tmp_path / f"report-{agents}.pdf"
        write_pdf(path, synthetic(agents))
        words = pdf_words(path)
        heading = heading_at(words, "Calls per day")
        image = pdf_page_image(path, heading.page)
        axis = [w for w in words_on(words, heading.page) if w.text == "day" and w.top > heading.bottom]
        assert axis, f"{agents} agents: the chart is not on the page of its heading"
        assert bar_pixels(image, heading.bottom, axis[0].top) > 100, agents
        moved += heading.page > 1
    assert moved, "no case put the chart on a later page: the check did not test the page foot"


def test_a_count_axis_has_whole_ticks_and_dates_read_as_days(tmp_path):
    path = tmp_path / "report.pdf"
    write_pdf(path, synthetic(3))
    words = pdf_words(path)
    heading = heading_at(words, "Calls per day")
    axis = next(w for w in words_on(words, heading.page) if w.text == "day" and w.top > heading.bottom)
    chart = [w for w in words_on(words, heading.page) if heading.bottom < w.top < axis.top]
    months = [index for index, word in enumerate(chart) if word.text == "Mar"]
    labels = [(chart[i - 1].left, chart[i].right, f"{chart[i - 1].text} Mar") for i in months]
    ticks = [w.text for i, w in enumerate(chart) if w.text.isdigit() and i + 1 not in months]
    assert sorted(ticks, key=int) == ["0", "2", "4", "6"], ticks  # whole calls, never "3.50"
    assert labels[0][2] == "1 Mar" and len(labels) >= 10, labels
    assert all(left > before_right for (_, before_right, _), (left, _, _) in zip(labels, labels[1:], strict=False)), (
        labels
    )
    assert "calls" in [w.text for w in chart]


def test_one_chart_per_metric_type_never_a_sum_of_types(app, acme, org_id, tmp_path):
    developer = acme["developer"].user
    add_productivity(
        app,
        org_id,
        metric("2026-03-02T10:00:00+00:00", "commits", 3, developer),
        metric("2026-03-03T10:00:00+00:00", "focus_minutes", 240, developer),
        metric("2026-03-03T11:00:00+00:00", "pull_requests", 2, developer),
    )
    path = tmp_path / "productivity.pdf"
    checked_build(app, acme, "productivity", "pdf", path, **MARCH)
    words = pdf_words(path)
    for title, measure in [
        ("Commits per day", "commits"),
        ("Focus minutes per day", "focus"),
        ("Pull requests per day", "pull"),
    ]:
        heading = heading_at(words, title)
        below = [w.text for w in words_on(words, heading.page) if w.top > heading.bottom]
        assert measure in below and "day" in below, title
    text = pdf_text(path)
    assert "Sum of values" not in text and "245" not in text  # 3 + 240 + 2 is no figure of anything


def inked(image: Any, word: PdfWord, scale: int = 2) -> int:
    """Dark pixels inside a word's box on a page drawn at 72 * `scale` dpi: 0 when its glyphs drew nothing."""
    region = image.crop(tuple(int(v * scale) for v in (word.left, word.top, word.right + 1, word.bottom + 1)))
    return sum(max(region.getpixel((x, y))) < 160 for x in range(region.width) for y in range(region.height))


SCRIPTS = ("Zürich ✓", "Łódź", "Москва", "Αθήνα", "東京", "서울", "ひろしま", "北京市", "臺北", "똠방")


def test_names_in_any_script_are_printed(app, acme, org_id, executions, tmp_path):
    """Latin, Cyrillic, Greek, Chinese (simplified and traditional), Japanese kana, Korean (a syllable
    outside KS X 1001 too), and Arabic letters: as text a reader can copy, and drawn on the page."""
    arabic = "القاهرة"
    with app.app_context():
        teams = [accounts.create_team(org_id, name, "") for name in (*SCRIPTS, arabic)]
    add_productivity(app, org_id, *(metric("2026-03-02T10:00:00+00:00", "commits", 2, team=t) for t in teams))
    path = tmp_path / "teams.pdf"
    checked_build(app, acme, "teams", "pdf", path, **MARCH, team_ids=[t.id for t in teams], metric_types=["commits"])
    placed = pdf_words(path)
    words = " ".join(w.text for w in placed)
    for name in SCRIPTS:
        assert words.count(name) >= 3, name  # the filter line, the table and the chart
    assert "?" not in words and teams[0].id not in words  # ids are for CSV and XLSX
    # Arabic letters print unjoined, left to right (no shaping engine): each word holds them all.
    assert len([w for w in placed if sorted(w.text) == sorted(arabic)]) >= 3
    pages = {n: pdf_page_image(path, n, dpi=144) for n in {w.page for w in placed}}
    for word in placed:
        if word.text in SCRIPTS[2:] or sorted(word.text) == sorted(arabic):
            assert inked(pages[word.page], word) > 10, (word.text, word.page)
    agents = tmp_path / "agents.pdf"
    checked_build(app, acme, "agents", "pdf", agents, **MARCH)
    assert all(text in " ".join(w.text for w in pdf_words(agents)) for text in ("Zürich ✓", "Łódź", "東京 sync"))


def test_the_data_rows_can_be_left_out(app, acme, executions, tmp_path):
    path = tmp_path / "summary.pdf"
    assert checked_build(app, acme, "agents", "pdf", path, **MARCH, include_rows=False) == 0
    text = pdf_text(path)
    assert "Data rows" not in text and "Zürich" not in text and "data rows: no" in text
    assert "Calls per day" in text and "By agent" in text
    workbook = tmp_path / "summary.xlsx"
    assert checked_build(app, acme, "agents", "xlsx", workbook, **MARCH, include_rows=False) == 0
    assert load_workbook(workbook).sheetnames == ["Summary"]
    full = tmp_path / "full.pdf"
    assert checked_build(app, acme, "agents", "pdf", full, **MARCH, include_rows=True) == 3
    assert "Data rows" in pdf_text(full) and "data rows" not in pdf_text(full)


@pytest.mark.parametrize(("fmt", "value"), [("csv", False), ("pdf", "no"), ("xlsx", 0)])
def test_include_rows_is_a_boolean_and_a_csv_cannot_leave_its_rows_out(app, acme, fmt, value):
    with app.app_context(), pytest.raises(QueryError) as caught:
        check_filters("agents", {"include_rows": value}, acme["admin"].user, NOW, 400, fmt=fmt)
    assert "filters.include_rows" in caught.value.details


def test_a_pdf_stays_small_with_the_fonts_embedded(app, acme, executions, tmp_path):
    path = tmp_path / "agents.pdf"
    checked_build(app, acme, "agents", "pdf", path, **MARCH)
    assert path.stat().st_size < 150_000  # subsets of DejaVu Sans and Noto Sans CJK, not whole fonts


def test_the_cjk_font_is_the_subset_its_readme_describes_with_its_licence():
    import hashlib
    import re

    from weather_metrics.reports.pdf import FALLBACK_FILE

    folder = FALLBACK_FILE.parent
    readme = (folder / "README.md").read_text()
    [digest] = re.findall(r"SHA-256 `([0-9a-f]{64})`", readme)
    assert hashlib.sha256(FALLBACK_FILE.read_bytes()).hexdigest() == digest
    assert "SIL OPEN FONT LICENSE Version 1.1" in (folder / "LICENSE").read_text()
    assert {path.name for path in folder.iterdir()} == {FALLBACK_FILE.name, "LICENSE", "README.md"}
