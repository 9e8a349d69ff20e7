"""Helpers of the experiment tests: datasets, evaluators, experiments through the GraphQL API."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.executions.util import create_prompt, db_fetch, raw_uuid, signup, tenant

__all__ = ["ERR", "create_prompt", "db_fetch", "raw_uuid", "signup", "tenant", "ok", "create_dataset", "add_items",
           "create_evaluator", "create_experiment", "start", "get_experiment", "wait_status", "EXPERIMENT"]

ERR = "userErrors { code message field }"
FAST = {"extra": {"chunkSize": 10000, "chunkDelayMs": 0}}
EXPERIMENT = """id name status type primaryScore repetitions environment startedAt endedAt
  progress { total pending running completed failed cancelled percent }
  control { id name } winner { id name }
  variants { id name isControl trafficWeight version { id number } stats {
    runs completed failed cancelled successRate avgLatencyMs p95LatencyMs avgCostUsd totalCostUsd
    scores { name n mean stddev ci95Low ci95High ciMethod passRate passRateCi95Low passRateCi95High
             deltaVsControl pValueVsControl adjustedPValue method significant pairs } } }"""


def ok(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body.get("errors")
    payload = body["data"][field]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def create_dataset(gql, token: str, project_id: str, name: str = "qa") -> str:
    body = await gql(f"""mutation($i: CreateDatasetInput!) {{ createDataset(input: $i) {{ dataset {{ id }} {ERR} }} }}""",
                     {"i": {"projectId": project_id, "name": name}}, token=token)
    return ok(body, "createDataset")["dataset"]["id"]


async def add_items(gql, token: str, dataset_id: str, items: list[dict]) -> dict:
    body = await gql(f"""mutation($i: AddDatasetItemsInput!) {{ addDatasetItems(input: $i) {{
        items {{ id }} {ERR} }} }}""", {"i": {"datasetId": dataset_id, "items": items}}, token=token)
    return body["data"]["addDatasetItems"]


async def create_evaluator(gql, token: str, project_id: str, name: str, type_: str, config: Any) -> dict:
    body = await gql(f"""mutation($i: CreateEvaluatorInput!) {{ createEvaluator(input: $i) {{
        evaluator {{ id name type config }} {ERR} }} }}""",
                     {"i": {"projectId": project_id, "name": name, "type": type_, "config": config}}, token=token)
    return body["data"]["createEvaluator"]


async def create_experiment(gql, token: str, project_id: str, **fields: Any) -> dict:
    body = await gql(f"""mutation($i: CreateExperimentInput!) {{ createExperiment(input: $i) {{
        experiment {{ {EXPERIMENT} }} {ERR} }} }}""", {"i": {"projectId": project_id, **fields}}, token=token)
    return body["data"]["createExperiment"]


async def start(gql, token: str, experiment_id: str, mutation: str = "startExperiment") -> dict:
    body = await gql(f"""mutation($i: ExperimentIdInput!) {{ {mutation}(input: $i) {{
        experiment {{ {EXPERIMENT} }} {ERR} }} }}""", {"i": {"id": experiment_id}}, token=token)
    return body["data"][mutation]


async def get_experiment(gql, token: str, experiment_id: str) -> dict:
    body = await gql(f"query($id: ID!) {{ node(id: $id) {{ ... on Experiment {{ {EXPERIMENT} }} }} }}",
                     {"id": experiment_id}, token=token)
    return body["data"]["node"]


async def wait_status(gql, token: str, experiment_id: str, statuses: tuple[str, ...] = ("COMPLETED",),
                      timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        e = await get_experiment(gql, token, experiment_id)
        if e["status"] in statuses:
            return e
        assert time.monotonic() < deadline, f"experiment still {e['status']}: {e['progress']}"
        await asyncio.sleep(0.3)
