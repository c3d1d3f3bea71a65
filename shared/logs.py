"""Structured logging, configured once per entry point (CLI, worker, beat, API).

Services write one JSON object per line (for a log platform to ingest); commands a
person runs write readable lines. Context bound with ``structlog.contextvars`` (a
worker binds run_id, stage, batch and task_id around each task) is on every line,
also on the lines of libraries that log through the standard ``logging`` module.
"""

from __future__ import annotations

import logging
import sys

import structlog

from shared.settings import Settings

# uvicorn installs handlers of its own that print plain text: its records go to ours instead.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.access")


def configure_logging(settings: Settings, quiet: bool = False, service: bool = False) -> None:
    """``quiet``: warnings and errors only, for commands that print their own report.

    ``service``: a long-running service, which writes JSON lines unless ``LOG_FORMAT`` says otherwise.
    """
    json_lines = (settings.log_format or ("json" if service else "console")) == "json"
    # A traceback becomes a field of its JSON line instead of lines of its own.
    renderers = (
        [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
        if json_lines
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    shared_processors = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *renderers,
            ],
            foreign_pre_chain=shared_processors,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if quiet else settings.log_level)
    logging.captureWarnings(True)  # warnings.warn (Celery's as-root warning, say) as log records too
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.handlers:  # none: uvicorn turned it off (--no-access-log), and off it stays
            logger.handlers.clear()
            logger.propagate = True
    for noisy in ("botocore", "boto3", "aiobotocore", "urllib3", "werkzeug", "pymongo", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
