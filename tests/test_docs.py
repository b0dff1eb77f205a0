"""/openapi.json covers every route; /docs is a page of our own files under a strict CSP (drawn: test_docs_page.py)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from tests.support import assert_vendored
from weather_metrics.web import docs_page
from weather_metrics.web.docs import flask_path

STRICT = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def test_openapi_covers_every_route(app, client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops if method != "parameters"}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):  # files, not the API
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (flask_path(rule.rule), method.lower()) in documented, f"{method} {rule.rule} is undocumented"


def test_event_schema_is_generated_from_the_contract(client):
    event = client.get("/openapi.json").json["components"]["schemas"]["Event"]
    assert set(event["required"]) == {"version", "tool", "status", "timestamp_hour", "analytics_level"}
    assert event["properties"]["status"]["enum"] == ["success", "error"]
    assert "parameters" in event["properties"]


def test_parameters_rule_is_documented(client):
    parameters = client.get("/openapi.json").json["components"]["schemas"]["Event"]["properties"]["parameters"]
    assert parameters["maxProperties"] == 20
    values = {branch["type"]: branch for branch in parameters["additionalProperties"]["oneOf"]}
    assert values["boolean"]["nullable"] is True
    assert (values["integer"]["minimum"], values["integer"]["maximum"]) == (-1000, 1000)
    assert values["string"]["pattern"] == "^[a-z][a-z_]{0,31}$"
    assert "an integer from -1000 to 1000" in parameters["description"]


class Assets(HTMLParser):
    """The scripts, stylesheets and icons a page loads, and any inline script or style it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.open_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "style" or "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append(self.get_starttag_text() or tag)
        if tag == "script":
            self.open_script = True
            self.urls.append(attributes.get("src") or "")
        elif tag == "link":
            self.urls.append(attributes.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        self.open_script = self.open_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self.open_script and data.strip():
            self.inline.append(data)


def test_docs_is_a_page_of_our_own_files_under_a_strict_policy(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == STRICT
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assets = Assets()
    assets.feed(page.text)
    assert assets.inline == []
    assert 'data-spec-url="/openapi.json"' in page.text
    kinds = {}
    for url in assets.urls:
        assert url.startswith("/docs/static/"), url  # this host, no CDN
        with client.get(url) as served:
            assert served.status_code == 200, url
            assert served.headers["X-Content-Type-Options"] == "nosniff"
            kinds[url.rsplit("/", 1)[1]] = served.mimetype
    assert kinds == {
        "favicon-32x32.png": "image/png",
        "swagger-ui.css": "text/css",
        "docs.css": "text/css",
        "swagger-ui-bundle.js": "text/javascript",
        "docs.js": "text/javascript",
    }


def test_the_vendored_files_are_the_registry_package_s_with_its_licence():
    """Each file is byte for byte what its README says it is, and the README names every file."""
    assert_vendored(
        Path(str(docs_page.bp.static_folder)) / docs_page.SWAGGER_UI, "swagger-ui-dist", {"LICENSE", "NOTICE"}
    )
