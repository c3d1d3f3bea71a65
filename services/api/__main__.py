"""``python -m services.api``: the API under uvicorn, as the settings say (host, port, worker processes).

The local stack and the production image both start it this way. Several workers of one host share
the serving files' mapped pages (services/api/serving/cache.py), so a worker costs little memory of its own,
and write their metrics to one folder that a scrape adds up (services/api/observability.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

import uvicorn

from shared.settings import API_SECRETS, Settings, UnsafeSecrets, get_settings


# Here, not in services/api/observability.py: prometheus_client chooses its multiprocess mode when it is
# imported, so the variable must be settled before anything imports it.
@contextlib.contextmanager
def metrics_folder(settings: Settings) -> Iterator[None]:
    """The workers' multiprocess metrics folder, empty at start: files left by an earlier run would count again.
    Without PROMETHEUS_MULTIPROC_DIR and with several workers, a fresh folder of its own, removed at exit."""
    if settings.prometheus_multiproc_dir is not None:
        settings.prometheus_multiproc_dir.mkdir(parents=True, exist_ok=True)
        for stale in settings.prometheus_multiproc_dir.glob("*.db"):
            stale.unlink()
        yield
    elif settings.api_workers > 1:
        with tempfile.TemporaryDirectory(prefix="review-api-metrics-") as folder:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder  # the workers' settings and prometheus_client read it
            try:
                yield
            finally:
                del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    else:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # set but empty: prometheus_client would still take it
        yield


def main() -> None:
    try:
        settings = get_settings()
        settings.require_secrets(API_SECRETS)
    except UnsafeSecrets as refused:
        sys.exit(str(refused))  # before uvicorn binds the port; the message alone, no traceback
    with metrics_folder(settings):
        uvicorn.run(
            "services.api.app:create_app",
            factory=True,
            host=settings.api_host,
            port=settings.api_port,
            workers=settings.api_workers,
            access_log=False,
        )


if __name__ == "__main__":
    main()
