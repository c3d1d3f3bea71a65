"""Reading a run's log lines from the end of the log files: what ``reviews logs --run`` and the console show."""

from __future__ import annotations

import json

from shared.log_files import run_lines, tail


def test_a_runs_lines_come_from_every_log_readably_and_only_the_last(tmp_path):
    (tmp_path / "api.log").write_text('{"event": "job_created", "run_id": "R1", "level": "info"}\nnot json R1\n')
    (tmp_path / "beat.log").write_text('{"event": "tick"}\n')
    assert run_lines(tmp_path, "R1", last=5) == {"api": [" INFO    job_created  run_id=R1", "not json R1"]}
    assert run_lines(tmp_path, "R1", last=1) == {"api": ["not json R1"]}


def test_only_the_end_of_a_large_log_is_read(tmp_path):
    log = tmp_path / "worker.log"
    lines = [json.dumps({"event": "e", "n": n, "run_id": "R"}) for n in range(1000)]
    log.write_text("\n".join(lines) + "\n")
    # each line is 41 bytes: the last 100 hold two whole lines and a cut one, which is left out
    assert tail(log, "R", last=50, tail_bytes=100) == [" " * 9 + f"e  n={n} run_id=R" for n in (998, 999)]
    assert len(tail(log, "R", last=2000)) == 1000
