"""The lake's objects on the real S3 server: ranged reads of a few columns."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq


def test_a_ranged_object_reads_one_column_without_fetching_the_rest(own_lake):
    # given an object whose text column dwarfs its buyer column
    rows, draw = 20_000, random.Random(27)
    table = pa.table(
        {
            "buyer_pseudonym": [f"{i % 97:032x}" for i in range(rows)],
            "text": [draw.randbytes(120).hex() for _ in range(rows)],  # text that does not compress away
        }
    )
    size = own_lake.put_table("curated/ranged.parquet", table)
    # when the buyer column alone is read through ranged GETs
    with own_lake.ranged("curated/ranged.parquet") as obj:
        buyers = pq.ParquetFile(obj).read(columns=["buyer_pseudonym"])
        read = obj.bytes_read
    # then it is the column, and a small part of the object came over the wire
    assert buyers.column("buyer_pseudonym").equals(table.column("buyer_pseudonym"))
    assert read < size / 10, (read, size)
