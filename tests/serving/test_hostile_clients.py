"""Every door refuses bad input: against a real server process, each hostile request gets a
clear 4xx (or 413), never a 5xx or a dropped connection, and the server keeps serving; the
OpenAPI contract holds under schemathesis with every check (a bounded, seeded run)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.test_server_process import API_KEY, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.xdist_group("serving")]

MAX_BODY = 1_048_576  # the default: above the largest valid request, which must pass
SCHEMATHESIS_EXAMPLES = 40
SCHEMATHESIS_SEED = 1


@pytest.fixture(scope="module")
def server(pipeline_store: Path) -> Iterator[str]:
    settings = {
        "REELRANK_DATA_DIR": str(pipeline_store),
        "REELRANK_API_KEY": API_KEY,
    }
    process, base = start_server(settings)
    try:
        yield base
    finally:
        stop_server(process)


def _events(n: int, **fields: object) -> dict[str, object]:
    return {"events": [{"user_id": 1, "item_id": 2, "event": "click", **fields}] * n}


HOSTILE = [
    # (what, method, path, raw body, headers, expected status)
    (
        "NaN rating",
        "POST",
        "/feedback",
        json.dumps(
            {"events": [{"user_id": 1, "item_id": 2, "event": "rating", "rating": float("nan")}]}
        ),
        {},
        422,
    ),
    ("Infinity user id", "POST", "/recommendations", '{"user_ids": [Infinity]}', {}, 422),
    ("-Infinity k", "POST", "/recommendations", '{"user_ids": [1], "k": -Infinity}', {}, 422),
    ("exclude_seen 0", "POST", "/recommendations", '{"user_ids": [1], "exclude_seen": 0}', {}, 422),
    ("user id as text", "POST", "/recommendations", '{"user_ids": ["1"]}', {}, 422),
    ("click with a rating", "POST", "/feedback", json.dumps(_events(1, rating=4.0)), {}, 422),
    (
        "rating without one",
        "POST",
        "/feedback",
        json.dumps({"events": [{"user_id": 1, "item_id": 2, "event": "rating"}]}),
        {},
        422,
    ),
    ("timestamp as a number", "POST", "/feedback", json.dumps(_events(1, timestamp=0)), {}, 422),
    ("unknown field", "POST", "/feedback", json.dumps(_events(1, mood="happy")), {}, 422),
    ("not JSON", "POST", "/feedback", "{events: [", {}, 422),
    ("not UTF-8", "POST", "/feedback", b"\xff\xfe\x00{", {}, 422),
    ("empty body", "POST", "/recommendations", "", {}, 422),
    (
        "too many users",
        "POST",
        "/recommendations",
        json.dumps({"user_ids": list(range(500))}),
        {},
        422,
    ),
    ("8 MB of feedback", "POST", "/feedback", json.dumps(_events(200_000)), {}, 413),
    ("k above the limit", "GET", "/recommendations/1?k=1000", None, {}, 422),
    ("negative user", "GET", "/recommendations/-4", None, {}, 422),
    ("user id as float text", "GET", "/recommendations/1.5", None, {}, 422),
    ("huge API key", "POST", "/admin/reload", None, {"X-API-Key": "k" * 5000}, 422),
    ("wrong API key", "POST", "/admin/reload", None, {"X-API-Key": "wrong"}, 401),
]


@pytest.mark.parametrize(
    ("what", "method", "path", "body", "headers", "status"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_hostile_request_gets_a_clear_4xx_and_the_server_keeps_serving(
    server: str, what: str, method: str, path: str, body, headers: dict, status: int
) -> None:
    content = body.encode() if isinstance(body, str) else body
    response = httpx.request(
        method,
        f"{server}{path}",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )
    assert response.status_code == status, (what, response.text[:300])
    payload = response.json()  # always JSON, always strict JSON (no NaN)
    assert payload["detail"], what
    assert response.headers["x-request-id"]
    assert httpx.get(f"{server}/recommendations/1", timeout=10).status_code == 200


def test_a_streamed_body_over_the_limit_is_refused_while_it_arrives(server: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(128):
            yield b" " * 16_384  # 2 MiB in all, no Content-Length (chunked)

    response = httpx.post(f"{server}/feedback", content=chunks(), timeout=30)
    assert response.status_code == 413
    assert f"{MAX_BODY:,}" in response.json()["detail"]
    assert httpx.get(f"{server}/health", timeout=10).status_code == 200


def test_a_request_id_is_echoed_or_made(server: str) -> None:
    given = httpx.get(f"{server}/health", headers={"X-Request-ID": "abc-123"}, timeout=10)
    assert given.headers["x-request-id"] == "abc-123"
    bad = httpx.get(f"{server}/health", headers={"X-Request-ID": "no spaces allowed"}, timeout=10)
    assert bad.headers["x-request-id"] != "no spaces allowed"
    assert len(bad.headers["x-request-id"]) == 32


def test_a_half_sent_request_does_not_take_the_server_down(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{")
    assert httpx.get(f"{server}/health", timeout=10).status_code == 200


def test_schemathesis_finds_no_contract_mismatch(server: str, tmp_path: Path) -> None:
    """``schemathesis run --checks all`` against the live server: a fixed example budget
    and seed, so the run is bounded and repeatable."""
    cli = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(cli),
            "run",
            f"{server}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(SCHEMATHESIS_EXAMPLES),
            "--seed",
            str(SCHEMATHESIS_SEED),
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
