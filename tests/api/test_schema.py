"""schemathesis against the API's own OpenAPI schema, on the live server: no 5xx, no schema violation.

Its command line is used rather than its pytest plugin, which does not support pytest 9 yet.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.factories import mentions, scored_row


def test_api_conforms_to_its_schema(api, publisher, api_settings, tmp_path):
    # given real data, so that generated product ids can hit (and miss) real products, with summaries to answer
    said = mentions("Sturdy. Pricey. Fine.", ("durability", 1), ("value", -1), (None, 0))
    publisher.publish("20260401T000000Z-555555", [[scored_row(i, f"P{i % 3}", i / 10, **said) for i in range(10)]])
    # when schemathesis sends generated valid and invalid requests to every operation
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{api.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--generation-database",
            "none",
            "--no-color",
            "-H",
            f"Authorization: Bearer {api_settings.api_token.get_secret_value()}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    # then no response is a server error or breaks the documented schema
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
