"""Malformed, oversized, wrong-type and abusive requests: each gets the contract's error, and nothing is lost."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support import current_hour, make_event
from weather_metrics.store.db import database

MAX_BODY = 100 * 1024
STATS_PATHS = [
    "/v1/stats/overview",
    "/v1/stats/tools",
    "/v1/stats/tool/get_forecast",
    "/v1/stats/errors",
    "/v1/stats/performance",
]
RATE_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def assert_error(response: TestResponse, status: int, error: str) -> Any:
    """The contract's error body, {"error": str, "details": str | [str]} and nothing else; returns details."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error", "details"}
    assert body["error"] == error
    details = body["details"]
    assert isinstance(details, str) or (isinstance(details, list) and all(isinstance(d, str) for d in details))
    assert details
    return details


def post_events(client: FlaskClient, events: list[dict[str, Any]], **kwargs: Any) -> TestResponse:
    return client.post("/v1/events", json={"events": events}, **kwargs)


def total_calls(client: FlaskClient, period: str | None = None) -> int:
    query = "" if period is None else f"?period={period}"
    response = client.get("/v1/stats/overview" + query)
    assert response.status_code == 200
    return int(response.get_json()["summary"]["total_calls"])


@pytest.fixture
def seeded(client: FlaskClient) -> FlaskClient:
    """A client whose service has already accepted two events."""
    response = post_events(client, [make_event(), make_event(tool="get_alerts")])
    assert response.status_code == 200
    assert total_calls(client) == 2
    return client


def assert_nothing_lost(client: FlaskClient) -> None:
    """After a rejected request, the two seeded events are still counted and a valid batch is accepted."""
    assert total_calls(client) == 2
    response = post_events(client, [make_event(tool="get_current_conditions")])
    assert response.status_code == 200
    assert response.get_json()["status"] == "accepted"
    assert response.get_json()["count"] == 1
    assert total_calls(client) == 3


# --- POST /v1/events: the body ----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b'{"events": [}', b"\xff\xfe\xfa", b'{"events": []}{}', b"{'events': []}"],
    ids=["empty", "open brace", "text", "broken array", "bad bytes", "two documents", "single quotes"],
)
def test_malformed_json_is_an_invalid_request(seeded: FlaskClient, raw: bytes) -> None:
    response = seeded.post("/v1/events", data=raw, content_type="application/json")
    details = assert_error(response, 400, "invalid_request")
    assert isinstance(details, str) and details.startswith("Malformed JSON")
    assert_nothing_lost(seeded)


@pytest.mark.parametrize("raw", [b"[]", b'"events"', b"42", b"null", b"true"])
def test_body_that_is_not_an_object_fails_validation(seeded: FlaskClient, raw: bytes) -> None:
    response = seeded.post("/v1/events", data=raw, content_type="application/json")
    assert assert_error(response, 400, "validation_failed") == ["body: Must be an object"]
    assert_nothing_lost(seeded)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, ["events: Required"]),
        ({"event": [make_event()]}, ["event: Unknown field", "events: Required"]),
        ({"events": None}, ["events: Must not be null"]),
        ({"events": make_event()}, ["events: Must be an array"]),
        ({"events": "[]"}, ["events: Must be an array"]),
        ({"events": []}, ["events: Must contain between 1 and 100 events"]),
        ({"events": [make_event()] * 101}, ["events: Must contain between 1 and 100 events"]),
    ],
    ids=["missing", "misspelt", "null", "object", "string", "empty", "101 events"],
)
def test_events_must_be_an_array_of_1_to_100(seeded: FlaskClient, body: Any, expected: list[str]) -> None:
    response = seeded.post("/v1/events", json=body)
    assert assert_error(response, 400, "validation_failed") == expected
    assert_nothing_lost(seeded)


