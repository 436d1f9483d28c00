"""Every ranker the CLI advertises trains end to end, and a source and a ranker from outside
the package train through ``reelrank train`` without an edit of the library."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from reelrank.config import get_settings, reset_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prefect")]

ADVERTISED = (
    "lgbm-lambdarank",
    "lgbm-binary",
    "sklearn-logreg",
    "scratch-logreg",
    "scratch-mlp",
    "rrf",
)
TINY = ["--users", "150", "--items", "100", "--events", "5000", "--seed", "5"]
TRAIN = ["--folds", "1", "--no-feast"]
WITH_DIAGNOSTICS = {"lgbm-lambdarank", "scratch-logreg"}  # the sweep; no importances
runner = CliRunner()


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("extensions") / "data"
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("REELRANK_DATA_DIR", str(data_dir))
    for name in ("MLFLOW_TRACKING_URI", "REELRANK_ONLINE_STORE", "REELRANK_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    result = runner.invoke(app, ["data", "--dataset", "synthetic", *TINY])
    assert result.exit_code == 0, result.output
    yield data_dir
    monkeypatch.undo()
    reset_settings()


def test_the_cli_advertises_every_builtin_ranker() -> None:
    from reelrank.models.ranking import RANKERS

    help_text = " ".join(runner.invoke(app, ["train", "--help"]).output.split())
    assert set(ADVERTISED) <= set(RANKERS)
    for name in ADVERTISED:
        assert name in help_text


@pytest.mark.parametrize("ranker", ADVERTISED)
def test_every_advertised_ranker_trains_end_to_end(lake: Path, ranker: str) -> None:
    from reelrank.registry.models import load_recommender

    diagnostics = "--diagnostics" if ranker in WITH_DIAGNOSTICS else "--no-diagnostics"
    result = runner.invoke(app, ["train", "--ranker", ranker, diagnostics, *TRAIN])
    assert result.exit_code == 0, result.output + repr(result.exception)
    summary = json.loads((lake / "reports" / "synthetic" / "train_result.json").read_text())
    assert summary["version"]
    assert "Cross-validation" in result.output
    model, _ = load_recommender(get_settings(), "challenger")
    assert len(model.recommend([1, 2], k=5)) == 10


def test_a_toy_source_and_ranker_from_outside_train_through_the_cli(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reelrank.registry.models import load_recommender
    from reelrank.registry.store import client

    monkeypatch.setenv("REELRANK_PLUGINS", "tests.pipelines.toy_plugins")
    reset_settings()
    args = ["--sources", "popularity,toy", "--ranker", "toy-linear"]
    args += ["--param", "sources__toy__boost=0.5", "--param", "ranker__ridge=2"]
    result = runner.invoke(app, ["train", *args, "--no-diagnostics", *TRAIN])
    assert result.exit_code == 0, result.output + repr(result.exception)
    model, version = load_recommender(get_settings(), "challenger")
    assert [name for name, _ in model.sources] == ["popularity", "toy"]
    assert type(model.ranker_).__name__ == "ToyLinearRanker"
    assert model.get_params()["sources__toy__boost"] == 0.5
    assert model.layout_.names[:4] == (
        "popularity_score",
        "popularity_rank",
        "toy_score",
        "toy_rank",
    )
    params = client().get_run(version.run_id).data.params
    assert params["model.sources__toy__boost"] == "0.5"
    assert params["model.ranker__ridge"] == "2"
    assert len(model.recommend([1], k=5)) == 5


def test_an_unimportable_plugin_is_a_clear_error(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELRANK_PLUGINS", "no_such_plugin_module")
    reset_settings()
    result = runner.invoke(app, ["evaluate"])
    assert result.exit_code == 1
    assert "no_such_plugin_module" in result.output
