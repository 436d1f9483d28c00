"""Recommendations for one user or a bounded batch."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from reelrank.models.reranking import RerankConfig
from serving.api.deps import Serving, ServingDep
from serving.encoding import batch_json, recommendation_json
from serving.schemas import (
    DIVERSITY_HELP,
    EXCLUDE_HELP,
    FRESHNESS_HELP,
    LONG_TAIL_HELP,
    MAX_EXCLUDE,
    MAX_GENRE_LENGTH,
    MAX_ID,
    MAX_K,
    BatchRecommendationRequest,
    BatchRecommendationResponse,
    ErrorResponse,
    RecommendationResponse,
)
from serving.service import Recommendation
from serving.timing import server_timing

router = APIRouter(prefix="/recommendations", tags=["recommendations"])

JSON = "application/json"
ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse, "description": "No model loaded (the reason says why)."},
}


StrengthQuery = Annotated[float | None, Query(ge=0.0, le=1.0, allow_inf_nan=False)]


def _rerank(
    serving: Serving,
    diversity: float | None,
    freshness: float | None,
    long_tail: float | None,
    exclude: list[int],
) -> RerankConfig | None:
    """The request's re-ranking: ``REELRANK_RERANK`` with its overrides (None: none)."""
    if diversity is None and freshness is None and long_tail is None and not exclude:
        return None
    default = serving.settings.rerank.config()
    return default.with_strengths(diversity, freshness, long_tail).with_exclusions(exclude)


def _recommend(
    serving: Serving,
    user_id: int,
    k: int,
    exclude_seen: bool,
    genre: str | None,
    request_id: str | None,
    rerank: RerankConfig | None = None,
) -> Recommendation:
    """One slate from the request's deployment (or its state alone), logged as served."""
    service = serving.service
    if serving.deployment is None:
        result = service.recommend(
            user_id, k, exclude_seen, genre, serving.state, request_id=request_id, rerank=rerank
        )
    else:
        result = service.recommend(
            user_id,
            k,
            exclude_seen,
            genre,
            deployment=serving.deployment,
            request_id=request_id,
            rerank=rerank,
        )
    if serving.impressions is not None:
        serving.impressions.log(result)
    serving.metrics.count_slate(result.model_version, result.arm)
    return result


@router.get("/{user_id}", response_model=RecommendationResponse, responses=ERRORS)
async def recommend_one(
    user_id: Annotated[int, Path(ge=0, le=MAX_ID, description="The user id.")],
    serving: ServingDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Items to return (1..100).")] = 10,
    exclude_seen: Annotated[
        bool, Query(description="Leave out items the user already watched.")
    ] = True,
    genre: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_GENRE_LENGTH, description="Only this genre."),
    ] = None,
    diversity: Annotated[StrengthQuery, Query(description=DIVERSITY_HELP)] = None,
    freshness: Annotated[StrengthQuery, Query(description=FRESHNESS_HELP)] = None,
    long_tail: Annotated[StrengthQuery, Query(description=LONG_TAIL_HELP)] = None,
    exclude: Annotated[
        list[Annotated[int, Query(ge=0, le=MAX_ID)]],
        Query(max_length=MAX_EXCLUDE, description=EXCLUDE_HELP + " Repeat: exclude=1&exclude=2."),
    ] = [],  # noqa: B006 (FastAPI copies the default)
) -> Response:
    """Top ``k`` items for ``user_id`` (``fallback`` says when the answer is not personal),
    through the re-ranking stage (``REELRANK_RERANK``, each strength overridable here).

    The served slate is logged under the response's ``request_id`` (``X-Request-ID``)."""
    rerank = _rerank(serving, diversity, freshness, long_tail, exclude)
    result = _recommend(serving, user_id, k, exclude_seen, genre, serving.request_id, rerank)
    started = time.perf_counter()
    body = recommendation_json(result)
    stages = {**result.stages, "serialisation": time.perf_counter() - started}
    serving.metrics.observe_stages(stages)
    serving.metrics.observe_fallback(result.fallback)
    return Response(body, media_type=JSON, headers={"Server-Timing": server_timing(stages)})


@router.post("", response_model=BatchRecommendationResponse, responses=ERRORS)
async def recommend_batch(request: BatchRecommendationRequest, serving: ServingDep) -> Response:
    """Top ``k`` for each of up to ``REELRANK_MAX_BATCH_USERS`` users."""
    state, metrics = serving.state, serving.metrics
    if len(request.user_ids) > serving.settings.max_batch_users:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"batch of {len(request.user_ids)} users exceeds the limit of "
            f"{serving.settings.max_batch_users} (REELRANK_MAX_BATCH_USERS); split the request.",
        )
    rerank = _rerank(
        serving, request.diversity, request.freshness, request.long_tail, request.exclude
    )
    results = [
        _recommend(
            serving,
            user,
            request.k,
            request.exclude_seen,
            request.genre,
            f"{serving.request_id}:{i}",
            rerank,
        )
        for i, user in enumerate(request.user_ids)
    ]
    started = time.perf_counter()
    body = batch_json(results, state.info.version)
    stages: dict[str, float] = {}
    for result in results:
        metrics.observe_fallback(result.fallback)
        for stage, seconds in result.stages.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    stages["serialisation"] = time.perf_counter() - started
    metrics.observe_stages(stages)
    return Response(body, media_type=JSON, headers={"Server-Timing": server_timing(stages)})
