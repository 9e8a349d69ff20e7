"""Helpers of the subscription tests: tenants and prompts, executePrompt, a worker-like driver, queries."""
from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update

from app.db.models import Execution
from app.db.models.enums import ExecutionEventType, ExecutionStatus, LogLevel
from app.services.execution_events import emit_event, write_log
from tests.helpers import create_project, signup

ERR = "userErrors { code message field }"

EVENT_FIELDS = """type sequence at delta
  execution { id status output startedAt completedAt }
  log { id level message }"""

EXECUTION_UPDATED = f"""subscription($id: ID!) {{ executionUpdated(id: $id) {{ {EVENT_FIELDS} }} }}"""

PROJECT_EXECUTIONS = """subscription($id: ID!, $filter: ExecutionFilter) {
  projectExecutions(projectId: $id, filter: $filter) {
    type sequence at delta execution { id status environment prompt { id } version { id } } log { id } } }"""


def raw_uuid(gid: str) -> uuid.UUID:
    raw = base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode()
    return uuid.UUID(raw.partition(":")[2])


def _ok(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body.get("errors")
    payload = body["data"][field]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def create_prompt(gql, token: str, project_id: str, name: str, template: str) -> tuple[str, str]:
    body = await gql(
        f"""mutation($input: CreatePromptInput!) {{ createPrompt(input: $input) {{
             prompt {{ id }} version {{ id }} {ERR} }} }}""",
        {"input": {"projectId": project_id, "name": name, "content": {"template": template}}}, token=token)
    p = _ok(body, "createPrompt")
    return p["prompt"]["id"], p["version"]["id"]


@dataclass
class Tenant:
    name: str
    token: str
    user_id: str
    project_id: str
    prompt_id: str
    version_id: str


async def tenant(gql, name: str, template: str = "Hello {{name}}!") -> Tenant:
    token, user_id = await signup(gql, name)
    project_id = await create_project(gql, token, f"{name}-proj")
    prompt_id, version_id = await create_prompt(gql, token, project_id, "greeting", template)
    return Tenant(name, token, user_id, project_id, prompt_id, version_id)


async def tenants(gql, *names: str, template: str = "Hello {{name}}!") -> list[Tenant]:
    """Tenants with a project and a prompt each. A superuser signs up first (the first user becomes
    one), so the tenants themselves are ordinary users who see only their own projects."""
    await signup(gql, "root")
    return [await tenant(gql, name, template) for name in names]


async def execute(gql, token: str, prompt_id: str, variables: dict | None = None, **input_: Any) -> str:
    """executePrompt; returns the execution's global id."""
    body = await gql(f"""mutation($input: ExecutePromptInput!) {{ executePrompt(input: $input) {{
        execution {{ id }} {ERR} }} }}""",
                     {"input": {"promptId": prompt_id, "variables": variables or {}, **input_}}, token=token)
    return _ok(body, "executePrompt")["execution"]["id"]


def echo_settings(chunk_size: int, delay_ms: int) -> dict:
    return {"extra": {"chunkSize": chunk_size, "chunkDelayMs": delay_ms}}


class Driver:
    """Changes executions exactly as the engine does (state change and its event in one transaction)."""

    def __init__(self, sessionmaker):
        self.sessionmaker = sessionmaker

    async def _change(self, gid: str, event: str, values: dict | None = None, *, delta: str | None = None,
                      logs: tuple[str, ...] = (), logs_after: tuple[str, ...] = ()) -> None:
        eid = raw_uuid(gid)
        async with self.sessionmaker() as session, session.begin():
            if values:
                await session.execute(update(Execution).where(Execution.id == eid).values(**values)
                                      .execution_options(synchronize_session=False))
            for message in logs:
                await write_log(session, eid, LogLevel.INFO, message)
            await emit_event(session, eid, event, delta=delta)
            for message in logs_after:
                await write_log(session, eid, LogLevel.INFO, message)

    async def start(self, gid: str) -> None:
        await self._change(gid, ExecutionEventType.STARTED.value,
                           {"status": ExecutionStatus.RUNNING.value, "started_at": func.now(), "attempts": 1},
                           logs_after=("claimed by the test driver",))

    async def delta(self, gid: str, text: str) -> None:
        await self._change(gid, ExecutionEventType.OUTPUT_DELTA.value,
                           {"output": func.coalesce(Execution.output, "") + text}, delta=text)

    async def log(self, gid: str, message: str) -> None:
        eid = raw_uuid(gid)
        async with self.sessionmaker() as session, session.begin():
            await write_log(session, eid, LogLevel.INFO, message)

    async def burst(self, gid: str, n: int) -> str:
        """n logs and n output deltas in ONE transaction (2n events committed at once); returns the text."""
        eid = raw_uuid(gid)
        text = "".join(f"<{i}>" for i in range(n))
        async with self.sessionmaker() as session, session.begin():
            for i in range(n):
                await write_log(session, eid, LogLevel.DEBUG, f"burst {i}")
                await session.execute(update(Execution).where(Execution.id == eid)
                                      .values(output=func.coalesce(Execution.output, "") + f"<{i}>")
                                      .execution_options(synchronize_session=False))
                await emit_event(session, eid, ExecutionEventType.OUTPUT_DELTA.value, delta=f"<{i}>")
        return text

    async def finish(self, gid: str, status: str = "COMPLETED", logs: tuple[str, ...] = ("done",)) -> None:
        await self._change(gid, status, {"status": status, "completed_at": func.now(),
                                         "started_at": func.coalesce(Execution.started_at, func.now())}, logs=logs)


def sequences(events: list[dict]) -> list[int]:
    return [e["sequence"] for e in events]


def payloads_to_events(payloads: list[dict], field: str = "executionUpdated") -> list[dict]:
    for p in payloads:
        assert not p.get("errors"), p
    return [p["data"][field] for p in payloads]
