"""PDF report files (fpdf2): A4 landscape, to be read, printed and forwarded.

Title, organization, period and the filters that differ from their defaults; the summary
figures; the breakdown table; one chart per metric; then the first `PDF_ROWS` data rows (a
printed report is not the place for a million rows: the rest are counted). Numbers are
written in their unit (reports/figures.py) and right-aligned. Text is set in DejaVu Sans,
vendored in fonts/ with its licence, so names in European scripts, Greek, Cyrillic, Hebrew and
Arabic letters print; Chinese, Japanese and Korean characters fall back to a subset of Noto
Sans CJK vendored beside it, loaded only for a report that holds some. fpdf2 embeds only the
glyphs used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from fpdf import FPDF, FontFace
from fpdf.fonts import TTFFont

from weather_metrics.reports.charts import INK, chart_height, draw_chart, fitted
from weather_metrics.reports.contents import Cell, Column, Figure, Progress, Report, Row, Table, counted
from weather_metrics.reports.figures import Scale, figure_text, scale_for

PDF_ROWS = 500
PDF_CELL_CHARS = 48
FONT = "dejavu"
FONT_DIR = Path(__file__).parent / "fonts" / "dejavu-sans-2.37"
FALLBACK_FONT = "noto-cjk"
FALLBACK_FILE = Path(__file__).parent / "fonts" / "noto-sans-cjk-sc-2.004" / "NotoSansCJKsc-Regular-subset.otf"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # tabs, line breaks and other controls print as spaces
MUTED = 105
HEADING_FILL = (232, 236, 242)
RULE = 200
CARD_HEIGHT = 13.0
CARDS_PER_ROW = 5
HEADING_HEIGHT = 10.0
CELL_PADDING = 1.2
SPARE_PER_COLUMN = 6.0


def printable(text: str, limit: int = 0) -> str:
    """The text on one line, cut to `limit` characters with an ellipsis."""
    text = CONTROL.sub(" ", text)
    return text if not limit or len(text) <= limit else text[: limit - 1] + "…"


class ReportPdf(FPDF):
    """A4 landscape pages in DejaVu Sans, each with a footer naming the report and the page."""

    def __init__(self, report: Report) -> None:
        super().__init__(orientation="L", format="A4")
        self.footer_text = printable(f"{report.title} · {report.organization}")
        self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_title(printable(report.title))
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(True, margin=14)

    def footer(self) -> None:
        self.set_y(-10)
        with self.local_context(text_color=MUTED):
            self.set_font(FONT, "", 7)
            self.cell(self.epw / 2, 4, self.footer_text)
            self.cell(self.epw / 2, 4, f"page {self.page_no()} of {{nb}}", align="R")


def _characters(report: Report, kept: Sequence[Row]) -> set[str]:
    """Every character the report prints."""
    texts: list[Cell] = [report.title, report.organization, report.period, *report.notes]
    texts += [part for pair in report.filters for part in pair]
    texts += [part for figure in report.summary for part in (figure.label, figure.value)]
    texts += [column.heading for column in report.columns]
    tables = [report.breakdown.rows] if report.breakdown is not None else []
    texts += [value for rows in (*tables, kept) for row in rows for value in row]
    texts += [text for chart in report.charts for text in (chart.title, chart.measure, chart.axis, *chart.labels)]
    return {char for text in texts if isinstance(text, str) for char in text}


def _add_fallback_font(pdf: ReportPdf, characters: set[str]) -> None:
    """Noto Sans CJK for characters DejaVu Sans lacks, when the report has any (reading the font takes 0.2 s)."""
    font = pdf.fonts[FONT]
    known = font.cmap if isinstance(font, TTFFont) else {}
    if all(ord(char) in known or char.isspace() for char in characters):
        return
    pdf.add_font(FALLBACK_FONT, "", str(FALLBACK_FILE))
    pdf.set_fallback_fonts([FALLBACK_FONT], exact_match=False)


def _room(pdf: FPDF, height: float) -> None:
    """A new page unless `height` more fits on this one."""
    if pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()


def _heading(pdf: FPDF, text: str, keep: float) -> None:
    """A section heading, on a new page unless `keep` mm of what follows fit below it."""
    _room(pdf, HEADING_HEIGHT + keep)
    pdf.ln(3)
    pdf.set_font(FONT, "B", 12)
    pdf.cell(0, 7, printable(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)


def _fields(pdf: FPDF, pairs: Iterable[tuple[str, str]]) -> None:
    """Labelled lines: the label muted, the value wrapped beside it."""
    for label, value in pairs:
        with pdf.local_context(text_color=MUTED):
            pdf.cell(26, 5, printable(label) + ":")
        pdf.multi_cell(0, 5, printable(value), new_x="LMARGIN", new_y="NEXT")


def _summary(pdf: FPDF, figures: Sequence[Figure]) -> None:
    """The figures as cards: a muted label over the value."""
    if not figures:
        return
    _heading(pdf, "Summary", CARD_HEIGHT)
    lines = -(-len(figures) // CARDS_PER_ROW)
    per_line = -(-len(figures) // lines)  # 8 figures: two lines of 4, not 5 and 3
    width = pdf.epw / CARDS_PER_ROW
    top = pdf.get_y() + 1
    for index, figure in enumerate(figures):
        x = pdf.l_margin + index % per_line * width
        y = top + index // per_line * (CARD_HEIGHT + 2)
        with pdf.local_context(draw_color=RULE, text_color=MUTED):
            pdf.line(x, y, x, y + CARD_HEIGHT - 1)
            pdf.set_font(FONT, "", 8)
            pdf.set_xy(x + 2, y)
            pdf.cell(width - 4, 4.5, fitted(pdf, printable(figure.label), width - 4))
        pdf.set_font(FONT, "B", 13)
        pdf.set_xy(x + 2, y + 4.5)
        pdf.cell(width - 4, 7.5, fitted(pdf, printable(figure_text(figure.value, figure.unit)), width - 4))
    pdf.set_xy(pdf.l_margin, top + lines * (CARD_HEIGHT + 2))
    pdf.set_font(FONT, "", 9)


def _widths(pdf: FPDF, headings: list[str], cells: list[list[str]], font_size: float) -> list[float]:
    """Column widths that fit each column's longest text where the page allows, the longest wrapped at words.

    Headings are measured in bold (as printed) and never broken inside a word; some spare room
    is shared out, so that a right-aligned number does not run into the text beside it.
    """
    padding = 2 * CELL_PADDING + 1
    pdf.set_font(FONT, "B", font_size)
    words = [max(pdf.get_string_width(word) for word in heading.split() or [""]) + padding for heading in headings]
    whole = [pdf.get_string_width(heading) + padding for heading in headings]
    pdf.set_font(FONT, "", font_size)
    natural = [
        max([whole[index], *(pdf.get_string_width(row[index]) + padding for row in cells)])
        for index in range(len(headings))
    ]
    if sum(natural) <= pdf.epw:
        spare = min((pdf.epw - sum(natural)) / len(natural), SPARE_PER_COLUMN)
        return [width + spare for width in natural]
    cap = pdf.epw / len(headings)
    while sum(min(n, max(cap, m)) for n, m in zip(natural, words, strict=True)) < pdf.epw and cap < max(natural):
        cap += 1
    return [min(n, max(cap, m)) for n, m in zip(natural, words, strict=True)]


def _cell_text(scale: Scale, column: Column, value: Cell) -> str:
    if value is None and not column.unit:
        return ""
    return printable(scale.text(value), PDF_CELL_CHARS)


def _table(pdf: FPDF, columns: Sequence[Column], rows: Sequence[Row], font_size: float) -> None:
    """A table with a shaded header row (repeated on each page), unfilled cells and right-aligned numbers."""
    shown = [columns[index] for index in range(len(columns)) if columns[index].printed]
    places = [index for index in range(len(columns)) if columns[index].printed]
    scales = [scale_for(column.unit, (row[i] for row in rows)) for column, i in zip(shown, places, strict=True)]
    cells = [
        [_cell_text(scale, column, row[i]) for scale, column, i in zip(scales, shown, places, strict=True)]
        for row in rows
    ]
    headings = [printable(column.heading) for column in shown]
    with pdf.local_context(text_color=INK, draw_color=RULE):
        pdf.set_fill_color(255)  # a table's cells take the fill colour in force when it starts
        widths = _widths(pdf, headings, cells, font_size)
        with pdf.table(
            width=min(sum(widths), pdf.epw),
            col_widths=tuple(widths),
            text_align=tuple("RIGHT" if column.unit else "LEFT" for column in shown),
            align="LEFT",
            line_height=font_size * 0.5,
            padding=(0.9, CELL_PADDING),
            borders_layout="HORIZONTAL_LINES",
            headings_style=FontFace(emphasis="BOLD", fill_color=HEADING_FILL),
        ) as table:
            table.row(headings)
            for row in cells:
                table.row(row)
    pdf.set_font(FONT, "", 9)


def _breakdown(pdf: FPDF, table: Table) -> None:
    if table.rows:
        _heading(pdf, table.title, 22)
        _table(pdf, table.columns, table.rows, 8)


def _data(pdf: FPDF, title: str, columns: Sequence[Column], kept: Sequence[Row], total: int) -> None:
    _heading(pdf, title, 22)
    if total > len(kept):
        pdf.cell(0, 5, f"First {len(kept):,} of {total:,} rows; the CSV and XLSX exports hold all of them.")
        pdf.ln(6)
    if kept:
        _table(pdf, columns, kept, 7)
    else:
        pdf.cell(0, 5, "No rows.")


def _first_rows(rows: Iterable[Row], keep: int, progress: Progress | None) -> tuple[list[Row], int]:
    """The first `keep` rows and how many there were in all (the rest are read and dropped)."""
    kept: list[Row] = []
    total = 0
    for row in counted(rows, progress):
        if total < keep:
            kept.append(row)
        total += 1
    return kept, total


def write_pdf(path: Path, report: Report, progress: Progress | None = None) -> int:
    """Write the report; returns the number of data rows (all, not only those printed; 0 when left out)."""
    kept, total = _first_rows(report.rows, PDF_ROWS, progress) if report.rows is not None else ([], 0)
    pdf = ReportPdf(report)
    _add_fallback_font(pdf, _characters(report, kept))
    pdf.add_page()
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 10, printable(report.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    filters = "; ".join(f"{name}: {value}" for name, value in report.filters) or "none"
    _fields(pdf, [("Organization", report.organization), ("Period", report.period), ("Filters", filters)])
    _summary(pdf, report.summary)
    for note in report.notes:
        pdf.multi_cell(0, 5, printable(note), new_x="LMARGIN", new_y="NEXT")
    if report.breakdown is not None:
        _breakdown(pdf, report.breakdown)
    if report.rows is not None and report.rows_first:
        _data(pdf, report.rows_title, report.columns, kept, total)
    for chart in report.charts:
        if chart.values:
            _heading(pdf, chart.title, chart_height(chart))
            draw_chart(pdf, chart)
    if report.rows is not None and not report.rows_first:
        _data(pdf, report.rows_title, report.columns, kept, total)
    pdf.output(str(path))
    return total
