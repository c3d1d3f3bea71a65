"""Right to erasure on the real MongoDB-wire server and metadata DB."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pymongo

from ops.gdpr import erase_buyer
from services.transformer.transform import pseudonym, transform
from shared.history import History, init_metadata_db
from shared.schemas import RAW
from tests.factories import publish_batches, scored_row


def test_erase_deletes_the_archive_and_keeps_the_buyer_out_of_later_files(servers, own_lake):
    init_metadata_db(servers)
    history = History(servers.metadata_dsn)
    key = servers.pseudonym_key.get_secret_value().encode()
    with pymongo.MongoClient(servers.mongo_url) as client:
        archive = client[servers.mongo_db][servers.mongo_collection]
        archive.insert_many([{"_id": 9_000_001, "buyer_id": "FORGET-ME"}, {"_id": 9_000_002, "buyer_id": "FORGET-ME"},
                             {"_id": 9_000_003, "buyer_id": "KEEP-ME"}])  # fmt: skip
        report = erase_buyer(servers, history, "FORGET-ME")
        assert report.archived_documents_deleted == 2
        assert archive.count_documents({"buyer_id": "FORGET-ME"}) == 0
        assert archive.count_documents({"_id": 9_000_003}) == 1
    erased = history.erased_pseudonyms()
    assert report.buyer_pseudonym == pseudonym("FORGET-ME", key) in erased
    # a later transform drops their reviews (not as rejects: nothing of theirs is written)
    raw = pa.Table.from_pylist([
        {"review_id": i, "product_id": "P", "buyer_id": buyer, "rating": 5, "title": "t", "text": "fine",
         "helpful_votes": 0, "reviewed_at": datetime(2015, 1, 1, tzinfo=UTC), "product_known": True}
        for i, buyer in ((1, "FORGET-ME"), (2, "KEEP-ME"))
    ], schema=RAW)  # fmt: skip
    result = transform(raw, key, datetime.now(UTC), erased)
    assert result.cleaned.column("review_id").to_pylist() == [2]
    assert result.erased == 1 and len(result.rejects) == 0
    # and a run transformed before the request still publishes without them
    published = publish_batches(own_lake, "20260601T000000Z-gdpr01", [[
        scored_row(1, "P", 0.9, buyer_pseudonym=report.buyer_pseudonym), scored_row(2, "P", 0.1)]], erased=erased)
    assert own_lake.get_table(published.version.key).column("review_id").to_pylist() == [2]
    assert published.changes.erased == 1
    history.close()
