"""Daily runs that read only what changed, on the real local stack.

The module points the session's extract worker at a small source database of its own (one real
5-core file), so that a full run and the incremental runs after it stay quick, and changes the
source as a shop would: an edit, a new review, a deletion, a buyer's erasure.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psycopg2
import pymongo
import pytest

from ops.runs_cli import format_report, watch
from ops.source.loader import load_paths
from ops.source.schema import create_source
from ops.stack.manager import Stack
from services.api.serving.cache import ServingCache
from services.transformer.transform import clean_text
from shared.flow import start_run
from shared.plan import plan_of, watermark_of
from shared.pseudonym import of_erased_buyers, pseudonym
from shared.schemas import MODEL_FIELDS
from shared.settings import Settings
from shared.stages import Stage
from shared.tasks import send
from tests.pipeline import traces
from tests.pipeline.runs import RUN_TIMEOUT_S, component, run_to_end, wait_for

SOURCE_FILE = "amazon-2018/Appliances_5.json.gz"  # 205 unique reviews: a full run takes seconds
MODEL_COLUMNS = [name for name, _ in MODEL_FIELDS]  # the sentences' mentions and topics among them


@pytest.fixture(scope="module")
def small_source(pipeline, servers: Settings, data_dir) -> Iterator[Settings]:
    """The session's stack with its extract worker reading a source of its own, and a full run of it."""
    # Nothing writes to this source while a run reads it: no lag needed to catch in-flight writers.
    own = servers.model_copy(update={"source_db": "amazonreviews_incremental", "watermark_lag_s": 0.0})
    create_source(own)
    load_paths(own, [data_dir / SOURCE_FILE], progress=False)
    stack = Stack(servers)
    component(stack, "worker-extract-1").stop(stack.ctx)
    Stack(own).up()  # only the extract worker starts, on the small source
    try:
        run_to_end(pipeline, {"full": True})
        yield own
    finally:
        component(stack, "worker-extract-1").stop(stack.ctx)
        stack.up()  # back on the session's source


def owner(settings: Settings):
    conn = psycopg2.connect(settings.source_owner_dsn)
    conn.autocommit = True
    return conn


def curated(lake, run: dict) -> dict[int, dict]:
    return {row["review_id"]: row for row in lake.get_table(run["curated_key"]).to_pylist()}


def test_an_incremental_run_reads_only_the_changes_and_publishes_the_whole_catalogue(pipeline, lake, small_source):
    base_run = pipeline.history.get_run(lake.latest().version)
    base = curated(lake, base_run)
    conn = owner(small_source)
    with conn.cursor() as cur:
        # given a shop that edits one review, adds one, deletes one, and a buyer who asks to be forgotten
        cur.execute("SELECT buyer_id FROM review GROUP BY buyer_id ORDER BY count(*) DESC, buyer_id LIMIT 1")
        (buyer,) = cur.fetchone()
        cur.execute(
            "SELECT review_id, product_id FROM review WHERE buyer_id <> %s ORDER BY review_id LIMIT 3", (buyer,)
        )
        (edited, product), (deleted, _), (unchanged, _) = cur.fetchall()
        cur.execute(
            "SELECT text FROM review WHERE text IS NOT NULL AND review_id > %s ORDER BY length(text) DESC LIMIT 1",
            (unchanged,),
        )
        (other_text,) = cur.fetchone()  # a real review's text, far from the edited one's
        cur.execute("UPDATE review SET text = %s WHERE review_id = %s", (other_text, edited))
        cur.execute("INSERT INTO buyer (buyer_id) VALUES ('INCREMENTAL-NEW-BUYER') ON CONFLICT DO NOTHING")
        cur.execute(
            "INSERT INTO review (review_key, product_id, buyer_id, rating, title, text, reviewed_at, source_format) "
            "SELECT 'incremental-new-review', product_id, 'INCREMENTAL-NEW-BUYER', 5, title, text, reviewed_at, "
            "source_format FROM review WHERE review_id = %s RETURNING review_id",
            (unchanged,),
        )
        (added,) = cur.fetchone()
        cur.execute("DELETE FROM review WHERE review_id = %s", (deleted,))
        # one of the forgotten buyer's reviews gains a vote: the run reads it again
        cur.execute(
            "UPDATE review SET helpful_votes = helpful_votes + 1 WHERE review_id = "
            "(SELECT min(review_id) FROM review WHERE buyer_id = %s)",
            (buyer,),
        )
    conn.close()
    # only recorded, as when the request comes while a run is in flight (reviews gdpr erase also rewrites
    # the kept versions at once: tests/ops/test_gdpr.py): the run itself must leave the buyer out
    pseudo = pseudonym(buyer, small_source.pseudonym_key.get_secret_value().encode())
    pipeline.history.add_erasure(pseudo)

    # when the daily run comes
    run = run_to_end(pipeline, {})

    # then it read the two changed reviews only, and archived and scored just those
    assert run["mode"] == "incremental" and run["base_version"] == base_run["run_id"], format_report(
        run, pipeline.history.stage_summary(run["run_id"])
    )
    assert plan_of(run).since == watermark_of(base_run)
    summary = pipeline.history.stage_summary(run["run_id"])
    assert run["source_rows"] == 2 and summary["classify"]["rows_in"] == 2
    wait_for(
        lambda: pipeline.history.stage_summary(run["run_id"])["archive"].get("rows_in") == 2, 60, "the delta's archive"
    )
    # and the forgotten buyer's review, read again for its vote, reached neither the lake nor the archive
    assert summary["extract"]["rows_in"] == 3 and summary["extract"]["rows_out"] == 2
    for key in lake.list_keys(f"raw/run={run['run_id']}/"):
        assert buyer not in lake.get_table(key).to_pydict().get("buyer_id", [])
    with pymongo.MongoClient(small_source.mongo_url) as client:
        archive = client[small_source.mongo_db][small_source.mongo_collection]
        assert archive.count_documents({"buyer_id": buyer, "run_id": run["run_id"]}) == 0
    # and the new version is the whole catalogue with the changes applied
    new = curated(lake, run)
    forgotten = {review_id for review_id, row in base.items() if row["buyer_pseudonym"] == pseudo}
    assert forgotten
    assert edited in new and new[edited]["text"] != base[edited]["text"]
    assert new[edited]["content_hash"] != base[edited]["content_hash"]  # scored again, on its new text
    assert added in new and new[added]["product_id"] == new[unchanged]["product_id"]
    assert deleted not in new and not any(row["buyer_pseudonym"] == pseudo for row in new.values())
    assert set(new) == set(base) - {deleted} - forgotten | {added}
    for review_id in set(new) & set(base) - {edited}:  # carried forward: the model's outputs as they were
        assert {c: new[review_id][c] for c in MODEL_COLUMNS} == {c: base[review_id][c] for c in MODEL_COLUMNS}
    assert run["changes"]["replaced"] == 1 and run["changes"]["added"] == 1 and run["changes"]["deleted"] == 1
    assert run["changes"]["erased"] == len(forgotten)
    products = [row["product_id"] for row in lake.get_table(run["curated_key"]).to_pylist()]
    assert products == sorted(products) and lake.latest().version == run["run_id"] and product in products


