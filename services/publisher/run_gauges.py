"""What the publish worker shows Prometheus about runs and the lake, beside the stages' own counters.

Read from the run history and the lake at each scrape, so a value is never stale and survives a
restart of the worker; but the lake's volumes, which take a listing of the whole bucket, as the daily
expiry last measured them (shared/retention.py, kept in Redis). The dashboards (deploy/grafana/) and
the alerting rules (deploy/prometheus/) read these; the values are those ``reviews doctor`` judges.
"""

from __future__ import annotations

from shared.curated.versions import served_and_previous
from shared.history import History
from shared.lake import Lake
from shared.retention import last_measure
from shared.settings import Settings
from shared.worker_metrics import ScrapedGauge, cached


def gauges(history: History, lake: Lake, redis, settings: Settings) -> list[ScrapedGauge]:
    # one query a scrape for the two gauges it feeds
    run_duration = cached(lambda: history.run_duration(settings.alert_run_duration_runs), 1.0)

    def duration(baseline: bool) -> float | None:
        d = run_duration()
        return None if d is None else d.baseline_s if baseline else d.seconds

    def curated_bytes() -> dict[str, float]:
        pair = served_and_previous(lake)
        return {} if pair is None else {"served": pair[0].size_bytes, "previous": pair[1].size_bytes}

    def last_failed() -> float | None:
        run = history.last_finished_run()
        return None if run is None else float(run["status"] == "failed")

    def per_zone(which: int) -> dict[str, float] | None:
        m = last_measure(redis)
        return None if m is None else {zone: counts[which] for zone, counts in m.zones.items()}

    def oldest_run() -> float | None:
        m = last_measure(redis)
        return None if m is None else m.oldest_run

    window_h = settings.alert_retries_window_h
    return [
        ScrapedGauge(
            "pipeline_runs", "Runs in the run history, by status", lambda: history.run_counts(), labels=("status",)
        ),
        ScrapedGauge(
            "pipeline_last_run_failed", "1 when the run that ended last failed, 0 when it succeeded", last_failed
        ),
        ScrapedGauge(
            "pipeline_run_duration_seconds",
            "The running run's time so far, or else the last successful run's (from its last retry when retried)",
            lambda: duration(baseline=False),
        ),
        ScrapedGauge(
            "pipeline_run_duration_baseline_seconds",
            "Mean duration of the successful runs of the same mode "
            f"before it (at most {settings.alert_run_duration_runs})",
            lambda: duration(baseline=True),
        ),
        ScrapedGauge(
            "pipeline_retries_exhausted_batches",
            f"Batches of the runs of the last {window_h:g} h that gave up after their automatic retries",
            lambda: len(history.exhausted_batches(window_h)),
        ),
        ScrapedGauge(
            "pipeline_curated_bytes",
            "Size of the curated file served, and of the version before it",
            curated_bytes,
            labels=("version",),
        ),
        ScrapedGauge(
            "pipeline_lake_objects",
            "Objects in each zone of the lake, as the last daily expiry measured them",
            lambda: per_zone(0),
            labels=("zone",),
        ),
        ScrapedGauge(
            "pipeline_lake_bytes",
            "Bytes in each zone of the lake, as the last daily expiry measured them",
            lambda: per_zone(1),
            labels=("zone",),
        ),
        ScrapedGauge(
            "pipeline_lake_oldest_run_timestamp_seconds",
            "Start of the oldest run whose objects the run zones still held at the last daily expiry",
            oldest_run,
        ),
    ]
