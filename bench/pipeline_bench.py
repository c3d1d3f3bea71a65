"""End-to-end pipeline benchmark on a private local stack (free loopback ports, a temp state dir).

Three phases, each optional:
  shared     the source load rate; a full run of the shared data, per stage, with its overheads
  workers    one against two classifier workers on a subset, with the CPU they and the machine use
  catalogue  a catalogue built from the shared reviews (bench/source_ops.py: copies under new review,
             product and buyer ids): a full run of the largest size against daily runs of a fixed delta
             (a third each new, edited, and voted on) at every size, rows touched per stage, Redis memory

    .venv/bin/python -m bench.pipeline_bench [--phases shared,workers,catalogue] [--reviews N]
        [--sizes 250000,500000,1000000] [--delta 10000] [--subset 1500] [--repeats 3]

``--reviews`` keeps only the first N reviews of the shared data as "1x" (a quick run); by default
all of them. Everything the benchmark starts is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import source_ops
from bench.api_bench import wait_for_version
from bench.cpu import CORES, CpuSampler, Utilisation
from bench.run_times import RunTimes, run_times
from bench.stage_io import io_per_batch_s
from ops.runs_cli import format_report, watch
from ops.source.schema import create_source
from ops.stack.components import Context, worker_name
from ops.stack.manager import Stack, make_state_dir, stack_settings
from shared import clients
from shared.clients import Clients
from shared.flow import start_run
from shared.history import History
from shared.logs import configure_logging
from shared.settings import Settings
from shared.stages import Stage
from shared.tasks import send

# The shared review data beside the project (never copied into it).
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

RUN_TIMEOUT_S = 6 * 3600
SUBSET_BATCH_SIZE = 250  # enough batches in a subset run for two workers to share
PHASES = ("shared", "workers", "catalogue")


@dataclass(frozen=True)
class Measured:
    times: RunTimes
    cpu: Utilisation | None  # during the classify stage's span
    run: dict  # the run's record: mode, changes
    stages: dict[str, dict]  # the run history's per-stage summary: rows touched


# --- the private stack ---------------------------------------------------------------------------


@contextmanager
def private_stack() -> Iterator[Settings]:
    root = make_state_dir("reviews-bench-")
    settings = stack_settings(root, watermark_lag_s=0.0)
    try:
        Stack(settings).up()
        yield settings
    finally:
        Stack(settings).down()  # also the second classifier worker, recorded in the same state dir
        shutil.rmtree(root, ignore_errors=True)


def classify_pids(settings: Settings) -> list[int]:
    ctx = Context(settings)
    records = (ctx.pidfile(f"worker-classify-{n}").live() for n in range(1, settings.classify_workers + 1))
    return [r.pid for r in records if r is not None]


def consume_with(c: Clients, workers: int) -> None:
    """Let one or two classifier workers take classify tasks; the second stays loaded either way,
    so switching costs no model load and both configurations see the same processes."""
    second = [worker_name(Stage.CLASSIFY, 2)]
    control = c.celery.control
    replies = (
        control.add_consumer(Stage.CLASSIFY.value, destination=second, reply=True)
        if workers == 2
        else control.cancel_consumer(Stage.CLASSIFY.value, destination=second, reply=True)
    )
    if not replies:
        raise RuntimeError(f"{second[0]} did not answer a consumer change")


# --- one run -------------------------------------------------------------------------------------


def wait_for_archive(history: History, run: dict, timeout_s: float) -> None:
    """Archive does not gate publish, but its backlog would share the CPU with the next measurement."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = history.stage_summary(run["run_id"]).get(Stage.ARCHIVE.value, {})
        if s.get("succeeded", 0) + s.get("dead", 0) >= run["extracted_batches"]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"archive of run {run['run_id']} unfinished after {timeout_s:.0f}s")
        time.sleep(1)


