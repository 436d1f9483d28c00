"""The command line shared by the benchmarks that run simulated users on the synthetic world
(``experiments.py``, ``off_policy.py``): seeds, days, visits, and the JSON and page they write."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Run = Callable[[Path, int, int, int], dict[str, Any]]
Page = Callable[[dict[str, Any], str], str]


def main(script: str, description: str, run: Run, markdown: Page, seeds: int) -> None:
    """Parse the options, run, print the page and write ``--out`` / ``--markdown``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--users", type=int, default=200, help="visits per simulated day")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    results = run(args.data_dir, args.seeds, args.days, args.users)
    command = (
        f".venv/bin/python benchmarks/{script}.py --data-dir data --seeds {args.seeds} "
        f"--days {args.days} --users {args.users} --out design_docs/results/{script}.json "
        f"--markdown design_docs/results/{script}.md"
    )
    page = markdown(results, command)
    print(page)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(page)