def test_a_review_whose_votes_changed_is_not_classified_again(pipeline, lake, small_source):
    base = curated(lake, pipeline.history.get_run(lake.latest().version))
    conn = owner(small_source)
    with conn.cursor() as cur:
        # given a shop where one review gains votes and another is edited
        cur.execute("SELECT review_id FROM review ORDER BY review_id DESC LIMIT 2")
        (voted,), (edited,) = cur.fetchall()
        cur.execute(
            "UPDATE review SET helpful_votes = helpful_votes + 5 WHERE review_id = %s RETURNING helpful_votes", (voted,)
        )
        (votes,) = cur.fetchone()
        cur.execute(
            "UPDATE review SET text = text || ' Update: still works a year later.' WHERE review_id = %s", (edited,)
        )
    conn.close()
    # when the daily run comes
    run = run_to_end(pipeline, {})
    # then both are read, the edited one is classified again, and the voted one keeps the outputs it had
    assert run["source_rows"] == 2 and run["changes"]["replaced"] == 2 and run["changes"]["outputs_reused"] == 1
    new = curated(lake, run)
    assert new[voted]["helpful_votes"] == votes
    assert {c: new[voted][c] for c in MODEL_COLUMNS} == {c: base[voted][c] for c in MODEL_COLUMNS}
    assert new[edited]["content_hash"] != base[edited]["content_hash"]


def test_a_failed_incremental_run_moves_neither_the_watermark_nor_the_served_version(pipeline, lake, small_source):
    before = lake.latest()
    base_run = pipeline.history.get_run(before.version)
    conn = owner(small_source)
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE review SET helpful_votes = helpful_votes + 7 WHERE review_id = "
            "(SELECT min(review_id) FROM review) RETURNING review_id, helpful_votes"
        )
        review_id, votes = cur.fetchone()
    conn.close()
    stack = Stack(small_source)
    transform = component(stack, "worker-transform-1")
    transform.stop(stack.ctx)
    try:
        # given a run whose extracted batch is lost before transform reads it
        run_id = start_run(pipeline.history, send, "cli", {})
        wait_for(lambda: pipeline.history.get_run(run_id)["watermark_to"], 60, "the extraction")
        (batch,) = pipeline.history.extracted_batches(run_id)
        lake.s3.delete_object(Bucket=lake.bucket, Key=batch["output_key"])
    finally:
        stack.up()
    failed = watch(pipeline.history, run_id, timeout_s=RUN_TIMEOUT_S)
    assert failed["status"] == "failed" and "transform batch 1 failed" in failed["error"]
    # then the served version is the one before, and the next run reads after the same watermark
    assert lake.latest() == before
    run = run_to_end(pipeline, {})
    assert run["base_version"] == before.version and plan_of(run).since == watermark_of(base_run)
    assert curated(lake, run)[review_id]["helpful_votes"] == votes  # the change is not lost
    assert pipeline.history.stage_summary(run["run_id"])[Stage.EXTRACT.value]["rows_out"] == 1


