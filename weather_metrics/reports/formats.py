"""Report files written row by row: CSV (RFC 4180) and XLSX (XlsxWriter, constant memory); PDF in reports/pdf.py.

Data rows arrive as an iterator and are written as they come. Strings that a spreadsheet
would run as a formula get a leading apostrophe; numbers never change.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import xlsxwriter

from weather_metrics.reports.contents import MS, Cell, Progress, Report, Row, counted
from weather_metrics.reports.xlsx_rows import RowSheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
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
class Sheet:
    """One worksheet; `data` sheets get a frozen header row and count as data rows."""

    name: str
    header: Sequence[str]
    rows: Iterable[Row]
    data: bool = True


def neutralized(value: str) -> str:
    """The string with a leading apostrophe when a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


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
        for row in counted(rows, progress):
            writer.writerow([csv_cell(value) for value in row])
            done += 1
    return done


def xlsx_cell(value: Cell) -> Cell:
    """Numbers, booleans and None as they are; datetimes naive (Excel has no zones); safe strings."""
    if isinstance(value, str):
        return neutralized(XML_ILLEGAL.sub("", value))[:XLSX_CELL_CHARS]
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
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
    sheet = book.add_worksheet(name[:31], worksheet_class=RowSheet)
    for index, title in enumerate(header):
        sheet.set_column(index, index, max(12, min(len(str(title)) + 4, 60)))
    if data:
        sheet.freeze_panes(1, 0)
    if header:
        sheet.write_row(0, 0, [xlsx_cell(name) for name in header])
    return sheet


def _write_sheet(book: xlsxwriter.Workbook, spec: Sheet, progress: Progress | None) -> int:
    sheet = _new_sheet(book, spec.name, spec.header, spec.data)
    rows = counted(spec.rows, progress) if spec.data else spec.rows
    done = 0
    line = 1 if spec.header else 0
    part = 1
    for row in rows:
        if spec.data and line > XLSX_SHEET_ROWS:
            part += 1
            sheet = _new_sheet(book, f"{spec.name[:26]} {part}", spec.header, True)
            line = 1
        sheet.append_row(line, [xlsx_cell(value) for value in row])
        line += 1
        done += spec.data
    return done


def report_sheets(report: Report) -> list[Sheet]:
    """A "Summary" sheet (title, filters, figures, breakdown) and, unless the rows were left out, the "Data" sheet."""
    lines: list[Row] = [
        ("Report", report.title),
        ("Organization", report.organization),
        ("Period", report.period),
        *((f"Filter: {name}", value) for name, value in report.filters),
        (),
        *((figure.label + (" (ms)" if figure.unit == MS else ""), figure.value) for figure in report.summary),
    ]
    if report.breakdown is not None:
        lines += [(), tuple(column.name for column in report.breakdown.columns), *report.breakdown.rows]
    lines += [(note,) for note in report.notes]
    summary = Sheet("Summary", (), lines, data=False)
    return [summary] if report.rows is None else [summary, Sheet("Data", report.header, report.rows)]


def write_report(
    path: Path, fmt: str, report: Report, progress: Progress | None = None, work_dir: Path | None = None
) -> int:
    """Write the report in csv, xlsx or pdf; returns the number of data rows (XLSX work files go to `work_dir`)."""
    if fmt == "csv":
        return write_csv(path, report.header, report.rows or (), progress)
    if fmt == "xlsx":
        return write_xlsx(path, report_sheets(report), progress, work_dir)
    if fmt == "pdf":
        # Imported here: fpdf and its fonts are most of the start of a process building a CSV or XLSX file.
        from weather_metrics.reports.pdf import write_pdf

        return write_pdf(path, report, progress)
    raise ValueError(f"Unknown export format {fmt!r}")
