"""The ``stack`` marker follows the servers: ``-m "not stack"`` never starts one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import STACK_FIXTURES

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_of_the_session_that_uses_the_servers_is_marked_stack(request: pytest.FixtureRequest):
    unmarked = [
        item.nodeid
        for item in request.session.items
        if STACK_FIXTURES.intersection(getattr(item, "fixturenames", ())) and item.get_closest_marker("stack") is None
    ]
    assert unmarked == []


def test_a_test_reaching_the_servers_only_through_fixtures_is_marked_stack():
    # test_sweep.py names no marker: its 4 tests use ``history`` (and ``logical_date``), which use ``servers``
    quick = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not stack",
            "tests/pipeline/test_sweep.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "no tests collected (4 deselected)" in quick.stdout, quick.stdout + quick.stderr
