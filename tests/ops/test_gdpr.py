"""Right to erasure on the real MongoDB-wire server and metadata DB."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

import pyarrow as pa
import pymongo
import pytest
import redis

from ops.gdpr import erase_buyer, operator_erasure
from services.transformer.transform import transform
from shared.curated.versions import rollback
from shared.history import History
from shared.history.audit import cli_actor
from shared.history.schema import init_metadata_db
from shared.lake import RUN_ZONES, cleaned_key, curated_key, live_ids_key, raw_key, rejects_key, scored_key
from shared.pseudonym import pseudonym
from shared.schemas import RAW
from tests.factories import open_serving, publish_batches, scored_row
from tests.pipeline.traces import decoded


def test_erase_deletes_the_archive_and_keeps_the_buyer_out_of_later_files(servers, own_lake):
    init_metadata_db(servers)
    history = History(servers.metadata_dsn)
    key = servers.pseudonym_key.get_secret_value().encode()
    with pymongo.MongoClient(servers.mongo_url) as client:
        archive = client[servers.mongo_db][servers.mongo_collection]
        archive.insert_many(
            [
                {"_id": 9_000_001, "buyer_id": "FORGET-ME"},
                {"_id": 9_000_002, "buyer_id": "FORGET-ME"},
                {"_id": 9_000_003, "buyer_id": "KEEP-ME"},
            ]
        )
        report = erase_buyer(servers, history, own_lake, "FORGET-ME")
        assert report.archived_documents_deleted == 2
        assert archive.count_documents({"buyer_id": "FORGET-ME"}) == 0
        assert archive.count_documents({"_id": 9_000_003}) == 1
    erased = history.erased_pseudonyms()
    gone = pseudonym("FORGET-ME", key)
    assert gone in erased
    # a later transform drops their reviews (not as rejects: nothing of theirs is written)
    raw = pa.Table.from_pylist(
        [
            {
                "review_id": i,
                "product_id": "P",
                "buyer_id": buyer,
                "rating": 5,
                "title": "t",
                "text": "fine",
                "helpful_votes": 0,
                "reviewed_at": datetime(2015, 1, 1, tzinfo=UTC),
                "product_known": True,
            }
            for i, buyer in ((1, "FORGET-ME"), (2, "KEEP-ME"))
        ],
        schema=RAW,
    )
    result = transform(raw, key, datetime.now(UTC), erased)
    assert result.cleaned.column("review_id").to_pylist() == [2]
    assert result.erased == 1 and len(result.rejects) == 0
    # and a run transformed before the request still publishes without them
    published = publish_batches(
        own_lake,
        "20260601T000000Z-gdpr01",
        [[scored_row(1, "P", 0.9, buyer_pseudonym=gone), scored_row(2, "P", 0.1)]],
        erased=erased,
    )
    assert own_lake.get_table(published.version.key).column("review_id").to_pylist() == [2]
    assert published.changes.erased == 1
    history.close()


def served_ids(lake, version, folder) -> list[int]:
    folder.mkdir()
    body = json.loads(open_serving(lake, version, folder).top("E", limit=10))
    return [r["review_id"] for r in body["reviews"]]


def test_erase_rewrites_every_kept_version_that_holds_the_buyer_so_no_rollback_serves_them(
    servers, own_lake, tmp_path, monkeypatch
):
    init_metadata_db(servers)
    history = History(servers.metadata_dsn)
    gone = pseudonym("ERASE-KEPT", servers.pseudonym_key.get_secret_value().encode())
    theirs = [
        [
            scored_row(11, "E", 0.9, buyer_pseudonym=gone),
            scored_row(12, "E", 0.5),
            scored_row(13, "E", 0.1, buyer_pseudonym=gone),
        ]
    ]
    without = publish_batches(own_lake, "20260701T000000Z-gdpr10", [[scored_row(12, "E", 0.5)]]).version
    older = publish_batches(own_lake, "20260701T000001Z-gdpr11", theirs).version
    served = publish_batches(own_lake, "20260701T000002Z-gdpr12", theirs).version
    untouched = own_lake.s3.head_object(Bucket=own_lake.bucket, Key=curated_key(without.version))["ETag"]
    downloaded = []
    download = own_lake.get_file
    monkeypatch.setattr(own_lake, "get_file", lambda key, path: (downloaded.append(key), download(key, path)))

    report = erase_buyer(servers, history, own_lake, "ERASE-KEPT")

    assert {(r.version, r.removed, r.rows) for r in report.versions_rewritten} == {
        (older.version, 2, 1),
        (served.version, 2, 1),
    }
    assert own_lake.s3.head_object(Bucket=own_lake.bucket, Key=curated_key(without.version))["ETag"] == untouched
    # a version without them is not even downloaded: its buyer column alone, read by ranges, said so
    assert sorted(downloaded) == [curated_key(older.version), curated_key(served.version)]
    for version in (older, served):
        assert own_lake.get_table(curated_key(version.version)).column("review_id").to_pylist() == [12]
    # the served version's pointer names the rewritten file (its rows changed: the API loads it again)
    assert report.served == own_lake.latest() and report.served.version == served.version
    assert report.served.rows == 1 and report.served.published_at == served.published_at
    assert served_ids(own_lake, report.served, tmp_path / "served") == [12]
    # and rolling back to the older version serves it without them too
    assert served_ids(own_lake, rollback(own_lake, older.version), tmp_path / "older") == [12]
    # run again, it finds nothing left to rewrite
    again = erase_buyer(servers, history, own_lake, "ERASE-KEPT")
    assert again.versions_rewritten == [] and again.served is None
    history.close()


def test_erase_rewrites_every_run_zone_object_holding_the_buyer_and_reports_zone_by_zone(servers, own_lake):
    # given two runs' objects in every run zone, some holding the buyer's review, some not
    init_metadata_db(servers)
    history = History(servers.metadata_dsn)
    key = servers.pseudonym_key.get_secret_value().encode()
    gone, kept = pseudonym("ZONES-GONE", key), pseudonym("ZONES-KEPT", key)
    text = "A secret only this buyer wrote"
    for run in ("20260801T000000Z-zones1", "20260802T000000Z-zones2"):
        raw = [{"review_id": 1, "buyer_id": "ZONES-GONE", "text": text}, {"review_id": 2, "buyer_id": "ZONES-KEPT"}]
        own_lake.put_table(raw_key(run, 1), pa.Table.from_pylist(raw))
        own_lake.put_table(raw_key(run, 2), pa.Table.from_pylist([{"review_id": 3, "buyer_id": "ZONES-KEPT"}]))
        own_lake.put_table(live_ids_key(run), pa.table({"review_id": [1, 2, 3]}))
        for zone_key in (cleaned_key(run, 1), scored_key(run, 1)):
            rows = [{"review_id": 1, "buyer_pseudonym": gone, "text": text}, {"review_id": 2, "buyer_pseudonym": kept}]
            own_lake.put_table(zone_key, pa.Table.from_pylist(rows))
        rejects = f"review_id,buyer_pseudonym,text,reason\n1,{gone},'=1+1 {text},empty_text\n2,{kept},'=2,bad\n"
        own_lake.put_bytes(rejects_key(run, 1), rejects.encode(), "text/csv")

    report = erase_buyer(servers, history, own_lake, "ZONES-GONE")

    # then each zone says what it rewrote (the module's other tests left scored/ objects of their own to read),
    # and nothing in the lake holds their id, pseudonym or text
    assert [(z.zone, z.objects_rewritten, z.rows_removed) for z in report.run_zones] == [
        ("raw", 2, 2),
        ("rejects", 2, 2),
        ("cleaned", 2, 2),
        ("scored", 2, 2),
    ]
    assert [z.objects_read >= n for z, n in zip(report.run_zones, (6, 2, 2, 2), strict=True)] == [True] * 4
    everything = [decoded(k, own_lake.get_bytes(k)) for zone in RUN_ZONES for k in own_lake.list_keys(f"{zone}/")]
    assert not [t for t in everything if "ZONES-GONE" in t or gone in t or text in t]
    # the others' rows are kept as they were, a neutralised formula included
    assert own_lake.get_bytes(rejects_key("20260801T000000Z-zones1", 1)).decode().splitlines() == [
        "review_id,buyer_pseudonym,text,reason",
        f"2,{kept},'=2,bad",
    ]
    assert own_lake.get_table(raw_key("20260801T000000Z-zones1", 2)).column("review_id").to_pylist() == [3]
    # run again, it finds nothing left to rewrite
    again = erase_buyer(servers, history, own_lake, "ZONES-GONE")
    assert [z.objects_rewritten for z in again.run_zones] == [0, 0, 0, 0]
    history.close()


def test_an_erasure_is_audited_once_by_the_pseudonym_never_the_buyer_id(servers, own_lake):
    init_metadata_db(servers)
    history = History(servers.metadata_dsn)
    key = servers.pseudonym_key.get_secret_value().encode()
    broker = redis.Redis.from_url(servers.redis_url)
    operator_erasure(servers, history, own_lake, broker, cli_actor(), "AUDIT-ME-42")
    [action] = history.audit_trail(1)
    assert (action["actor"], action["via"], action["action"]) == (getpass.getuser(), "cli", "erasure")
    assert action["target"] == pseudonym("AUDIT-ME-42", key) and action["outcome"] == "done"
    # a failure is recorded too, by its exception's class: its message may name the buyer
    with pytest.raises(RuntimeError), history.audited(cli_actor(), "erasure", "pseudonym") as outcome:
        outcome.detail = {"step": "archive"}
        raise RuntimeError("could not delete the documents of AUDIT-ME-42")
    assert history.audit_trail(1)[0]["outcome"] == "failed: RuntimeError"
    assert "AUDIT-ME-42" not in json.dumps(history.audit_trail(500), default=str)
    history.close()