def run_pipeline(c: Clients, params: dict, cpu_pids: list[int], api: bool = True) -> Measured:
    """One run to its end, archive drained (and the API serving it): the machine is quiet afterwards."""
    with CpuSampler(cpu_pids) as cpu:
        run_id = start_run(c.history, send, "cli", params)
        run = watch(c.history, run_id, RUN_TIMEOUT_S)
        if run["status"] != "succeeded":
            raise RuntimeError(format_report(run, c.history.stage_summary(run_id)))
        wait_for_archive(c.history, run, RUN_TIMEOUT_S)
        if api:
            wait_for_version(f"http://127.0.0.1:{c.settings.api_port}", run_id)
    times = run_times(c.history, run_id)
    print(
        f"run {run_id}: {run.get('mode')}, {times.source_rows:,} rows, {times.end_to_end_s:.1f} s end to end",
        file=sys.stderr,
        flush=True,
    )
    classify = times.stages.get(Stage.CLASSIFY)
    usage = cpu.between(classify.started.timestamp(), classify.finished.timestamp()) if classify else None
    return Measured(times, usage, run, c.history.stage_summary(run_id))


# --- the phases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedData:
    loads: list[source_ops.TimedLoad]
    full: Measured
    io_s: dict[Stage, float]


@dataclass(frozen=True)
class Workers:
    subset: int
    one: list[Measured]
    two: list[Measured]


@dataclass
class Catalogue:
    full: Measured
    delta: int
    daily: dict[int, list[Measured]] = field(default_factory=dict)  # catalogue size -> runs of a fixed delta
    shrinks: dict[int, Measured] = field(default_factory=dict)  # the runs that removed the reviews cut
    redis_before: dict = field(default_factory=dict)
    redis_after: dict = field(default_factory=dict)


def shared_data(args: argparse.Namespace, c: Clients, pids: list[int]) -> SharedData:
    loads = [source_ops.timed_load(c.settings, [args.data]) for _ in range(args.repeats)]
    source_ops.keep_first(c.settings, args.reviews or source_ops.count(c.settings))
    print(f"source: {source_ops.count(c.settings):,} reviews; full run", file=sys.stderr, flush=True)
    full = run_pipeline(c, {"full": True}, pids)
    return SharedData(loads, full, io_per_batch_s(c.lake, c.history, full.times.run_id))


def one_vs_two_workers(args: argparse.Namespace, c: Clients) -> Workers:
    two = c.settings.model_copy(update={"classify_workers": 2})
    Stack(two).up()  # starts the second classifier worker; everything else already runs
    pids = classify_pids(two)
    subset = min(args.subset, source_ops.count(c.settings))
    runs: dict[int, list[Measured]] = {1: [], 2: []}
    try:
        for _ in range(args.repeats):  # interleaved, so both configurations meet the same machine noise
            for workers in (1, 2):
                consume_with(c, workers)
                params = {"full": True, "limit": subset, "batch_size": SUBSET_BATCH_SIZE}
                runs[workers].append(run_pipeline(c, params, pids))
    finally:
        consume_with(c, 1)
    return Workers(subset, runs[1], runs[2])


def redis_memory(c: Clients) -> dict:
    info = c.redis.info("memory")
    return {"used_memory": info["used_memory"], "keys": c.redis.dbsize()}


def catalogue(args: argparse.Namespace, c: Clients, pids: list[int]) -> Catalogue:
    """The full run of the largest catalogue, then daily runs of a fixed delta, shrinking the catalogue
    size by size (a shrink is itself an incremental run: it removes what the source deleted)."""
    sizes = sorted(args.sizes, reverse=True)
    source_ops.grow_to(c.settings, sizes[0])
    # The API reloads every version it is told of; its load is the API benchmark's, not the pipeline's.
    stack = Stack(c.settings)
    next(comp for comp in stack.components if comp.name == "api").stop(stack.ctx)
    result_redis = redis_memory(c)
    print(f"source: {source_ops.count(c.settings):,} reviews; full run", file=sys.stderr, flush=True)
    result = Catalogue(run_pipeline(c, {"full": True}, pids, api=False), args.delta, redis_before=result_redis)
    for size in sizes:
        if source_ops.count(c.settings) > size:
            source_ops.keep_first(c.settings, size)
            print(f"source: {size:,} reviews; a run removes the rest", file=sys.stderr, flush=True)
            result.shrinks[size] = run_pipeline(c, {}, pids, api=False)
        result.daily[size] = []
        for i in range(args.repeats):
            source_ops.change(c.settings, args.delta, f"day {size} {i}")
            print(f"source: {size:,} reviews, {args.delta:,} changed; daily run", file=sys.stderr, flush=True)
            result.daily[size].append(run_pipeline(c, {}, pids, api=False))
    result.redis_after = redis_memory(c)
    return result


