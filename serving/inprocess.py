"""The service in process, as the simulator's :class:`~reelrank.loop.simulator.RowClient`.

No HTTP: a visit calls :meth:`RecommendationService.recommend
<serving.service.RecommendationService.recommend>` with its request id and queues the
served slate on the :class:`~serving.impressions.ImpressionLog`, exactly as the route
does; feedback events are kept and appended to the :class:`~serving.feedback.FeedbackLog`
once per simulated day (one durable write instead of one per visit), after the day's
slates are written. This is the fast path for running many simulated days and seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reelrank.exceptions import ReelRankError
from reelrank.loop.simulator import Row
from serving.feedback import FeedbackLog
from serving.impressions import ImpressionLog
from serving.service import RecommendationService


class InProcessRowClient:
    """Serves the simulator from ``service``, logging like the API."""

    def __init__(
        self, service: RecommendationService, impressions: ImpressionLog, feedback: FeedbackLog
    ) -> None:
        self.service = service
        self.impressions = impressions
        self.feedback = feedback
        self._pending: list[dict[str, Any]] = []

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        result = self.service.recommend(user_id, k, request_id=request_id)
        self.impressions.log(result)
        return Row(
            request_id=request_id,
            user_id=user_id,
            item_ids=tuple(item.item_id for item in result.items),
            model_version=result.model_version,
            arm=result.arm,
        )

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        self._pending.extend(events)

    def close(self) -> None:
        """Write out the impression log's queue and stop its writer."""
        self.impressions.close()

    def end_day(self) -> None:
        """Write the day's slates, then its feedback."""
        if not self.impressions.flush():
            raise ReelRankError("the impression log did not write the day's slates in time.")
        if self._pending:
            self.feedback.append(self._pending)
        self._pending = []