def test_two_runs_with_no_change_publish_the_same_content(pipeline, lake, small_source):
    first = run_to_end(pipeline, {})
    second = run_to_end(pipeline, {})
    assert first["mode"] == second["mode"] == "incremental" and second["source_rows"] == 0
    assert second["run_id"] != first["run_id"] and lake.latest().version == second["run_id"]
    assert lake.get_table(second["curated_key"]).equals(lake.get_table(first["curated_key"]))


def test_a_full_run_asked_for_reads_everything_again(pipeline, lake, small_source):
    previous = pipeline.history.get_run(lake.latest().version)
    run = run_to_end(pipeline, {"full": True})
    assert run["mode"] == "full" and run["source_rows"] > previous["source_rows"]
    assert lake.get_table(run["curated_key"]).num_rows == previous["curated_rows"]
    # and the buyer forgotten earlier in the module is in none of its raw objects (so in no later zone)
    erased, key = pipeline.history.erased_pseudonyms(), small_source.pseudonym_key.get_secret_value().encode()
    assert erased
    for raw in lake.list_keys(f"raw/run={run['run_id']}/batch="):
        assert not of_erased_buyers(lake.get_table(raw).column("buyer_id"), erased, key).any()


def text_needles(buyer: str, sources: list[Settings], wanted: int = 3) -> list[str]:
    """Passages of the buyer's review texts that no other review of any source holds, as the lake's zones keep
    them (cleaned: raw and cleaned text share them), free of what JSON would escape."""
    conn = owner(sources[0])
    with conn.cursor() as cur:
        cur.execute("SELECT text FROM review WHERE buyer_id = %s AND text IS NOT NULL ORDER BY review_id", (buyer,))
        texts = [t for (t,) in cur.fetchall()]
    conn.close()
    needles = []
    for text in texts:
        cleaned = clean_text(text)
        passage = next(
            (p for i in range(0, max(1, len(cleaned) - 40), 7) if (p := cleaned[i : i + 40]) in text),
            None,
        )
        if passage is None or len(passage) < 40 or '"' in passage or "\\" in passage:
            continue
        held_elsewhere = 0
        for source in sources:
            conn = owner(source)
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM review WHERE buyer_id <> %s AND strpos(text, %s) > 0", (buyer, passage)
                )
                held_elsewhere += cur.fetchone()[0]
            conn.close()
        if not held_elsewhere:
            needles.append(passage)
        if len(needles) == wanted:
            break
    assert needles, f"no passage of {buyer}'s texts is theirs alone"
    return needles


def everywhere(pipeline, lake, settings: Settings) -> dict[str, str]:
    """Every place of the stack that could hold a buyer's traces, read back as text (tests/pipeline/traces.py)."""
    return {
        **traces.lake_objects(lake),
        **traces.archive_documents(settings),
        **traces.files(settings.api_cache_path, "*"),
        **traces.files(settings.state_path, "*.log"),
        **traces.redis_values(settings),
    }


def test_an_erased_buyer_is_in_no_object_document_cache_file_log_line_or_redis_value(
    pipeline, lake, servers, small_source
):
    # given a buyer not yet forgotten, whose reviews every run of the module read: the lake's zones, the archive
    # and the served version hold them
    key = small_source.pseudonym_key.get_secret_value().encode()
    erased = pipeline.history.erased_pseudonyms()
    conn = owner(small_source)
    with conn.cursor() as cur:
        cur.execute("SELECT buyer_id FROM review GROUP BY buyer_id ORDER BY count(*) DESC, buyer_id LIMIT 10")
        buyer = next(b for (b,) in cur.fetchall() if pseudonym(b, key) not in erased)
    conn.close()
    needles = [buyer, pseudonym(buyer, key), *text_needles(buyer, [small_source, servers])]
    before = traces.holding(everywhere(pipeline, lake, small_source), needles)
    assert {n for found in before.values() for n in found} == set(needles), before
    assert any(where.startswith("archive") for where in before), before
    assert any("/curated/serving/" in where for where in before), before
    served = lake.latest()

    # when the operator runs `reviews gdpr erase --buyer B`
    erase = subprocess.run(
        [sys.executable, "-m", "ops.cli", "gdpr", "erase", "--buyer", buyer],
        env=small_source.child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert erase.returncode == 0, erase.stderr
    for zone in ("raw", "rejects", "cleaned", "scored"):
        assert f"\n{zone}/: " in erase.stdout, erase.stdout
    assert f"curated version {served.version}: " in erase.stdout, erase.stdout

    # then once the API serves the rewritten version (same keys, fewer rows), nothing anywhere holds them
    rewritten = lake.latest()
    assert rewritten.version == served.version and rewritten.rows < served.rows
    cache = ServingCache(small_source.api_cache_path / small_source.s3_bucket, small_source.api_cache_versions)
    wait_for(lambda: cache.folder(rewritten).is_dir(), 60, "the API's copy of the rewritten version")
    after = traces.holding(everywhere(pipeline, lake, small_source), needles)
    assert after == {}, after