# --- the report ----------------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> tuple[str, str]:
    """(median, min–max) as text; one value has no range."""
    median = f"{statistics.median(values):{fmt}}"
    return median, (f"{min(values):{fmt}}–{max(values):{fmt}}" if len(values) > 1 else "single run")


def figure(name: str, size: str, values: list[float], fmt: str) -> str:
    median, span = spread(values, fmt)
    return f"| {name} | {size} | {median} | {span} | {len(values)} |"


def e2e(runs: list[Measured]) -> list[float]:
    return [m.times.end_to_end_s for m in runs]


def stage_wall(runs: list[Measured], stage: Stage) -> list[float]:
    return [m.times.stages[stage].wall_s for m in runs]


def cpu_cells(runs: list[Measured]) -> tuple[list[float], list[float]]:
    measured = [m.cpu for m in runs if m.cpu is not None]
    return [u.processes * 100 for u in measured], [u.machine * 100 for u in measured]


def rows(m: Measured, stage: Stage, key: str = "rows_in") -> int:
    return int(m.stages.get(stage.value, {}).get(key, 0))


def shared_summary(r: SharedData) -> list[str]:
    full = r.full.times
    return [
        "| figure | size | median | min–max | runs |",
        "|---|---|---|---|---|",
        figure(
            "source load, reviews/s (files parsed + COPY + insert, product files included)",
            f"{r.loads[0].reviews:,} reviews",
            [x.rate for x in r.loads],
            ",.0f",
        ),
        figure("full run, end to end, s", f"{full.source_rows:,}", [full.end_to_end_s], ".1f"),
        figure(
            "full run: classify share, % (classify busy / end to end)", "", [full.share(Stage.CLASSIFY) * 100], ".0f"
        ),
        figure(
            "full run: classify stage, reviews/s (rows / classify wall)",
            "",
            [full.source_rows / full.stages[Stage.CLASSIFY].wall_s],
            ",.1f",
        ),
    ]