def test_batch_of_100_events_is_accepted(client: FlaskClient) -> None:
    response = post_events(client, [make_event() for _ in range(100)])
    assert response.status_code == 200
    assert response.get_json()["count"] == 100
    assert total_calls(client) == 100


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("version", 1, "Must be a string"),
        ("tool", "Get-Forecast", "Must be 1-64 lowercase letters, digits or underscores"),
        ("status", True, "Must be a string"),
        ("timestamp_hour", 1762977600, "Must be a string"),
        ("timestamp_hour", "yesterday", "Invalid date format"),
        ("analytics_level", "everything", "Must be one of: minimal, standard, detailed"),
        ("response_time_ms", "150", "Must be a number"),
        ("response_time_ms", True, "Must be a number"),
        ("response_time_ms", -5, "Must be between 0 and 3600000"),
        ("service", ["noaa"], "Must be a string"),
        ("cache_hit", "true", "Must be a boolean"),
        ("retry_count", 1.5, "Must be an integer"),
        ("country", "UK", "Must be an ISO 3166-1 alpha-2 country code"),
        ("error_type", {"name": "NetworkError"}, "Must be a string"),
        ("session_id", 42, "Must be a string"),
        ("sequence_number", "5", "Must be an integer"),
        ("parameters", ["coordinates"], "Must be an object"),
    ],
)
def test_wrong_type_or_value_per_field(seeded: FlaskClient, field: str, value: Any, message: str) -> None:
    response = post_events(seeded, [make_event(**{field: value})])
    assert assert_error(response, 400, "validation_failed") == [f"events[0].{field}: {message}"]
    assert_nothing_lost(seeded)


def test_required_field_missing_or_null(seeded: FlaskClient) -> None:
    event = make_event(version=None)
    event["tool"] = None
    response = post_events(seeded, [event])
    assert assert_error(response, 400, "validation_failed") == [
        "events[0].tool: Must not be null",
        "events[0].version: Required",
    ]
    assert_nothing_lost(seeded)


def test_one_bad_event_rejects_the_whole_batch(seeded: FlaskClient) -> None:
    events = [make_event(), make_event(), make_event(status="done")]
    response = post_events(seeded, events)
    assert assert_error(response, 400, "validation_failed") == ["events[2].status: Must be one of: success, error"]
    assert_nothing_lost(seeded)


def test_lowercase_country_is_accepted_and_counted_upper_case(client: FlaskClient) -> None:
    assert post_events(client, [make_event(country="us"), make_event(country="US")]).status_code == 200
    detail = client.get("/v1/stats/tool/get_forecast").get_json()
    assert [(c["country"], c["calls"]) for c in detail["countries"]] == [("US", 2)]


# --- POST /v1/events: personal data ------------------------------------------------------


def test_contract_parameters_example_is_accepted(client: FlaskClient) -> None:
    event = make_event(
        analytics_level="detailed",
        session_id="abc123def456",
        sequence_number=5,
        parameters={"location_type": "coordinates"},
    )
    response = post_events(client, [event])
    assert response.status_code == 200
    assert total_calls(client) == 1


PII_KEY = "Looks like personal data (the key names location, contact or identity data); never send PII"
BAD_KEY = "Key must be a lowercase snake_case name (a-z and '_', starting with a letter, 1-64 characters)"
BAD_INTEGER = (
    "Must be a small integer (-1000 to 1000, no decimal point); measurements and long numbers may hold personal data"
)
BAD_TOKEN = (
    "Must be a lowercase word token (a-z and '_', 1-32 characters, starting with a letter); "
    "values with digits or punctuation may hold personal data"
)


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"latitude": 40}, [f"events[0].parameters.latitude: {PII_KEY}"]),
        ({"userEmail": "x"}, [f"events[0].parameters.userEmail: {BAD_KEY}"]),
        ({"location_type": "40.7128,-74.0060"}, [f"events[0].parameters.location_type: {BAD_TOKEN}"]),
        ({"q": 40.7128}, [f"events[0].parameters.q: {BAD_INTEGER}"]),
        ({"q": 2130706433}, [f"events[0].parameters.q: {BAD_INTEGER}"]),
        ({"q": "a@b.com"}, [f"events[0].parameters.q: {BAD_TOKEN}"]),
        ({"q": "192.168.1.10"}, [f"events[0].parameters.q: {BAD_TOKEN}"]),
        ({"q": "123 Main St"}, [f"events[0].parameters.q: {BAD_TOKEN}"]),
        (
            {"q": {"lat": 40.7}},
            ["events[0].parameters.q: Must be a boolean, null, small integer or word token (no objects or arrays)"],
        ),
        ({f"p{i}": i for i in range(21)}, ["events[0].parameters: Must have at most 20 keys"]),
    ],
    ids=[
        "lat key",
        "camel-case key",
        "coordinate pair",
        "coordinate float",
        "ip as number",
        "email",
        "ip",
        "address",
        "nested",
        "21 keys",
    ],
)
def test_personal_data_in_parameters_is_rejected_and_not_stored(
    seeded: FlaskClient, parameters: dict[str, Any], expected: list[str]
) -> None:
    response = post_events(seeded, [make_event(analytics_level="detailed", parameters=parameters)])
    assert assert_error(response, 400, "validation_failed") == expected
    assert_nothing_lost(seeded)


