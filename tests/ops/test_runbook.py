"""The README's runbook, walked top to bottom on a stack of its own, as an operator would.

The commands are read from the README itself, so the runbook cannot drift from what works.
Only what an operator fills in by hand is substituted: the run id they read off the output,
the version they roll back to, a buyer id, and this test's own ports instead of the defaults.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from ops.stack.manager import Stack, make_state_dir, stack_settings
from shared.celery_app import create_celery
from shared.clients import make_s3
from shared.history import History
from shared.lake import Lake, raw_key
from shared.stages import Stage

ROOT = Path(__file__).resolve().parents[2]


def runbook_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Runbook", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    return [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines() if line.strip()]


def test_the_runbook_covers_every_daily_procedure():
    commands = "\n".join(runbook_commands())
    for procedure in (
        "reviews stack up",
        "reviews stack status",
        "reviews stack down",
        "reviews run",
        "/jobs",
        "reviews logs",
        "/health",
        "reviews doctor",
        "reviews lake",
        "reviews curated rollback",
        "reviews gdpr erase",
        "reviews retry",
    ):
        assert procedure in commands, procedure


class Operator:
    """Runs runbook lines in a shell, with the stack's settings as its environment."""

    def __init__(self, settings):
        self.settings = settings
        self.env = {
            **settings.child_env(),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "API_TOKEN": settings.api_token.get_secret_value(),
        }
        self.api = f"http://{settings.api_host}:{settings.api_port}"
        self.filled: dict[str, str] = {}
        self.transcript: list[str] = []

    def run(self, line: str) -> subprocess.CompletedProcess:
        for placeholder, value in self.filled.items():
            line = re.sub(rf"\b{placeholder}\b", value, line)
        line = line.replace("http://127.0.0.1:8000", self.api)
        result = subprocess.run(
            ["bash", "-c", line], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600
        )
        self.transcript.append(f"$ {line}\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
        return result


def wait_for_job(operator: Operator, run_id: str) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = json.loads(operator.run(f"curl -s {operator.api}/jobs/{run_id}").stdout)
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {run_id} did not end")


def first_buyer(settings) -> str:
    """The buyer of the first review by id: every run of the runbook extracts and archives it."""
    conn = psycopg2.connect(settings.source_owner_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT buyer_id FROM review ORDER BY review_id LIMIT 1")
            return cur.fetchone()[0]
    finally:
        conn.close()


def failed_run(settings, earlier_run: str) -> str:
    """A run whose only batch the transform could not read (its raw file missing), then put back:
    what `reviews retry` is for. The file is a copy of an earlier run's first batch."""
    history, celery = History(settings.metadata_dsn), create_celery(settings)
    lake = Lake(make_s3(settings, "operator"), settings.s3_bucket)
    try:
        run_id = history.create_run("cli", {"full": True})
        history.start_run(run_id)
        key = raw_key(run_id, 1)
        history.finish_batch(run_id, Stage.EXTRACT, 1, rows_in=100, rows_out=100, output_key=key)
        history.set_extracted(run_id, 1, 100)
        celery.send_task("transform.batch", args=[{"run_id": run_id, "batch": 1, "key": key}])
        deadline = time.monotonic() + 60
        while history.get_run(run_id)["status"] != "failed":
            assert time.monotonic() < deadline, "the run with a missing raw file did not fail"
            time.sleep(0.5)
        lake.put_bytes(key, lake.get_bytes(raw_key(earlier_run, 1)))  # the cause, fixed
        return run_id
    finally:
        history.close()
        celery.close()


@pytest.mark.stack  # its own stack, started by the runbook's first line
def test_an_operator_walks_the_runbook_end_to_end(data_dir):
    root = make_state_dir("reviews-runbook-")
    settings = stack_settings(root, batch_size=100, max_tokens=128)
    operator = Operator(settings)
    out: dict[str, str] = {}  # the runbook line, as written -> what it printed
    try:
        for line in runbook_commands():
            if "curated rollback" in line:
                operator.filled["VERSION"] = operator.filled["FIRST_RUN"]  # the version before the served one
            if "gdpr erase" in line:
                operator.filled["BUYER_ID"] = first_buyer(settings)
            if "reviews retry" in line:
                operator.filled["FAILED_RUN_ID"] = failed_run(settings, operator.filled["FIRST_RUN"])
            result = operator.run(line)
            assert result.returncode == 0, "\n\n".join(operator.transcript)
            out[line] = result.stdout
            if line.startswith("reviews run "):
                operator.filled["FIRST_RUN"] = re.search(r"run (\S+) enqueued", result.stdout).group(1)
            if "POST" in line:  # an operator follows the job until it is done, then goes on
                operator.filled["RUN_ID"] = json.loads(result.stdout)["job_id"]
                assert wait_for_job(operator, operator.filled["RUN_ID"])["status"] == "succeeded"
        left_running = [s.name for s in Stack(settings).status() if s.pid]
    finally:
        Stack(settings).down()
        shutil.rmtree(root, ignore_errors=True)

    def said(prefix: str) -> str:
        return next(text for line, text in out.items() if line.startswith(prefix))

    run_id, first = operator.filled["RUN_ID"], operator.filled["FIRST_RUN"]
    assert "not answering" not in said("reviews stack status")
    assert "succeeded" in said("reviews run ")
    assert f"run {run_id}: succeeded" in said("reviews runs RUN_ID")
    assert run_id in said("reviews runs") and first in said("reviews runs")
    assert run_id in said("reviews logs --run") and "batch_done" in said("reviews logs --run")
    assert json.loads(out["curl -s http://127.0.0.1:8000/health"]) == {"status": "OK"}
    assert json.loads(said("curl -s http://127.0.0.1:8000/health/ready"))["version"] == run_id
    assert re.search(r"curated\s+1 objects", said("reviews lake")), said("reviews lake")
    assert f"* {run_id}" in said("reviews curated list")
    assert f"latest is now {first}" in said("reviews curated rollback")
    erased = said("reviews gdpr erase")
    assert re.search(r"buyer erased: [1-9]\d* archived", erased), erased
    assert re.search(rf"curated version {first}: [1-9]\d* review\(s\) removed, \d+ kept \(served", erased), erased
    assert f"run {operator.filled['FAILED_RUN_ID']}: succeeded" in said("reviews retry")
    assert left_running == []