def stage_columns(columns: list[tuple[str, list[Measured]]]) -> list[str]:
    """Wall / busy seconds per stage, end to end and classify share, one column per configuration."""

    def cell(runs: list[Measured], value: Callable[[RunTimes], float], fmt: str = ".1f") -> str:
        values = [value(m.times) for m in runs]
        return f"{statistics.median(values):{fmt}}" if values else "–"

    lines = [
        "| stage: wall s / busy s | " + " | ".join(name for name, _ in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for stage in Stage:
        cells = []
        for _, runs in columns:
            timed = [m for m in runs if stage in m.times.stages]
            cells.append(
                f"{cell(timed, lambda t, s=stage: t.stages[s].wall_s)} / "
                f"{cell(timed, lambda t, s=stage: t.stages[s].busy_s)}"
            )
        lines.append(f"| {stage.value} | " + " | ".join(cells) + " |")
    lines.append(
        "| **end to end** (trigger to published) | "
        + " | ".join(cell(runs, lambda t: t.end_to_end_s) for _, runs in columns)
        + " |"
    )
    return lines


def overhead_table(r: SharedData) -> list[str]:
    full = r.full.times.stages
    lines = [
        "| stage (full run) | batches | busy per batch, s | queue wait, % of stage | "
        "lake I/O + (de)serialisation, % of busy |",
        "|---|---|---|---|---|",
    ]
    for stage in (Stage.ARCHIVE, Stage.TRANSFORM, Stage.CLASSIFY, Stage.PUBLISH):
        t = full[stage]
        per_batch = t.busy_s / t.batches
        io = f"{r.io_s[stage] / per_batch:.0%} ({r.io_s[stage]:.2f} s)" if stage in r.io_s else "–"
        lines.append(f"| {stage.value} | {t.batches} | {per_batch:.2f} | {t.queue_share:.1%} | {io} |")
    return lines


def workers_summary(r: Workers) -> list[str]:
    speedups = [
        a.times.stages[Stage.CLASSIFY].wall_s / b.times.stages[Stage.CLASSIFY].wall_s
        for a, b in zip(r.one, r.two, strict=True)
    ]
    e2e_speedups = [a.times.end_to_end_s / b.times.end_to_end_s for a, b in zip(r.one, r.two, strict=True)]
    subset = f"first {r.subset:,}, batches of {SUBSET_BATCH_SIZE}"
    lines = [
        "| figure | size | median | min–max | runs |",
        "|---|---|---|---|---|",
        figure("1 classifier worker: classify stage wall, s", subset, stage_wall(r.one, Stage.CLASSIFY), ".1f"),
        figure("2 classifier workers: classify stage wall, s", subset, stage_wall(r.two, Stage.CLASSIFY), ".1f"),
        figure("speed-up, 2 workers vs 1: classify stage", "paired runs", speedups, ".2f"),
        figure("speed-up, 2 workers vs 1: end to end", "paired runs", e2e_speedups, ".2f"),
    ]
    for name, runs in (("1 classifier worker", r.one), ("2 classifier workers", r.two)):
        workers, machine = cpu_cells(runs)
        if workers:
            lines.append(
                figure(
                    f"{name}: CPU of the classifier workers, % of {CORES} cores, classify phase", subset, workers, ".0f"
                )
            )
            lines.append(
                figure(f"{name}: CPU of the whole machine, % of {CORES} cores, classify phase", subset, machine, ".0f")
            )
    return lines


def cpu_note(r: Workers) -> str:
    """Where the 1-vs-2-worker limit is, read from the CPU figures of the same runs."""
    one, one_machine = cpu_cells(r.one)
    two, two_machine = cpu_cells(r.two)
    if not one or not two:
        return "CPU: the classify phases were too short to sample."
    busy = statistics.median(one_machine + two_machine)
    note = (
        f"CPU: during the classify phases the machine's {CORES} cores were {busy:.0f}% busy; the classifier "
        f"workers used {statistics.median(one):.0f}% of them with one worker and {statistics.median(two):.0f}% "
        "with two."
    )
    if busy >= 90:
        note += (
            " The cores are the limit: the rest went to other processes (the stack's other stages and "
            "whatever else runs on the machine), so a second worker process wins a larger share of busy "
            "cores rather than new capacity."
        )
    return note


def catalogue_summary(r: Catalogue) -> list[str]:
    largest = max(r.daily)
    full_s = r.full.times.end_to_end_s
    lines = [
        "| figure | catalogue | median | min–max | runs |",
        "|---|---|---|---|---|",
        figure("full run, end to end, s", f"{r.full.times.source_rows:,}", [full_s], ",.1f"),
    ]
    for size in sorted(r.daily):
        runs = r.daily[size]
        lines.append(figure(f"daily run of {r.delta:,} changed reviews, end to end, s", f"{size:,}", e2e(runs), ".1f"))
    lines.append(
        figure("daily run / full run, end to end", f"{largest:,}", [x / full_s for x in e2e(r.daily[largest])], ".3f")
    )
    smallest = min(r.daily)
    lines.append(
        figure(
            f"daily run at {largest:,} / at {smallest:,} (same delta)",
            "",
            [statistics.median(e2e(r.daily[largest])) / statistics.median(e2e(r.daily[smallest]))],
            ".2f",
        )
    )
    for size, run in sorted(r.shrinks.items()):
        lines.append(
            figure(
                f"run after {run.run['changes']['deleted']:,} source deletions, end to end, s",
                f"{size:,}",
                [run.times.end_to_end_s],
                ".1f",
            )
        )
    return lines


def rows_table(r: Catalogue) -> list[str]:
    """Rows each stage touched: the full run against a daily run, at the largest catalogue."""
    daily = r.daily[max(r.daily)][0]
    lines = ["| rows touched | full run | daily run |", "|---|---|---|"]
    for stage, key, label in (
        (Stage.EXTRACT, "rows_out", "extract: read from the source"),
        (Stage.ARCHIVE, "rows_in", "archive: upserted into MongoDB"),
        (Stage.TRANSFORM, "rows_in", "transform: cleaned and validated"),
        (Stage.CLASSIFY, "rows_in", "classify: rows of its batches"),
    ):
        lines.append(f"| {label} | {rows(r.full, stage, key):,} | {rows(daily, stage, key):,} |")
    for key, label in (
        ("outputs_reused", "classify: left to publish, product and text unchanged (not read by the model)"),
        ("delta_rows", "publish: scored rows of the run"),
        ("base_rows", "publish: rows of the base version streamed"),
        ("carried", "publish: carried forward (model outputs as they were)"),
    ):
        full, day = (m.run["changes"] or {} for m in (r.full, daily))
        lines.append(f"| {label} | {full.get(key, 0):,} | {day.get(key, 0):,} |")
    lines.append(
        f"| publish: curated rows written (relevance recomputed) | {r.full.run['curated_rows']:,} | "
        f"{daily.run['curated_rows']:,} |"
    )
    before, after = r.redis_before, r.redis_after
    lines.append(
        f"\nRedis (the broker) before the full run: {before['used_memory'] / 1e6:.1f} MB, {before['keys']:,} "
        f"keys; after every run of this phase: {after['used_memory'] / 1e6:.1f} MB, {after['keys']:,} keys. "
        "No model output is kept in Redis: the curated file is the next run's memory."
    )
    return lines


def report(args: argparse.Namespace, results: dict, wall_s: float) -> str:
    parts = [
        "Private stack, default settings (batches of 1,000, MAX_TOKENS "
        f"{Settings.model_fields['max_tokens'].default}, one classifier worker unless stated); "
        f"{args.repeats} repeats of what takes minutes; WATERMARK_LAG_S=0 (nothing else writes to the "
        f"source). Benchmark wall time {wall_s / 60:.1f} min.\n"
    ]
    per_stage = "Per stage: wall = the stage's own span (stages overlap), busy = the sum of its batches' times.\n"
    if "shared" in results:
        r: SharedData = results["shared"]
        parts += [
            f"### The shared data ({r.full.times.source_rows:,} reviews of {args.data})\n",
            *shared_summary(r),
            "",
            per_stage,
            *stage_columns([("full run", [r.full])]),
            "\nQueue wait: time a stage's worker sat idle while its next batch was ready (broker delivery, "
            "bookkeeping). Lake I/O: the batch's S3 reads/writes and Parquet or document (de)serialisation, "
            "replayed from the benchmark process on the run's own objects.\n",
            *overhead_table(r),
        ]
    if "workers" in results:
        w: Workers = results["workers"]
        parts += [
            "\n### One against two classifier workers\n",
            *workers_summary(w),
            "",
            *stage_columns([("1 worker", w.one), ("2 workers", w.two)]),
            f"\n{cpu_note(w)}",
        ]
    if "catalogue" in results:
        c: Catalogue = results["catalogue"]
        columns = [(f"full run, {c.full.times.source_rows:,}", [c.full])]
        columns += [(f"daily, {size:,} (median of {len(runs)})", runs) for size, runs in sorted(c.daily.items())]
        parts += [
            f"\n### A catalogue of {max(c.daily):,} reviews: the full run against daily runs of {c.delta:,} changed "
            "reviews\n",
            "The catalogue repeats the shared reviews: copy k of each review gets a new review id and the k-th copy "
            "of its product and buyer (`<id>#k`), so products keep the review counts and texts of real products. A "
            "daily change is a third new reviews (real texts of the catalogue, tagged so the model has not read "
            "them), a third edits (a review's text tagged and one more helpful vote) and a third new votes only "
            "(one more helpful vote; the model does not read them again). The catalogue then shrinks by "
            "deleting source reviews; the run after a shrink removes them from the curated version. The API was "
            "stopped in this phase (its load of each version is the API benchmark's figure).\n",
            *catalogue_summary(c),
            "",
            per_stage,
            *stage_columns(columns),
            "",
            *rows_table(c),
        ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--reviews", type=int, default=None, help="1x = the first N reviews (default: all)")
    parser.add_argument("--subset", type=int, default=1500, help="reviews per 1-vs-2-worker run")
    parser.add_argument("--sizes", default="250000,500000,1000000", help="catalogue sizes, comma-separated")
    parser.add_argument("--delta", type=int, default=10_000, help="changed reviews in each daily run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",")]
    phases = [p for p in args.phases.split(",") if p]
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phase {', '.join(sorted(unknown))}")
    started = time.monotonic()
    results: dict = {}
    with private_stack() as settings:
        configure_logging(settings, quiet=True)
        c = clients.init_operator(settings)
        try:
            create_source(settings)
            pids = classify_pids(settings)
            if "shared" in phases:
                results["shared"] = shared_data(args, c, pids)
            elif source_ops.count(settings) == 0:
                source_ops.timed_load(settings, [args.data])
                source_ops.keep_first(settings, args.reviews or source_ops.count(settings))
            if "workers" in phases:
                results["workers"] = one_vs_two_workers(args, c)
            if "catalogue" in phases:
                results["catalogue"] = catalogue(args, c, pids)
        finally:
            clients.close()
    print(report(args, results, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
