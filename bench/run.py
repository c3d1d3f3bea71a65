"""``make bench``: runs the benchmarks on the real local stack and writes BENCHMARKS.md.

Benchmarks are never part of ``make test``: speed targets live here, as medians of
repeated runs with their min–max, because this machine is shared and noisy.

``make bench ONLY=classifier_bench,api_bench`` re-runs those modules only and replaces their
sections of BENCHMARKS.md, keeping the others as they were measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "BENCHMARKS.md"
BENCHMARKS = [
    (
        "Pipeline end to end: source load, a full run per stage, 1 vs 2 classifier workers, a 1M catalogue: full run "
        "vs daily runs",
        "bench.pipeline_bench",
    ),
    (
        "Classifier: backends against torch fp32 (speed, quality), stage vs raw forward pass, MAX_TOKENS",
        "bench.classifier_bench",
    ),
    (
        "API: top reviews with wrk at 50 connections on 1M and 10M curated reviews, next to hello world; abuse "
        "(the worst search, readiness, a page of 100 jobs, an oversize body); memory, load time",
        "bench.api_bench",
    ),
    ("Run requests: from POST /jobs's request to its extraction on the broker", "bench.run_requests_bench"),
    (
        "The operator's console on a large run history: its routes, and the run page of 4,001 and 20,001 grid cells",
        "bench.console_bench",
    ),
    (
        "Right to erasure: `reviews gdpr erase` against kept curated versions of 1M reviews, a buyer no version holds "
        "and buyers of a handful of reviews, before and after reading the buyer column first",
        "bench.erasure_bench",
    ),
]
# Run only when asked by name (`make chaos`): each fault costs a run of its own.
CHAOS = ("Chaos: one fault at a time during a real run (`make chaos`)", "bench.chaos")


def run_one(title: str, module: str) -> tuple[str, bool]:
    command = f".venv/bin/python -m {module}"
    print(f"==> {title}\n    {command}", flush=True)
    started = time.monotonic()
    # stdout is the section; stderr is the benchmark's progress, passed through as it comes (a run can
    # take hours) and its tail kept for the section of a failed benchmark.
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        [sys.executable, "-m", module], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        stdout = ThreadPoolExecutor(1).submit(proc.stdout.read)
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail.append(line)
        body, returncode = stdout.result(), proc.wait()
    elapsed = time.monotonic() - started
    print(body, flush=True)
    if returncode != 0:
        body = f"FAILED (exit {returncode})\n\n{''.join(tail)}"
    measured = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    section = f"## {title}\n\n`{command}` ({elapsed:.0f} s, measured {measured})\n\n{body.strip()}\n"
    return section, returncode == 0


def previous_sections() -> dict[str, str]:
    """The sections of the current BENCHMARKS.md, by the module their command line names."""
    if not OUTPUT.exists():
        return {}
    sections = {}
    for chunk in re.split(r"(?m)^(?=## )", OUTPUT.read_text())[1:]:
        found = re.search(r"-m (bench\.\w+)", chunk)
        if found:
            sections[found.group(1)] = chunk.rstrip() + "\n"
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated modules (e.g. api_bench): re-run only those")
    args = parser.parse_args(argv)
    only = {f"bench.{name.strip().removeprefix('bench.')}" for name in args.only.split(",") if name.strip()}
    benchmarks = [*BENCHMARKS, CHAOS]
    unknown = only - {module for _, module in benchmarks}
    if unknown:
        parser.error(
            f"unknown benchmark {', '.join(sorted(unknown))}; known: "
            f"{', '.join(m.removeprefix('bench.') for _, m in benchmarks)}"
        )
    # Every benchmark runs on a local stack of its own, with the placeholder secrets; the modules inherit it.
    os.environ["ENVIRONMENT"] = "local"
    kept = previous_sections()
    sections, failed = [], 0
    for title, module in benchmarks:
        if module == CHAOS[1] and module not in only and module not in kept:
            continue  # never measured, and not asked for: no section
        if (only or module == CHAOS[1]) and module not in only:
            sections.append(kept.get(module, f"## {title}\n\nNot measured yet: `make bench ONLY={module[6:]}`.\n"))
            continue
        section, ok = run_one(title, module)
        sections.append(section)
        failed += not ok
    header = (
        f"# Benchmarks\n\nWritten by `make bench`; each section says when it was measured. Machine: "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}. Figures are medians of repeated runs with min–max; the machine is "
        f"shared, so compare ratios measured in the same run rather than absolute numbers.\n"
    )
    OUTPUT.write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {OUTPUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
