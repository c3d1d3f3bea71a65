"""The one Celery application every worker, beat and the API share.

Tasks are named ``<stage>.<what>`` and routed by that prefix, so queues and routes are
built from ``shared.stages.Stage`` and never spelled out per task. Services send each other
tasks by name (``send_task(Stage.CLASSIFY.task, ...)``): a worker imports only its own
service's task module (``Stage.worker_module``, which the stack passes as ``--include``),
so the extractor never imports torch.
"""

from __future__ import annotations

from celery import Celery, signals
from celery.schedules import crontab
from kombu import Queue as KombuQueue

from shared.logs import configure_logging
from shared.settings import get_settings
from shared.stages import EXPIRE_TASK, RECLAIM_TASK, START_TASK, SWEEP_TASK, Stage

# A beat tick refreshes this key; ``reviews stack status`` reads it as beat's "ping".
BEAT_HEARTBEAT_KEY = "reviews:beat:heartbeat"
# Classifier workers name their classifier here, so a run can tell before it starts whether the
# served version's model outputs may be carried forward (services/extractor/plan.py).
CLASSIFIER_FINGERPRINT_KEY = "reviews:classifier:fingerprint"


def create_celery(settings=None) -> Celery:
    settings = settings or get_settings()
    app = Celery("reviews", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_queues=[KombuQueue(stage.queue) for stage in Stage],
        task_routes={f"{stage.value}.*": {"queue": stage.queue} for stage in Stage},
        task_default_queue=Stage.EXTRACT.value,
        # A task is acknowledged only once done; a worker killed mid-task gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis redelivers an unacknowledged task after this: it must exceed the longest task.
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        beat_max_loop_interval=10,
        timezone="UTC",
        beat_schedule={
            # Beat starts a run as `reviews run` and POST /jobs do (shared.flow.start_run).
            "daily-run": {
                "task": START_TASK,
                "schedule": crontab(hour=settings.daily_run_hour, minute=settings.daily_run_minute),
                "kwargs": {"trigger": "beat"},
            },
            "sweep-stalled-runs": {"task": SWEEP_TASK, "schedule": float(settings.sweep_every_s)},
            # A check still queued when the next is sent (the publish worker busy publishing) is dropped:
            # one is enough.
            "reclaim-lost-batches": {
                "task": RECLAIM_TASK,
                "schedule": settings.lease_check_every_s,
                "options": {"expires": settings.lease_check_every_s},
            },
            # Daily retention of the run zones (shared.retention), half a day from the daily run: the
            # publish worker is idle then, and the measure it takes shows the lake between two runs.
            "expire-run-zones": {
                "task": EXPIRE_TASK,
                "schedule": crontab(hour=(settings.daily_run_hour + 12) % 24, minute=settings.daily_run_minute),
            },
        },
    )
    return app


@signals.celeryd_init.connect  # a worker's first signal: what it logs while starting is JSON too
@signals.setup_logging.connect
def _configure_logging(**_) -> None:
    # Connected here, where every worker and beat import it: Celery then leaves the root
    # logger to us instead of hijacking it, and each writes JSON lines.
    configure_logging(get_settings(), service=True)


app = create_celery()
