"""CPU time of chosen processes and of the whole machine, sampled from /proc while a run goes on.

Reading /proc directly (no psutil): the local stack is Linux-only anyway, and the figures wanted
are plain deltas of clock ticks over a window.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads); 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def machine_busy_s() -> float:
    """CPU seconds the machine spent not idle (all cores, every process), since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = values[3], values[4]
    # guest time is already counted in user/nice: the first eight fields are the whole.
    return (sum(values[:8]) - idle - iowait) / TICKS_PER_S


@dataclass(frozen=True)
class Sample:
    at: float  # time.time(): comparable with the run history's timestamps
    processes_s: float
    machine_s: float


@dataclass(frozen=True)
class Utilisation:
    processes: float  # share of all the machine's cores, 0..1
    machine: float


class CpuSampler:
    """Samples in a daemon thread until stopped; ``between`` reads utilisation over any window."""

    def __init__(self, pids: list[int], every_s: float = 0.25):
        self._pids = pids
        self._every_s = every_s
        self._samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _take(self) -> None:
        self._samples.append(Sample(time.time(), sum(process_cpu_s(p) for p in self._pids), machine_busy_s()))

    def _loop(self) -> None:
        self._take()
        while not self._stop.wait(self._every_s):
            self._take()
        self._take()

    def between(self, start: float, end: float) -> Utilisation | None:
        """Utilisation over the samples inside [start, end]; None if the window is too short to tell."""
        inside = [s for s in self._samples if start <= s.at <= end]
        if len(inside) < 2 or inside[-1].at - inside[0].at < 1.0:
            return None
        first, last = inside[0], inside[-1]
        capacity = (last.at - first.at) * CORES
        return Utilisation(
            (last.processes_s - first.processes_s) / capacity, (last.machine_s - first.machine_s) / capacity
        )
