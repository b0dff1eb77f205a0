"""Charts drawn into a PDF report: one metric each, with titled axes in its unit.

A series over periods is drawn as columns, labelled every few periods so that labels never
overlap; a comparison across categories (teams) as one labelled bar per category, its value
written beside it. Drawing happens in a local graphics state, so no colour leaks into what
follows (a table after a chart once came out filled with the bar colour).
"""

from __future__ import annotations

import math

from fpdf import FPDF

from weather_metrics.reports.contents import Chart
from weather_metrics.reports.figures import Axis, axis_title, scale_for, value_axis

BAR = (52, 101, 164)
GRID = 222
AXIS = 110
INK = 40
PLOT_HEIGHT = 56.0  # column charts: the plot, without its labels
BAR_ROW = 5.5  # bar charts: the height of one category
TICK_FONT = 7.0
TITLE_FONT = 7.5


def chart_height(chart: Chart) -> float:
    """The height a chart takes below its heading, so that the heading is never left alone at a page's foot."""
    if chart.categories:
        return 2 + len(chart.labels) * BAR_ROW + 12
    return 2 + PLOT_HEIGHT + 12


def fitted(pdf: FPDF, text: str, width: float) -> str:
    """The text, cut with an ellipsis to fit `width` in the current font."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def draw_chart(pdf: FPDF, chart: Chart) -> None:
    """Draw the chart at the current position and move below it."""
    with pdf.local_context(text_color=INK, line_width=0.2):
        if chart.categories:
            bottom = _bars(pdf, chart)
        else:
            bottom = _columns(pdf, chart)
    pdf.set_xy(pdf.l_margin, bottom)


def _tick_texts(pdf: FPDF, axis: Axis) -> tuple[list[str], float]:
    texts = axis.labels()
    return texts, max(pdf.get_string_width(text) for text in texts)


def _columns(pdf: FPDF, chart: Chart) -> float:
    """Columns over periods; returns the y below the chart."""
    axis = value_axis(chart.unit, chart.values)
    pdf.set_font_size(TICK_FONT)
    ticks, widest = _tick_texts(pdf, axis)
    left = pdf.l_margin + 6 + widest + 2
    top = pdf.get_y() + 2
    width, bottom = pdf.w - pdf.r_margin - left, top + PLOT_HEIGHT

    def y_of(value: float) -> float:
        return bottom - PLOT_HEIGHT * (value - axis.low) / (axis.high - axis.low)

    for tick, text in zip(axis.ticks, ticks, strict=True):
        pdf.set_draw_color(GRID)
        pdf.line(left, y_of(tick), left + width, y_of(tick))
        pdf.text(left - 1.5 - pdf.get_string_width(text), y_of(tick) + 1.0, text)
    step = width / max(len(chart.values), 1)
    bar = step * 0.75 if step > 1.5 else step
    zero = y_of(0.0)
    pdf.set_fill_color(*BAR)
    for index, value in enumerate(chart.values):
        if value is not None and value != 0:
            pdf.rect(left + index * step + (step - bar) / 2, min(y_of(value), zero), bar, abs(zero - y_of(value)), "F")
    pdf.set_draw_color(AXIS)
    pdf.line(left, top, left, bottom)
    pdf.line(left, zero, left + width, zero)
    _period_labels(pdf, chart, left, step, bottom)
    pdf.set_font_size(TITLE_FONT)
    title = chart.axis
    pdf.text(left + (width - pdf.get_string_width(title)) / 2, bottom + 9, title)
    _vertical_title(pdf, axis_title(chart.measure, axis), pdf.l_margin + 3, top + PLOT_HEIGHT / 2)
    return bottom + 12


def _period_labels(pdf: FPDF, chart: Chart, left: float, step: float, y: float) -> None:
    """Every n-th period's label: the first of the chart's `label_every` spacings, or any n, where
    the widest label and a gap fit between two."""
    names = chart.labels
    if not names:
        return
    widest = max(pdf.get_string_width(name) for name in names)
    needed = max(1, math.ceil((widest + 3) / step))
    every = next((n for n in chart.label_every if n >= needed), needed)
    pdf.set_draw_color(AXIS)
    for index in range(0, len(names), every):
        middle = left + index * step + step / 2
        pdf.line(middle, y, middle, y + 1)
        text_width = pdf.get_string_width(names[index])
        x = min(max(middle - text_width / 2, pdf.l_margin), pdf.w - pdf.r_margin - text_width)
        pdf.text(x, y + 4, names[index])


def _vertical_title(pdf: FPDF, text: str, x: float, middle: float) -> None:
    pdf.set_font_size(TITLE_FONT)
    width = pdf.get_string_width(text)
    with pdf.rotation(90, x, middle):
        pdf.text(x - width / 2, middle + 1, text)


def _bars(pdf: FPDF, chart: Chart) -> float:
    """One bar per category, its value beside it; returns the y below the chart."""
    axis = value_axis(chart.unit, chart.values)
    values = scale_for(chart.unit, chart.values)
    pdf.set_font_size(TICK_FONT + 1)
    names_width = min(max(pdf.get_string_width(name) for name in chart.labels) + 2, pdf.epw * 0.25)
    written = [values.text(value) if value is not None else "no data" for value in chart.values]
    values_width = max(pdf.get_string_width(text) for text in written) + 3
    left = pdf.l_margin + names_width + 2
    top = pdf.get_y() + 2
    width, bottom = pdf.w - pdf.r_margin - values_width - left, top + len(chart.labels) * BAR_ROW

    def x_of(value: float) -> float:
        return left + width * (value - axis.low) / (axis.high - axis.low)

    pdf.set_font_size(TICK_FONT)
    for tick, text in zip(axis.ticks, axis.labels(), strict=True):
        pdf.set_draw_color(GRID)
        pdf.line(x_of(tick), top, x_of(tick), bottom)
        pdf.text(x_of(tick) - pdf.get_string_width(text) / 2, bottom + 4, text)
    pdf.set_fill_color(*BAR)
    pdf.set_font_size(TICK_FONT + 1)
    for index, (name, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
        y = top + index * BAR_ROW
        pdf.set_xy(pdf.l_margin, y)
        pdf.cell(names_width, BAR_ROW, fitted(pdf, name, names_width), align="R")
        end = x_of(value or 0.0)
        if value:
            pdf.rect(min(x_of(0.0), end), y + BAR_ROW * 0.18, abs(end - x_of(0.0)), BAR_ROW * 0.64, "F")
        pdf.set_xy(end + 1 if (value or 0) >= 0 else end - 1 - pdf.get_string_width(written[index]), y)
        pdf.cell(pdf.get_string_width(written[index]) + 1, BAR_ROW, written[index])
    pdf.set_draw_color(AXIS)
    pdf.line(x_of(0.0), top, x_of(0.0), bottom)
    pdf.set_font_size(TITLE_FONT)
    title = axis_title(chart.measure, axis)
    pdf.text(left + (width - pdf.get_string_width(title)) / 2, bottom + 9, title)
    return bottom + 12
