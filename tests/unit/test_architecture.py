"""The house rules that keep ReelRank easy to change, checked on the real tree.

* the import contracts of ``pyproject.toml`` (``[tool.importlinter]``): the library imports
  no app, the flows and the service no command line (the same check ``make lint`` runs);
* no function in the library, the flows or the service is longer than 100 lines;
* every result file name is known to one module only (the run report).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_FUNCTION_LINES = 100
CHECKED = ("reelrank", "pipelines", "serving", "cli")


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _functions(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (
            f"{path.relative_to(ROOT)}:{node.name}",
            (node.end_lineno or node.lineno) - node.lineno + 1,
        )
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_no_function_is_longer_than_a_screenful() -> None:
    long = [
        f"{name} ({lines} lines)"
        for package in CHECKED
        for path in sorted((ROOT / package).rglob("*.py"))
        for name, lines in _functions(path)
        if lines > MAX_FUNCTION_LINES
    ]
    assert not long, "split these into short functions read in order: " + "; ".join(long)


def test_result_file_names_are_owned_by_the_run_report() -> None:
    from reelrank.training.report import SUMMARY_FILE, TABLE_FILES

    names = {SUMMARY_FILE, *TABLE_FILES.values()}
    owners: dict[str, list[str]] = {}
    for package in CHECKED:
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for name in names:
                if f'"{name}"' in text:
                    owners.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert all(files == ["reelrank/training/report.py"] for files in owners.values()), owners
