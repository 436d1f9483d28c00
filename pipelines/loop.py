"""The feedback loop as one Prefect flow: simulate a day -> ingest -> retrain -> gate -> reload.

``loop_flow`` runs ``rounds`` rounds against the data dir in force. It serves in process
(the registry's champion in a :class:`~serving.service.RecommendationService`, the slates
logged by an :class:`~serving.impressions.ImpressionLog` like the API's) and each round:

1. **simulate** one day of users on the world's ground truth
   (:class:`~reelrank.loop.simulator.Simulator`) and measure what was served
   (:func:`~reelrank.loop.metrics.round_metrics`: true and observed play rate, coverage,
   exposure Gini);
2. **ingest** the day's impression and feedback logs into the lake (``ingest-feedback``);
3. **retrain**: the features subflow (the new events reach the offline and online
   stores), then the train subflow (cross-validation, registration, the promotion gate);
4. **gate**: ``strict`` keeps the gate's decision; ``always`` promotes every retrained
   version (to watch the loop's own dynamics, without the gate's protection);
5. **reload** the service, which serves the next round with the champion.

Every round's record is returned (and printed by ``reelrank loop``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from pipelines.flows import features_flow, ingest_feedback_task, train_flow
from reelrank.config import get_settings

if TYPE_CHECKING:
    from reelrank.data.synthetic import GroundTruth
    from reelrank.loop.simulator import Simulator
    from serving.inprocess import InProcessRowClient
    from serving.service import RecommendationService

Gate = Literal["strict", "always"]
GATES: Final[tuple[str, ...]] = ("strict", "always")


@dataclass(frozen=True)
class LoopConfig:
    """What ``reelrank loop`` runs.

    Attributes:
        rounds: simulated days, each followed by ingest, retrain, gate and reload.
        users_per_day: visits per simulated day.
        k: items per row.
        seed: the simulator's seed (arrivals and behaviour per day).
        start_day: the first simulated day (0: the day after the world's span).
        gate: ``strict`` (the promotion gate decides) or ``always`` (promote every retrain).
        policy: the serving policy as ``REELRANK_POLICY`` JSON (None: the settings').
        features: rebuild and materialize features before each retrain.
        train: ``TrainConfig`` fields of the retrains.
    """

    rounds: int = 3
    users_per_day: int = 200
    k: int = 10
    seed: int = 0
    start_day: int = 0
    gate: Gate = "strict"
    policy: dict[str, Any] | None = None
    features: bool = True
    train: dict[str, Any] = field(default_factory=dict)


@task(name="load-world", cache_policy=NONE)
def load_world_task() -> GroundTruth:
    """The synthetic world's ground truth, for the simulator only."""
    from reelrank.data.ingest import read_summary
    from reelrank.data.synthetic import GroundTruth
    from reelrank.exceptions import DataSourceError

    summary = read_summary(get_settings().lake_path)
    if summary.get("dataset") != "synthetic":
        raise DataSourceError(
            f"the loop simulates users on a synthetic world's ground truth; the lake holds "
            f"{summary.get('dataset')!r}. Run `reelrank run --dataset synthetic` first."
        )
    return GroundTruth.load(Path(summary["source"]))


@task(name="start-service", cache_policy=NONE)
def start_service_task(config: LoopConfig) -> InProcessRowClient:
    """The service in process on the champion (promoting the latest challenger first when
    there is no champion and the gate is ``always``), with its logs."""
    from reelrank.exceptions import ModelNotFoundError
    from serving.feedback import FeedbackLog
    from serving.impressions import ImpressionLog
    from serving.inprocess import InProcessRowClient
    from serving.service import RecommendationService

    settings = get_settings()
    if config.policy is not None:
        from pydantic import TypeAdapter

        from reelrank.experiments.config import PolicyConfig

        policy = TypeAdapter(PolicyConfig).validate_python(config.policy)
        settings = settings.model_copy(update={"policy": policy})
    service = RecommendationService(settings)
    try:
        service.load()
    except ModelNotFoundError:
        if config.gate != "always" or not _promote_latest_challenger():
            raise
        service.load()
    get_run_logger().info(
        "serving version %s with %s", service.current().info.version, settings.policy.label
    )
    impressions = ImpressionLog(settings.impressions_path, queue_size=1_000_000)
    return InProcessRowClient(service, impressions, FeedbackLog(settings.feedback_path))


def _promote_latest_challenger() -> bool:
    from reelrank.registry.aliases import Alias, set_alias, version_by_alias
    from reelrank.registry.store import configure

    settings = get_settings()
    configure(settings)
    challenger = version_by_alias(settings.model_name, Alias.CHALLENGER)
    if challenger is None:
        return False
    set_alias(settings.model_name, Alias.CHAMPION, str(challenger.version))
    return True


@task(name="simulate-day", cache_policy=NONE)
def simulate_day_task(simulator: Simulator, day: int, users: int) -> dict[str, Any]:
    """One simulated day through the in-process service; what it served and did."""
    from reelrank.loop.metrics import round_metrics
    from reelrank.loop.simulator import visits_frame

    visits = simulator.run_day(day, users)
    shown = visits_frame(visits, simulator.model)
    metrics = round_metrics(shown, simulator.truth.item_popularity)
    versions = sorted({v.model_version for v in visits if v.model_version is not None})
    return {"day": day, "served_version": ",".join(versions), **metrics}


@task(name="gate", cache_policy=NONE)
def gate_task(trained: dict[str, Any], gate: Gate) -> bool:
    """Whether the retrained version is champion now (``always``: make it so)."""
    from reelrank.registry.aliases import Alias, set_alias

    if trained["promoted"] or gate != "always":
        return bool(trained["promoted"])
    set_alias(get_settings().model_name, Alias.CHAMPION, str(trained["version"]))
    get_run_logger().info("gate=always: version %s promoted to champion", trained["version"])
    return True


@task(name="reload", cache_policy=NONE)
def reload_task(service: RecommendationService) -> str:
    """Load the registry's champion into the in-process service; its version."""
    return service.load().info.version


@flow(name="reelrank-loop")
def loop_flow(config_fields: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``rounds`` x (simulate a day -> ingest -> retrain -> gate -> reload)."""
    from reelrank.loop.simulator import Simulator

    config = LoopConfig(**(config_fields or {}))
    truth = load_world_task()
    client = start_service_task(config)
    simulator = Simulator(truth, client, k=config.k, seed=config.seed)
    records: list[dict[str, Any]] = []
    for offset in range(config.rounds):
        started = time.perf_counter()
        served = simulate_day_task(simulator, config.start_day + offset, config.users_per_day)
        ingested = ingest_feedback_task(grace_seconds=0.0)
        if config.features:
            features_flow()
        trained = train_flow({"dataset": "synthetic", **config.train})
        promoted = gate_task(trained, config.gate)
        version = reload_task(client.service)
        records.append(
            {
                "round": offset + 1,
                **served,
                "feedback_accepted": ingested["feedback"]["accepted"],
                "feedback_quarantined": ingested["feedback"]["quarantined"],
                "events_added": ingested["added"]["events_from_feedback"],
                "trained_version": str(trained["version"]),
                "promoted": promoted,
                "next_version": version,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    client.impressions.close()
    return records
