"""The local stack's log files (``STATE_DIR/logs/<component>.log``): a run's lines, read from their end.

``reviews logs`` and the console's ``GET /jobs/{id}/logs`` both read them here. A component writes one JSON
object per event; a person reads it as ``time level event key=value ...``. Reading is bounded: only the last
``tail_bytes`` of a file are scanned, however large it grew, so a request costs the same on a long-lived stack.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

# Shown first, in this order; every other key follows.
LEADING = ("timestamp", "level", "event")
TAIL_BYTES = 8 * 1024 * 1024


def readable(line: str) -> str:
    """One log line for a person: JSON events laid out, anything else (a traceback line) as is."""
    try:
        event = json.loads(line)
    except ValueError:
        return line.rstrip("\n")
    if not isinstance(event, dict):
        return line.rstrip("\n")
    rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in LEADING)
    return f"{event.get('timestamp', '')} {str(event.get('level', '')).upper():<7} {event.get('event', '')}  {rest}"


def matching(lines: Iterable[str], run_id: str | None) -> Iterator[str]:
    for line in lines:
        if run_id is None or run_id in line:
            yield line


def _end_of(path: Path, tail_bytes: int | None) -> Iterator[str]:
    with path.open("rb") as f:
        if tail_bytes is not None and f.seek(0, os.SEEK_END) > tail_bytes:
            f.seek(-tail_bytes, os.SEEK_END)
            f.readline()  # the first line read is cut: skip it
        else:
            f.seek(0)
        for raw in f:
            yield raw.decode(errors="replace")


def tail(path: Path, run_id: str | None, last: int, tail_bytes: int | None = None) -> list[str]:
    """The last ``last`` lines of ``path`` (of ``run_id``: those naming it), readably; from the file's last
    ``tail_bytes`` only when given."""
    return [readable(line) for line in deque(matching(_end_of(path, tail_bytes), run_id), maxlen=last)]


def components(logs: Path) -> list[str]:
    return sorted(p.stem for p in logs.glob("*.log"))


def run_lines(logs: Path, run_id: str, last: int, tail_bytes: int = TAIL_BYTES) -> dict[str, list[str]]:
    """A run's lines in every component's log, by component; components without any are left out."""
    found = {name: tail(logs / f"{name}.log", run_id, last, tail_bytes) for name in components(logs)}
    return {name: lines for name, lines in found.items() if lines}
