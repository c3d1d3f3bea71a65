"""End-to-end pipeline benchmark on a private local stack (free loopback ports, a temp state dir):
source load rate; a full run on the shared data and on copies of it; an incremental re-run with
1% new reviews; one against two classifier workers, with the CPU they and the machine use.

    .venv/bin/python -m bench.pipeline_bench [--reviews N] [--scale 10] [--subset 2000] [--repeats 3]

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
from dataclasses import dataclass
from pathlib import Path

import redis

from bench import source_ops
from bench.api_bench import wait_for_version
from bench.cpu import CORES, CpuSampler, Utilisation
from bench.run_times import RunTimes, run_times
from bench.stage_io import io_per_batch_s
from ops.runs_cli import format_report, trigger_run, watch
from ops.source.schema import create_source
from ops.stack.components import Context, worker_name
from ops.stack.manager import Stack, make_state_dir, stack_settings
from services.classifier.score_cache import PREFIX as SCORE_PREFIX
from shared import clients
from shared.clients import Clients
from shared.history import History, Stage
from shared.logs import configure_logging
from shared.queues import Queue
from shared.settings import Settings

# The shared review data beside the project (never copied into it).
DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"

RUN_TIMEOUT_S = 3 * 3600
SUBSET_BATCH_SIZE = 250  # enough batches in a subset run for two workers to share


@dataclass(frozen=True)
class Measured:
    times: RunTimes
    cpu: Utilisation | None  # during the classify stage's span
    new_scores: int  # texts the model scored: score-cache entries the run added


# --- the private stack ---------------------------------------------------------------------------


@contextmanager
def private_stack() -> Iterator[Settings]:
    root = make_state_dir("reviews-bench-")
    settings = stack_settings(root)
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
    second = [worker_name(Queue.CLASSIFY, 2)]
    control = c.celery.control
    replies = (control.add_consumer(Queue.CLASSIFY.value, destination=second, reply=True) if workers == 2
               else control.cancel_consumer(Queue.CLASSIFY.value, destination=second, reply=True))  # fmt: skip
    if not replies:
        raise RuntimeError(f"{second[0]} did not answer a consumer change")


def score_keys(r: redis.Redis) -> list[bytes]:
    return list(r.scan_iter(match=SCORE_PREFIX + "*", count=5000))


def clear_scores(r: redis.Redis) -> None:
    keys = score_keys(r)
    for start in range(0, len(keys), 5000):
        r.unlink(*keys[start : start + 5000])


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


def run_pipeline(c: Clients, params: dict, cpu_pids: list[int]) -> Measured:
    """One run to its end, archive drained and the API serving it: the machine is quiet afterwards."""
    scores_before = len(score_keys(c.redis))
    with CpuSampler(cpu_pids) as cpu:
        run_id = trigger_run(c.history, "cli", params)
        run = watch(c.history, run_id, RUN_TIMEOUT_S)
        if run["status"] != "succeeded":
            raise RuntimeError(format_report(run, c.history.stage_summary(run_id)))
        wait_for_archive(c.history, run, RUN_TIMEOUT_S)
        wait_for_version(f"http://127.0.0.1:{c.settings.api_port}", run_id)
    times = run_times(c.history, run_id)
    classify = times.stages[Stage.CLASSIFY]
    return Measured(times, cpu.between(classify.started.timestamp(), classify.finished.timestamp()),
                    len(score_keys(c.redis)) - scores_before)  # fmt: skip


# --- the phases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    loads: list[source_ops.TimedLoad]
    base: int
    full: Measured
    io_s: dict[Stage, float]
    new_per_rerun: int
    reruns: list[Measured]
    subset: int
    one_worker: list[Measured]
    two_workers: list[Measured]
    scaled: Measured
    scale: int


def rerun_with_new(c: Clients, last_id: int, rows: int, repeats: int, pids: list[int]) -> list[Measured]:
    runs = []
    for i in range(repeats):  # fresh new reviews each time: every re-run meets 1% unseen texts
        source_ops.add_new(c.settings, last_id, rows, f"new-{i}")
        runs.append(run_pipeline(c, {}, pids))
    return runs


def one_vs_two_workers(c: Clients, subset: int, repeats: int) -> dict[int, list[Measured]]:
    two = c.settings.model_copy(update={"classify_workers": 2})
    Stack(two).up()  # starts the second classifier worker; everything else already runs
    pids = classify_pids(two)
    runs: dict[int, list[Measured]] = {1: [], 2: []}
    try:
        for _ in range(repeats):  # interleaved, so both configurations meet the same machine noise
            for workers in (1, 2):
                consume_with(c, workers)
                clear_scores(c.redis)
                runs[workers].append(run_pipeline(c, {"limit": subset, "batch_size": SUBSET_BATCH_SIZE}, pids))
    finally:
        consume_with(c, 1)
    return runs


def measure(args: argparse.Namespace, c: Clients) -> Results:
    settings = c.settings
    create_source(settings)
    loads = [source_ops.timed_load(settings, [args.data]) for _ in range(args.repeats)]
    last_id = source_ops.keep_first(settings, args.reviews or source_ops.count(settings))
    base = source_ops.count(settings)
    pids = classify_pids(settings)
    print(f"source: {base} reviews; full run (cold score cache)", file=sys.stderr, flush=True)
    full = run_pipeline(c, {}, pids)
    io_s = io_per_batch_s(c.lake, c.history, full.times.run_id)
    new = max(1, base // 100)
    reruns = rerun_with_new(c, last_id, new, args.repeats, pids)
    # Before the subset runs, which clear the cache: the copies must meet the scores of the full run.
    source_ops.repeat(settings, last_id, args.scale - 1)
    print(f"source: {source_ops.count(settings)} reviews; {args.scale}x run", file=sys.stderr, flush=True)
    scaled = run_pipeline(c, {}, pids)
    subset = min(args.subset, base)
    workers = one_vs_two_workers(c, subset, args.repeats)
    return Results(loads, base, full, io_s, new, reruns, subset, workers[1], workers[2], scaled, args.scale)


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


def summary(r: Results) -> list[str]:
    full_e2e = r.full.times.end_to_end_s
    load = r.loads[0].reviews
    one, two = r.one_worker, r.two_workers
    speedups = [a.times.stages[Stage.CLASSIFY].wall_s / b.times.stages[Stage.CLASSIFY].wall_s
                for a, b in zip(one, two, strict=True)]  # fmt: skip
    e2e_speedups = [a.times.end_to_end_s / b.times.end_to_end_s for a, b in zip(one, two, strict=True)]
    subset = f"first {r.subset:,}, batches of {SUBSET_BATCH_SIZE}, cache cleared"
    lines = [
        "| figure | size | median | min–max | runs |", "|---|---|---|---|---|",
        figure("source load, reviews/s (files parsed + COPY + insert, product files included)",
               f"{load:,} reviews", [x.rate for x in r.loads], ",.0f"),
        figure("full run, end to end, s (cold score cache)", f"{r.full.times.source_rows:,}", [full_e2e], ".1f"),
        figure("full run: classify share, % (classify busy / end to end)", "",
               [r.full.times.share(Stage.CLASSIFY) * 100], ".0f"),
        figure(f"{r.scale}x run, end to end, s (warm cache: {r.scaled.new_scores:,} texts scored)",
               f"{r.scaled.times.source_rows:,}", [r.scaled.times.end_to_end_s], ".1f"),
        figure(f"{r.scale}x / 1x end to end (cold full run)", "", [r.scaled.times.end_to_end_s / full_e2e], ".2f"),
        figure(f"{r.scale}x run / each re-run with 1% new, end to end (both warm cache)", "",
               [r.scaled.times.end_to_end_s / x for x in e2e(r.reruns)], ".1f"),
        figure("re-run with 1% new reviews, end to end, s",
               f"{r.base:,} + {r.new_per_rerun:,} new ({statistics.median(m.new_scores for m in r.reruns):,.0f} "
               "texts scored)", e2e(r.reruns), ".1f"),
        figure("re-run with 1% new / full run, end to end", "", [x / full_e2e for x in e2e(r.reruns)], ".3f"),
        figure("1 classifier worker: classify stage wall, s", subset, stage_wall(one, Stage.CLASSIFY), ".1f"),
        figure("2 classifier workers: classify stage wall, s", subset, stage_wall(two, Stage.CLASSIFY), ".1f"),
        figure("speed-up, 2 workers vs 1: classify stage", "paired runs", speedups, ".2f"),
        figure("speed-up, 2 workers vs 1: end to end", "paired runs", e2e_speedups, ".2f"),
        figure("1 classifier worker: classify share, %", subset, [m.times.share(Stage.CLASSIFY) * 100 for m in one],
               ".0f"),
    ]  # fmt: skip
    for name, runs in (("1 classifier worker", one), ("2 classifier workers", two)):
        workers, machine = cpu_cells(runs)
        if workers:
            lines.append(figure(f"{name}: CPU of the classifier workers, % of {CORES} cores, classify phase",
                                subset, workers, ".0f"))  # fmt: skip
            lines.append(figure(f"{name}: CPU of the whole machine, % of {CORES} cores, classify phase",
                                subset, machine, ".0f"))  # fmt: skip
    return lines


def stage_table(r: Results) -> list[str]:
    columns: list[tuple[str, list[Measured]]] = [
        (f"full 1x ({r.full.times.source_rows:,})", [r.full]),
        (f"re-run +1% (median of {len(r.reruns)})", r.reruns),
        (f"{r.scale}x ({r.scaled.times.source_rows:,})", [r.scaled]),
        (f"subset {r.subset:,}, 1 worker", r.one_worker),
        (f"subset {r.subset:,}, 2 workers", r.two_workers),
    ]

    def cell(runs: list[Measured], value: Callable[[RunTimes], float], fmt: str = ".1f") -> str:
        return f"{statistics.median(value(m.times) for m in runs):{fmt}}"

    lines = ["| stage: wall s / busy s | " + " | ".join(name for name, _ in columns) + " | "
             f"{r.scale}x / re-run busy (both warm cache) |", "|---" * (len(columns) + 2) + "|"]  # fmt: skip
    for stage in Stage:
        cells = [f"{cell(runs, lambda t, s=stage: t.stages[s].wall_s)} / "
                 f"{cell(runs, lambda t, s=stage: t.stages[s].busy_s)}" for _, runs in columns]  # fmt: skip
        ratio = r.scaled.times.stages[stage].busy_s / statistics.median(m.times.stages[stage].busy_s
                                                                         for m in r.reruns)  # fmt: skip
        lines.append(f"| {stage.value} | " + " | ".join(cells) + f" | {ratio:.1f} |")
    lines.append("| **end to end** (trigger to published) | "
                 + " | ".join(cell(runs, lambda t: t.end_to_end_s) for _, runs in columns)
                 + f" | {r.scaled.times.end_to_end_s / statistics.median(e2e(r.reruns)):.1f} |")  # fmt: skip
    lines.append("| classify share (busy, summed over workers / end to end) | "
                 + " | ".join(cell(runs, lambda t: t.share(Stage.CLASSIFY) * 100, ".0f") + "%" for _, runs in columns)
                 + " | |")  # fmt: skip
    cpu = []
    for _, runs in columns:
        workers, machine = cpu_cells(runs)
        cpu.append(f"{statistics.median(workers):.0f}% / {statistics.median(machine):.0f}%" if workers else "–")
    lines.append(f"| CPU in the classify phase: classifier workers / machine, % of {CORES} cores | "
                 + " | ".join(cpu) + " | |")  # fmt: skip
    return lines


def overhead_table(r: Results) -> list[str]:
    full, scaled = r.full.times.stages, r.scaled.times.stages
    lines = ["| stage (full run) | batches | busy per batch, s | queue wait, % of stage | "
             "lake I/O + (de)serialisation, % of busy |", "|---|---|---|---|---|"]  # fmt: skip
    for stage in (Stage.ARCHIVE, Stage.TRANSFORM, Stage.CLASSIFY, Stage.PUBLISH):
        t = full[stage]
        per_batch = t.busy_s / t.batches
        io = f"{r.io_s[stage] / per_batch:.0%} ({r.io_s[stage]:.2f} s)" if stage in r.io_s else "–"
        lines.append(f"| {stage.value} | {t.batches} | {per_batch:.2f} | {t.queue_share:.1%} | {io} |")
    cold = full[Stage.CLASSIFY].busy_s / full[Stage.CLASSIFY].batches
    warm = scaled[Stage.CLASSIFY].busy_s / scaled[Stage.CLASSIFY].batches
    lines.append(f"\nClassify per batch with a warm cache ({r.scale}x run, almost no model work): "
                 f"{warm:.2f} s, against {cold:.2f} s cold: everything but the model is {warm / cold:.1%} "
                 "of a cold batch.")  # fmt: skip
    return lines


def cpu_note(r: Results) -> str:
    """Where the 1-vs-2-worker limit is, read from the CPU figures of the same runs."""
    one, one_machine = cpu_cells(r.one_worker)
    two, two_machine = cpu_cells(r.two_workers)
    if not one or not two:
        return "CPU: the classify phases were too short to sample."
    busy = statistics.median(one_machine + two_machine)
    note = (f"CPU: during the classify phases the machine's {CORES} cores were {busy:.0f}% busy; the classifier "
            f"workers used {statistics.median(one):.0f}% of them with one worker and {statistics.median(two):.0f}% "
            "with two, every worker running torch with one thread per core.")  # fmt: skip
    if busy >= 90:
        note += (" The cores are the limit: the rest went to other processes (the stack's other stages and "
                 "whatever else runs on the machine), so a second worker process wins a larger share of busy "
                 "cores rather than new capacity.")  # fmt: skip
    return note


def report(r: Results, args: argparse.Namespace, wall_s: float) -> str:
    sizes = (f"1x = the first {r.base:,} source reviews" if args.reviews else
             f"1x = all {r.base:,} reviews of {args.data}")  # fmt: skip
    return "\n".join([
        f"Private stack, default settings (batches of 1,000, one classifier worker unless stated, torch "
        f"threads = cores); {sizes}; {args.repeats} repeats of what takes under a minute.\n",
        *summary(r),
        "\nPer stage: wall = the stage's own span (stages overlap), busy = the sum of its batches' times.\n",
        *stage_table(r),
        "\nOverhead per stage. Queue wait: time a stage's worker sat idle while its next batch was "
        "ready (broker delivery, bookkeeping). Lake I/O: the batch's S3 reads/writes and Parquet or "
        "document (de)serialisation, replayed from the benchmark process on the run's own objects.\n",
        *overhead_table(r),
        f"\n{cpu_note(r)}",
        f"\nHonest caveats: the {r.scale}x rows repeat real rows under new ids, so the score cache (keyed by "
        f"text) answers for them: the {r.scale}x run measures the other stages' scaling and the cache, not "
        f"the model ({r.scaled.new_scores:,} texts scored). The re-runs re-extract and re-transform "
        "everything (extraction is not incremental); only the new texts reach the model. "
        f"The subset runs clear the cache first. Benchmark wall time {wall_s / 60:.1f} min.",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--reviews", type=int, default=None, help="1x = the first N reviews (default: all)")
    parser.add_argument("--scale", type=int, default=10, help="the large run: this many copies of 1x")
    parser.add_argument("--subset", type=int, default=1500, help="reviews per 1-vs-2-worker run, cache cleared")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with private_stack() as settings:
        configure_logging(settings, quiet=True)
        c = clients.init(settings)
        try:
            results = measure(args, c)
        finally:
            clients.close()
    print(report(results, args, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
