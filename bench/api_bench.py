"""API benchmark: GET /reviews/{id}/top and GET /products/{id}/summary next to a hello-world route,
measured by wrk, at 1,000,000 and 10,000,000 curated reviews built from the real shared reviews
(bench/catalogue.py says how).

    .venv/bin/python -m bench.api_bench [--sizes 1000000,10000000] [--repeats 3] [--seconds 10]

For each size, on a private server stack: the catalogue is written as publish writes a curated file,
the publisher's serving files are built and uploaded (timed), the API starts as production starts it
(``python -m services.api``, one worker) pinned to core 1 with taskset, "latest" moves and is announced,
and the time until the API answers with the new version is the load time. Then wrk, pinned to core 0,
holds 50 connections on /health, on /reviews/{id}/top and on /products/{id}/summary over every product
id in random order, alternately, ``repeats`` times each, and on /products?query= over real title words
once. Then abuse, once each: the worst search (eight one-letter words), /health/ready (its pings cached),
GET /jobs?limit=100 over 100 failed runs of five stages, and POST /jobs with a body one byte over
API_MAX_BODY_BYTES (413). RSS is read from /proc (split into the process's own memory and the file pages it
maps, with its proportional share), then the same with two workers on the same core, to show what a second
worker costs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.ipc
import redis

from bench.catalogue import scored_reviews, write_catalogue
from ops.stack.manager import Stack, make_state_dir, stack_settings
from ops.stack.process import free_port
from ops.stack.s3_server import grant_lake
from shared.clients import make_s3
from shared.curated import serving
from shared.curated.versions import announce
from shared.history import History
from shared.lake import CuratedVersion, Lake, curated_key
from shared.logs import configure_logging
from shared.serving_format import words
from shared.settings import Settings
from shared.stages import Stage

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CLIENT_CORE, API_CORE = "0", "1"
# One wrk thread: the client has one core, and its Lua state draws the paths. A line "POST <path> <n>" is
# a POST of an n-byte body, built once. done() prints one JSON line.
WRK_SCRIPT = """
local paths, bodies = {}, {}
init = function(args)
  for line in io.lines(args[1]) do
    local path, size = line:match("^POST (%S+) (%d+)$")
    paths[#paths + 1] = path or line
    bodies[#paths] = size and string.rep(" ", tonumber(size))
  end
  math.randomseed(tonumber(args[2]))
end
request = function()
  local i = math.random(#paths)
  if bodies[i] then
    return wrk.format("POST", paths[i], {["Content-Type"] = "application/json"}, bodies[i])
  end
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "non_2xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # connect, read, write, timeout
    non_2xx: int  # answers of status 400 or more
    cpu_us: float  # the API's CPU time per request: what the route costs, whatever else runs on the machine


@dataclass
class Memory:
    rss: float  # MB: what the issue's goal names
    anon: float  # the process's own memory
    file: float  # file pages it maps: shared with every other worker, and with the page cache
    pss: float  # its proportional share of all of it

    @classmethod
    def of(cls, pid: int) -> Memory:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        rollup = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])

        def mb(table: dict, name: str) -> float:
            return int(table[name].split()[0]) / 1024

        return cls(mb(status, "VmRSS"), mb(status, "RssAnon"), mb(status, "RssFile"), mb(rollup, "Pss"))


@dataclass
class Measured:
    rows: int
    products: int
    kept: int
    reviews_mb: float
    index_mb: float  # products.arrow and terms.arrow
    build_s: float
    upload_s: float
    load_s: float
    load_phases: dict
    empty: Memory
    loaded: Memory
    after: Memory | None = None
    health: list[Load] = field(default_factory=list)
    top: list[Load] = field(default_factory=list)
    summary: list[Load] = field(default_factory=list)
    search: Load | None = None
    abuse: dict[str, Load] = field(default_factory=dict)
    two_workers: list[Memory] = field(default_factory=list)
    two_workers_top: Load | None = None
    machine_total_gb: float = 0.0
    machine_available_gb: float = 0.0


def meminfo_gb(name: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024 / 1024
    raise KeyError(name)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of the line
    return total / os.sysconf("SC_CLK_TCK")


def wait_for_version(url: str, version: str, timeout_s: float = 600, every_s: float = 0.5) -> float:
    """Seconds until the API at ``url`` answers with ``version``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if httpx.get(f"{url}/health/ready", timeout=5).json().get("version") == version:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(every_s)
    raise TimeoutError(f"the API did not serve {version} within {timeout_s}s")


class Api:
    """``python -m services.api`` pinned to the API's core, its JSON log kept for the load phases."""

    def __init__(self, settings: Settings, log: Path):
        self.url = f"http://127.0.0.1:{settings.api_port}"
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                ["taskset", "-c", API_CORE, sys.executable, "-m", "services.api"],
                env=settings.child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/health", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"the API did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)

    def pids(self) -> list[int]:
        """The serving processes: the one started, or its workers when it supervises several."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        workers = [int(p) for p in children if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]
        return workers or [self.process.pid]

    def load_phases(self, version: str) -> dict:
        for line in reversed(self.log.read_text().splitlines()):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "serving_files_mapped" and event.get("version") == version:
                return {k: event[k] for k in ("wait_s", "fetch_s", "open_s")}
        return {}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def wrk(api: Api, paths_file: Path, seconds: float, connections: int, work: Path, seed: int) -> Load:
    script = work / "paths.lua"
    script.write_text(WRK_SCRIPT)
    command = [
        "taskset",
        "-c",
        CLIENT_CORE,
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        api.url,
        "--",
        str(paths_file),
        str(seed),
    ]
    cpu_before = cpu_seconds(api.pids())
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    cpu = cpu_seconds(api.pids()) - cpu_before
    result = json.loads(out.strip().splitlines()[-1])
    return Load(
        result["requests"] / (result["duration_us"] / 1e6),
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        result["errors"],
        result["non_2xx"],
        cpu / max(1, result["requests"]) * 1e6,
    )


def publish_version(lake: Lake, redis_client, version: str, rows: int, api_url: str) -> float:
    """Move "latest" to ``version`` and announce it, as publish does; seconds until the API serves it."""
    pointer = CuratedVersion(version, curated_key(version), rows, 0, datetime.now(UTC).isoformat())
    lake.set_latest(pointer)
    announce(redis_client, pointer)
    return wait_for_version(api_url, version, every_s=0.05)


def measure(size: int, real: pa.Table, base: Settings, args: argparse.Namespace, work: Path) -> Measured:
    bench = base.model_copy(
        update={
            "s3_bucket": "bench-api-lake",
            "redis_db": 6,
            "api_port": free_port(),
            "api_reload_check_s": 30.0,
            "log_level": "INFO",
            "log_format": "json",
            "api_workers": 1,
            "api_cache_dir": work / "api-cache",
        }
    )
    lake = Lake(make_s3(bench, "operator"), bench.s3_bucket)
    lake.delete(lake.list_keys("curated/"))
    version = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-bench{size // 1_000_000}m"
    curated = work / f"curated-{size}.parquet"
    write_catalogue(real, size, curated, bench)
    folder = work / f"serving-{size}"
    folder.mkdir()
    started = time.monotonic()
    files = serving.build(curated, folder, version, bench.api_reviews_per_product)  # serving.write's two steps
    built = time.monotonic()
    serving.upload(lake, files)
    uploaded = time.monotonic()
    curated.unlink()  # the API reads only the serving files; the lake keeps no curated file here
    products = pyarrow.ipc.open_file(str(folder / "products.arrow")).read_all()
    ids, titles = products.column("product_id").to_pylist(), products.column("title").to_pylist()
    shutil.rmtree(folder)
    rng = random.Random(size)
    (work / "top.txt").write_text("".join(f"/reviews/{pid}/top\n" for pid in ids))
    (work / "summary.txt").write_text("".join(f"/products/{pid}/summary\n" for pid in ids))
    (work / "health.txt").write_text("/health\n")
    vocabulary = sorted({w for t in rng.sample(titles, min(len(titles), 2000)) for w in words(t or "") if len(w) > 2})
    (work / "search.txt").write_text("".join(f"/products?query={quote(w)}\n" for w in rng.sample(vocabulary, 200)))
    redis_client = redis.Redis.from_url(bench.redis_url)

    api = Api(bench, work / f"api-{size}.log")
    try:
        empty = Memory.of(api.pids()[0])
        load_s = publish_version(lake, redis_client, version, files.rows, api.url)
        loaded = Memory.of(api.pids()[0])
        measured = Measured(
            files.rows,
            files.products,
            files.reviews,
            files.sizes["reviews"] / 1e6,
            (files.size - files.sizes["reviews"]) / 1e6,
            built - started,
            uploaded - built,
            load_s,
            api.load_phases(version),
            empty,
            loaded,
        )
        for repeat in range(args.repeats):  # alternated, so both routes see the same machine
            measured.health.append(wrk(api, work / "health.txt", args.seconds, args.connections, work, repeat))
            measured.top.append(wrk(api, work / "top.txt", args.seconds, args.connections, work, repeat))
            measured.summary.append(wrk(api, work / "summary.txt", args.seconds, args.connections, work, repeat))
        measured.search = wrk(api, work / "search.txt", args.seconds, args.connections, work, 0)
        for name, request in abuse_requests(bench).items():
            (work / "abuse.txt").write_text(request + "\n")
            measured.abuse[name] = wrk(api, work / "abuse.txt", args.seconds, args.connections, work, 0)
        measured.after = Memory.of(api.pids()[0])
        measured.machine_total_gb, measured.machine_available_gb = meminfo_gb("MemTotal"), meminfo_gb("MemAvailable")
    finally:
        api.stop()

    two = Api(bench.model_copy(update={"api_workers": 2}), work / f"api-{size}-2.log")
    try:
        wait_for_version(two.url, version, every_s=0.05)  # the cache folder already holds it: no download
        measured.two_workers_top = wrk(two, work / "top.txt", args.seconds, args.connections, work, 9)
        measured.two_workers = [Memory.of(pid) for pid in two.pids()]
    finally:
        two.stop()
    shutil.rmtree(work / "api-cache", ignore_errors=True)
    lake.delete(lake.list_keys("curated/"))
    return measured


def abuse_requests(settings: Settings) -> dict[str, str]:
    """The most a client can make one request of each public route cost, by name: a line of WRK_SCRIPT."""
    worst = " ".join("abcdefgh")  # as many words as a search takes, each a pass over most products' postings
    return {
        f"GET /products?query={worst}&limit=100 (the worst search)": f"/products?query={quote(worst)}&limit=100",
        "GET /health/ready (Redis and S3 pinged once a second)": "/health/ready",
        "GET /jobs?limit=100, no token (401: the run history is the operator's)": "/jobs?limit=100",
        f"POST /jobs, {settings.api_max_body_bytes + 1:,} bytes, no token (413)": (
            f"POST /jobs {settings.api_max_body_bytes + 1}"
        ),
    }


def seed_runs(settings: Settings, runs: int = 100, batches: int = 4) -> None:
    """``runs`` failed runs in the run history, each with ``batches`` batches of every stage: a full page of
    ``GET /jobs?limit=100``."""
    history = History(settings.metadata_dsn)
    try:
        for n in range(runs):
            run_id = history.create_run("cli", {}, date(2000, 1, 1) + timedelta(days=n))
            for stage in Stage:
                for batch in range(batches):
                    history.finish_batch(run_id, stage, batch, rows_in=1000, rows_out=990, rejects=10)
            history.fail_run(run_id, "transform batch 3 failed: ValueError('a row the bench made up')")
    finally:
        history.close()


def span(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def report(results: list[Measured], args: argparse.Namespace) -> None:
    print(
        f"wrk 4.1 (one thread, pinned to core {CLIENT_CORE}), {args.connections} connections, {args.seconds:.0f} s "
        f"a run; the API (`python -m services.api`, one uvicorn worker) pinned to core {API_CORE}; /health, "
        f"/reviews/{{id}}/top and /products/{{id}}/summary alternated {args.repeats} times (median, min–max); "
        f"top reviews and summary of a random product among all of the version's.\n"
    )
    print(
        "| curated reviews | route | p50 ms | p99 ms | req/s | errors | req/s vs hello world "
        "| API CPU per request, µs |\n|---|---|---|---|---|---|---|---|"
    )
    for m in results:
        health = statistics.median(x.rps for x in m.health)
        for name, loads in (
            ("GET /health (hello world)", m.health),
            ("GET /reviews/{id}/top", m.top),
            ("GET /products/{id}/summary", m.summary),
            ("GET /products?query=word", [m.search]),
        ):
            ratio = statistics.median(x.rps for x in loads) / health
            print(
                f"| {m.rows:,} | {name} | {span([x.p50_ms for x in loads], '.2f')} | "
                f"{span([x.p99_ms for x in loads], '.2f')} | {span([x.rps for x in loads], '.0f')} | "
                f"{sum(x.errors + x.non_2xx for x in loads)} | {ratio:.2f} | {span([x.cpu_us for x in loads], '.0f')} |"
            )
    print(
        "\nAbuse, once each, as above: what one request of each public route can cost at most. Errors are socket "
        "errors; answers of status 400 or more are counted apart (every answer of the 413 row is one, as meant).\n"
    )
    print(
        "| curated reviews | request | p50 ms | p99 ms | req/s | req/s vs hello world | errors | ≥ 400 | API CPU per "
        "request, µs |\n|---|---|---|---|---|---|---|---|---|"
    )
    for m in results:
        health = statistics.median(x.rps for x in m.health)
        for name, x in m.abuse.items():
            print(
                f"| {m.rows:,} | {name} | {x.p50_ms:.2f} | {x.p99_ms:.2f} | {x.rps:.0f} | {x.rps / health:.2f} | "
                f"{x.errors} | {x.non_2xx} | {x.cpu_us:.0f} |"
            )
    print(
        "\n| curated reviews | products | reviews kept (≤ 200 a product) | serving files: reviews + products and "
        'terms | publish: build + upload | new version served after "latest" moved (download and check, map) |'
    )
    print("|---|---|---|---|---|---|")
    for m in results:
        phases = m.load_phases
        print(
            f"| {m.rows:,} | {m.products:,} | {m.kept:,} | {m.reviews_mb:,.0f} MB + {m.index_mb:,.0f} MB | "
            f"{m.build_s:.1f} s + {m.upload_s:.1f} s | **{m.load_s:.2f} s** (fetch {phases.get('fetch_s', '?')} s, "
            f"map {phases.get('open_s', '?')} s) |"
        )
    print(
        "\nMemory of the API process (MB): RSS, and within it the process's own memory (anonymous) and the pages "
        "of the mapped serving files, which the page cache shares with every other worker; PSS counts shared "
        "pages once across processes.\n"
    )
    print("| curated reviews | when | RSS | own | mapped file pages | PSS | RSS per million reviews |")
    print("|---|---|---|---|---|---|---|")
    for m in results:
        for when, mem in (
            ("started, nothing served", m.empty),
            ("version loaded", m.loaded),
            ("after every load test", m.after),
        ):
            print(
                f"| {m.rows:,} | {when} | {mem.rss:,.0f} | {mem.anon:,.0f} | {mem.file:,.0f} | {mem.pss:,.0f} | "
                f"{mem.rss / m.rows * 1e6:,.0f} |"
            )
        for n, mem in enumerate(m.two_workers, start=1):
            print(
                f"| {m.rows:,} | two workers on core {API_CORE}, worker {n}, after a load test | {mem.rss:,.0f} | "
                f"{mem.anon:,.0f} | {mem.file:,.0f} | {mem.pss:,.0f} | {mem.rss / m.rows * 1e6:,.0f} |"
            )
    for m in results:
        t = m.two_workers_top
        print(
            f"\n{m.rows:,} reviews, two workers sharing core {API_CORE}: top reviews {t.rps:.0f} req/s, p99 "
            f"{t.p99_ms:.2f} ms, {t.errors + t.non_2xx} errors (one core: no more throughput, the point is memory)."
        )
    last = results[-1]
    print(
        f"\nMachine: {last.machine_total_gb:.1f} GB, {last.machine_available_gb:.1f} GB available at the end of "
        f"the {last.rows:,} run (shared with other work)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args(argv)
    if not Path(WRK).exists():
        print("wrk is missing: `make bench` installs it (apt-get install wrk)", file=sys.stderr)
        return 2

    root = make_state_dir("reviews-api-bench-")
    settings = stack_settings(root, log_level="WARNING")
    configure_logging(settings, quiet=True)  # stdout is the report's; the loader's lines go to stderr
    stack = Stack(settings, kinds=("server",))
    try:
        stack.up()
        grant_lake(settings.model_copy(update={"s3_bucket": "bench-api-lake"}))
        seed_runs(settings)
        real = scored_reviews(settings, DATA_DIR)
        print(f"real scored reviews: {real.num_rows:,}", file=sys.stderr)
        results = []
        for size in (int(s) for s in args.sizes.split(",")):
            with tempfile.TemporaryDirectory(prefix="api-bench-", dir=root) as tmp:
                print(f"measuring {size:,} curated reviews ...", file=sys.stderr, flush=True)
                results.append(measure(size, real, settings, args, Path(tmp)))
        report(results, args)
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
