"""Transform task: clean and validate a raw batch, then announce it to the classifier."""

from __future__ import annotations

from datetime import UTC, datetime

from services.transformer import transform
from shared import clients
from shared.stages import Stage
from shared.tasks import BatchOutcome, BatchRef, send, stage_task


@stage_task(Stage.TRANSFORM)
def transform_batch(self, ref: dict) -> int:
    ref = BatchRef(**ref)
    c = clients.get()

    def work() -> BatchOutcome:
        key, rows_in, rows_out, rejects = transform.run(
            c.lake,
            ref.run_id,
            ref.batch,
            ref.key,
            c.settings.pseudonym_key.get_secret_value().encode(),
            datetime.now(UTC),
            c.history.erased_pseudonyms(),
        )
        return BatchOutcome(rows_in, rows_out, key, rejects)

    outcome = self.run_batch(ref, work)
    send(Stage.CLASSIFY.task, BatchRef(ref.run_id, ref.batch, outcome.output_key))
    return outcome.rows_out
