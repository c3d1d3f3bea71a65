"""Session fixtures: the real local servers, started once per test session and stopped after.

``servers`` starts Redis, PostgreSQL, the MongoDB-wire server and the S3 server on
free loopback ports under a fresh state directory; ``pipeline_stack`` adds the
Celery workers on the same servers (``Stack.up`` is idempotent, so nothing starts twice).
``classifier`` is the real model, for the classifier's tests and the research's.
Every test that uses them, however indirectly, is marked ``stack`` at collection (``model`` for the
real model): ``-m "not stack and not model"`` runs the rest in seconds, without a server or the model.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.stack.manager import Stack, make_state_dir, stack_settings
from shared.settings import Settings

# The suite runs on the local placeholders, in this process and the processes it starts (unset means production);
# tests of the production rules set ENVIRONMENT themselves. Before any test module builds its Settings.
os.environ["ENVIRONMENT"] = "local"

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The fixtures that start real servers: the session's, and tests/ops/test_stack.py's own stack (the one it tests).
STACK_FIXTURES = frozenset({"servers", "full_stack"})
# The real model, loaded once a session: seconds to load, and minutes for the tests that read thousands of reviews.
MODEL_FIXTURES = frozenset({"classifier"})


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config) -> None:
    # A CI timeout or a kill sends SIGTERM, which would end the session without its teardown and
    # leave the servers it started running: as an interrupt, pytest stops them first.
    signal.signal(signal.SIGTERM, _interrupt)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # From each test's fixture closure, so that no test can use the servers and miss the marker.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if STACK_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.stack)
        if MODEL_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"the shared review data is missing: expected {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(max_tokens=128)


@pytest.fixture(scope="session")
def classifier(settings):
    """The real all-MiniLM-L6-v2, loaded once for the session (the classifier's tests and the research's)."""
    from services.classifier.model import load_classifier

    return load_classifier(settings)


@pytest.fixture(scope="session")
def servers() -> Iterator[Settings]:
    root = make_state_dir("reviews-test-stack-")
    settings = stack_settings(root, batch_size=500, visibility_timeout_s=30, max_tokens=128, stalled_after_s=60)
    stack = Stack(settings, kinds=("server",))
    try:
        stack.up()
        yield settings
    finally:
        Stack(settings).down()  # services too, if a test started them
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def lake(servers: Settings):
    """The lake the session's pipeline uses."""
    from shared.clients import make_s3
    from shared.lake import Lake

    return Lake(make_s3(servers, "operator"), servers.s3_bucket)


@pytest.fixture(scope="module")
def own_lake(servers: Settings, request):
    """A bucket of the test module's own, for tests that count what a bucket holds."""
    from ops.stack.s3_server import grant_lake
    from shared.clients import make_s3
    from shared.lake import Lake

    bucket = "test-" + request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    grant_lake(servers.model_copy(update={"s3_bucket": bucket}))  # the pipeline may use only granted buckets
    return Lake(make_s3(servers, "operator"), bucket)


@pytest.fixture(scope="session")
def loaded_source(servers: Settings, data_dir: Path):
    """The source database, created and loaded with every shared data file (a few seconds)."""
    from ops.source.loader import load_paths
    from ops.source.schema import create_source

    create_source(servers)
    return load_paths(servers, [data_dir], progress=False)


@pytest.fixture(scope="session")
def history(servers: Settings) -> Iterator:
    from shared.history import History
    from shared.history.schema import init_metadata_db

    init_metadata_db(servers)
    h = History(servers.metadata_dsn)
    yield h
    h.close()


@pytest.fixture(scope="session")
def pipeline(servers: Settings, loaded_source, history):
    """The session's servers plus every worker, beat, Flower and the API; clients for the test."""
    from ops.stack.manager import Stack
    from shared import clients

    Stack(servers).up()
    c = clients.init_operator(servers)
    yield c
    clients.close()
