"""``make bench``: runs every benchmark on the real local stack and writes BENCHMARKS.md.

Benchmarks are never part of ``make test``: speed targets live here, as medians of
repeated runs with their min–max, because this machine is shared and noisy.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = [
    ("Pipeline end to end: source load, full / 10x / 1%-new runs per stage, 1 vs 2 classifier workers",
     "bench.pipeline_bench"),
    ("Classifier: stage vs raw forward pass, fp32 vs int8, cache re-run", "bench.classifier_bench"),
    ("API: top reviews at 50 clients on 1,000,000 curated reviews, next to hello world", "bench.api_bench"),
]


def main() -> int:
    sections = []
    failed = 0
    for title, module in BENCHMARKS:
        command = f".venv/bin/python -m {module}"
        print(f"==> {title}\n    {command}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        print(result.stdout, flush=True)
        if result.returncode != 0:
            failed += 1
            print(result.stderr[-3000:], file=sys.stderr)
        body = result.stdout if result.returncode == 0 else f"FAILED (exit {result.returncode})\n\n{result.stderr[-2000:]}"
        sections.append(f"## {title}\n\n`{command}` ({elapsed:.0f} s)\n\n{body.strip()}\n")
    header = (f"# Benchmarks\n\nWritten by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
              f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
              f"{platform.python_version()}. Figures are medians of repeated runs with min–max; the machine is "
              f"shared, so compare ratios measured in the same run rather than absolute numbers.\n")  # fmt: skip
    (ROOT / "BENCHMARKS.md").write_text(header + "\n" + "\n".join(sections))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
