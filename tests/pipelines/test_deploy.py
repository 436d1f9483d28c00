"""The nightly deployment: `reelrank deploy` registers the pipeline with a cron schedule."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.xdist_group("prefect")


def test_deploy_registers_a_scheduled_deployment() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from pipelines.flows import DEPLOYMENT_NAME, deploy_pipeline

    async def create_pool() -> None:
        async with get_client() as client:
            await client.create_work_pool(
                WorkPoolCreate(name="reelrank-test", type="process"), overwrite=True
            )

    asyncio.run(create_pool())
    deployment_id = deploy_pipeline("reelrank-test", "0 3 * * *", "synthetic")

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_deployment(deployment_id)

    deployment = asyncio.run(read())
    assert deployment.name == DEPLOYMENT_NAME
    assert deployment.work_pool_name == "reelrank-test"
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
    assert deployment.parameters == {"dataset": "synthetic"}
    assert deployment.entrypoint == "pipelines.flows.reelrank_pipeline"


def test_deploy_registers_the_monitor_with_its_retrain_trigger() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from pipelines.monitor import MONITOR_DEPLOYMENT, deploy_monitor

    async def create_pool() -> None:
        async with get_client() as client:
            await client.create_work_pool(
                WorkPoolCreate(name="reelrank-test", type="process"), overwrite=True
            )

    asyncio.run(create_pool())
    deployment_id = deploy_monitor("reelrank-test", "15 * * * *")

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_deployment(deployment_id)

    deployment = asyncio.run(read())
    assert deployment.name == MONITOR_DEPLOYMENT
    assert [s.schedule.cron for s in deployment.schedules] == ["15 * * * *"]
    assert deployment.parameters == {"window_days": 1.0, "retrain": True}
    assert deployment.entrypoint == "pipelines.monitor.monitor_flow"
