"""The whole offline path as one Prefect flow, on a small synthetic world.

data -> features (Feast apply + materialize into SQLite) -> train (CV against baselines,
MLflow run with artifacts, registered model, promotion gate). One run is shared by the
assertions below because a Prefect + Feast + MLflow run costs about a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reelrank.config import get_settings, reset_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prefect")]

WORLD = ["--users", "300", "--items", "200", "--events", "20000", "--seed", "7"]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("pipeline") / "data"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("REELRANK_DATA_DIR", str(data_dir))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("REELRANK_ONLINE_STORE", raising=False)
    reset_settings()
    from cli.app import app

    runner = CliRunner()
    result = runner.invoke(
        app,
        ["run", "--dataset", "synthetic", *WORLD, "--folds", "2", "--compare", "scratch-logreg"],
    )
    yield {"result": result, "data_dir": data_dir, "runner": runner, "app": app}
    monkeypatch.undo()
    reset_settings()


def test_run_succeeds_and_prints_summaries(pipeline_run: dict[str, Any]) -> None:
    result = pipeline_run["result"]
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Ingest summary" in result.output
    assert "Cross-validation" in result.output
    assert "Candidate recall" in result.output


def test_lake_accounts_for_every_row(pipeline_run: dict[str, Any]) -> None:
    summary = json.loads((pipeline_run["data_dir"] / "lake" / "summary.json").read_text())
    for table in ("events", "users", "items"):
        figures = summary[table]
        assert figures["read"] == figures["accepted"] + figures["quarantined"]
    assert summary["events"]["read"] == 20000


def test_online_store_materialized(pipeline_run: dict[str, Any]) -> None:
    from reelrank.features.feast.store import get_feature_store

    store = get_feature_store(get_settings())
    views = {view.name for view in store.list_feature_views()}
    assert {"user_features", "item_features"} <= views
    online = store.get_online_features(
        features=["user_features:user_events_30d"], entity_rows=[{"user_id": 1}]
    ).to_dict()
    assert online["user_id"] == [1]


def test_champion_registered_with_artifacts(pipeline_run: dict[str, Any]) -> None:
    from reelrank.registry import aliases, store
    from reelrank.registry.models import load_recommender

    settings = get_settings()
    store.configure(settings)
    champion = aliases.version_by_alias(settings.model_name, "champion")
    challenger = aliases.version_by_alias(settings.model_name, "challenger")
    assert challenger is not None
    assert champion is not None, "the first model that beats the baselines becomes champion"
    run = store.client().get_run(champion.run_id)
    assert run.data.tags["feature_service"] == "ranker_v1"
    assert len(run.data.tags["data_version"]) >= 8
    assert "cv_ndcg_at_10_mean" in run.data.metrics
    assert "reelrank:scratch-logreg.cv_ndcg_at_10_mean" in run.data.metrics
    artifacts = {a.path for a in store.client().list_artifacts(run.info.run_id, "evaluation")}
    for name in (
        "fold_comparison.png",
        "ranker_roc_pr.png",
        "feature_importance.png",
        "learning_curve.png",
        "regularisation.png",
        "cv_per_fold.csv",
        "candidate_recall.csv",
        "slices.csv",
    ):
        assert f"evaluation/{name}" in artifacts
    nested = store.client().search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert len(nested) == 2  # one per fold

    artifact_uri = store.client().get_run(champion.run_id).info.artifact_uri
    assert artifact_uri.startswith((pipeline_run["data_dir"] / "mlartifacts").resolve().as_uri())

    recommender, _ = load_recommender(settings)
    recs = recommender.recommend([1, 2], k=5)
    assert list(recs.groupby("user_id").size()) == [5, 5]


def test_second_run_does_not_promote_an_equal_model(pipeline_run: dict[str, Any]) -> None:
    """Same data, same seed: the challenger cannot beat the champion, so it is not promoted."""
    from reelrank.registry import aliases, store

    runner, app = pipeline_run["runner"], pipeline_run["app"]
    result = runner.invoke(app, ["train", "--folds", "2", "--no-diagnostics"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "not promoted" in result.output
    settings = get_settings()
    store.configure(settings)
    assert str(aliases.version_by_alias(settings.model_name, "champion").version) == "1"
    assert str(aliases.version_by_alias(settings.model_name, "challenger").version) == "2"


def test_evaluate_prints_latest_table(pipeline_run: dict[str, Any]) -> None:
    result = pipeline_run["runner"].invoke(pipeline_run["app"], ["evaluate"])
    assert result.exit_code == 0, result.output
    assert "popularity" in result.output
    assert "item_knn" in result.output


def test_quarantine_files_exist(pipeline_run: dict[str, Any]) -> None:
    for table in ("events", "users", "items"):
        assert Path(pipeline_run["data_dir"], "quarantine", f"{table}.parquet").exists()
