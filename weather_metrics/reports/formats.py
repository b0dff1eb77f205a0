"""Report files written row by row: CSV (RFC 4180), XLSX (XlsxWriter, constant memory) and PDF (fpdf2).

Data rows arrive as an iterator and are written as they come; only the PDF keeps its first
`PDF_ROWS` rows (a printed report is not the place for a million rows) and counts the rest.
Strings that a spreadsheet would run as a formula get a leading apostrophe; numbers never change.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import xlsxwriter
from fpdf import FPDF

Cell = str | int | float | bool | datetime | None
Row = Sequence[Cell]
Progress = Callable[[int], None]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PROGRESS_EVERY = 5000
PDF_ROWS = 500
PDF_CELL_CHARS = 48
XLSX_SHEET_ROWS = 1_048_575  # Excel's 1,048,576 rows less the header
XLSX_CELL_CHARS = 32_767  # Excel's longest text in a cell
XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # characters XML 1.0 cannot hold
XLSX_OPTIONS = {
    "constant_memory": True,  # rows go to a work file as they are written, not to memory
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
    "default_date_format": "yyyy-mm-dd hh:mm:ss",
}


@dataclass(frozen=True)
class Table:
    """A small table held in memory (summary breakdowns)."""

    header: Sequence[str]
    rows: Sequence[Row]


@dataclass(frozen=True)
class Chart:
    """One series drawn as bars: a label and a value per period (or team)."""

    title: str
    labels: Sequence[str]
    values: Sequence[float]
    y_label: str


@dataclass
class Report:
    """Everything a report file shows; `rows` is consumed once, by the writer."""

    title: str
    organization: str
    period: str
    filters: Sequence[tuple[str, str]]
    summary: Sequence[tuple[str, Cell]]
    breakdown: Table | None
    chart: Chart | None
    header: Sequence[str]
    rows: Iterable[Row]
    notes: Sequence[str] = field(default_factory=list)
    expected_rows: int | None = None  # known from the summary: lets progress be a percentage


@dataclass(frozen=True)
class Sheet:
    """One worksheet; `data` sheets get a frozen header row and count as data rows."""

    name: str
    header: Sequence[str]
    rows: Iterable[Row]
    data: bool = True


def neutralized(value: str) -> str:
    """The string with a leading apostrophe when a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _counted(rows: Iterable[Row], progress: Progress | None) -> Iterator[Row]:
    """The rows, calling `progress(rows_done)` every PROGRESS_EVERY rows and once at the end."""
    done = 0
    for row in rows:
        yield row
        done += 1
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done)
    if progress is not None and done % PROGRESS_EVERY:
        progress(done)


def csv_cell(value: Cell) -> str | int | float:
    """A value as CSV text: ISO 8601 datetimes, lowercase booleans, empty for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, str):
        return neutralized(value)
    return value


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Row], progress: Progress | None = None) -> int:
    """Write an RFC 4180 CSV file in UTF-8; returns the number of data rows."""
    done = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([csv_cell(name) for name in header])
        for row in _counted(rows, progress):
            writer.writerow([csv_cell(value) for value in row])
            done += 1
    return done


def xlsx_cell(value: Cell) -> Cell:
    """Numbers, booleans and None as they are; datetimes naive (Excel has no zones); safe strings."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        return neutralized(XML_ILLEGAL.sub("", value))[:XLSX_CELL_CHARS]
    return value


def write_xlsx(
    path: Path, sheets: Sequence[Sheet], progress: Progress | None = None, work_dir: Path | None = None
) -> int:
    """Write a workbook of the sheets; returns the number of data rows.

    Rows are kept in work files in `work_dir` (the file's folder by default) until the workbook
    is zipped; on failure they stay there, and the caller removes the folder. A data sheet
    longer than Excel's limit continues on "<name> 2", "<name> 3"... with the same header.
    """
    book = xlsxwriter.Workbook(str(path), {**XLSX_OPTIONS, "tmpdir": str(work_dir or path.parent)})
    try:
        done = sum(_write_sheet(book, spec, progress) for spec in sheets)
    except BaseException:
        _abandon(book)
        raise
    book.close()
    return done