# --- POST /v1/events: timestamps ---------------------------------------------------------


@pytest.mark.parametrize(
    ("hours_ago", "message"),
    [
        (-2, "Must not be more than 1 hour in the future"),
        (-48, "Must not be more than 1 hour in the future"),
        (24 * 91, "Older than the 90-day retention"),
        (24 * 365, "Older than the 90-day retention"),
    ],
)
def test_timestamps_outside_the_kept_window_are_rejected(seeded: FlaskClient, hours_ago: int, message: str) -> None:
    response = post_events(seeded, [make_event(), make_event(timestamp_hour=current_hour(hours_ago))])
    assert assert_error(response, 400, "validation_failed") == [f"events[1].timestamp_hour: {message}"]
    assert total_calls(seeded, "90d") == 2
    assert_nothing_lost(seeded)


@pytest.mark.parametrize("hours_ago", [-1, 24 * 89])
def test_timestamps_just_inside_the_window_are_accepted(client: FlaskClient, hours_ago: int) -> None:
    response = post_events(client, [make_event(timestamp_hour=current_hour(hours_ago))])
    assert response.status_code == 200
    # Counted in the rows, not the stats: after 23:00 UTC the next hour is tomorrow, past the
    # stats period (which ends today), though it is stored.
    with client.application.app_context():
        assert database.execute_sql("SELECT COUNT(*) FROM events").fetchone()[0] == 1


# --- POST /v1/events: size ------------------------------------------------------------


def padded_batch(size: int) -> bytes:
    """A valid one-event batch padded with trailing whitespace to exactly `size` bytes."""
    raw = json.dumps({"events": [make_event()]}).encode()
    return raw + b" " * (size - len(raw))


def large_real_batch() -> bytes:
    """100 detailed events with 20 parameters each: well over 100 KB of real JSON."""
    event = make_event(analytics_level="detailed", parameters={f"option_{c}": "x" * 32 for c in "abcdefghijklmnopqrst"})
    body = json.dumps({"events": [event] * 100}).encode()
    assert len(body) > MAX_BODY
    return body


def test_body_of_exactly_100_kb_is_accepted(client: FlaskClient) -> None:
    response = client.post("/v1/events", data=padded_batch(MAX_BODY), content_type="application/json")
    assert response.status_code == 200
    assert total_calls(client) == 1


def test_body_over_100_kb_is_payload_too_large(seeded: FlaskClient) -> None:
    response = seeded.post("/v1/events", data=padded_batch(MAX_BODY + 1), content_type="application/json")
    details = assert_error(response, 413, "payload_too_large")
    assert isinstance(details, str)
    assert_nothing_lost(seeded)


def test_large_batch_of_real_events_over_100_kb_is_payload_too_large(seeded: FlaskClient) -> None:
    response = seeded.post("/v1/events", data=large_real_batch(), content_type="application/json")
    assert_error(response, 413, "payload_too_large")
    assert_nothing_lost(seeded)


def post_streamed(client: FlaskClient, raw: bytes) -> TestResponse:
    """POST without Content-Length, as a chunked body arrives through gunicorn (which sets input_terminated)."""
    return client.post(
        "/v1/events",
        input_stream=io.BytesIO(raw),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True},
    )


def test_streamed_body_without_content_length_is_accepted(client: FlaskClient) -> None:
    response = post_streamed(client, json.dumps({"events": [make_event(), make_event()]}).encode())
    assert response.status_code == 200
    assert response.get_json()["count"] == 2
    assert total_calls(client) == 2


