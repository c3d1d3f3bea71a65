"""The API over HTTP, on a real uvicorn server, serving curated files published to the real S3 server.

The tests of this module run in order: the first sees an empty lake.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from shared.curated.versions import announce
from shared.lake import CuratedVersion, curated_key
from tests.api.conftest import hammering, wait_until_served
from tests.factories import mentions, scored_row

V1 = "20260301T000000Z-111111"


def catalogue(run_tag: str, offset: int) -> list[list[dict]]:
    """Two batches: product P1 with six reviews of mixed categories, ratings and verified flags, three of them
    with sentence topics; P2 with one."""
    said = {
        0: mentions("Well made. Came a day late.", ("quality", 1), ("delivery", -1)),
        1: mentions("Late and the box was torn.", ("delivery", -1)),
        3: mentions("Pricey. It broke.", ("value", -1), ("quality", -1)),
    }
    p1 = [
        scored_row(
            offset + i,
            "P1",
            relevance,
            title=f"{run_tag}-{i}",
            rating=rating,
            category=category,
            verified_purchase=verified,
            buyer_pseudonym="secret-pseudonym",
            **said.get(i, {}),
        )
        for i, (relevance, rating, category, verified) in enumerate(
            [
                (0.91, 5, "quality", True),
                (0.85, 2, "delivery", False),
                (0.70, 4, "quality", None),
                (0.55, 1, "value", True),
                (0.30, 5, "delivery", True),
                (0.10, 3, "quality", False),
            ]
        )
    ]
    return [p1[:3], p1[3:] + [scored_row(offset + 99, "P2", 0.5, title=f"{run_tag}-p2", product_title="Blue Guitar")]]


def test_before_any_publish_it_is_live_but_not_ready(client: httpx.Client):
    assert client.get("/health").json() == {"status": "OK"}
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and "no curated version loaded yet" in ready.json()["reasons"]
    top = client.get("/reviews/P1/top")
    assert top.status_code == 503 and top.json()["error"] == "not_ready"
    assert "reviews run" in top.json()["detail"]
    summary = client.get("/products/P1/summary")
    assert summary.status_code == 503 and summary.json()["error"] == "not_ready"


def test_top_reviews_are_the_most_relevant_first(client: httpx.Client, publisher):
    publisher.publish(V1, catalogue("v1", 1000))
    wait_until_served(client, V1)
    body = client.get("/reviews/P1/top", params={"limit": 3}).json()
    assert body["version"] == V1 and body["count"] == 3
    assert [r["review_id"] for r in body["reviews"]] == [1000, 1001, 1002]
    scores = [r["relevance_score"] for r in body["reviews"]]
    assert scores == sorted(scores, reverse=True)
    assert set(body["reviews"][0]) >= {
        "review_id",
        "rating",
        "title",
        "text",
        "date",
        "category",
        "category_confidence",
        "relevance_score",
    }
    assert client.get("/reviews/P1/top").json()["count"] == 5  # default limit


def test_filters(client: httpx.Client):
    def ids(**params) -> list[int]:
        return [r["review_id"] for r in client.get("/reviews/P1/top", params=params).json()["reviews"]]

    assert ids(category="delivery") == [1001, 1004]
    assert ids(min_rating=4, limit=50) == [1000, 1002, 1004]
    assert ids(verified_only="true", limit=50) == [1000, 1003, 1004]
    assert ids(category="delivery", verified_only="true") == [1004]
    assert ids(category="no-such-category") == []


def test_a_topic_finds_the_reviews_discussing_it_in_any_sentence(client: httpx.Client):
    # review 1000's single topic is quality, but its second sentence is on delivery; 1004's single topic is it
    body = client.get("/reviews/P1/top", params={"topic": "delivery", "limit": 50}).json()
    assert [(r["review_id"], r["matches"]) for r in body["reviews"]] == [
        (1000, [{"start": 11, "end": 27, "sentiment": -1}]),
        (1001, [{"start": 0, "end": 26, "sentiment": -1}]),
        (1004, []),
    ]
    assert body["reviews"][0]["text"][11:27] == "Came a day late."
    # the single-topic filter, and the page without filters, answer as before (no matches on them)
    assert [
        r["review_id"] for r in client.get("/reviews/P1/top", params={"category": "delivery"}).json()["reviews"]
    ] == [
        1001,
        1004,
    ]
    assert all("matches" not in r for r in client.get("/reviews/P1/top").json()["reviews"])
    assert client.get("/reviews/P1/top", params={"topic": "x" * 65}).status_code == 422


def test_a_products_summary_says_what_customers_say_topic_by_topic(client: httpx.Client):
    response = client.get("/products/P1/summary")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["product_id"], body["version"], body["review_count"], body["reviews_analysed"]) == ("P1", V1, 6, 3)
    assert [(t["topic"], t["reviews"], t["mentions"], t["positive"], t["negative"]) for t in body["topics"]] == [
        ("delivery", 2, 2, 0.0, 1.0),
        ("quality", 2, 2, 0.5, 0.5),
        ("value", 1, 1, 0.0, 1.0),
    ]
    assert body["topics"][0]["negative_quote"] == {"review_id": 1000, "text": "Came a day late."}
    assert client.get("/products/P2/summary").json()["topics"] == []


def test_the_summary_of_an_unknown_product_is_404_and_of_a_bad_id_422(client: httpx.Client):
    response = client.get("/products/NOPE/summary")
    assert (
        response.status_code == 404 and response.json()["error"] == "not_found" and "NOPE" in response.json()["detail"]
    )
    [error] = client.get(f"/products/{'P' * 65}/summary").json()["detail"]
    assert error["loc"] == ["path", "product_id"] and error["type"] == "string_too_long"


def test_never_a_buyer_id_or_pseudonym(client: httpx.Client):
    for text in (
        client.get("/reviews/P1/top", params={"limit": 50}).text,
        client.get("/reviews/P1/top", params={"limit": 50, "topic": "delivery"}).text,
        client.get("/products/P1/summary").text,
    ):
        assert "secret-pseudonym" not in text and "buyer" not in text


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 51},
        {"limit": "many"},
        {"min_rating": 6},
        {"min_rating": 0},
        {"verified_only": "perhaps"},
    ],
)
def test_bad_parameters_are_422(client: httpx.Client, params):
    assert client.get("/reviews/P1/top", params=params).status_code == 422


def test_a_422_says_where_as_fastapi_does(client: httpx.Client):
    # the route reads its own parameters: its errors keep FastAPI's shape and locations
    [error] = client.get("/reviews/P1/top", params={"limit": 51}).json()["detail"]
    assert error["loc"] == ["query", "limit"] and error["type"] == "less_than_equal"
    [error] = client.get(f"/reviews/{'P' * 65}/top").json()["detail"]
    assert error["loc"] == ["path", "product_id"] and error["type"] == "string_too_long"
    # the same answer as the documented defaults, whether the query names them or not
    assert (
        client.get("/reviews/P1/top", params={"limit": 5, "verified_only": "false"}).content
        == client.get("/reviews/P1/top").content
    )


def test_unknown_product_is_404_with_a_json_error(client: httpx.Client):
    response = client.get("/reviews/NOPE/top")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found" and "NOPE" in response.json()["detail"]


def test_products_search_and_cursor(client: httpx.Client):
    first = client.get("/products", params={"limit": 1}).json()
    assert [p["product_id"] for p in first["products"]] == ["P1"] and first["next_cursor"] == "P1"
    assert first["products"][0]["review_count"] == 6
    assert first["products"][0]["average_rating"] == pytest.approx(20 / 6, abs=1e-3)
    second = client.get("/products", params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [p["product_id"] for p in second["products"]] == ["P2"] and second["next_cursor"] is None
    found = client.get("/products", params={"query": "guitar"}).json()
    assert [p["product_id"] for p in found["products"]] == ["P2"]


def test_a_search_of_too_many_distinct_words_is_422_and_repeats_do_not_count(client: httpx.Client):
    repeated = client.get("/products", params={"query": "gui guitar blue " * 6})
    assert [p["product_id"] for p in repeated.json()["products"]] == ["P2"]
    refused = client.get("/products", params={"query": "a b c d e f g h i"})
    assert refused.status_code == 422
    [issue] = refused.json()["detail"]
    assert issue["loc"] == ["query", "query"] and issue["type"] == "too_many_words"


def test_jobs_need_the_token(client: httpx.Client, api_settings):
    assert client.post("/jobs").status_code == 401
    assert client.post("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 403
    auth = {"Authorization": f"Bearer {api_settings.api_token.get_secret_value()}"}
    accepted = client.post("/jobs", headers=auth, json={"full": True, "limit": 10})
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]
    job = client.get(f"/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "queued" and job["trigger"] == "api" and job["params"] == {"full": True, "limit": 10}
    assert job["mode"] is None  # known once its extraction starts
    # a second trigger for the same day does not start a second run
    again = client.post("/jobs", headers=auth)
    assert again.status_code == 409 and job_id in again.json()["detail"]
    # a body that is not what the schema says is refused, not coerced into a run
    assert client.post("/jobs", headers=auth, json={"full": "yes"}).status_code == 422
    # and so is one that cannot be read as JSON at all: a documented 400 with the usual error body
    unreadable = client.post("/jobs", headers={**auth, "Content-Type": "application/json"}, content=b"\xff")
    assert unreadable.status_code == 400 and unreadable.json()["error"] == "http_error"
    documented = client.get("/openapi.json").json()["paths"]
    assert all("400" in documented[path]["post"]["responses"] for path in ("/jobs", "/jobs/{job_id}/retry"))
    assert job_id in [j["job_id"] for j in client.get("/jobs", headers=auth).json()["jobs"]]
    assert client.get("/jobs/no-such-job", headers=auth).status_code == 404


def test_the_run_history_is_for_operators_only(client: httpx.Client, api_settings):
    # given a shopper (no token) or someone with a wrong one
    for path in ("/jobs", "/jobs/some-run"):
        # when they read the run history, then it is refused, saying what is needed
        missing = client.get(path)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert missing.json() == {
            "error": "unauthorized",
            "detail": "this is for operators: send the operator token as 'Authorization: Bearer <API_TOKEN>'",
        }
        wrong = client.get(path, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 403 and "not the operator token" in wrong.json()["detail"]
    # and the schema says so
    documented = client.get("/openapi.json").json()["paths"]
    assert {"401", "403"} <= documented["/jobs"]["get"]["responses"].keys()


def test_hot_reload_under_concurrent_requests_serves_no_error_and_no_mix(client: httpx.Client, publisher, api):
    v2, v3 = "20260302T000000Z-222222", "20260303T000000Z-333333"
    expected = {V1: "v1", v2: "v2", v3: "v3"}
    with hammering(api.url, expected) as load:
        time.sleep(0.5)
        publisher.publish(v2, catalogue("v2", 2000))
        wait_until_served(client, v2)
        time.sleep(0.5)
        publisher.publish(v3, catalogue("v3", 3000))
        wait_until_served(client, v3)
        time.sleep(0.5)
    assert load.problems == []
    assert load.seen[v2] > 0 and load.seen[v3] > 0


def test_a_broken_new_version_keeps_the_old_one_serving(client: httpx.Client, publisher):
    served = client.get("/health/ready").json()["version"]
    broken = "20260304T000000Z-444444"
    version = CuratedVersion(broken, curated_key(broken), 7, 19, datetime.now(UTC).isoformat())
    publisher.lake.put_bytes(version.key, b"this is not parquet")
    publisher.lake.set_latest(version)
    announce(publisher.redis, version)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        ready = client.get("/health/ready").json()
        if any(broken in reason for reason in ready["reasons"]):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the broken version was not reported")
    assert ready["version"] == served != broken
    assert client.get("/reviews/P1/top").status_code == 200


def test_metrics_in_prometheus_format(client: httpx.Client):
    client.get("/reviews/P1/top")
    text = client.get("/metrics").text
    assert 'api_request_seconds_bucket{le="0.005",method="GET",route="/reviews/{product_id}/top"}' in text
    assert "api_curated_version_age_seconds" in text and "api_curated_rows 7.0" in text
    assert 'api_responses_total{route="/reviews/{product_id}/top",status="4xx"}' in text
