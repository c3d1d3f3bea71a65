"""The chaos suite's accounting (bench/chaos.py): what counts as lost, duplicated, served, moving again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.chaos import Reviews, Row, Sample, account, first_after, previous_served, table


def test_a_rejected_review_is_not_lost_a_missing_one_is_and_a_repeat_is_a_duplicate():
    assert account([1, 2, 3, 4], rejected=1, curated_ids=[1, 2, 3]) == Reviews(lost=0, duplicated=0, foreign=0)
    assert account([1, 2, 3, 4], rejected=1, curated_ids=[1, 2, 2]) == Reviews(lost=1, duplicated=1, foreign=0)
    assert account([1, 2], rejected=0, curated_ids=[1, 2, 9]) == Reviews(lost=0, duplicated=0, foreign=1)


def test_the_previous_version_must_be_served_until_the_new_one_and_never_again_after():
    def samples(*versions):
        return [Sample(float(n), v is not None, v) for n, v in enumerate(versions)]

    assert previous_served(
        samples("v1", None, "v1", "v2", "v2"), "v1", "v2"
    )  # an unanswered poll is an error, not a switch
    assert not previous_served(samples("v1", "v2", "v1"), "v1", "v2")  # back to the old one
    assert not previous_served(samples("v1", "v0"), "v1", "v2")  # an older version served
    assert not previous_served(samples(None, None), "v1", "v2")  # nothing answered at all


def test_moving_again_is_the_first_finish_after_the_fault():
    fault = datetime(2026, 12, 5, tzinfo=UTC)
    finished = [fault - timedelta(seconds=5), fault + timedelta(seconds=70), fault + timedelta(seconds=12)]
    assert first_after(fault, finished) == 12.0
    assert first_after(fault, finished[:1]) is None


def test_the_table_counts_foreign_reviews_as_lost_and_shows_a_missing_figure_as_a_dash():
    row = Row(
        "kill -9 Redis",
        run_status="succeeded",
        moving_s=3.25,
        reviews=Reviews(0, 0, 2),
        archived=9,
        archive_total=10,
        source_rows=10,
    )
    line = table([row, Row("kill -9 API", run_status="failed")]).splitlines()
    assert line[2].startswith("| kill -9 Redis |") and "| 3.2 | " in line[2] and "| 2 | 0 | 9 / 10 (10) |" in line[2]
    assert "| — | — |" in line[3] and "| NO |" in line[3]
