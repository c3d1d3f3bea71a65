"""`reviews run`'s progress display: each stage's own elapsed time; on a terminal bars, in a log a few lines."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from ops.runs_cli import stage_progress, watch
from shared.stages import Stage

T0 = datetime.now(UTC) - timedelta(minutes=10)


def batches(succeeded: int, start_s: float, end_s: float | None, running: int = 0, rows_per_batch: int = 100) -> dict:
    """A stage's summary row as History.stage_summary gives it."""
    return {
        "succeeded": succeeded,
        "running": running,
        "retrying": 0,
        "dead": 0,
        "rejects": 0,
        "rows_in": succeeded * rows_per_batch,
        "rows_out": succeeded * rows_per_batch,
        "first_started": T0 + timedelta(seconds=start_s),
        "last_finished": None if end_s is None else T0 + timedelta(seconds=end_s),
    }


class ScriptedHistory:
    """The run history's two reads, replaying a run poll by poll (the last state repeats)."""

    def __init__(self, states: list[tuple[dict, dict]]):
        self.states, self.polls = states, 0

    def get_run(self, run_id: str) -> dict:
        self.polls += 1
        return self.states[min(self.polls, len(self.states)) - 1][0]

    def stage_summary(self, run_id: str) -> dict:
        return self.states[min(self.polls, len(self.states)) - 1][1]


def a_run(polls_per_state: int) -> ScriptedHistory:
    """Extract done in 2 s, then classify working for many polls with the same counts, then all done."""
    running = {"status": "running", "extracted_batches": 4}
    extract = batches(4, 0, 2)
    middle = {"extract": extract, "transform": batches(2, 1, 3, running=1), "classify": batches(1, 5, 30, running=1)}
    finished = {
        "extract": extract,
        "archive": batches(4, 1, 6),
        "transform": batches(4, 1, 7),
        "classify": batches(4, 5, 95),
        "publish": batches(1, 96, 97, rows_per_batch=400),
    }
    states = [(running, {"extract": extract})] * polls_per_state + [(running, middle)] * polls_per_state
    return ScriptedHistory(states + [({"status": "succeeded", "extracted_batches": 4}, finished)])


def test_each_stage_shows_its_own_elapsed_time_not_the_runs():
    run = {"status": "running", "extracted_batches": 4}
    summary = {"extract": batches(4, 0, 2), "classify": batches(1, 5, 30, running=1)}
    progress = {p.stage: p for p in stage_progress(run, summary, now=T0 + timedelta(seconds=65))}
    assert progress[Stage.EXTRACT].finished and progress[Stage.EXTRACT].elapsed_s == 2.0  # its first start to its end
    assert not progress[Stage.CLASSIFY].finished and progress[Stage.CLASSIFY].elapsed_s == 60.0  # its start to now
    assert not progress[Stage.PUBLISH].started and progress[Stage.PUBLISH].elapsed_s == 0.0
    assert "2.0s done" in progress[Stage.EXTRACT].line() and "1m00s working" in progress[Stage.CLASSIFY].line()


def test_in_a_log_a_stage_prints_a_line_when_it_starts_and_when_it_ends_not_at_every_poll():
    history, out = a_run(polls_per_state=200), io.StringIO()  # StringIO is not a terminal
    run = watch(history, "r1", interval_s=0, stream=out, log_every_s=3600)
    lines = out.getvalue().splitlines()
    assert run["status"] == "succeeded" and history.polls == 401
    assert len(lines) <= 2 * len(Stage), lines
    assert "\r" not in out.getvalue()  # no bar redraws in a file
    ends = {line.split()[0]: line for line in lines if line.endswith(" done")}
    assert set(ends) == {stage.value for stage in Stage}
    assert "2.0s done" in ends["extract"] and "1m30s done" in ends["classify"] and "1.0s done" in ends["publish"]
    assert "rows 400" in ends["classify"] and "4/4 batches" in ends["classify"]


def test_in_a_log_a_changing_stage_prints_at_most_once_per_interval():
    # given polls where the classify stage's counts change at every poll
    running = {"status": "running", "extracted_batches": 50}
    states = [(running, {"classify": batches(n, 0, n)}) for n in range(50)]
    history, out = (
        ScriptedHistory(
            states + [({"status": "succeeded", "extracted_batches": 50}, {"classify": batches(50, 0, 50)})]
        ),
        io.StringIO(),
    )
    watch(history, "r1", interval_s=0, stream=out, log_every_s=3600)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("classify") for line in lines)  # its start and its end
    out = io.StringIO()
    history.polls = 0
    watch(history, "r1", interval_s=0, stream=out, log_every_s=0)
    assert len(out.getvalue().splitlines()) == 51  # with no interval, every change (and only changes)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_stage_has_a_bar_with_its_own_elapsed_time():
    out = Terminal()
    watch(a_run(polls_per_state=2), "r1", interval_s=0, stream=out)
    drawn = out.getvalue()
    assert "\r" in drawn and "100%|" in drawn
    assert "4/4 batches, rows 400, rejects 0, retrying 0, dead 0, 1m30s" in drawn  # classify's own 90 s
    assert "4/4 batches, rows 400, rejects 0, retrying 0, dead 0, 2.0s" in drawn  # extract's own 2 s
