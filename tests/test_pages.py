"""The public pages / and /tools/<name>: the /v1/stats figures, the setting, the policy, errors, limits.

Drawn in a browser: test_pages_browser.py.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.support import assert_vendored, current_hour, make_event
from weather_metrics.query import stats
from weather_metrics.web.pages import stats as page_views

STRICT = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
TOOLS = ("get_forecast", "get_alerts", "get_current_conditions")
# (days ago, tool, calls, of which errors): 45 days ago counts for 90d only, 12 for 30d and 90d.
PLAN = [
    (0, "get_forecast", 5, 1),
    (0, "get_alerts", 2, 0),
    (1, "get_forecast", 3, 0),
    (1, "get_current_conditions", 4, 2),
    (3, "get_alerts", 6, 1),
    (6, "get_forecast", 2, 0),
    (12, "get_current_conditions", 7, 3),
    (45, "get_forecast", 9, 2),
]


def page_events() -> list[dict[str, Any]]:
    """Known calls of three tools over 45 days: errors of two types, three versions and countries, sessions."""
    events = []
    for days_ago, tool, calls, errors in PLAN:
        for n in range(calls):
            failed = n < errors
            events.append(
                make_event(
                    tool=tool,
                    timestamp_hour=current_hour(days_ago * 24),
                    status="error" if failed else "success",
                    error_type=("NetworkError", "Timeout")[n % 2] if failed else None,
                    response_time_ms=40 + 37 * n + days_ago,
                    version=("1.0.0", "1.1.0", "2.0.0-beta.1")[n % 3],
                    country=("US", "CA", None, "GB")[n % 4],
                    service=("noaa", "openmeteo")[n % 2],
                    cache_hit=n % 3 != 0,
                    session_id=f"install-{n % 4}",
                )
            )
    return events


@pytest.fixture
def seeded(client):
    response = client.post("/v1/events", json={"events": page_events()})
    assert response.status_code == 200, response.json
    return client


# --- reading a page -----------------------------------------------------------------------


class Page(HTMLParser):
    """A page's tables (caption and cell texts), its figures (dt -> dd), data blocks, scripts and inline code."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: dict[str, str] = {}
        self.data_blocks: dict[str, Any] = {}
        self.assets: list[str] = []
        self.inline: list[str] = []
        self._text: list[str] | None = None
        self._caption = ""
        self._rows: list[list[str]] = []
        self._term = ""
        self._script: dict[str, str | None] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "style" or "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append(self.get_starttag_text() or tag)
        if tag == "script":
            self._script = attributes
            self._text = []
            if attributes.get("src"):
                self.assets.append(attributes["src"] or "")
        elif tag == "link":
            self.assets.append(attributes.get("href") or "")
        elif tag == "table":
            self._caption, self._rows = "", []
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th", "caption", "dt", "dd"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        text = " ".join("".join(self._text or []).split())
        if tag == "script" and self._script is not None:
            if self._script.get("type") == "application/json":
                self.data_blocks[self._script["id"] or ""] = json.loads("".join(self._text or []))
            elif text:
                self.inline.append(text)
            self._script = None
        elif tag in ("td", "th"):
            self._rows[-1].append(text)
        elif tag == "caption":
            self._caption = text
        elif tag == "table":
            self.tables[self._caption] = self._rows
        elif tag == "dt":
            self._term = text
        elif tag == "dd":
            self.figures[self._term] = text
        if tag in ("td", "th", "caption", "dt", "dd", "script"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def table(self, caption_start: str) -> list[list[str]]:
        """The rows under the header of the table whose caption starts so."""
        found = [rows for caption, rows in self.tables.items() if caption.startswith(caption_start)]
        assert len(found) == 1, (caption_start, list(self.tables))
        return found[0][1:]


def count(value: int) -> str:
    return f"{value:,}"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def decimal(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{decimal(value)} ms"


def page(client: Any, url: str, status: int = 200, **kwargs: Any) -> Page:
    response = client.get(url, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "text/html"
    return Page(response.get_data(as_text=True))


def dates_of(period: str) -> list[str]:
    today = datetime.now(UTC).date()
    return [(today - timedelta(days=n)).isoformat() for n in range(stats.PERIODS[period], -1, -1)]


# --- the figures are the API's -----------------------------------------------------------


@pytest.mark.parametrize("period", stats.PERIODS)
def test_the_overview_page_shows_the_api_figures(seeded, period):
    shown = page(seeded, f"/?period={period}")
    api = seeded.get(f"/v1/stats/overview?period={period}").json
    performance = seeded.get(f"/v1/stats/performance?period={period}").json
    summary, times, cache = api["summary"], performance["response_times"], performance["cache_performance"]
    assert shown.figures == {
        "Calls": count(summary["total_calls"]),
        "Success rate": percent(summary["success_rate"]),
        "Active installs": "at least " + count(summary["active_installs"]),
        "Versions": count(summary["unique_versions"]),
        "Mean response time": ms(summary["avg_response_time_ms"]),
        "Cache hit rate": percent(api["cache_hit_rate"]),
        "Median (p50)": ms(times["p50_ms"]),
        "p95": ms(times["p95_ms"]),
        "p99": ms(times["p99_ms"]),
        "Mean": ms(times["avg_ms"]),
        "Hit rate": percent(cache["hit_rate"]),
        "Hits": count(cache["total_hits"]),
        "Misses": count(cache["total_misses"]),
    }
    assert shown.table("Tools") == [
        [
            t["name"],
            count(t["calls"]),
            percent(t["success_rate"]),
            decimal(t["avg_response_time_ms"]),
            decimal(t["p95_ms"]),
        ]
        for t in seeded.get(f"/v1/stats/tools?period={period}").json["tools"]
    ]
    assert shown.table("Error types") == [
        [e["type"], count(e["count"]), percent(e["percentage"]), f"{e['last_seen'][:10]} {e['last_seen'][11:16]}"]
        for e in api["errors"]
    ]
    assert shown.table("Calls per upstream service") == [
        [name, count(calls)] for name, calls in performance["service_distribution"].items()
    ]
    assert {row[0] for row in shown.table("Tools")} == {
        tool for days, tool, *_ in PLAN if days <= stats.PERIODS[period]
    }


@pytest.mark.parametrize("period", stats.PERIODS)
def test_the_overview_chart_and_breakdowns_add_up_the_tools_answers(seeded, period):
    """Calls per day, versions and countries of every tool: what /v1/stats/tool/<name> says, summed over tools."""
    shown = page(seeded, f"/?period={period}")
    details = [seeded.get(f"/v1/stats/tool/{t}?period={period}").json for t in TOOLS]
    details = [d for d in details if "daily_data" in d]  # a tool without calls in the period is a 404
    per_day: dict[str, int] = {}
    for detail in details:
        for day in detail["daily_data"]:
            per_day[day["date"]] = per_day.get(day["date"], 0) + day["calls"]
    chart = shown.data_blocks["calls-per-day"]
    assert chart["labels"] == dates_of(period)
    assert dict(zip(chart["labels"], chart["values"], strict=True)) == {d: per_day.get(d, 0) for d in dates_of(period)}
    for caption, key, label in (
        ("Calls per server version", "version", "versions"),
        ("Calls per country", "country", "countries"),
    ):
        summed: dict[str, int] = {}
        for detail in details:
            for row in detail[label]:
                summed[row[key]] = summed.get(row[key], 0) + row["calls"]
        assert {row[0]: row[1] for row in shown.table(caption)} == {k: count(v) for k, v in summed.items()}


@pytest.mark.parametrize("period", stats.PERIODS)
def test_a_tool_page_shows_the_tool_answer(seeded, period):
    detail = seeded.get(f"/v1/stats/tool/get_forecast?period={period}").json
    shown = page(seeded, f"/tools/get_forecast?period={period}")
    summary, times = detail["summary"], detail["response_times"]
    assert shown.figures == {
        "Calls": count(summary["calls"]),
        "Success rate": percent(summary["success_rate"]),
        "Mean response time": ms(summary["avg_response_time_ms"]),
        "Versions": str(len(detail["versions"])),
        "Median (p50)": ms(times["p50_ms"]),
        "p95": ms(times["p95_ms"]),
        "p99": ms(times["p99_ms"]),
        "Mean": ms(times["avg_ms"]),
    }
    chart = shown.data_blocks["calls-per-day"]
    calls = {day["date"]: day["calls"] for day in detail["daily_data"]}
    assert chart["labels"] == dates_of(period)
    assert chart["values"] == [calls.get(date, 0) for date in dates_of(period)]
    assert shown.table("Calls per day") == [
        [d["date"], count(d["calls"]), percent(d["success_rate"]), ms(d["avg_response_time_ms"])]
        for d in detail["daily_data"]
    ]
    assert shown.table("Calls of this tool per server version") == [
        [v["version"], count(v["calls"]), percent(v["percentage"])] for v in detail["versions"]
    ]
    assert shown.table("Calls of this tool per country") == [
        [c["country"], count(c["calls"]), percent(c["percentage"])] for c in detail["countries"]
    ]


def response_times(tool: str, period: str) -> list[int]:
    """What page_events gave `tool` in the period, in ms."""
    return [
        40 + 37 * n + days
        for days, name, calls, _ in PLAN
        if name == tool and days <= stats.PERIODS[period]
        for n in range(calls)
    ]


def as_bucketed(times: list[int], fraction: float) -> float:
    """The nearest-rank percentile as the API gives it: the geometric middle of its bucket (5% wide),
    to 3 places."""
    exact = sorted(times)[math.ceil(fraction * len(times)) - 1]
    bucket = math.floor(math.log(exact) / math.log(1.05))
    return round(1.05 ** (bucket + 0.5), 3)


@pytest.mark.parametrize("period", stats.PERIODS)
def test_each_tool_s_p95_is_its_calls_percentile(seeded, period):
    """Per tool, not the whole service's: the tools table and each tool's page, from the known calls by hand."""
    rows = page(seeded, f"/?period={period}").table("Tools")
    assert {row[0]: row[4] for row in rows} == {
        tool: decimal(as_bucketed(response_times(tool, period), 0.95)) for tool in {row[0] for row in rows}
    }
    assert len({row[4] for row in rows}) == len(rows) > 1  # three tools, three figures
    for tool in {row[0] for row in rows}:
        figures = page(seeded, f"/tools/{tool}?period={period}").figures
        times = response_times(tool, period)
        assert [figures["Median (p50)"], figures["p95"], figures["p99"]] == [
            ms(as_bucketed(times, fraction)) for fraction in (0.50, 0.95, 0.99)
        ], tool


def test_an_empty_service_shows_a_page_without_a_chart(client):
    shown = page(client, "/")
    assert shown.figures["Calls"] == "0" and shown.figures["Success rate"] == "–"
    assert shown.data_blocks == {} and not [a for a in shown.assets if a.endswith(".js")]


def test_the_tool_period_links_keep_the_tool(seeded):
    text = seeded.get("/tools/get_alerts?period=7d").get_data(as_text=True)
    for period in stats.PERIODS:
        assert f'href="/tools/get_alerts?period={period}"' in text
    assert 'href="/tools/get_alerts?period=7d" aria-current="page"' in text
    assert 'href="/v1/stats/tool/get_alerts?period=7d"' in text


# --- errors are pages; the API's stay JSON ------------------------------------------------


@pytest.mark.parametrize("period", ["1y", "", "7D", "30d ", "30", "7d&period=30d", "x" * 5000])
def test_a_bad_period_is_a_400_page(client, period):
    for url in ("/", "/tools/get_forecast"):
        response = client.get(url, query_string={"period": period})
        assert response.status_code == 400 and response.mimetype == "text/html"
        assert "Bad request" in response.text and "The period must be one of 7d, 30d, 90d" in response.text
        assert len(response.text) < 5000  # the page quotes a long value cut short


def test_an_unknown_tool_is_a_404_page(seeded):
    response = seeded.get("/tools/get_tides?period=7d")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "No calls of the tool &#39;get_tides&#39; in the last 7 days." in response.text
    # A tool with calls only 45 days ago has none in 30 days.
    assert seeded.get("/tools/get_forecast?period=30d").status_code == 200
    assert seeded.get("/tools/get_current_conditions?period=7d").status_code == 200
    assert seeded.get("/tools/get_current_conditions?period=90d").status_code == 200


def test_a_tool_name_is_text_never_markup(client):
    response = client.get("/tools/<img src=x onerror=alert(1)>")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<img" not in response.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.text


def test_a_failing_page_is_a_500_page_and_is_logged(client, monkeypatch, caplog):
    def broken(figures: stats.PeriodFigures) -> dict[str, Any]:
        raise RuntimeError("the rollups are gone")

    monkeypatch.setattr(stats.PeriodFigures, "overview", broken)
    with caplog.at_level(logging.ERROR):
        response = client.get("/")
    assert response.status_code == 500 and response.mimetype == "text/html"
    assert "Something went wrong" in response.text and "the rollups are gone" not in response.text
    assert response.headers["Content-Security-Policy"] == STRICT
    assert any("the rollups are gone" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.parametrize("path", ["/nope", "/tool/get_forecast", "/tools/get_forecast/versions"])
def test_a_browser_gets_a_404_page_where_an_api_client_gets_json(client, path):
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "Page not found" in response.text
    assert response.headers["Content-Security-Policy"] == STRICT
    for accept in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        assert client.get(path, headers=accept).json["error"] == "not_found"


def without_stamps(body: dict[str, Any]) -> dict[str, Any]:
    """An error body less what differs between two answers (the /api and /mcp timestamp and request id)."""
    if isinstance(body.get("error"), dict):
        return {"error": {k: v for k, v in body["error"].items() if k not in ("timestamp", "request_id")}}
    return body


@pytest.mark.parametrize(
    "path",
    ["/v1/nope", "/v1/stats/tool/nope", "/v1/stats/overview?period=1y", "/v1/events", "/api/nope", "/mcp/nope"],
)
def test_api_errors_stay_json_for_a_browser(client, path):
    plain, browser = client.get(path), client.get(path, headers=BROWSER)
    assert browser.status_code == plain.status_code >= 400
    assert plain.is_json and browser.is_json
    assert without_stamps(browser.json) == without_stamps(plain.json)


def test_a_browser_posting_to_a_page_gets_a_405_page(client):
    response = client.post("/", headers=BROWSER)
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert "Method not allowed" in response.text
    assert "GET" in response.headers["Allow"]
    assert client.post("/").json["error"] == "method_not_allowed"


# --- the setting, the policy, the limit ---------------------------------------------------


def test_the_setting_turns_the_statistics_pages_off_but_not_signing_in(make_app):
    client = make_app(public_pages=False).test_client()
    for path in ("/", "/?period=7d", "/tools/get_forecast"):
        response = client.get(path, headers=BROWSER)
        assert response.status_code == 404 and response.mimetype == "text/html", path
        assert "does not show its statistics" in response.text
        assert 'href="/"' not in response.text  # no link to the statistics, from the header or the error
        assert response.headers["Content-Security-Policy"] == STRICT
        assert "x-ratelimit-remaining" not in response.headers  # refused before any query
    assert client.get("/sign-in").status_code == 200
    with client.get("/static/pages.css") as stylesheet:
        assert stylesheet.status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/v1/stats/overview").status_code == 200


def test_every_page_and_file_carries_the_policy(seeded):
    """Pages, their files, their error pages and /docs: scripts and styles of this origin only."""
    shown = page(seeded, "/")
    files = sorted({a for url in ("/", "/tools/get_forecast") for a in page(seeded, url).assets})
    assert files == [
        "/static/charts.js",
        "/static/favicon.svg",
        "/static/pages.css",
        "/static/tables.js",
        "/static/vendor/chart.js-4.6.1/chart.umd.js",
    ]
    urls = ["/", "/?period=90d", "/tools/get_alerts", "/tools/nope", "/?period=1y", "/docs", *files]
    kinds = {}
    for url in urls:
        with seeded.get(url) as response:
            assert response.headers["Content-Security-Policy"] == STRICT, url
            assert response.headers["X-Content-Type-Options"] == "nosniff", url
            kinds[url.rsplit(".", 1)[-1]] = response.mimetype
    assert seeded.get("/nope", headers=BROWSER).headers["Content-Security-Policy"] == STRICT
    assert {kind: kinds[kind] for kind in ("js", "svg", "css")} == {
        "js": "text/javascript",
        "svg": "image/svg+xml",
        "css": "text/css",
    }
    assert shown.inline == []


@pytest.mark.parametrize("url", ["/", "/tools/get_forecast", "/tools/nope", "/?period=1y"])
def test_pages_hold_no_inline_script_or_style(seeded, url):
    shown = Page(seeded.get(url).get_data(as_text=True))
    assert shown.inline == []
    assert all(asset.startswith("/static/") for asset in shown.assets), shown.assets


def test_pages_take_tokens_from_the_v1_read_bucket(make_app):
    """/ runs four /v1/stats queries and costs four; the bucket is the one /v1 reads use."""
    client = make_app(rate_limit_per_minute=6, rate_limit_burst=4).test_client()  # 10 tokens, one every 10 s
    tool = client.get("/tools/get_forecast")
    assert tool.status_code == 404  # no calls yet: it ran its query all the same
    assert (tool.headers["x-ratelimit-limit"], tool.headers["x-ratelimit-remaining"]) == ("10", "9")
    assert client.get("/").headers["x-ratelimit-remaining"] == "5"
    assert client.get("/").headers["x-ratelimit-remaining"] == "1"
    with client.get("/static/pages.css") as stylesheet:  # files run no query and are not counted
        assert stylesheet.status_code == 200 and "x-ratelimit-remaining" not in stylesheet.headers
    limited = client.get("/")
    assert limited.status_code == 429 and limited.mimetype == "text/html"
    assert "Too many requests" in limited.text
    assert limited.headers["Retry-After"] == "30"  # three more tokens needed
    assert limited.headers["Content-Security-Policy"] == STRICT
    assert client.get("/v1/stats/overview").status_code == 200  # the last token
    assert client.get("/v1/stats/overview").json["error"] == "rate_limit_exceeded"


def test_the_vendored_chart_library_is_the_registry_package_s_with_its_licence():
    folder = Path(str(page_views.bp.static_folder)) / page_views.CHART_JS
    assert_vendored(folder, "chart.js", {"LICENSE.md", "chart.umd.js"})
    assert re.search(r"^ \* Chart\.js v4\.6\.1$", (folder / "chart.umd.js").read_text()[:200], re.MULTILINE)


def test_the_templates_are_compiled_before_the_first_visit(app):
    """The first visitor after a start waits for no template to compile (bench/pages.py: 40 ms and more)."""
    from weather_metrics.web.pages.blueprint import TEMPLATES

    assert {name for _, name in app.jinja_env.cache} >= set(TEMPLATES)
