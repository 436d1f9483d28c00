"""``make audit``: pip-audit over the pinned lock, readable when the advisory service is not.

Runs ``pip-audit -r requirements.lock --no-deps --disable-pip`` (the lock pins every
package, so nothing is resolved or installed) and reads its JSON report:

* vulnerabilities found: listed with their fixed versions, exit 1;
* every package audited, none vulnerable: exit 0;
* the advisory service could not be reached (pip-audit fails to connect, or reports that it
  could audit no package at all, as happens behind a registry mirror without PyPI's JSON
  API): a clear message and exit 0, so an offline machine is not a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
LOCK: Final = ROOT / "requirements.lock"
UNREACHABLE, CLEAN, VULNERABLE = "unreachable", "clean", "vulnerable"


def classify(report: dict[str, Any] | None) -> tuple[str, list[str]]:
    """``(verdict, lines)`` of a pip-audit JSON report (``None``: pip-audit gave none)."""
    if report is None:
        return UNREACHABLE, [
            "pip-audit produced no report (no connection to the advisory service)."
        ]
    deps = report.get("dependencies", [])
    audited = [d for d in deps if "skip_reason" not in d]
    if deps and not audited:
        return UNREACHABLE, [
            f"the advisory service could audit none of the {len(deps)} pinned packages "
            f"(e.g. {deps[0]['skip_reason']}); is PyPI's JSON API reachable from here?"
        ]
    lines = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {_fixes(v)})"
        for d in audited
        for v in d.get("vulns", [])
    ]
    skipped = len(deps) - len(audited)
    if lines:
        return VULNERABLE, lines
    return CLEAN, [f"{len(audited)} packages audited, no known vulnerability ({skipped} skipped)."]


def _fixes(vulnerability: dict[str, Any]) -> str:
    return ", ".join(vulnerability.get("fix_versions", [])) or "no release yet"


def main() -> int:
    command = [
        str(Path(sys.executable).with_name("pip-audit")),
        *("-r", str(LOCK), "--no-deps", "--disable-pip", "--progress-spinner", "off"),
        *("--format", "json"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(result.stdout) if result.stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    verdict, lines = classify(report)
    prefix = {UNREACHABLE: "audit skipped", CLEAN: "audit ok", VULNERABLE: "audit FAILED"}[verdict]
    for line in lines:
        print(f"{prefix}: {line}")
    return 1 if verdict == VULNERABLE else 0


if __name__ == "__main__":
    raise SystemExit(main())
