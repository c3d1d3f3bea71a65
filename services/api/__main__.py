"""``python -m services.api``: the API under uvicorn, as the settings say (host, port, worker processes).

The local stack and the production image both start it this way. Several workers of one host share
the serving files' mapped pages (services/api/cache.py), so a worker costs little memory of its own.
"""

from __future__ import annotations

import uvicorn

from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "services.api.app:create_app", factory=True, host=settings.api_host, port=settings.api_port,
        workers=settings.api_workers, access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
