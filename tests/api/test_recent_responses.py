"""The API's window of recent responses, which ``reviews doctor`` reads its 5xx rate from."""

from __future__ import annotations

from services.api.metrics import RecentResponses


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
