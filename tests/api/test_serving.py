"""The API as production runs it (``python -m services.api``, two worker processes sharing one cache
folder), serving versions published to the real S3 server by the real publish code: answers equal to
the curated file's, a reload under load, broken serving files refused, the cache folder bounded,
metrics that count every worker's requests.

The tests of this module run in order, each on the version the one before left served.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from itertools import groupby

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.stack.process import free_port
from ops.stack.s3_server import grant_lake
from shared.curated.erasure import forget_in_curated
from shared.curated.serving import REVIEWS_KEPT
from shared.curated.versions import announce, rollback
from shared.lake import CuratedVersion
from shared.serving_format import serving_key
from shared.settings import Settings
from tests.api.conftest import hammering, wait_until_served
from tests.factories import publish_batches, real_scored_rows, scored_row

KEPT = 20  # reviews kept a product: some of the real products have hundreds
REAL = "20260801T000000Z-real01"


@pytest.fixture(scope="module")
def api_settings(servers: Settings) -> Settings:
    settings = servers.model_copy(
        update={
            "s3_bucket": "serving-test-lake",
            "redis_db": 5,
            "api_port": free_port(),
            "api_reload_check_s": 1.0,
            "api_workers": 2,
            "api_cache_versions": 2,
            "api_cache_dir": servers.state_path / "serving-test-cache",
            "log_level": "WARNING",
            "alert_api_window_s": 3600,  # no response of the module leaves the window
        }
    )
    grant_lake(settings)
    return settings


@pytest.fixture(scope="module")
def api_url(api_settings: Settings) -> Iterator[str]:
    """``python -m services.api`` with API_WORKERS=2, as the local stack and the image start it."""
    log = api_settings.state_path / "logs" / "serving-test-api.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.api"], env=api_settings.child_env(), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{api_settings.api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the API did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def cached_versions(settings: Settings) -> list[str]:
    root = settings.api_cache_path / settings.s3_bucket
    return sorted(p.name.split("@")[0] for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def ordered(text: str) -> list:
    """JSON with every object as its list of (key, value) pairs: equal only with the same keys in the same order."""
    return json.loads(text, object_pairs_hook=list)


def top_reviews_as_before(
    version: str,
    rows: list[dict],
    limit: int = 5,
    category: str | None = None,
    min_rating: int | None = None,
    verified_only: bool = False,
) -> dict:
    """What the API answered before serving files, for one product's curated rows (most relevant first):
    its first KEPT reviews, filtered, cut at ``limit``; these fields in this order, floats to 4 decimals."""
    chosen = [
        r
        for r in rows[:KEPT]
        if (category is None or r["category"] == category)
        and (min_rating is None or r["rating"] >= min_rating)
        and (not verified_only or r["verified_purchase"] is True)
    ][:limit]
    return {
        "product_id": rows[0]["product_id"],
        "product_title": rows[0]["product_title"],
        "version": version,
        "count": len(chosen),
        "reviews": [
            {
                "review_id": r["review_id"],
                "rating": r["rating"],
                "title": r["title"],
                "text": r["text"],
                "date": r["reviewed_at"].date().isoformat() if r["reviewed_at"] else None,
                "category": r["category"],
                "category_confidence": round(float(r["category_confidence"]), 4),
                "relevance_score": round(float(r["relevance_score"]), 4),
                "helpful_votes": r["helpful_votes"],
                "verified_purchase": r["verified_purchase"],
                "topics": r["topics"] or [],
            }
            for r in chosen
        ],
    }


def test_answers_are_the_curated_files_field_for_field_in_the_same_order(client, publisher, data_dir, api_settings):
    # given the real Digital Music reviews (381 products, up to 878 reviews each) published as one version
    version = publisher.publish(REAL, [real_scored_rows(data_dir)], reviews_kept=KEPT)
    wait_until_served(client, REAL)
    curated = publisher.lake.get_table(version.key).to_pylist()
    products = {pid: list(rows) for pid, rows in groupby(curated, key=lambda r: r["product_id"])}
    # when every product is asked for, with and without filters, then each answer is the one the API gave
    # before serving files, byte for byte once parsed: same reviews, same order, same fields, no buyer
    for pid, rows in products.items():
        # (unfiltered pages within, at and across the first reviews a product keeps apart, and filtered ones)
        for params in (
            {},
            {"limit": 2},
            {"limit": 7},
            {"limit": 50},
            {"category": "durability", "limit": 50},
            {"min_rating": 4, "verified_only": "true", "limit": 3},
        ):
            response = client.get(f"/reviews/{pid}/top", params=params)
            expected = top_reviews_as_before(REAL, rows, **{**params, "verified_only": "verified_only" in params})
            assert ordered(response.text) == ordered(json.dumps(expected)), (pid, params)
            assert not any(r["buyer_pseudonym"] in response.text for r in rows)
    # and the product list pages through every product with its counts over all its reviews
    listed, cursor = [], None
    while True:
        page = client.get("/products", params={"limit": 100, **({"cursor": cursor} if cursor else {})}).json()
        listed += page["products"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert listed == [
        {
            "product_id": pid,
            "title": rows[0]["product_title"],
            "category": None,
            "review_count": len(rows),
            "average_rating": round(sum(r["rating"] for r in rows) / len(rows), 3),
        }
        for pid, rows in products.items()
    ]
    assert cached_versions(api_settings) == [REAL]  # fetched once for the host's two workers


def tagged(tag: str, offset: int) -> list[list[dict]]:
    return [[scored_row(offset + i, "P1", 1 - i / 10, title=f"{tag}-{i}") for i in range(6)]]


def test_a_reload_under_load_loses_no_request_and_never_mixes_versions(api_url, publisher):
    v2, v3 = "20260802T000000Z-load02", "20260803T000000Z-load03"
    publisher.publish(v2, tagged("v2", 2000))
    with httpx.Client(base_url=api_url, timeout=10) as c:
        wait_until_served(c, v2)
    expected = {v2: "v2", v3: "v3"}
    # keep-alive clients stay with one worker each; the others open a connection per request
    with hammering(api_url, expected, keep_alive=[i % 2 == 0 for i in range(8)]) as load:
        time.sleep(1)
        publisher.publish(v3, tagged("v3", 3000))
        with httpx.Client(base_url=api_url, timeout=10) as c:
            wait_until_served(c, v3)
            # both workers switched: fresh connections land on either, and every one names v3
            assert {c.get("/health/ready").json()["version"] for _ in range(20)} == {v3}
        time.sleep(1)
    assert load.problems == []
    assert load.seen[v2] > 0 and load.seen[v3] > 0


def flip_bytes(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]


def keep_head(lake, key: str, data: bytes) -> None:
    """Replace an object's bytes, keeping the checksum and size the publisher put on its head."""
    metadata = lake.s3.head_object(Bucket=lake.bucket, Key=key)["Metadata"]
    lake.s3.put_object(Bucket=lake.bucket, Key=key, Body=data, Metadata=metadata)


