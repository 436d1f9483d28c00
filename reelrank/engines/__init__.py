"""Where the pipeline's parallel work runs: the local engine (this process) or Ray.

The same steps run on both; the engine only decides where:

* ``local`` (default): the flows' tasks in this process, Feast's file offline store and
  in-process materialization, batch inference in chunks. Nothing imports Ray.
* ``ray`` (``REELRANK_ENGINE=ray``, ``REELRANK_RAY_ADDRESS=host:port``): an existing
  cluster (``ray start --head``; ReelRank never starts one). Prefect's ``RayTaskRunner``
  runs one task per cross-validation fold and per feature table (``pipelines/flows.py``),
  Feast's Ray offline store and compute engine do historical retrieval and
  materialization (:mod:`reelrank.features.feast.repo_config`), Ray Data runs batch
  inference (:mod:`reelrank.batch.inference`).

Ray is imported only inside :mod:`reelrank.engines.ray_cluster` functions, and only when
the Ray engine is chosen (``pyproject.toml``'s import contract allows it nowhere else).
"""

from __future__ import annotations

from typing import Final

from reelrank.config import Settings
from reelrank.exceptions import EngineError

LOCAL: Final = "local"
RAY: Final = "ray"

START_A_CLUSTER: Final = (
    "start one with `ray start --head --port 6380 --num-cpus 2 --object-store-memory "
    "500000000 --include-dashboard false` (and `ray start --address HOST:6380` on other "
    "machines), then pass its address"
)


def uses_ray(settings: Settings) -> bool:
    """Whether the Ray engine is chosen."""
    return settings.engine == RAY


def ray_address(settings: Settings) -> str:
    """The cluster address of the Ray engine.

    Raises:
        EngineError: the engine is Ray but no address is set.
    """
    if not settings.ray_address:
        raise EngineError(
            "REELRANK_ENGINE=ray needs a running cluster: set REELRANK_RAY_ADDRESS (or "
            f"--ray-address) to its head's host:port; {START_A_CLUSTER}."
        )
    return settings.ray_address
