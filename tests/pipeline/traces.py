"""Where a buyer's traces could lie on the real stack, each read back as the text it holds: every lake
object (Parquet and Arrow decoded, the serving files' zstd frames unpacked), every archive document, every
file of the API's cache folders and every log file under the stack's state folder, every Redis key and value
(the broker's messages unpacked from their base64 bodies)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pymongo
import redis
import zstandard

from shared.lake import Lake
from shared.settings import Settings


def _rows(table: pa.Table) -> str:
    return json.dumps(table.to_pylist(), default=str, ensure_ascii=False)


def decoded(name: str, data: bytes) -> str:
    """What an object or file says, as text: Parquet and Arrow decoded (their bytes are compressed), with the
    serving files' reviews unpacked from their zstd frames; anything else as it is."""
    if name.endswith(".parquet"):
        return _rows(pq.read_table(io.BytesIO(data)))
    if name.endswith(".arrow"):
        table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
        metadata = table.schema.metadata or {}
        if "review" in table.column_names:
            dictionary = base64.b64decode(metadata.get(b"zstd_dictionary", b""))
            unpack = zstandard.ZstdDecompressor(
                dict_data=zstandard.ZstdCompressionDict(dictionary) if dictionary else None
            ).decompress
            reviews = [unpack(r).decode() for r in table.column("review").to_pylist()]
            table = table.drop_columns(["review"]).append_column("review", pa.array(reviews))
        return _rows(table) + json.dumps({k.decode(): v.decode(errors="replace") for k, v in metadata.items()})
    return data.decode(errors="replace")


def lake_objects(lake: Lake) -> dict[str, str]:
    return {f"s3://{lake.bucket}/{key}": decoded(key, lake.get_bytes(key)) for key in lake.list_keys("")}


def archive_documents(settings: Settings) -> dict[str, str]:
    with pymongo.MongoClient(settings.mongo_url) as client:
        documents = client[settings.mongo_db][settings.mongo_collection].find()
        return {f"archive {d['_id']}": json.dumps(d, default=str, ensure_ascii=False) for d in documents}


def files(folder: Path, pattern: str) -> dict[str, str]:
    return {str(p): decoded(p.name, p.read_bytes()) for p in folder.rglob(pattern) if p.is_file()}


def _unpacked(value: bytes) -> str:
    """A Redis value as text, a broker message's base64 body decoded beside it."""
    text = value.decode(errors="replace")
    try:
        message = json.loads(text)
        body = message["body"] if message["properties"]["body_encoding"] == "base64" else ""
        return text + base64.b64decode(body).decode(errors="replace")
    except (ValueError, KeyError, TypeError):
        return text


def redis_values(settings: Settings) -> dict[str, str]:
    """Every key of every database with its value (strings, lists, hashes, sets, sorted sets)."""
    found: dict[str, str] = {}
    databases = redis.Redis.from_url(settings.redis_url).info("keyspace")
    for name in databases:
        client = redis.Redis.from_url(settings.redis_url, db=int(name.removeprefix("db")))
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "hash":
                values = [part for pair in client.hgetall(key).items() for part in pair]
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
            else:  # streams and the like: the key's name is what can be read without a consumer
                values = []
            found[f"redis {name} {key.decode(errors='replace')}"] = " ".join(
                [key.decode(errors="replace"), *map(_unpacked, values)]
            )
        client.close()
    return found


def holding(texts: dict[str, str], needles: list[str]) -> dict[str, list[str]]:
    """Which of the places hold which of the needles."""
    return {where: found for where, text in texts.items() if (found := [n for n in needles if n in text])}
