"""The simulator's way to a running service over HTTP: a thin :class:`RowClient` adapter.

``GET /recommendations/{user_id}?k=K`` with the visit's id as ``X-Request-ID`` (the
service echoes a well-formed id and logs the slate under it), and ``POST /feedback`` with
a visit's events. Any answer other than 200 / 201 stops the simulation with the service's
own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import httpx

from reelrank.exceptions import ReelRankError
from reelrank.loop.simulator import Row

TIMEOUT_S: Final = 30.0
MAX_EVENTS_PER_POST: Final = 1000


class ServiceError(ReelRankError):
    """The service refused a request or could not be reached."""


class HttpRowClient:
    """Talks to the API at ``base_url`` (e.g. ``http://127.0.0.1:8000``)."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServiceError(
                f"{method} {self.base_url}{path} failed ({error}); is `reelrank serve` running "
                "there?"
            ) from error
        if response.status_code not in (200, 201):
            raise ServiceError(
                f"{method} {self.base_url}{path} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response

    def recommend(self, user_id: int, k: int, request_id: str) -> Row:
        body = self._call(
            "GET", f"/recommendations/{user_id}", params={"k": k},
            headers={"X-Request-ID": request_id},
        ).json()  # fmt: skip
        return Row(
            request_id=str(body.get("request_id") or request_id),
            user_id=user_id,
            item_ids=tuple(int(item["item_id"]) for item in body["items"]),
            model_version=body.get("model_version"),
            arm=body.get("arm"),
        )

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(events), MAX_EVENTS_PER_POST):
            self._call(
                "POST",
                "/feedback",
                json={"events": list(events[start : start + MAX_EVENTS_PER_POST])},
            )

    def end_day(self) -> None:
        """Nothing to do: every visit's events were posted already."""

    def close(self) -> None:
        self._client.close()
