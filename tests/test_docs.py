"""/openapi.json covers every route, grouped and typed (the server answers as it says: test_openapi_conformance.py);
/docs is a page of our own files under a strict CSP (drawn: test_docs_page.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import schemathesis

from tests.support import assert_vendored
from weather_metrics.web import docs_page
from weather_metrics.web.docs import flask_path

STRICT = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


METHODS = {"get", "put", "post", "delete", "patch"}


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield path, method, op


def test_openapi_documents_every_route_with_its_methods_and_nothing_else(app, client):
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, method, _op in operations(spec)}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):  # files, not the API
            continue
        routed |= {(flask_path(rule.rule), method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert sorted(routed - documented) == [], "undocumented routes"
    assert sorted(documented - routed) == [], "documented, but no such route"


def test_the_document_is_valid_openapi_3_0(client):
    """Checked against the OpenAPI 3.0 schema, which holds patterns to ECMA-262 (no Python-only \\Z)."""
    schemathesis.openapi.from_dict(client.get("/openapi.json").json).validate()


def test_every_operation_has_a_summary_one_declared_tag_and_its_security(client):
    spec = client.get("/openapi.json").json
    declared = [tag["name"] for tag in spec["tags"]]
    assert all(tag.get("description") for tag in spec["tags"])
    used = set()
    for path, method, op in operations(spec):
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert len(op.get("tags", [])) == 1 and op["tags"][0] in declared, where
        used.add(op["tags"][0])
        assert "security" in op, where  # [] is stated: no credentials
        for requirement in op["security"]:
            assert set(requirement) <= set(spec["components"]["securitySchemes"]), where
    assert used == set(declared), "a declared tag groups nothing"


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PAGE_PREFIXES = (
    "/dashboards",
    "/live/",
    "/alerts",
    "/admin/",
    "/exports",
    "/explore/",
)  # pages behind the browser session


def test_each_surface_asks_for_its_own_credentials(client):
    spec = client.get("/openapi.json").json
    schemes = {
        (path, method): {name for requirement in op["security"] for name in requirement}
        for path, method, op in operations(spec)
    }
    read_routes = {f"/api/metrics/{k}" for k in ("agents", "productivity")} | {
        f"/api/analytics/{k}" for k in ("productivity-trends", "team-comparison")
    }
    for (path, method), names in schemes.items():
        public = (
            "/metrics",
            "/openapi.json",
            "/docs",
            "/",
            "/tools/{tool_name}",
            "/sign-in/oidc",
            "/sign-in/oidc/callback",
        )
        if path.startswith("/v1/") or path in public:
            assert names == set(), path
        elif path in ("/sign-in", "/sign-out", "/account") or path.startswith(PAGE_PREFIXES):
            # pages: a browser's session cookie, once signed in
            assert names == (set() if path == "/sign-in" else {"browserSession"}), (method, path)
        elif path.startswith("/mcp/"):
            assert {"apiKey", "apiKeyBearer"} <= names, path
        elif method == "get" and path in read_routes:
            assert names == {"bearerAuth", "apiKey"}, (method, path)  # a read key in X-API-Key
        elif path not in ("/api/auth/login", "/api/auth/refresh"):
            assert names == {"bearerAuth"}, (method, path)


def test_every_answer_with_a_body_has_a_schema(client):
    """2xx answers with a body name their schema; errors use their surface's error body."""
    spec = client.get("/openapi.json").json
    for path, method, op in operations(spec):
        error = "Error" if path.startswith("/v1/") else "ApiError"
        for status, response in op["responses"].items():
            where = f"{method.upper()} {path} {status}"
            assert response.get("description"), where
            if status in ("101", "204"):
                assert "content" not in response, where
                continue
            assert response.get("content"), where
            for media_type, content in response["content"].items():
                assert content.get("schema"), (where, media_type)
            if (path, status) in (("/live/ticket", "201"), ("/exports/jobs", "200")):  # page routes scripts read
                assert set(response["content"]) == {"application/json"}, where
            elif (path, status) == ("/exports/{job_id}/download", "200"):  # the export file, as the API serves it
                assert set(response["content"]) == {"text/csv; charset=utf-8", "application/pdf", XLSX}, where
            elif "Pages" in op["tags"]:  # pages answer errors as pages too
                assert set(response["content"]) == {"text/html"}, where
            elif status.startswith(("4", "5")) and not path.startswith("/v1/health"):
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{error}"}}
                }


def test_path_and_query_parameters_are_declared_with_types(client):
    spec = client.get("/openapi.json").json
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method not in METHODS:
                continue
            parameters = shared + op.get("parameters", [])
            in_path = {p["name"] for p in parameters if p["in"] == "path"}
            assert in_path == set(re.findall(r"{([^}]+)}", path)), (method, path)
            assert all(p["schema"].get("type") for p in parameters), (method, path)


def test_query_parameters_say_what_the_code_accepts(client):
    spec = client.get("/openapi.json").json

    def query(path: str, name: str) -> dict[str, Any]:
        found = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == name and p["in"] == "query"]
        assert len(found) == 1, (path, name)
        return found[0]["schema"]  # type: ignore[no-any-return]

    assert query("/api/users", "role")["enum"] == ["admin", "manager", "developer"]
    assert query("/api/users", "limit") == {"type": "integer", "default": 20, "minimum": 1, "maximum": 100}
    assert query("/api/teams", "include_members") == {"type": "boolean", "default": False}
    assert query("/api/metrics/agents", "aggregation")["enum"] == ["hour", "day", "week", "month"]
    assert query("/api/alerts", "state")["enum"] == ["firing", "resolved"]
    assert query("/mcp/hooks/{hook_id}/deliveries", "limit")["maximum"] == 200
    assert query("/v1/stats/overview", "period")["default"] == "30d"


def test_account_answers_take_iso_moments_and_keys_their_scope(client):
    """Accounts answer ISO 8601 moments like the rest of the API, and keys their scope."""
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    for name, fields in {
        "User": ("created_at", "updated_at"),
        "Team": ("created_at",),
        "Membership": ("created_at",),
        "ApiKey": ("created_at", "last_used_at"),
        "Organization": ("created_at",),
    }.items():
        for field in fields:
            assert schemas[name]["properties"][field]["type"] == "string", (name, field)
            assert schemas[name]["properties"][field]["format"] == "date-time", (name, field)
    assert schemas["ApiKey"]["properties"]["scope"]["enum"] == ["ingest", "read"]
    assert "scope" in schemas["ApiKey"]["required"]
    assert schemas["NewApiKey"]["properties"]["secret"]["type"] == "string"


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
