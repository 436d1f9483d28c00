"""Property-based fuzz of the API from its OpenAPI schema: no input gives a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from reelrank.config import Settings
from serving.app import create_app
from tests.serving.conftest import FakeUserReader, make_state

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def fuzz_app(fitted_model, tmp_path_factory):
    from fastapi.testclient import TestClient

    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    app_settings = Settings(data_dir=data_dir, api_key="a-long-enough-test-key", max_batch_users=20)
    reader = FakeUserReader(fitted_model.feature_provider_.user_frame)
    app = create_app(app_settings, loader=lambda s: make_state(fitted_model, s, reader=reader))
    with TestClient(app):  # runs the lifespan: the model is loaded
        yield app


def test_no_input_gives_a_server_error(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/recommendations/{user_id}",
        "/recommendations",
        "/feedback",
        "/health",
        "/ready",
        "/model",
        "/metrics",
        "/admin/reload",
    }
    checked: dict[str, int] = {}
    for operation in operations:
        if operation.path == "/admin/reload":
            continue  # reloading is exercised by its own tests (and is slow to fuzz)
        run_fuzz(operation, f"{operation.method.upper()} {operation.path}", checked)
    assert len(checked) == len(operations) - 1


def run_fuzz(operation, label: str, checked: dict[str, int]) -> None:
    """Fuzz one operation: every generated request must get an answer below 500."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy())
    def fuzz(case) -> None:
        response = case.call()
        checked[label] = checked.get(label, 0) + 1
        assert response.status_code < 500, (
            label,
            case.path_parameters,
            case.query,
            case.body,
            response.text[:300],
        )

    fuzz()
