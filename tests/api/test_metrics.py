"""The API's window of recent responses, which ``reviews doctor`` reads its 5xx rate from, and the
multiprocess metrics folder of several workers: emptied at start, an exited worker's gauges pruned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.api.__main__ import metrics_folder
from services.api.observability import RecentResponses, prune_dead_processes
from shared.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_responses_leave_the_window_once_older_than_it():
    clock = Clock()
    recent = RecentResponses(window_s=600, bucket_s=10, clock=clock)
    recent.add(server_error=True)
    clock.now += 300
    recent.add(server_error=False)
    recent.add(server_error=False)
    assert recent.totals() == (3, 1)
    clock.now += 305  # the 5xx is now 605 s old
    assert recent.totals() == (2, 0)
    clock.now += 600
    assert recent.totals() == (0, 0)


def test_a_dead_workers_gauges_stop_counting_and_its_counters_stay(tmp_path):
    # given the metrics files of a worker that has exited and of one alive (this process)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    files = [
        f"gauge_livesum_{dead.pid}.db",
        f"gauge_livemax_{dead.pid}.db",
        f"counter_{dead.pid}.db",
        f"gauge_livesum_{os.getpid()}.db",
    ]
    for name in files:
        (tmp_path / name).write_bytes(b"")
    # when a scrape prunes the folder
    prune_dead_processes(tmp_path)
    # then the dead worker's gauges are gone, its counter and the live worker's gauge kept
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([files[2], files[3]])


def test_the_workers_metrics_folder_starts_empty_and_a_fresh_one_goes_at_exit(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    # given an operator's folder holding the files of an earlier run: they would count again
    (tmp_path / "counter_123.db").write_bytes(b"")
    with metrics_folder(Settings(prometheus_multiproc_dir=tmp_path, api_workers=2)):
        assert list(tmp_path.iterdir()) == []
    # given none and two workers: a folder of its own for the workers, removed when the API stops
    with metrics_folder(Settings(api_workers=2)):
        fresh = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert fresh.is_dir() and list(fresh.iterdir()) == []
    assert not fresh.exists() and "PROMETHEUS_MULTIPROC_DIR" not in os.environ
