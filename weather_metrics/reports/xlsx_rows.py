"""XLSX rows in one piece: XlsxWriter's worksheet, with each constant-memory row written as one string.

XlsxWriter writes a row cell by cell, with a dispatch, a few checks and a file write for
each cell and each attribute. For the cells reports write (numbers, dates, text and
booleans, no format but the default date format) RowSheet builds the same XML for the
whole row and writes it at once; any other row (rich strings, formulas, formats, row
options) goes XlsxWriter's way. tests/test_report_formats.py compares the sheets such a
workbook holds, byte for byte, with XlsxWriter's own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from math import isfinite
from typing import Any

from xlsxwriter.utility import _preserve_whitespace, xl_col_to_name
from xlsxwriter.worksheet import CellBooleanTuple, CellDatetimeTuple, CellNumberTuple, CellStringTuple, Worksheet

# What can make XlsxWriter change a string: control characters (which include tab and
# newline), _xHHHH_ look-alikes, XML's special characters, the two non-characters. A string
# with none of them is written as it is.
_PLAIN_TEXT = re.compile(r"[\x00-\x1f&<>\"\ufffe\uffff]|_x")
_NUMBERS = (CellNumberTuple, CellDatetimeTuple)


class RowSheet(Worksheet):
    """A worksheet (add_worksheet's worksheet_class) for constant-memory mode; see the module doc."""

    def __init__(self) -> None:
        super().__init__()
        self._columns: list[str] = []

    def append_row(self, row: int, values: Sequence[Any]) -> None:
        """What write_row(row, 0, values) does, rows in order, without its dispatch for each cell.

        Text, numbers, booleans, naive datetimes and None are stored as write() would store
        them; any other value, or a sheet whose options change how text is written, goes
        through write() itself, and an error ends the row there, as in write_row.
        """
        if not self._plain_values() or row >= self.xls_rowmax or len(values) > self.xls_colmax:
            self.write_row(row, 0, values)
            return
        if row > self.previous_row:  # constant memory: the row before is written now
            self._write_single_row(row)
        cells = self.table[row]
        written = []
        for col, value in enumerate(values):
            kind = value.__class__
            if kind is str:
                if not value:
                    continue  # an empty string is a blank cell, which write() leaves out
                if len(value) > self.xls_strmax // 2:  # long: measured in UTF-16 units, maybe cut
                    if self._write(row, col, value):
                        break  # as write_row: a cut string (or any error) ends the row
                    continue
                cells[col] = CellStringTuple(value, None)
            elif (kind is float or kind is int) and isfinite(value):
                cells[col] = CellNumberTuple(value, None)
            elif kind is bool:
                cells[col] = CellBooleanTuple(1 if value else 0, None)
            elif kind is datetime and value.tzinfo is None:
                cells[col] = CellDatetimeTuple(self._convert_date_time(value), self.default_date_format)
            elif value is None:
                continue
            else:
                if self._write(row, col, value):
                    break
                continue
            written.append(col)
        if written:
            self._check_dimensions(row, written[0])
            self._check_dimensions(row, written[-1])

    def _plain_values(self) -> bool:
        return bool(
            self.constant_memory
            and not (self.write_handlers or self.strings_to_formulas or self.strings_to_urls or self.strings_to_numbers)
        )

    def _write_single_row(self, current_row_num: int = 0) -> None:
        row_num: int = self.previous_row  # type: ignore[has-type]
        cells = self.table.get(row_num)
        line = self._row_xml(row_num, cells) if cells else None
        if line is None:
            super()._write_single_row(current_row_num)
            return
        self.previous_row = current_row_num
        self.fh.write(line)
        self.table.clear()

    def _row_xml(self, row_num: int, cells: dict[int, Any]) -> str | None:
        """The <row> element XlsxWriter would write for these cells; None when it has to write it itself."""
        if (
            row_num in self.row_info
            or row_num in self.comments
            or self.default_row_height != self.original_row_height
            or self.excel_version == 2010
        ):
            return None
        parts = [f'<row r="{row_num + 1}">']
        number = row_num + 1
        for col in sorted(cells):
            cell = cells[col]
            if col in self.col_info and self.col_info[col].column_format is not None:
                return None
            reference = f"{self._column(col)}{number}"
            style = ""
            if cell.format is not None:
                if cell.__class__ is not CellDatetimeTuple or cell.format is not self.default_date_format:
                    return None
                style = f' s="{cell.format._get_xf_index()}"'  # noqa: SLF001 - as _write_cell does
            kind = cell.__class__
            if kind in _NUMBERS:
                parts.append(f'<c r="{reference}"{style}><v>{cell.number:.16G}</v></c>')
            elif kind is CellStringTuple:
                text = self._inline(cell.string)
                if text is None:
                    return None
                parts.append(f'<c r="{reference}" t="inlineStr"><is><t{text[1]}>{text[0]}</t></is></c>')
            elif kind is CellBooleanTuple:
                parts.append(f'<c r="{reference}" t="b"><v>{cell.boolean}</v></c>')
            else:
                return None
        parts.append("</row>")
        return "".join(parts)

    def _inline(self, string: str) -> tuple[str, str] | None:
        """The string as XlsxWriter writes it inline, and its <t> attribute; None for a rich string."""
        if _PLAIN_TEXT.search(string) is None:
            text = escaped = string
        else:
            text = self._escape_control_characters(string)
            if text.startswith("<r>") and text.endswith("</r>"):
                return None
            escaped = self._escape_data(text)
        return escaped, ' xml:space="preserve"' if _preserve_whitespace(text) else ""

    def _column(self, col: int) -> str:
        while len(self._columns) <= col:
            self._columns.append(xl_col_to_name(len(self._columns)))
        return self._columns[col]