@pytest.mark.parametrize("raw", [padded_batch(2 * MAX_BODY), large_real_batch()], ids=["padded", "100 events"])
def test_streamed_body_over_100_kb_is_payload_too_large(seeded: FlaskClient, raw: bytes) -> None:
    response = post_streamed(seeded, raw)
    assert_error(response, 413, "payload_too_large")
    assert_nothing_lost(seeded)


# --- POST /v1/events: input that must never cause a 500 ----------------------------------

CRASHING_BODIES = {
    "deeply nested JSON (RecursionError in json.loads)": b"[" * 50_000 + b"]" * 50_000,
    "unicode digit in a field name (error_list int('²'))": json.dumps({"events": [make_event()], "²": 1}).encode(),
    "integer too large for a float (math.isfinite OverflowError)": json.dumps(
        {"events": [make_event(response_time_ms=1)]}
    )
    .replace('"response_time_ms": 1', '"response_time_ms": 1' + "0" * 400)
    .encode(),
    "timestamp whose UTC time is past year 9999 (astimezone OverflowError)": json.dumps(
        {"events": [make_event(timestamp_hour="9999-12-31T23:59:59-01:00")]}
    ).encode(),
}


@pytest.mark.parametrize("raw", list(CRASHING_BODIES.values()), ids=list(CRASHING_BODIES))
def test_hostile_bodies_get_a_400_not_a_500(client: FlaskClient, raw: bytes) -> None:
    assert len(raw) <= MAX_BODY
    response = client.post("/v1/events", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] in {"invalid_request", "validation_failed"}


# --- Idempotency-Key ------------------------------------------------------------------


def test_same_idempotency_key_and_body_is_counted_once(client: FlaskClient) -> None:
    body = {"events": [make_event(), make_event(status="error", error_type="NetworkError")]}
    first = client.post("/v1/events", json=body, headers={"Idempotency-Key": "batch-0001"})
    second = client.post("/v1/events", json=body, headers={"Idempotency-Key": "batch-0001"})
    assert first.status_code == second.status_code == 200
    assert second.get_json() == first.get_json()
    assert first.get_json()["count"] == 2
    assert total_calls(client) == 2


def test_same_idempotency_key_with_another_body_is_rejected(client: FlaskClient) -> None:
    first = post_events(client, [make_event()], headers={"Idempotency-Key": "batch-0002"})
    assert first.status_code == 200
    reused = post_events(client, [make_event(), make_event()], headers={"Idempotency-Key": "batch-0002"})
    assert_error(reused, 400, "invalid_request")
    assert total_calls(client) == 1
    other = post_events(client, [make_event(), make_event()], headers={"Idempotency-Key": "batch-0003"})
    assert other.status_code == 200
    assert total_calls(client) == 3


def test_idempotency_key_of_255_characters_is_accepted(client: FlaskClient) -> None:
    response = post_events(client, [make_event()], headers={"Idempotency-Key": "k" * 255})
    assert response.status_code == 200
    assert total_calls(client) == 1


@pytest.mark.parametrize("key", ["k" * 256, ""], ids=["256 chars", "empty"])
def test_bad_idempotency_key_is_rejected_and_nothing_stored(seeded: FlaskClient, key: str) -> None:
    response = post_events(seeded, [make_event()], headers={"Idempotency-Key": key})
    assert_error(response, 400, "invalid_request")
    assert_nothing_lost(seeded)


def test_rejected_batch_does_not_use_up_its_idempotency_key(client: FlaskClient) -> None:
    bad = post_events(client, [make_event(status="nope")], headers={"Idempotency-Key": "batch-0004"})
    assert_error(bad, 400, "validation_failed")
    good = post_events(client, [make_event()], headers={"Idempotency-Key": "batch-0004"})
    assert good.status_code == 200
    assert total_calls(client) == 1


# --- GET /v1/stats/* --------------------------------------------------------------------


@pytest.mark.parametrize("period", ["1d", "7", "30D", "", "90d;drop", " 7d", "365d"])
def test_bad_period_is_an_invalid_request(seeded: FlaskClient, period: str) -> None:
    for path in STATS_PATHS:
        response = seeded.get(path, query_string={"period": period})
        details = assert_error(response, 400, "invalid_request")
        assert "7d, 30d, 90d" in details
    assert_nothing_lost(seeded)


