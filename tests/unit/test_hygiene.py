"""Basic security hygiene, checked: no secret in the repository, no placeholder secret in
the deployment files, a constant-time API key check, and ``make audit`` that reads an
unreachable advisory service as a skip, not a failure."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
DEPLOYMENT_FILES = (".env.example", "docker-compose.yml", "Dockerfile")
SECRET_VARIABLE = re.compile(
    r"^\s*-?\s*([A-Z0-9_]*(?:PASSWORD|SECRET|API_KEY|TOKEN)[A-Z0-9_]*)\s*[:=]\s*(.*)$"
)


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    files = []
    for name in names:
        path = ROOT / name
        if path.is_file() and path.stat().st_size < 2_000_000:
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # figures and other binaries
            files.append(path)
    return files


def test_no_secret_is_committed() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {what}"
        for path in _tracked_text_files()
        if path.name != Path(__file__).name
        for what, pattern in SECRET_PATTERNS.items()
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert not found, found


def test_deployment_files_carry_no_secret_value() -> None:
    """Secrets come from the operator's .env: the example leaves them empty and compose
    refuses to start without them (``${VAR:?...}``), never a default."""
    offending = []
    for name in DEPLOYMENT_FILES:
        for number, line in enumerate((ROOT / name).read_text().splitlines(), start=1):
            match = SECRET_VARIABLE.match(line)
            if not match or line.lstrip().startswith("#"):
                continue
            value = match.group(2).strip().strip("\"'")
            required = value.startswith("${") and ":?" in value
            if value and not required:
                offending.append(f"{name}:{number}: {match.group(1)}")
    assert not offending, offending


def test_placeholder_keys_are_refused_outside_development() -> None:
    from reelrank.config import Settings

    for placeholder in ("changeme", "secret", "short"):
        with pytest.raises(ValueError, match="REELRANK_API_KEY"):
            Settings(environment="production", api_key=placeholder)


def test_the_api_key_is_compared_in_constant_time() -> None:
    from serving.api import deps

    source = inspect.getsource(deps.require_admin)
    assert "secrets.compare_digest(" in source
    assert "==" not in source.split("compare_digest", 1)[1].split("\n", 1)[0]


@pytest.fixture(scope="module")
def audit():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import audit as module

        yield module
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_audit_reads_an_unreachable_service_as_a_skip(audit) -> None:
    assert audit.classify(None)[0] == audit.UNREACHABLE
    nothing = {"dependencies": [{"name": "x", "skip_reason": "Dependency not found on PyPI"}]}
    assert audit.classify(nothing)[0] == audit.UNREACHABLE


def test_audit_reports_vulnerabilities_with_their_fixes(audit) -> None:
    report = {
        "dependencies": [
            {"name": "ok", "version": "1.0", "vulns": []},
            {
                "name": "bad",
                "version": "0.1",
                "vulns": [{"id": "PYSEC-1", "fix_versions": ["0.2"]}],
            },
            {"name": "odd", "skip_reason": "not on PyPI"},
        ]
    }
    verdict, lines = audit.classify(report)
    assert verdict == audit.VULNERABLE
    assert lines == ["bad 0.1: PYSEC-1 (fixed in 0.2)"]
    clean = {"dependencies": [{"name": "ok", "version": "1.0", "vulns": []}]}
    assert audit.classify(clean) == (
        audit.CLEAN,
        ["1 packages audited, no known vulnerability (0 skipped)."],
    )
