"""Every MLflow call of the online experiments: an analysis as a run of its own."""

from __future__ import annotations

from typing import Final

from reelrank.config import Settings
from reelrank.experiments.analysis import ExperimentAnalysis
from reelrank.registry.store import configure, use_experiment

MLFLOW_EXPERIMENT: Final = "reelrank-online-experiments"


def log_analysis(settings: Settings, analysis: ExperimentAnalysis, page: str) -> str:
    """Log ``analysis`` (metrics, tags, its page and JSON) as a run; returns the run id."""
    import mlflow

    configure(settings)
    use_experiment(settings, MLFLOW_EXPERIMENT)
    result = analysis.result
    metrics = {
        "control_play_rate": result.control.play_rate,
        "treatment_play_rate": result.treatment.play_rate,
        "difference": result.difference.estimate,
        "difference_ci_low": result.difference.low,
        "difference_ci_high": result.difference.high,
        "difference_p_value": result.difference.p_value,
        "srm_p_value": result.srm.p_value,
        "control_users": float(result.control.users),
        "treatment_users": float(result.treatment.users),
    }
    if result.cuped is not None:
        metrics |= {"cuped_difference": result.cuped.estimate, "cuped_se": result.cuped.se}
    if result.variance_saved is not None:
        metrics["cuped_variance_saved"] = result.variance_saved
    with mlflow.start_run(run_name=f"analyze-{analysis.name}") as run:
        mlflow.set_tags(
            {"experiment": analysis.name, "control": analysis.control,
             "treatment": analysis.treatment, "srm_mismatch": str(result.srm.mismatch)}
        )  # fmt: skip
        mlflow.log_metrics(metrics)
        mlflow.log_text(page, "analysis/analysis.md")
        mlflow.log_dict(analysis.record(), "analysis/analysis.json")
    return str(run.info.run_id)