def test_default_period_is_30_days(client: FlaskClient) -> None:
    events = [
        make_event(),
        make_event(timestamp_hour=current_hour(24 * 20)),
        make_event(timestamp_hour=current_hour(24 * 40)),
    ]
    assert post_events(client, events).status_code == 200
    for path in STATS_PATHS:
        assert client.get(path).get_json()["period"] == "30d"
    assert total_calls(client) == 2
    assert (total_calls(client, "7d"), total_calls(client, "30d"), total_calls(client, "90d")) == (1, 2, 3)


def test_unknown_tool_is_not_found(seeded: FlaskClient) -> None:
    response = seeded.get("/v1/stats/tool/unknown_tool")
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "details": "Tool 'unknown_tool' not found or has no data"}


@pytest.mark.parametrize(
    "path", ["/nope", "/v1", "/v1/nope", "/v1/stats", "/v1/stats/tool/", "/v2/events", "/v1/events/1"]
)
def test_unknown_url_is_json_404(client: FlaskClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/events"),
        ("PUT", "/v1/events"),
        ("DELETE", "/v1/events"),
        ("POST", "/v1/stats/overview"),
        ("DELETE", "/v1/stats/tool/get_forecast"),
        ("POST", "/v1/health"),
        ("PATCH", "/v1/status"),
    ],
)
def test_wrong_method_is_json_405(client: FlaskClient, method: str, path: str) -> None:
    assert_error(client.open(path, method=method), 405, "method_not_allowed")


def test_wrong_method_says_which_methods_are_allowed(client: FlaskClient) -> None:
    response = client.get("/v1/events")
    assert response.status_code == 405
    assert "POST" in response.headers.get("Allow", "")


# --- rate limiting --------------------------------------------------------------------


class FrozenClock:
    """The limiter's clock, advanced by hand so the test does not depend on machine speed."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited(make_app: Callable[..., Flask]) -> tuple[Flask, FrozenClock]:
    app = make_app(rate_limit_per_minute=60, rate_limit_burst=10)
    clock = FrozenClock()
    app.extensions["weather_metrics"].limiter._clock = clock
    return app, clock


def assert_rate_limited(response: TestResponse) -> int:
    """The contract's 429 answer; returns retry_after."""
    assert response.status_code == 429
    body = response.get_json()
    assert body["error"] == "rate_limit_exceeded"
    assert body["message"] == "Too many requests, please try again later"
    assert isinstance(body["retry_after"], int) and not isinstance(body["retry_after"], bool)
    assert body["retry_after"] >= 1
    assert set(body) <= {"error", "message", "retry_after", "details"}
    assert response.headers["Retry-After"] == str(body["retry_after"])
    assert all(name in response.headers for name in RATE_LIMIT_HEADERS)
    assert response.headers["x-ratelimit-remaining"] == "0"
    return int(body["retry_after"])


def test_71st_request_in_a_minute_is_rate_limited(limited: tuple[Flask, FrozenClock]) -> None:
    app, clock = limited
    client = app.test_client()
    for i in range(70):
        response = client.get("/v1/stats/tools")
        assert response.status_code == 200, i
        assert response.headers["x-ratelimit-limit"] == "70"
        assert response.headers["x-ratelimit-remaining"] == str(69 - i)
        assert int(response.headers["x-ratelimit-reset"]) > clock.now
    refused = client.get("/v1/stats/tools")
    retry_after = assert_rate_limited(refused)
    assert refused.headers["x-ratelimit-limit"] == "70"
    assert int(refused.headers["x-ratelimit-reset"]) >= clock.now + retry_after
    clock.now += retry_after
    assert client.get("/v1/stats/tools").status_code == 200