def _abandon(book: xlsxwriter.Workbook) -> None:
    """Close and delete the row files of a workbook that will not be saved (XlsxWriter has no call for it)."""
    for sheet in book.worksheets():
        handle = getattr(sheet, "row_data_fh", None)
        if handle is not None and not handle.closed:
            handle.close()
        if getattr(sheet, "row_data_filename", None):
            Path(sheet.row_data_filename).unlink(missing_ok=True)


def _new_sheet(book: xlsxwriter.Workbook, name: str, header: Sequence[str], data: bool):  # type: ignore[no-untyped-def]
    sheet = book.add_worksheet(name[:31])
    for index, title in enumerate(header):
        sheet.set_column(index, index, max(12, min(len(str(title)) + 4, 60)))
    if data:
        sheet.freeze_panes(1, 0)
    if header:
        sheet.write_row(0, 0, [xlsx_cell(name) for name in header])
    return sheet


def _write_sheet(book: xlsxwriter.Workbook, spec: Sheet, progress: Progress | None) -> int:
    sheet = _new_sheet(book, spec.name, spec.header, spec.data)
    rows = _counted(spec.rows, progress) if spec.data else spec.rows
    done = 0
    line = 1 if spec.header else 0
    part = 1
    for row in rows:
        if spec.data and line > XLSX_SHEET_ROWS:
            part += 1
            sheet = _new_sheet(book, f"{spec.name[:26]} {part}", spec.header, True)
            line = 1
        sheet.write_row(line, 0, [xlsx_cell(value) for value in row])
        line += 1
        done += spec.data
    return done


def report_sheets(report: Report) -> list[Sheet]:
    """A "Summary" sheet (title, filters, figures, breakdown) and the "Data" sheet."""
    lines: list[Row] = [
        ("Report", report.title),
        ("Organization", report.organization),
        ("Period", report.period),
        *((f"Filter: {name}", value) for name, value in report.filters),
        (),
        *report.summary,
    ]
    if report.breakdown is not None:
        lines += [(), tuple(report.breakdown.header), *report.breakdown.rows]
    lines += [(note,) for note in report.notes]
    return [Sheet("Summary", (), lines, data=False), Sheet("Data", report.header, report.rows)]


def pdf_text(value: Cell, limit: int = 0) -> str:
    """A value as PDF text in the core fonts' Latin-1 (others become '?'), cut to `limit` characters."""
    text = "" if value is None else csv_cell(value) if not isinstance(value, float) else repr(value)
    text = str(text).encode("latin-1", "replace").decode("latin-1")
    text = "".join(" " if char in "\r\n\t" else char for char in text)
    return text if not limit or len(text) <= limit else text[: limit - 3] + "..."


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 7, pdf_text(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)


def _lines(pdf: FPDF, pairs: Iterable[tuple[str, Cell]]) -> None:
    for name, value in pairs:
        pdf.cell(0, 5, pdf_text(f"{name}: {pdf_text(value)}"), new_x="LMARGIN", new_y="NEXT")


def _table(pdf: FPDF, header: Sequence[str], rows: Iterable[Row], font_size: float = 7) -> None:
    pdf.set_font("helvetica", "", font_size)
    with pdf.table(text_align="LEFT", line_height=font_size * 0.55, first_row_as_headings=True) as table:
        table.row([pdf_text(name) for name in header])
        for row in rows:
            table.row([pdf_text(value, PDF_CELL_CHARS) for value in row])
    pdf.set_font("helvetica", "", 9)


def _axis_figure(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.2f}"


