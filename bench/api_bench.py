"""API benchmark on the real local stack: /reviews/{id}/top at 50 concurrent clients on a curated
file of 1,000,000 reviews, next to /health (a hello-world route) in the same run and process;
and the API process's memory per million reviews.

    .venv/bin/python -m bench.api_bench [--rows 1000000] [--repeats 3] [--seconds 10]

Needs a published curated version to copy real rows from (``make demo`` makes one). The
1,000,000 rows repeat those real rows under new review and product ids.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import redis

from bench.loadgen import LoadResult, run_load
from ops.stack.manager import Stack
from ops.stack.process import free_port
from ops.stack.s3_server import grant_lake
from services.publisher.publish import announce
from shared import clients
from shared.clients import make_s3
from shared.lake import CuratedVersion, Lake, curated_key
from shared.schemas import CURATED
from shared.settings import get_settings


def synthesize(real: pa.Table, rows: int) -> pa.Table:
    """``rows`` reviews: copies of the real ones, copy k with ids offset and products suffixed "-k"."""
    copies = []
    k = 0
    while sum(t.num_rows for t in copies) < rows:
        copy = real.set_column(real.schema.get_field_index("review_id"), "review_id",
                               pc.add(real.column("review_id"), k * 10_000_000))  # fmt: skip
        copy = copy.set_column(copy.schema.get_field_index("product_id"), "product_id",
                               pc.binary_join_element_wise(copy.column("product_id"), pa.scalar(str(k)), "-"))
        copies.append(copy)
        k += 1
    table = pa.concat_tables(copies).slice(0, rows)
    return table.sort_by([("product_id", "ascending"), ("relevance_score", "descending")])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no RSS for {pid}")


def wait_for_version(url: str, version: str, timeout_s: float = 600) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if httpx.get(f"{url}/health/ready", timeout=5).json().get("version") == version:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the API did not serve {version} within {timeout_s}s")


def summarise(name: str, results: list[LoadResult]) -> str:
    def span(values: list[float], fmt: str) -> str:
        return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"

    return (f"| {name} | {span([r.p50 for r in results], '.2f')} | {span([r.percentile(99) for r in results], '.2f')} "
            f"| {span([r.rps for r in results], '.0f')} | {sum(r.errors for r in results)} |")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args(argv)

    settings = get_settings()
    Stack(settings, kinds=("server",)).up()
    latest = clients.init(settings).lake.latest()
    if latest is None:
        print("no curated version to copy real rows from: run `make demo` first", file=sys.stderr)
        return 2
    real = clients.get().lake.get_table(latest.key).select(CURATED.names)

    bench = settings.model_copy(update={"s3_bucket": "bench-api-lake", "api_port": free_port(), "redis_db": 3,
                                        "api_reload_check_s": 2.0, "log_level": "WARNING"})  # fmt: skip
    grant_lake(bench)  # the pipeline may write only granted buckets, the API read only their curated/
    lake = Lake(make_s3(bench), bench.s3_bucket)
    lake.delete(lake.list_keys("curated/"))  # start empty: the first RSS is the API without data
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "services.api.app:create_app", "--factory",
                            "--host", "127.0.0.1", "--port", str(bench.api_port), "--no-access-log"],
                           env=bench.child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{bench.api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        empty_mb = rss_mb(api.pid)

        table = synthesize(real, args.rows)
        version = CuratedVersion(f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-bench", curated_key("bench"), table.num_rows,
                                 lake.put_table(curated_key("bench"), table), datetime.now(UTC).isoformat())  # fmt: skip
        lake.set_latest(version)
        announce(redis.Redis.from_url(bench.redis_url), version)
        load_s = wait_for_version(url, version.version)
        loaded_mb = rss_mb(api.pid)

        products = pc.unique(table.column("product_id")).to_pylist()
        top_paths = [f"/reviews/{p}/top" for p in products]
        runs: dict[str, list[LoadResult]] = {"GET /health (hello world)": [], "GET /reviews/{id}/top": []}
        for _ in range(args.repeats):  # interleaved, so both see the same machine noise
            runs["GET /health (hello world)"].append(run_load("127.0.0.1", bench.api_port, ["/health"],
                                                              args.clients, args.seconds))  # fmt: skip
            runs["GET /reviews/{id}/top"].append(run_load("127.0.0.1", bench.api_port, top_paths,
                                                          args.clients, args.seconds))  # fmt: skip
        served_mb = rss_mb(api.pid)
    finally:
        api.terminate()
        api.wait(timeout=30)

    per_million = (loaded_mb - empty_mb) / table.num_rows * 1_000_000
    ratio = statistics.median(r.rps for r in runs["GET /reviews/{id}/top"]) / statistics.median(
        r.rps for r in runs["GET /health (hello world)"])
    print(f"API: {table.num_rows:,} curated reviews, {len(products):,} products, {args.clients} concurrent clients, "
          f"{args.repeats} x {args.seconds:.0f} s per route (median, min–max)\n")  # fmt: skip
    print("| route | p50 ms | p99 ms | req/s | errors |\n|---|---|---|---|---|")
    for name, results in runs.items():
        print(summarise(name, results))
    print(f"\ntop reviews req/s relative to hello world: {ratio:.2f}")
    print(f"index load (download + build + swap): {load_s:.1f} s; API RSS {empty_mb:.0f} MB empty, "
          f"{loaded_mb:.0f} MB loaded, {served_mb:.0f} MB after the load test: "
          f"{per_million:.0f} MB per million reviews")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