def test_rate_limited_events_are_not_stored(limited: tuple[Flask, FrozenClock]) -> None:
    app, _ = limited
    client = app.test_client()
    for _ in range(70):
        assert post_events(client, [make_event()]).status_code == 200
    assert_rate_limited(post_events(client, [make_event()]))
    other = app.test_client()
    overview = other.get("/v1/stats/overview", environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert overview.get_json()["summary"]["total_calls"] == 70


def test_health_and_metrics_are_never_limited(limited: tuple[Flask, FrozenClock]) -> None:
    app, _ = limited
    client = app.test_client()
    for _ in range(75):
        assert client.get("/v1/health").status_code == 200
        assert client.get("/metrics").status_code == 200
    for _ in range(70):
        assert client.get("/v1/status").status_code == 200
    assert_rate_limited(client.get("/v1/status"))
    assert client.get("/v1/health").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_each_client_ip_has_its_own_bucket(limited: tuple[Flask, FrozenClock]) -> None:
    app, _ = limited
    client = app.test_client()
    for _ in range(70):
        client.get("/v1/stats/tools", environ_base={"REMOTE_ADDR": "203.0.113.1"})
    assert_rate_limited(client.get("/v1/stats/tools", environ_base={"REMOTE_ADDR": "203.0.113.1"}))
    other = client.get("/v1/stats/tools", environ_base={"REMOTE_ADDR": "203.0.113.2"})
    assert other.status_code == 200
    assert other.headers["x-ratelimit-remaining"] == "69"


def one_per_minute(make_app: Callable[..., Flask], **settings: Any) -> FlaskClient:
    app = make_app(rate_limit_per_minute=1, rate_limit_burst=0, **settings)
    app.extensions["weather_metrics"].limiter._clock = FrozenClock()
    return app.test_client()


def get_via_proxy(client: FlaskClient, forwarded_for: str) -> TestResponse:
    return client.get(
        "/v1/stats/tools", headers={"X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": "10.0.0.2"}
    )


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(make_app: Callable[..., Flask]) -> None:
    client = one_per_minute(make_app, trusted_proxies=1)
    assert get_via_proxy(client, "203.0.113.1").status_code == 200
    assert_rate_limited(get_via_proxy(client, "203.0.113.1"))
    assert get_via_proxy(client, "203.0.113.2").status_code == 200
    # Only the address the proxy itself appended counts: a client cannot pick a fresh bucket.
    assert_rate_limited(get_via_proxy(client, "198.51.100.7, 203.0.113.2"))


def test_without_trusted_proxies_forwarded_for_is_ignored(make_app: Callable[..., Flask]) -> None:
    client = one_per_minute(make_app, trusted_proxies=0)
    assert get_via_proxy(client, "203.0.113.1").status_code == 200
    assert_rate_limited(get_via_proxy(client, "203.0.113.2"))
    assert_rate_limited(get_via_proxy(client, "198.51.100.50"))


def test_idempotent_retry_may_reserialize_the_same_batch(client):
    event = make_event()
    compact = json.dumps({"events": [event]}, separators=(",", ":"))
    spaced = json.dumps({"events": [dict(reversed(list(event.items())))]}, indent=2)
    headers = {"Idempotency-Key": "reserialized-1", "Content-Type": "application/json"}
    first = client.post("/v1/events", data=compact, headers=headers)
    second = client.post("/v1/events", data=spaced, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json == second.json
    assert client.get("/v1/stats/overview").json["summary"]["total_calls"] == 1


def test_made_up_methods_do_not_mint_metric_labels(client):
    line = re.compile(r'^http_requests_total\{method="other",route="unmatched",status_code="405"\} (\S+)$', re.M)

    def others() -> float:
        found = line.search(client.get("/metrics").get_data(as_text=True))
        return float(found.group(1)) if found else 0.0

    before = others()
    for method in ("FOOBAR", "XYZZY00000"):
        assert client.open("/v1/events", method=method).status_code == 405
    assert others() == before + 2
    assert "FOOBAR" not in client.get("/metrics").get_data(as_text=True)


def test_with_ack_enqueue_a_reused_key_with_another_body_is_still_refused(make_app):
    client = make_app(ack="enqueue").test_client()
    first = client.post("/v1/events", json={"events": [make_event()]}, headers={"Idempotency-Key": "shared-1"})
    assert first.status_code == 200
    other = client.post(
        "/v1/events", json={"events": [make_event(), make_event()]}, headers={"Idempotency-Key": "shared-1"}
    )
    assert other.status_code == 400 and other.json["error"] == "invalid_request"
    assert client.get("/v1/stats/overview").json["summary"]["total_calls"] == 1