def _chart(pdf: FPDF, chart: Chart) -> None:
    """Bars with a value axis (0 and the maximum) and the first, middle and last labels."""
    _heading(pdf, chart.title)
    if pdf.get_y() > pdf.h - 90:
        pdf.add_page()
    left, top = pdf.l_margin + 18, pdf.get_y() + 4
    width, height = pdf.epw - 22, 60
    high = max([0.0, *chart.values]) or 1.0
    low = min([0.0, *chart.values])
    span = high - low
    pdf.set_draw_color(0)
    pdf.line(left, top, left, top + height)
    pdf.line(left, top + height, left + width, top + height)
    pdf.set_font("helvetica", "", 7)
    for value in {high, low, (high + low) / 2}:
        y = top + height * (high - value) / span
        pdf.text(pdf.l_margin, y + 1, _axis_figure(value))
        pdf.set_draw_color(220)
        pdf.line(left, y, left + width, y)
    pdf.set_fill_color(52, 101, 164)
    step = width / max(len(chart.values), 1)
    zero = top + height * high / span
    for index, value in enumerate(chart.values):
        y = top + height * (high - value) / span
        pdf.rect(left + index * step + step * 0.1, min(y, zero), step * 0.8, abs(zero - y), style="F")
    shown = sorted({0, len(chart.labels) // 2, len(chart.labels) - 1}) if chart.labels else []
    for index in shown:
        label = pdf_text(chart.labels[index], 24)
        x = left + index * step + step / 2 - pdf.get_string_width(label) / 2
        pdf.text(max(pdf.l_margin, min(x, pdf.w - pdf.r_margin - pdf.get_string_width(label))), top + height + 4, label)
    pdf.text(pdf.l_margin, top - 1, pdf_text(chart.y_label))
    pdf.set_y(top + height + 8)
    pdf.set_font("helvetica", "", 9)


def _first_rows(rows: Iterable[Row], keep: int, progress: Progress | None) -> tuple[list[Row], int]:
    """The first `keep` rows and how many there were in all (the rest are read and dropped)."""
    kept: list[Row] = []
    total = 0
    for row in _counted(rows, progress):
        if total < keep:
            kept.append(row)
        total += 1
    return kept, total


def write_pdf(path: Path, report: Report, progress: Progress | None = None) -> int:
    """Write a landscape PDF report; returns the number of data rows (all, not only those printed)."""
    kept, total = _first_rows(report.rows, PDF_ROWS, progress)
    pdf = FPDF(orientation="L", format="A4")
    pdf.set_title(pdf_text(report.title))
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 9, pdf_text(report.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)
    _lines(pdf, [("Organization", report.organization), ("Period", report.period)])
    _lines(pdf, report.filters or [("Filters", "none")])
    _heading(pdf, "Summary")
    _lines(pdf, report.summary)
    for note in report.notes:
        pdf.multi_cell(0, 5, pdf_text(note), new_x="LMARGIN", new_y="NEXT")
    if report.breakdown is not None and report.breakdown.rows:
        pdf.ln(2)
        _table(pdf, report.breakdown.header, report.breakdown.rows, 8)
    if report.chart is not None and report.chart.values:
        _chart(pdf, report.chart)
    _heading(pdf, "Data")
    if total > len(kept):
        pdf.cell(0, 5, f"First {len(kept)} of {total} rows; the CSV and XLSX exports hold all of them.")
        pdf.ln(6)
    if kept:
        _table(pdf, report.header, kept)
    else:
        pdf.cell(0, 5, "No rows.")
    pdf.output(str(path))
    return total


def write_report(
    path: Path, fmt: str, report: Report, progress: Progress | None = None, work_dir: Path | None = None
) -> int:
    """Write the report in csv, xlsx or pdf; returns the number of data rows (XLSX work files go to `work_dir`)."""
    if fmt == "csv":
        return write_csv(path, report.header, report.rows, progress)
    if fmt == "xlsx":
        return write_xlsx(path, report_sheets(report), progress, work_dir)
    if fmt == "pdf":
        return write_pdf(path, report, progress)
    raise ValueError(f"Unknown export format {fmt!r}")
