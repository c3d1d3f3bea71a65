"""The operator's console on a large run history: its routes and its run page, with thousands of batches.

A run history is built in the metadata database of a local stack of its own: 100 runs of 4 batches a stage, and
runs of 1,000 and 5,000 batches a stage (a 1M- and a 5M-review full run at the default BATCH_SIZE of 1,000:
4,001 and 20,001 grid cells). The API runs in this process under uvicorn; each route is asked ``--repeats`` times
(median, max, bytes). The run page is loaded in headless Chromium (Debian's) ``--repeats`` times: from navigation
to every cell of the grid drawn.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg2
import uvicorn
from playwright.sync_api import sync_playwright

from ops.stack.manager import Stack, make_state_dir, stack_settings
from ops.stack.process import free_port
from services.api.app import create_app
from shared.history.schema import init_metadata_db
from shared.logs import configure_logging
from shared.settings import Settings

CHROMIUM = "/usr/bin/chromium"
STAGES = ("extract", "archive", "transform", "classify")


def seed(settings: Settings, big: list[int]) -> list[str]:
    """100 small runs, then one run per size in ``big``; returns the big runs' ids."""
    conn = psycopg2.connect(settings.metadata_dsn)
    ids = []
    with conn, conn.cursor() as cur:
        sizes = [4] * 100 + big
        for n, batches in enumerate(sizes):
            run_id = f"20260101T{n:06d}Z-b{batches}"
            day = date(2000, 1, 1) + timedelta(days=n)
            cur.execute(
                "INSERT INTO run (run_id, logical_date, trigger, status, mode, created_at, started_at, finished_at, "
                "extracted_batches, source_rows, curated_key, curated_rows, changes) VALUES (%s, %s, 'beat', "
                "'succeeded', 'full', %s, %s, %s, %s, %s, %s, %s, '{\"added\": 1}')",
                (
                    run_id,
                    day,
                    day,
                    day,
                    day + timedelta(minutes=30),
                    batches,
                    batches * 1000,
                    f"curated/review_curated_{run_id}.parquet",
                    batches * 990,
                ),
            )
            cur.execute(
                """
                INSERT INTO batch (run_id, stage, batch_no, status, attempts, started_at, finished_at, rows_in,
                                   rows_out, rejects, input_key, output_key, worker)
                SELECT %(run)s, s, n, 'succeeded', 1, now() - interval '1 min', now(), 1000, 990, 10,
                       'raw/run=' || %(run)s || '/batch=' || n || '.parquet',
                       'cleaned/run=' || %(run)s || '/batch=' || n || '.parquet', 'worker@host'
                FROM unnest(%(stages)s::text[]) s, generate_series(1, %(n)s) n
                """,
                {"run": run_id, "stages": list(STAGES), "n": batches},
            )
            if batches in big:
                ids.append(run_id)
    conn.close()
    return ids


class Server:
    def __init__(self, settings: Settings):
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.api_port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{settings.api_port}"

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def time_route(client: httpx.Client, path: str, repeats: int) -> tuple[float, float, int]:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return statistics.median(times), max(times), size


def time_page(url: str, token: str, cells: int, repeats: int) -> tuple[float, float]:
    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        for _ in range(repeats):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(f"sessionStorage.setItem('console-token', {token!r})")
            page = context.new_page()
            started = time.perf_counter()
            page.goto(url)
            page.wait_for_function(f"document.querySelectorAll('button.cell').length === {cells}", timeout=120_000)
            times.append((time.perf_counter() - started) * 1000)
            context.close()
        browser.close()
    return statistics.median(times), max(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000", help="batches a stage of the big runs")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    big = [int(s) for s in args.sizes.split(",")]
    root = make_state_dir("reviews-console-bench-")
    settings = stack_settings(root, log_level="WARNING").model_copy(update={"api_port": free_port()})
    configure_logging(settings, quiet=True)
    stack = Stack(settings, kinds=("server",))
    try:
        stack.up()
        init_metadata_db(settings)
        run_ids = seed(settings, big)
        token = settings.api_token.get_secret_value()
        rows = []
        with (
            Server(settings) as api,
            httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client,
        ):
            for path in ("/jobs?limit=50", "/console/health", "/audit?limit=200"):
                rows.append((path, "103 runs", *time_route(client, path, args.repeats)))
            for batches, run_id in zip(big, run_ids, strict=True):
                for path in (f"/jobs/{run_id}", f"/jobs/{run_id}/batches"):
                    shown = path.replace(run_id, "{id}")
                    rows.append((shown, f"{batches:,} batches a stage", *time_route(client, path, args.repeats)))
            pages = [
                (batches, *time_page(f"{api.url}/console/#/run/{run_id}", token, 4 * batches + 1, args.repeats))
                for batches, run_id in zip(big, run_ids, strict=True)
            ]
        print(f"Routes with the operator token, {args.repeats} requests each, in process (uvicorn, one worker):\n")
        print("| route | history | median ms | max ms | bytes |\n|---|---|---|---|---|")
        for path, history, median, worst, size in rows:
            print(f"| `GET {path}` | {history} | {median:.1f} | {worst:.1f} | {size:,} |")
        print(f"\nThe run page in headless Chromium, {args.repeats} loads each, navigation to every cell drawn:\n")
        print("| batches a stage | grid cells | median ms | max ms |\n|---|---|---|---|")
        for batches, median, worst in pages:
            print(f"| {batches:,} | {4 * batches + 1:,} | {median:.0f} | {worst:.0f} |")
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
