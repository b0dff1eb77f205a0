"""A dashboard's widgets and filters on the pages: every field the API's schema takes, set with the forms and read
back through GET /api/dashboards/<id>; two browsers editing one dashboard at once (both additions kept, a form built
from a widget changed since refused with 409 and nothing written)."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

from tests.test_pages_dashboard_edit import WIDGET, api, browser_of, hidden, problems, send, site, stored

__all__ = ["site"]


def widget_form(client: Any, board_id: str, widget_id: str) -> dict[str, str]:
    """The widget page's fields as shown: hidden, text and the selected option of each select."""
    page = client.get(f"/dashboards/{board_id}/widgets/{widget_id}")
    assert page.status_code == 200
    typed = re.findall(r'<input id="[\w-]+" name="([\w-]+)" type="text" value="([^"]*)"', page.text)
    fields = {name: unescape(value) for name, value in typed}
    for name, select in re.findall(r'<select id="[\w-]+" name="([\w-]+)"[^>]*>(.*?)</select>', page.text, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', select)
        fields[name] = unescape(chosen.group(1)) if chosen else ""
    fields.update(re.findall(r'<input type="hidden" name="(widget-version)" value="([^"]*)">', page.text))
    return fields


def test_a_widget_page_sets_every_type_metric_and_filter_the_api_takes(site):
    admin = browser_of(site, "admin")
    board_id = site["boards"]["Org board"]
    assert send(admin, f"/dashboards/{board_id}/widgets", **WIDGET).status_code == 303
    widget_id = stored(site, board_id)["layout"][0]["id"]
    developer_id = site["acme"]["developer"].user.id
    for kind in ("line", "bar", "area", "pie", "number", "table"):
        fields = widget_form(admin, board_id, widget_id)
        assert fields["widget-type"] != kind or kind == "bar"
        fields.update({"widget-type": kind, "widget-metric": "agents.p95_duration_ms", "widget-title": f"As {kind}"})
        fields.update(
            {"widget-range": "", "widget-start_date": "2026-01-01", "widget-end_date": "2026-02-01T12:00:00Z"}
        )
        fields.update(
            {"widget-aggregation": "hour", "widget-agent_name": "reviewer", "widget-team_id": site["teams"]["ops"]}
        )
        fields.update({"widget-user_id": developer_id, "widget-success_only": "true", "widget-x": "3", "widget-w": "9"})
        answer = send(admin, f"/dashboards/{board_id}/widgets/{widget_id}", **fields)
        assert answer.status_code == 303 and answer.headers["Location"].endswith("?done=changed")
        widget = stored(site, board_id)["layout"][0]
        assert (widget["type"], widget["metric"], widget["title"]) == (kind, "agents.p95_duration_ms", f"As {kind}")
        assert widget["filters"] == {
            "start_date": "2026-01-01",
            "end_date": "2026-02-01T12:00:00Z",
            "aggregation": "hour",
            "agent_name": "reviewer",
            "team_id": site["teams"]["ops"],
            "user_id": developer_id,
            "success_only": True,
        }
        assert widget["position"] == {"x": 3, "y": 0, "w": 9, "h": 4}
    fields = widget_form(admin, board_id, widget_id)  # the page shows what is stored; blanks unset a filter
    assert (fields["widget-success_only"], fields["widget-team_id"], fields["widget-agent_name"]) == (
        "true",
        site["teams"]["ops"],
        "reviewer",
    )
    fields.update(
        {"widget-start_date": "", "widget-end_date": "", "widget-range": "90d", "widget-success_only": "false"}
    )
    fields.update({"widget-agent_name": "", "widget-team_id": "", "widget-user_id": "", "widget-aggregation": ""})
    assert send(admin, f"/dashboards/{board_id}/widgets/{widget_id}", **fields).status_code == 303
    assert stored(site, board_id)["layout"][0]["filters"] == {"range": "90d", "success_only": False}


def test_the_dashboard_form_sets_its_filters_and_default(site):
    manager = browser_of(site, "manager")
    board_id = site["boards"]["Core board"]
    action = f"/dashboards/{board_id}/edit"
    fields = {"name": "Core", "description": "", "is_default": "1", "filter-range": "30d", "filter-aggregation": "week"}
    fields.update(
        {"filter-team_id": site["teams"]["core"], "filter-agent_name": "coder", "filter-success_only": "true"}
    )
    assert send(manager, action, **fields, **hidden(manager, board_id, action)).status_code == 303
    board = stored(site, board_id)
    assert board["is_default"] is True
    assert board["filters"] == {
        "range": "30d",
        "aggregation": "week",
        "team_id": site["teams"]["core"],
        "agent_name": "coder",
        "success_only": True,
    }
    page = manager.get(action).text
    assert 'id="is_default" name="is_default" type="checkbox" value="1" checked' in page
    assert f'<option value="{site["teams"]["ops"]}"' not in page  # not a team the manager sees
    fields = {"name": "Core", "description": "", "filter-range": "7d", "filter-start_date": "2026-13-01"}
    page = send(manager, action, **fields, **hidden(manager, board_id, action))
    assert page.status_code == 400
    assert set(problems(page)) == {"filter-start_date"}
    page = send(manager, action, name="Core", description="", **{"filter-range": "7d", "filter-end_date": "2026-01-01"})
    assert page.status_code == 400 and problems(page) == {"filter-range": "Use either range or start_date/end_date."}
    assert stored(site, board_id)["filters"]["range"] == "30d"


def test_refused_widget_fields_show_beside_their_field_and_change_nothing(site):
    admin = browser_of(site, "admin")
    board_id = site["boards"]["Org board"]
    assert send(admin, f"/dashboards/{board_id}/widgets", **WIDGET).status_code == 303
    before = stored(site, board_id)
    widget_id = before["layout"][0]["id"]
    fields = widget_form(admin, board_id, widget_id)
    fields.update({"widget-range": "7d", "widget-start_date": "2026-01-01"})
    page = send(admin, f"/dashboards/{board_id}/widgets/{widget_id}", **fields)
    assert page.status_code == 400
    assert problems(page) == {"widget-range": "Use either range or start_date/end_date."}
    assert 'name="widget-start_date" type="text" value="2026-01-01"' in page.text  # as typed
    fields = {**widget_form(admin, board_id, widget_id), "widget-success_only": "maybe", "widget-h": "0"}
    page = send(admin, f"/dashboards/{board_id}/widgets/{widget_id}", **fields)
    assert page.status_code == 400 and set(problems(page)) == {"widget-success_only", "widget-h"}
    fields = {**widget_form(admin, board_id, widget_id), "widget-metric": "productivity.nothing_like_it"}
    page = send(admin, f"/dashboards/{board_id}/widgets/{widget_id}", **fields)
    assert page.status_code == 400 and set(problems(page)) == {"widget-metric"}
    added = {**WIDGET, "add-end_date": "yesterday", "add-agent_name": "x" * 129}
    page = send(admin, f"/dashboards/{board_id}/widgets", **added)
    assert page.status_code == 400 and set(problems(page)) == {"add-end_date", "add-agent_name"}
    assert stored(site, board_id) == before
    assert admin.get(f"/dashboards/{board_id}/widgets/no-such-widget").status_code == 404


@pytest.mark.parametrize("who", ["admin", "manager", "developer", "outsider"])
def test_the_widget_page_follows_the_apis_rule_for_each_dashboard(site, who):
    admin = browser_of(site, "admin")
    browser = browser_of(site, who)
    for name, board_id in site["boards"].items():
        if name == "Globex board":
            continue
        owner = "developer" if name == "Developer's own" else "admin"
        owners_browser = browser_of(site, owner) if owner == "developer" else admin
        assert send(owners_browser, f"/dashboards/{board_id}/widgets", **WIDGET).status_code == 303, name
        widget_id = api(site, owner, "GET", f"/api/dashboards/{board_id}").get_json()["layout"][-1]["id"]
        by_api = api(site, who, "PUT", f"/api/dashboards/{board_id}", json={"description": "touched"}).status_code
        path = f"/dashboards/{board_id}/widgets/{widget_id}"
        assert browser.get(path).status_code == by_api, name
        answer = send(browser, path, **{"widget-type": "pie", "widget-metric": "agents.calls", "widget-x": "0"})
        assert answer.status_code == (409 if by_api == 200 else by_api), name  # no version: built from nothing


def test_two_browsers_adding_widgets_at_once_both_keep_theirs(site):
    """Two tabs opened on the same edit page each add a widget: both are stored."""
    first, second = browser_of(site, "admin"), browser_of(site, "admin")
    board_id = site["boards"]["Org board"]
    for tab in (first, second):
        assert tab.get(f"/dashboards/{board_id}/edit").status_code == 200
    one = {**WIDGET, "add-title": "From the first tab"}
    two = {**WIDGET, "add-title": "From the second tab", "add-type": "table"}
    assert send(first, f"/dashboards/{board_id}/widgets", **one).status_code == 303
    assert send(second, f"/dashboards/{board_id}/widgets", **two).status_code == 303
    assert [w["title"] for w in stored(site, board_id)["layout"]] == ["From the first tab", "From the second tab"]


def test_a_form_built_before_another_tabs_change_is_refused_with_the_dashboard_as_it_is_now(site):
    first, second = browser_of(site, "admin"), browser_of(site, "admin")
    board_id = site["boards"]["Org board"]
    assert send(first, f"/dashboards/{board_id}/widgets", **{**WIDGET, "add-title": "Calls"}).status_code == 303
    widget_id = stored(site, board_id)["layout"][0]["id"]
    layout_action, details_action = f"/dashboards/{board_id}/layout", f"/dashboards/{board_id}/edit"
    remove_action = f"/dashboards/{board_id}/widgets/{widget_id}/delete"
    old_layout, old_details = hidden(second, board_id, layout_action), hidden(second, board_id, details_action)
    old_widget, old_remove = widget_form(second, board_id, widget_id), hidden(second, board_id, remove_action)
    # The first tab renames the widget and the dashboard, and adds another widget.
    fields = {**widget_form(first, board_id, widget_id), "widget-title": "Calls by week"}
    assert send(first, f"/dashboards/{board_id}/widgets/{widget_id}", **fields).status_code == 303
    details = {"name": "Renamed in the first tab", "description": "", **hidden(first, board_id, details_action)}
    assert send(first, details_action, **details).status_code == 303
    assert send(first, f"/dashboards/{board_id}/widgets", **{**WIDGET, "add-title": "Second"}).status_code == 303
    now = stored(site, board_id)
    # The second tab's forms were built before: each is refused, says so, shows the state now, writes nothing.
    row = {"layout-0-title": "Stale title", "layout-0-x": "0", "layout-0-y": "9", "layout-0-w": "6", "layout-0-h": "4"}
    sent = [
        (layout_action, {**old_layout, **row}),
        (f"/dashboards/{board_id}/widgets/{widget_id}", {**old_widget, "widget-title": "Stale"}),
        (details_action, {"name": "Stale name", "description": "", **old_details}),
        (remove_action, old_remove),
    ]
    for action, fields in sent:
        page = send(second, action, **fields)
        assert page.status_code == 409, action
        assert "Not saved:" in page.text and "after this page was opened" in page.text
        assert 'value="Renamed in the first tab"' in page.text and 'value="Calls by week"' in page.text
        assert stored(site, board_id) == now, action
    # A layout form built before a widget was added still saves: the added widget is kept as it is.
    fresh = {name: value for name, value in hidden(second, board_id, layout_action).items() if "-0-" in name}
    assert send(first, f"/dashboards/{board_id}/widgets", **{**WIDGET, "add-title": "Third"}).status_code == 303
    assert send(second, layout_action, **{**fresh, **row, "layout-0-title": "Moved"}).status_code == 303
    layout = stored(site, board_id)["layout"]
    assert [w["title"] for w in layout] == ["Moved", "Second", "Third"]
    assert layout[0]["position"]["y"] == 9
