"""What is being served."""

from __future__ import annotations

from fastapi import APIRouter

from serving.api.deps import ServiceDep
from serving.deployment import Deployment
from serving.schemas import ArmResponse, ErrorResponse, ExperimentResponse, ModelResponse

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelResponse, responses={503: {"model": ErrorResponse}})
async def model_info(service: ServiceDep) -> ModelResponse:
    """Name, version, alias, training run and its metrics of the served model (the
    experiment's first arm when one runs), the slate policy and the running experiment."""
    deployment = service.current_deployment()
    info = deployment.primary.state.info
    return ModelResponse(
        name=info.name,
        version=info.version,
        alias=info.alias,
        run_id=info.run_id,
        metrics=info.metrics,
        loaded_at=info.loaded_at,
        trained_until=info.trained_until,
        item_features=info.item_features,
        user_features=info.user_features,
        policy=service.settings.policy.label,
        experiment=_experiment(deployment),
    )


def _experiment(deployment: Deployment) -> ExperimentResponse | None:
    experiment = deployment.experiment
    if experiment is None:
        return None
    split = experiment.split
    served = {arm.name: arm for arm in deployment.arms}
    return ExperimentResponse(
        name=experiment.name,
        design=experiment.design,
        salt=experiment.hash_salt,
        arms=[
            ArmResponse(
                name=arm.name,
                model=arm.model_ref,
                version=served[arm.name].state.info.version,
                share=split[arm.name],
                policy=served[arm.name].policy.label,
            )
            for arm in experiment.arms
        ],
    )
