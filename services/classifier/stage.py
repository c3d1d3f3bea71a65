"""The classify stage's work on one batch: read cleaned, add the model's outputs, write scored."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from services.classifier.model import Classifier
from services.classifier.scoring import model_outputs
from shared.lake import Lake, scored_key
from shared.schemas import CLEANED, SCORED


def run(lake: Lake, classifier: Classifier, run_id: str, batch: int, cleaned_key: str) -> tuple[str, int]:
    """Score one stored cleaned batch; returns (scored key, rows)."""
    cleaned = lake.get_table(cleaned_key, CLEANED).to_pandas()
    scored = pd.concat([cleaned, model_outputs(cleaned, classifier)], axis=1)
    key = scored_key(run_id, batch)
    lake.put_table(key, pa.Table.from_pandas(scored[SCORED.names], schema=SCORED, preserve_index=False))
    return key, len(scored)
