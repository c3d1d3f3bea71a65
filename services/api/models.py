"""Response bodies, as the OpenAPI schema documents them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class ErrorBody(BaseModel):
    error: str
    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrors(BaseModel):
    """FastAPI's 422 body: what in the request is wrong, and where."""

    detail: list[ValidationIssue]


class Health(BaseModel):
    status: str = "OK"


class Readiness(BaseModel):
    ready: bool
    version: str | None
    published_at: str | None
    age_seconds: float | None
    rows: int | None
    products: int | None
    redis: bool
    s3: bool
    reasons: list[str]


class Match(BaseModel):
    """A sentence of the review on the topic asked for."""

    start: int = Field(description="where the sentence starts in the review's text, in Unicode code points")
    end: int = Field(description="where it ends (exclusive), in Unicode code points")
    sentiment: Literal[-1, 0, 1] = Field(description="-1 negative, 0 neutral, 1 positive")


class Review(BaseModel):
    review_id: int
    rating: int
    title: str | None
    text: str | None
    date: date | None
    category: str | None
    category_confidence: float | None
    relevance_score: float | None
    helpful_votes: int | None
    verified_purchase: bool | None
    topics: list[str] = Field(
        default_factory=list,
        description="the topics its sentences discuss, most discussed first; empty for a review analysed before "
        "sentence topics (its single topic is category)",
    )
    matches: list[Match] | None = Field(
        default=None, description="with ?topic= only: its sentences on that topic (none when only category is it)"
    )


class TopQuery(BaseModel):
    """The query of GET /reviews/{id}/top, which the route validates itself (services/api/routes/reviews.py)."""

    limit: int = Field(default=5, ge=1, le=50)
    category: str | None = Field(
        default=None, max_length=64, description="only reviews whose single (most discussed) topic is this"
    )
    topic: str | None = Field(
        default=None,
        max_length=64,
        description="only reviews that discuss this topic in any sentence (or whose single topic it is), each "
        "with the sentences that matched",
    )
    min_rating: int | None = Field(default=None, ge=1, le=5)
    verified_only: bool = False


class TopReviews(BaseModel):
    product_id: str
    product_title: str | None
    version: str
    count: int
    reviews: list[Review]


class Quote(BaseModel):
    review_id: int
    text: str = Field(description="a sentence of the review, cut at a word boundary with … when long")


class TopicSummary(BaseModel):
    topic: str
    reviews: int = Field(description="reviews with at least one sentence on the topic")
    mentions: int = Field(description="sentences on the topic, over all of the product's reviews")
    positive: float = Field(ge=0, le=1, description="share of those sentences that are positive")
    negative: float = Field(ge=0, le=1, description="share of those sentences that are negative")
    positive_quote: Quote | None = Field(description="from the most relevant review with a positive one")
    negative_quote: Quote | None = Field(description="from the most relevant review with a negative one")


class CustomersSay(BaseModel):
    """What a product's reviews say, topic by topic, most discussed first (computed when it was published)."""

    product_id: str
    product_title: str | None
    version: str
    review_count: int
    reviews_analysed: int = Field(
        description="reviews with a sentence on some topic: a review analysed before sentence topics counts only "
        "in review_count"
    )
    topics: list[TopicSummary]


class ProductSummary(BaseModel):
    product_id: str
    title: str | None
    category: str | None
    review_count: int
    average_rating: float


class ProductPage(BaseModel):
    products: list[ProductSummary]
    next_cursor: str | None


class JobRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # JSON as documented: "full": "yes" is refused, not read as true

    full: bool = Field(default=False, description="read and score every review, not only what changed")
    limit: int | None = Field(default=None, ge=1, description="extract at most this many reviews")
    batch_size: int | None = Field(default=None, ge=1, le=100_000)


class JobAccepted(BaseModel):
    job_id: str
    status: str


class StageStatus(BaseModel):
    succeeded: int
    running: int
    retrying: int
    dead: int
    lost: int = Field(description="batches whose worker died mid-batch: announced again, waiting for a worker")
    rows_in: int
    rows_out: int
    rejects: int
    attempts: int
    busy_seconds: float
    last_error: str | None = Field(
        description="where it failed and the exception's class; the full text is in the run history"
    )


class LostBatch(BaseModel):
    """A delivery whose worker died mid-batch: its lease ran out, and the batch was handed to another worker."""

    stage: str
    batch: int
    attempt: int = Field(description="the delivery that died (1 for the batch's first)")
    worker: str | None = Field(description="the worker that held the batch")
    worker_pid: int | None
    started_at: datetime | None = Field(description="when that delivery began the batch")
    lease_until: datetime | None = Field(description="its last renewal ran out then: the worker was gone")
    noticed_at: datetime = Field(description="when the lease check announced the batch again, or a delivery took it")
    taken_over_at: datetime | None = Field(description="when another delivery began the batch; null: waiting")
    taken_over_by: str | None
    taken_over_pid: int | None


