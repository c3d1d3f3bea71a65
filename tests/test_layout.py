"""The tree reads one way: the formatter lays out every line and the linter's rules hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = [sys.executable, "-m", "ruff"]


def test_every_file_is_laid_out_by_the_formatter():
    result = subprocess.run([*RUFF, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_finds_nothing():
    result = subprocess.run([*RUFF, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def modules_on_the_map(root: Path) -> list[str]:
    """What ARCHITECTURE.md must name: every top-level folder of code, every module of shared/, ops/ and
    research/, and every service (a package under services/)."""
    found = [f"{d.name}/" for d in sorted(root.iterdir()) if d.is_dir() and (d / "__init__.py").exists()]
    for folder in ("shared", "ops", "research", "research/relevance", "research/topics"):
        for path in sorted((root / folder).glob("*")):
            if path.name.startswith(("_", ".")):
                continue
            if path.suffix == ".py" or (path / "__init__.py").exists():
                found.append(path.relative_to(root).as_posix() + ("/" if path.is_dir() else ""))
    found += [f"services/{d.name}/" for d in sorted((root / "services").iterdir()) if (d / "__init__.py").exists()]
    return found


def missing_from_the_map(root: Path) -> list[str]:
    text = (root / "ARCHITECTURE.md").read_text()
    return [module for module in modules_on_the_map(root) if f"`{module}`" not in text]


def test_every_top_level_module_is_on_the_architecture_map():
    assert missing_from_the_map(ROOT) == [], "add these to ARCHITECTURE.md's map, saying what each owns"


def test_a_new_module_missing_from_the_map_is_named(tmp_path):
    # given a copy of the map and the tree's layout, with one module of shared/ that the map does not name
    (tmp_path / "ARCHITECTURE.md").write_text((ROOT / "ARCHITECTURE.md").read_text())
    for module in modules_on_the_map(ROOT):
        path = tmp_path / module
        if module.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            (path / "__init__.py").touch()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    (tmp_path / "shared" / "newcomer.py").touch()
    (tmp_path / "services" / "ranker").mkdir()
    (tmp_path / "services" / "ranker" / "__init__.py").touch()
    # then the check names both, and nothing else
    assert missing_from_the_map(tmp_path) == ["shared/newcomer.py", "services/ranker/"]
