"""/openapi.json covers every route; /docs is readable."""

from __future__ import annotations

from weather_metrics.web.docs import flask_path


def test_openapi_covers_every_route(app, client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops if method != "parameters"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (flask_path(rule.rule), method.lower()) in documented, f"{method} {rule.rule} is undocumented"


def test_event_schema_is_generated_from_the_contract(client):
    event = client.get("/openapi.json").json["components"]["schemas"]["Event"]
    assert set(event["required"]) == {"version", "tool", "status", "timestamp_hour", "analytics_level"}
    assert event["properties"]["status"]["enum"] == ["success", "error"]
    assert "parameters" in event["properties"]


def test_docs_page_lists_endpoints(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "/v1/stats/tool/{tool_name}" in page.text
    assert "analytics_level" in page.text


def test_parameters_rule_is_documented(client):
    parameters = client.get("/openapi.json").json["components"]["schemas"]["Event"]["properties"]["parameters"]
    assert parameters["maxProperties"] == 20
    values = {branch["type"]: branch for branch in parameters["additionalProperties"]["oneOf"]}
    assert values["boolean"]["nullable"] is True
    assert (values["integer"]["minimum"], values["integer"]["maximum"]) == (-1000, 1000)
    assert values["string"]["pattern"] == "^[a-z][a-z_]{0,31}$"
    assert "an integer from -1000 to 1000" in client.get("/docs").text
