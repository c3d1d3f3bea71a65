"""The classify stage's work on one batch: read cleaned, add the model's outputs, write scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from services.classifier.model import Classifier
from services.classifier.scoring import model_outputs
from shared import known
from shared.lake import Lake, scored_key
from shared.schemas import CLEANED, SCORED


def run(
    lake: Lake, classifier: Classifier, run_id: str, batch: int, cleaned_key: str, known_keys: np.ndarray = known.NONE
) -> tuple[str, int, int]:
    """Score one stored cleaned batch; returns (scored key, rows, rows whose outputs publish carries over)."""
    cleaned = lake.get_table(cleaned_key, CLEANED).to_pandas()
    outputs = model_outputs(cleaned, classifier, known_keys)
    scored = pd.concat([cleaned, outputs], axis=1)
    key = scored_key(run_id, batch)
    lake.put_table(key, pa.Table.from_pandas(scored[SCORED.names], schema=SCORED, preserve_index=False))
    return key, len(scored), int(outputs[known.UNSCORED_MARK].isna().sum())


class BaseKeys:
    """The known keys of the version a run builds upon: read once per worker while runs build on it."""

    def __init__(self):
        self._version: str | None = None
        self._keys = known.NONE

    def of(self, lake: Lake, base_version: str | None) -> np.ndarray:
        if base_version is None:  # a full run: every review is classified
            return known.NONE
        if base_version != self._version:
            self._keys, self._version = known.read(lake, base_version), base_version
        return self._keys