def republish_head(lake, key: str, data: bytes) -> None:
    """Replace an object with bytes whose checksum and size are right: a publisher that wrote garbage."""
    lake.s3.put_object(
        Bucket=lake.bucket,
        Key=key,
        Body=data,
        Metadata={"sha256": hashlib.sha256(data).hexdigest(), "size": str(len(data))},
    )


BREAKAGES = {
    "a flipped byte in the reviews": lambda lake, v: keep_head(
        lake, serving_key(v, "reviews"), flip_bytes(lake.get_bytes(serving_key(v, "reviews")))
    ),
    "the reviews truncated": lambda lake, v: keep_head(
        lake, serving_key(v, "reviews"), lake.get_bytes(serving_key(v, "reviews"))[:400]
    ),
    "products that are not Arrow, checksum right": lambda lake, v: republish_head(
        lake, serving_key(v, "products"), b"not an arrow file"
    ),
    "no terms file": lambda lake, v: lake.delete([serving_key(v, "terms")]),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_corrupt_or_truncated_serving_file_is_refused_and_the_old_version_keeps_serving(
    breakage, client, publisher, api_settings, monkeypatch
):
    served = client.get("/health/ready").json()["version"]
    # given a new version published, then broken before "latest" names it
    broken = f"20260804T0000{list(BREAKAGES).index(breakage):02d}Z-broken"
    with monkeypatch.context() as m:
        m.setattr(publisher.lake, "set_latest", lambda version: None)
        version: CuratedVersion = publish_batches(publisher.lake, broken, tagged("bad", 4000)).version
    BREAKAGES[breakage](publisher.lake, broken)
    # when latest names it and the API hears of it
    publisher.lake.set_latest(version)
    announce(publisher.redis, version)
    deadline = time.monotonic() + 20
    while True:
        ready = client.get("/health/ready").json()
        if any(broken in reason for reason in ready["reasons"]):
            break
        assert time.monotonic() < deadline, "the broken version was never reported"
        time.sleep(0.1)
    # then it is refused, said why, and the version before keeps serving from both workers
    assert ready["version"] == served
    assert {client.get("/reviews/P1/top").json()["version"] for _ in range(10)} == {served}
    assert broken not in cached_versions(api_settings)


def test_the_cache_folder_never_grows_past_the_versions_kept(client, publisher, api_settings):
    held: list[int] = []
    stop = threading.Event()

    root = api_settings.api_cache_path / api_settings.s3_bucket

    def sample() -> None:
        while not stop.is_set():
            held.append(sum(p.is_dir() for p in root.iterdir()))  # versions, and a fetch in progress
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    runs = [f"20260805T00000{i}Z-cache{i}" for i in range(4)]
    try:
        for n, run_id in enumerate(runs):
            publisher.publish(run_id, tagged(f"c{n}", 5000 + 10 * n))
            wait_until_served(client, run_id)
    finally:
        stop.set()
        sampler.join()
    assert max(held) <= api_settings.api_cache_versions == 2
    assert cached_versions(api_settings) == runs[-2:]


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of one GET /metrics, on a connection of its own (so any worker may answer it)."""
    text = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def test_a_scrape_counts_the_requests_of_every_worker_whichever_answers_it(api_url):
    listed = ("api_responses_total", frozenset({("route", "/products"), ("status", "2xx")}))
    timed = ("api_request_seconds_count", frozenset({("route", "/products"), ("method", "GET")}))
    recent = ("api_recent_responses", frozenset())
    # A worker publishes its gauges every second: let the requests of the tests before reach them,
    # or the worker that does not answer this scrape would count them after it.
    time.sleep(1.5)
    before = scrape(api_url)
    # when 200 requests come on connections of their own, from 8 threads: both workers answer some
    requests = 200

    def ask(n: int) -> None:
        with httpx.Client(base_url=api_url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            for _ in range(n):
                c.get("/products", params={"limit": 1}).raise_for_status()

    threads = [threading.Thread(target=ask, args=(requests // 8,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(1.5)  # for the same reason
    # then every scrape, whichever worker answers it, counts all of them, once
    for _ in range(10):
        after = scrape(api_url)
        assert after.get(listed, 0) - before.get(listed, 0) == requests
        assert after.get(timed, 0) - before.get(timed, 0) == requests
        assert after[recent] - before[recent] == requests
        # and each gauge is one series for the API, not one per worker
        assert sum(name == "api_curated_rows" for name, _ in after) == 1


def test_an_erasure_stops_every_worker_serving_the_buyers_reviews_and_a_rollback_does_not_bring_them_back(
    api_url, client, publisher, api_settings
):
    older, served = "20260806T000000Z-erase1", "20260806T000001Z-erase2"
    theirs = [
        [
            scored_row(7001, "E1", 0.9, buyer_pseudonym="GONE"),
            scored_row(7002, "E1", 0.5),
            scored_row(7003, "E1", 0.1, buyer_pseudonym="GONE"),
        ]
    ]
    for run_id in (older, served):
        publisher.publish(run_id, theirs)
        wait_until_served(client, run_id)

    def answers() -> set[tuple[int, ...]]:  # on new connections: either worker may answer
        return {
            tuple(r["review_id"] for r in httpx.get(f"{api_url}/reviews/E1/top").json()["reviews"]) for _ in range(10)
        }

    assert answers() == {(7001, 7002, 7003)}
    rewritten, pointer = forget_in_curated(publisher.lake, frozenset({"GONE"}), REVIEWS_KEPT)
    assert {r.version for r in rewritten} == {older, served} and pointer is not None
    announce(publisher.redis, pointer)
    deadline = time.monotonic() + 15
    while answers() != {(7002,)}:  # the same version name, rewritten: fetched again, not served from the cache
        assert time.monotonic() < deadline, "the erased buyer's reviews are still served"
        time.sleep(0.2)
    assert cached_versions(api_settings) == [served]  # no copy from before the erasure is left on the host
    announce(publisher.redis, rollback(publisher.lake, older))
    wait_until_served(client, older)
    assert answers() == {(7002,)}
