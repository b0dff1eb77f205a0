from tests.support import make_event


def test_posted_events_show_in_overview(client):
    response = client.post("/v1/events", json={"events": [make_event(), make_event(status="error")]})
    assert response.status_code == 200
    assert response.json["count"] == 2
    overview = client.get("/v1/stats/overview").json
    assert overview["summary"]["total_calls"] == 2
    assert overview["summary"]["success_rate"] == 0.5