class Job(BaseModel):
    job_id: str
    status: str
    trigger: str
    params: dict
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    batches: int | None
    source_rows: int | None
    curated_rows: int | None
    curated_key: str | None
    curated_bytes: int | None = Field(
        description="the published version's size: every curated object its publish wrote (the Parquet, its known "
        "keys, its serving files)"
    )
    error: str | None = Field(
        description="where it failed and the exception's class; the full text is in the run history"
    )
    mode: str | None = Field(description="full or incremental, once extraction started")
    retries: int = Field(
        description="times an operator reopened this failed run (reviews retry, POST /jobs/{id}/retry)"
    )
    mode_reason: str | None
    base_version: str | None = Field(description="the curated version an incremental run builds upon")
    watermark_from: datetime | None = Field(description="the run read source changes after this")
    watermark_to: datetime | None = Field(description="the next run reads source changes after this")
    changes: dict[str, int] | None = Field(
        description="what the published version kept, replaced, added, removed; outputs_reused: reviews read "
        "again with product and text unchanged, whose model outputs were carried over"
    )
    stages: dict[str, StageStatus]
    lost: list[LostBatch] = Field(description="deliveries whose worker died mid-batch, and who took the batch over")


class JobList(BaseModel):
    jobs: list[Job]


# --- an operator's retry of a failed run ------------------------------------------------------


def _integral(value):
    """JSON's 3.0 is the integer 3 to JSON Schema (so to the OpenAPI schema): accept it, and no string."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class RetryRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    stage: Literal["extract", "archive", "transform", "classify", "publish"] | None = Field(
        default=None, description="only this stage's failed batches; with batch: that batch, even if it succeeded"
    )
    batch: Annotated[int | None, BeforeValidator(_integral)] = Field(
        default=None, ge=0, le=10_000_000, description="only this batch number"
    )


class RetriedBatch(BaseModel):
    stage: str
    batch: int
    was: str = Field(description="the batch's status before the retry: dead, or succeeded when re-run downstream")
    attempts: int
    last_error: str | None = Field(
        description="where it failed and the exception's class; the full text is in the run history"
    )


class JobRetried(BaseModel):
    job_id: str
    status: str
    cleared: list[RetriedBatch]
    announced: list[str]


# --- the operator's console -------------------------------------------------------------------


class AuditAction(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="the credential's name (API_TOKEN_NAME) or the OS user of a CLI command")
    via: str = Field(description="api or cli")
    action: str = Field(description="trigger, retry, rollback or erasure")
    target: str | None = Field(description="a run id, a curated version, or an erased buyer's pseudonym")
    outcome: str
    detail: dict


class AuditTrail(BaseModel):
    actions: list[AuditAction]


class GridBatch(BaseModel):
    stage: str
    batch: int
    status: str
    attempts: int
    rows_in: int | None
    rows_out: int | None
    rejects: int | None
    seconds: float | None
    error: str | None = Field(
        description="where it failed and the exception's class; the full text is in the run history"
    )


class RunGrid(BaseModel):
    job_id: str
    batches: list[GridBatch] = Field(description="every batch of every stage, by stage then batch number")
    truncated: bool = Field(description="the run has more batches than one answer holds (MAX_GRID_BATCHES)")


class RunLogs(BaseModel):
    job_id: str
    components: dict[str, list[str]] = Field(
        description="the run's last log lines by component, as `reviews logs --run` shows them; empty where the "
        "API's host keeps no log files (read them in the log platform)"
    )


class AlertRule(BaseModel):
    name: str
    severity: Literal["ok", "warning", "critical"]
    value: str
    threshold: str


class KeptVersion(BaseModel):
    """A curated version as the run history knows it (the API may not read the curated objects themselves)."""

    version: str = Field(description="the id of the run that published it")
    rows: int | None
    bytes: int | None = Field(description="every curated object its publish wrote; unknown for older versions")
    finished_at: datetime | None
    served: bool


class ConsoleHealth(BaseModel):
    served: Readiness
    served_version: KeptVersion | None = Field(description="the served version's record: rows and bytes")
    previous: KeptVersion | None = Field(description="the version published before the served one")
    size_warning: str | None = Field(
        description="said when the served version's bytes differ from the previous one's by more than "
        "ALERT_SIZE_DROP_SHARE (smaller) or ALERT_SIZE_GROWTH_SHARE (larger)"
    )
    kept: list[KeptVersion] = Field(
        description="the versions the publisher keeps (the newest CURATED_VERSIONS_KEPT published, and the served "
        "one), newest first: each may be rolled back to"
    )
    rules: list[AlertRule] = Field(description="the alert rules the API can evaluate, as `reviews doctor` does")
    doctor_only: list[str] = Field(description="rules only `reviews doctor` evaluates (they read what the API may not)")


class WorkerState(BaseModel):
    worker: str = Field(description="Celery's node name (stage@host), or beat")
    host: str | None
    pid: int | None
    started_at: datetime | None
    last_seen: datetime
    age_seconds: float = Field(description="since its last heartbeat, by the database's clock")
    live: bool = Field(description="its last heartbeat is younger than stale_after_seconds")


class StageWorkers(BaseModel):
    stage: str
    live: int = Field(description="how many of its workers are live; 0: nothing works this stage")
    workers: list[WorkerState]


class WorkerStates(BaseModel):
    stale_after_seconds: float = Field(description="a worker whose last heartbeat is older is taken for gone")
    stages: list[StageWorkers] = Field(description="extract, archive, transform, classify, publish, then beat")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    to: str | None = Field(default=None, max_length=64, description="the version (run id); default: the one before")


class RollbackAccepted(BaseModel):
    status: str
    to: str | None
