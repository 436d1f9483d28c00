"""JSON bodies of the recommendation routes, written straight from the service's results.

The routes declare their pydantic schemas (``response_model``, the OpenAPI document) and
answer with bytes encoded here by orjson from the service's dataclasses, which skips
building and validating a pydantic model per answer (about a tenth of a request's time).
``tests/serving/test_encoding.py`` proves the bytes validate against the schemas and equal
what the pydantic models would produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from serving.service import Recommendation


def _body(result: Recommendation) -> dict[str, Any]:
    # Keys in the order of ``schemas.RecommendationResponse``; ``RecommendedItem``
    # dataclasses serialise field by field (item_id, score, rank, title).
    return {
        "user_id": result.user_id,
        "items": result.items,
        "model_version": result.model_version,
        "fallback": result.fallback,
        "request_id": result.request_id,
        "experiment": result.experiment,
        "arm": result.arm,
    }


def recommendation_json(result: Recommendation) -> bytes:
    """``schemas.RecommendationResponse`` of one result, as JSON bytes."""
    return orjson.dumps(_body(result))


def batch_json(results: Sequence[Recommendation], model_version: str) -> bytes:
    """``schemas.BatchRecommendationResponse`` of several results, as JSON bytes."""
    return orjson.dumps(
        {"results": [_body(result) for result in results], "model_version": model_version}
    )
