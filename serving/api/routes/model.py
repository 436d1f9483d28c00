"""What is being served."""

from __future__ import annotations

from fastapi import APIRouter

from serving.api.deps import StateDep
from serving.schemas import ErrorResponse, ModelResponse

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelResponse, responses={503: {"model": ErrorResponse}})
async def model_info(state: StateDep) -> ModelResponse:
    """Name, version, alias, training run and its metrics of the served model."""
    info = state.info
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
    )
