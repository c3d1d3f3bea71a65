"""Servers going away mid-run on the real local stack: nothing is lost, nothing is duplicated.

PostgreSQL stopped during extract, S3 refusing the publish write, Redis restarted mid-run:
each run either completes with every valid review exactly once, or fails with a clear error.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx

from ops.runs_cli import watch
from ops.stack.manager import Stack
from ops.stack.process import free_port
from shared.flow import start_run
from shared.recovery import sweep
from shared.stages import Stage
from shared.tasks import send
from tests.pipeline.runs import RUN_TIMEOUT_S, assert_every_valid_review_once, component, run_to_end, wait_for

SWEEP_STALLED_AFTER_S = 10


def served_version(settings) -> str | None:
    return httpx.get(f"http://{settings.api_host}:{settings.api_port}/health/ready", timeout=5).json().get("version")


class Gate:
    """A TCP proxy to the S3 server that the test opens and closes: S3 'down' for one worker only."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.open = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            if not self.open.is_set():
                client.close()  # the write fails as when the S3 server is unreachable
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()


def outage(servers, name: str, seconds: float) -> None:
    """Stop one server of the session's stack for ``seconds``, then bring it back as an operator would."""
    stack = Stack(servers)
    component(stack, name).stop(stack.ctx)
    try:
        time.sleep(seconds)
    finally:
        stack.up()


def test_postgres_stopped_during_extract_is_retried_and_the_run_succeeds_when_it_returns(pipeline, lake, servers):
    # given a run whose extraction takes many small batches
    run_id = start_run(pipeline.history, send, "cli", {"full": True, "limit": 1500, "batch_size": 10})
    wait_for(lambda: len(pipeline.history.batches(run_id, Stage.EXTRACT)) >= 3, 120, "extraction to start", 0.05)
    # when PostgreSQL (source and run history) goes away mid-extraction, then comes back
    outage(servers, "postgres", 5)
    # then the run completes with every valid review exactly once
    run = watch(pipeline.history, run_id, timeout_s=RUN_TIMEOUT_S)
    assert_every_valid_review_once(pipeline, lake, run)
    assert run["extracted_batches"] == 150
    extract = pipeline.history.batches(run_id, Stage.EXTRACT)
    assert [b["batch_no"] for b in extract] == list(range(1, 151))  # resumed after the last recorded batch


def test_an_s3_write_error_is_retried_and_the_previous_version_stays_served(pipeline, lake, servers):
    previous = run_to_end(pipeline, {"full": True, "limit": 60, "batch_size": 30})
    wait_for(lambda: served_version(servers) == previous["run_id"], 30, "the API to serve the previous version")
    stack = Stack(servers)
    gate = Gate(servers.s3_endpoint_port)
    gated = servers.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{gate.port}"})
    component(stack, "worker-publish-1").stop(stack.ctx)
    Stack(gated).up()  # only the publish worker starts, writing to S3 through the gate
    try:
        # given S3 refusing the publisher's writes
        run_id = start_run(pipeline.history, send, "cli", {"full": True, "limit": 60, "batch_size": 30})
        wait_for(
            lambda: any(b["retries"] for b in pipeline.history.batches(run_id, Stage.PUBLISH)),
            120,
            "the publish step to retry",
        )
        # then the run is not failed, and the API still serves the previous version
        assert pipeline.history.get_run(run_id)["status"] == "running"
        assert lake.latest().version == previous["run_id"]
        assert served_version(servers) == previous["run_id"]
        # when S3 answers again, the retried publish completes
        gate.open.set()
        run = watch(pipeline.history, run_id, timeout_s=RUN_TIMEOUT_S)
    finally:
        component(stack, "worker-publish-1").stop(stack.ctx)
        stack.up()
        gate.close()
    assert_every_valid_review_once(pipeline, lake, run)
    wait_for(lambda: served_version(servers) == run_id, 30, "the API to serve the new version")


def test_redis_restarted_mid_run_loses_no_review(pipeline, lake, servers):
    run_id = start_run(pipeline.history, send, "cli", {"full": True, "limit": 400, "batch_size": 20})
    wait_for(lambda: len(pipeline.history.batches(run_id, Stage.CLASSIFY)) >= 2, 180, "classification to start", 0.1)
    # when the broker restarts mid-run (its append-only file keeps the queued messages)
    outage(servers, "redis", 3)

    # then the run completes, with the sweep re-announcing whatever was lost in flight; the sweep
    # runs here as beat runs it, only with a shorter stall threshold than the session's
    def ended() -> dict | None:
        sweep(pipeline.history, send, stalled_after_s=SWEEP_STALLED_AFTER_S)
        run = pipeline.history.get_run(run_id)
        return run if run["status"] in ("succeeded", "failed") else None

    run = wait_for(ended, RUN_TIMEOUT_S, "the run to end", every_s=SWEEP_STALLED_AFTER_S)
    assert_every_valid_review_once(pipeline, lake, run)
