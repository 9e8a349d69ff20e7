"""Deployments in GraphQL: Deployment, ResolvedPrompt, Query.resolvePrompt and the deployment mutations.

Also the mixins that give Prompt its ``deployments``/``deploymentHistory`` and PromptVersion its
``deployments``; all of them are batched with per-request loaders (one statement per field and
request shape, whatever the number of prompts). ``resolvePrompt`` is the hot path: one SQL
statement besides authentication (see :mod:`app.services.deployments` for the bucket formula).
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import aliased
from strawberry.types import Info

from app.db import models
from app.services import deployments as service
from app.services.access import Action
from app.services.errors import ServiceError

from ..errors import BadRequest, UserError, user_errors
from ..loaders import BaseLoader, ManyByKeyLoader, VisibleViaPrompt
from ..pagination import Connection, Edge, decode_cursor, encode_cursor
from ..relay import Node, PageInfo, clamp_first, decode_gid_of, encode_gid, register_node

if TYPE_CHECKING:
    from .identity import User
    from .prompts import Prompt, PromptVersion

PromptRef = Annotated["Prompt", strawberry.lazy("app.api.types.prompts")]
VersionRef = Annotated["PromptVersion", strawberry.lazy("app.api.types.prompts")]
UserRef = Annotated["User", strawberry.lazy("app.api.types.identity")]

BUCKET_DOC = (
    "0-99: where the subject key fell in the traffic split; the same key always falls in the same place. "
    "With a subjectKey: int.from_bytes(sha256(f\"{promptId}:{environment}:{subjectKey}\".encode(\"utf-8\"))"
    ".digest()[:8], \"big\") % 100, where promptId is the prompt's UUID (lower-case, hyphenated: the part after "
    "\"Prompt:\" in its base64url-decoded global ID) and environment is the environment used. Without a "
    "subjectKey: random."
)


# ------------------------------------------------------------------ loaders


class ActiveDeploymentsByPrompt(ManyByKeyLoader):
    """Active deployments of each prompt (all environments), in resolve order within an environment."""

    model = models.Deployment
    key_column = "prompt_id"
    order_by = (models.Deployment.environment, models.Deployment.deployed_at, models.PromptVersion.number,
                models.Deployment.id)

    def where(self, stmt):
        return (stmt.join(models.PromptVersion, models.PromptVersion.id == models.Deployment.version_id)
                .where(models.Deployment.retired_at.is_(None)))


class ActiveDeploymentsByVersion(ManyByKeyLoader):
    """Active deployments that serve each version."""

    model = models.Deployment
    key_column = "version_id"
    order_by = (models.Deployment.environment, models.Deployment.id)

    def where(self, stmt):
        return stmt.where(models.Deployment.retired_at.is_(None))


class DeploymentHistoryLoader(BaseLoader):
    """One page of deployment history (newest first) per prompt, for all prompts in one statement.

    Instances are per (limit, after, environment): the prompts of a list share their arguments, so
    their pages come from one window-function query over ``ix_deployments_history``.
    """

    def __init__(self, ctx, limit: int, after: tuple | None, environment: str | None):
        super().__init__(ctx)
        self.limit, self.after, self.environment = limit, after, environment

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[models.Deployment]]:
        D = models.Deployment
        rn = func.row_number().over(partition_by=D.prompt_id, order_by=(D.deployed_at.desc(), D.id.desc()))
        inner = select(D, rn.label("rn")).where(D.prompt_id.in_(list(set(keys))))
        if self.environment is not None:
            inner = inner.where(D.environment == self.environment)
        if self.after is not None:
            inner = inner.where(tuple_(D.deployed_at, D.id) < tuple_(*self.after))
        sub = inner.subquery()
        row = aliased(D, sub)
        stmt = select(row).where(sub.c.rn <= self.limit + 1).order_by(sub.c.prompt_id, sub.c.rn)
        async with self.ctx.db() as session:
            rows = (await session.execute(stmt)).scalars().all()
        grouped: dict[uuid.UUID, list[models.Deployment]] = defaultdict(list)
        for r in rows:
            grouped[r.prompt_id].append(r)
        return [grouped.get(k, []) for k in keys]


class DeploymentCountLoader(BaseLoader):
    """How many deployment rows (active and retired) each prompt has, optionally in one environment."""

    def __init__(self, ctx, environment: str | None):
        super().__init__(ctx)
        self.environment = environment

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[int]:
        D = models.Deployment
        stmt = select(D.prompt_id, func.count()).where(D.prompt_id.in_(list(set(keys)))).group_by(D.prompt_id)
        if self.environment is not None:
            stmt = stmt.where(D.environment == self.environment)
        async with self.ctx.db() as session:
            counts = dict((await session.execute(stmt)).all())
        return [int(counts.get(k, 0)) for k in keys]


# ------------------------------------------------------------------ types


async def _prompt(info: Info, prompt_id: uuid.UUID):
    from .prompts import Prompt

    row = await info.context.by_id(models.Prompt).load(prompt_id)
    return Prompt.from_row(row) if row is not None else None


async def _version(info: Info, version_id: uuid.UUID):
    from .prompts import PromptVersion

    row = await info.context.by_id(models.PromptVersion).load(version_id)
    return PromptVersion.from_row(row) if row is not None else None


async def _user(info: Info, user_id: uuid.UUID | None):
    if user_id is None:
        return None
    from .identity import User

    row = await info.context.by_id(models.User).load(user_id)
    return User.from_row(row) if row is not None else None


@strawberry.type(description="Which version serves an environment, and with what share of its traffic. Kept as "
                             "history: a change retires the old rows.")
class Deployment(Node):
    id: strawberry.ID
    environment: str
    traffic_percentage: int
    is_active: bool
    deployed_at: datetime
    retired_at: datetime | None
    row: strawberry.Private[models.Deployment]

    @classmethod
    def from_row(cls, row: models.Deployment) -> "Deployment":
        return cls(id=strawberry.ID(encode_gid("Deployment", row.id)), environment=row.environment,
                   traffic_percentage=row.traffic_percentage, is_active=row.retired_at is None,
                   deployed_at=row.deployed_at, retired_at=row.retired_at, row=row)

    @strawberry.field
    async def prompt(self, info: Info) -> PromptRef:
        return await _prompt(info, self.row.prompt_id)

    @strawberry.field
    async def version(self, info: Info) -> VersionRef:
        return await _version(info, self.row.version_id)

    @strawberry.field(description="Who made the change that deployed this; null for API keys and deleted users.")
    async def deployed_by(self, info: Info) -> UserRef | None:
        return await _user(info, self.row.deployed_by_id)

    @strawberry.field(description="Who made the change that retired this; null while active, for API keys and "
                                  "for deleted users.")
    async def retired_by(self, info: Info) -> UserRef | None:
        return await _user(info, self.row.retired_by_id)


@register_node("Deployment")
async def _deployment_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[Deployment | None]:
    rows = await info.context.loader(VisibleViaPrompt, models.Deployment).load_many(list(ids))
    return [Deployment.from_row(r) if r is not None else None for r in rows]


@strawberry.type(description="The answer to: which version should this caller use in this environment right now?")
class ResolvedPrompt:
    environment: str
    bucket: int = strawberry.field(description=BUCKET_DOC)
    resolution: strawberry.Private[service.Resolution]

    @strawberry.field
    def prompt(self) -> PromptRef:
        from .prompts import Prompt

        return Prompt.from_row(self.resolution.prompt)

    @strawberry.field
    def version(self) -> VersionRef:
        from .prompts import PromptVersion

        return PromptVersion.from_row(self.resolution.version)

    @strawberry.field(description="The deployment that chose the version; null when the answer fell back to the "
                                  "latest version.")
    def deployment(self) -> Deployment | None:
        d = self.resolution.deployment
        return Deployment.from_row(d) if d is not None else None


# ------------------------------------------------------------------ mixins


@strawberry.type
class PromptDeploymentFields:
    """Prompt.deployments / deploymentHistory (mixed into Prompt)."""

    @strawberry.field(description="Active deployments, optionally of one environment.")
    async def deployments(self, info: Info, environment: str | None = None) -> list[Deployment]:
        rows = await info.context.loader(ActiveDeploymentsByPrompt).load(self.row.id)  # type: ignore[attr-defined]
        return [Deployment.from_row(r) for r in rows if environment is None or r.environment == environment]

    @strawberry.field(description="Every deployment row, active and retired, newest first: who served what and when.")
    async def deployment_history(self, info: Info, first: int | None = 20, after: str | None = None,
                                 environment: str | None = None) -> Connection[Deployment]:
        limit = clamp_first(first)
        cursor = decode_cursor(after) if after else None
        prompt_id = self.row.id  # type: ignore[attr-defined]
        rows = await info.context.loader(DeploymentHistoryLoader, limit, cursor, environment).load(prompt_id)
        has_next = len(rows) > limit
        rows = rows[:limit]
        nodes = [Deployment.from_row(r) for r in rows]
        cursors = [encode_cursor(r.deployed_at, r.id) for r in rows]
        ctx = info.context

        async def count() -> int:
            return await ctx.loader(DeploymentCountLoader, environment).load(prompt_id)

        return Connection(
            edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, nodes)], nodes=nodes,
            page_info=PageInfo(has_next_page=has_next, has_previous_page=after is not None,
                               start_cursor=cursors[0] if cursors else None,
                               end_cursor=cursors[-1] if cursors else None),
            _count=count)


@strawberry.type
class VersionDeploymentFields:
    """PromptVersion.deployments (mixed into PromptVersion)."""

    @strawberry.field(description="Active deployments that serve this version.")
    async def deployments(self, info: Info) -> list[Deployment]:
        rows = await info.context.loader(ActiveDeploymentsByVersion).load(self.row.id)  # type: ignore[attr-defined]
        return [Deployment.from_row(r) for r in rows]


# ------------------------------------------------------------------ query


@strawberry.type
class DeploymentQuery:
    @strawberry.field(description=(
        "The hot path for applications: the version to use for a prompt in an environment. Needs "
        "PROMPTS_READ (or a VIEWER role); null when the project or prompt does not exist or is not visible, and "
        "when nothing is deployed there (unless fallbackToLatest: then the latest version, with deployment "
        "null). `environment` defaults to the project's default environment; an environment the project does "
        "not have is an error (code BAD_USER_INPUT) that lists the project's environments. The bucket: "
        "int.from_bytes(sha256(f\"{promptId}:{environment}:{subjectKey}\".encode()).digest()[:8], \"big\") % 100 "
        "(promptId: the prompt's UUID), random without subjectKey; the environment's active deployments, in "
        "order of version number, take consecutive bucket ranges of their percentage (70/30 of v1 and v2: "
        "buckets 0-69 get v1, 70-99 get v2). Archiving a prompt does not retire its deployments: an ARCHIVED "
        "prompt keeps being served where it is deployed until undeployPrompt (it cannot be deployed anew)."))
    async def resolve_prompt(self, info: Info, project_id: strawberry.ID, name: str, environment: str | None = None,
                             subject_key: str | None = None,
                             fallback_to_latest: bool | None = False) -> ResolvedPrompt | None:
        pid = decode_gid_of(project_id, "Project")
        if pid is None:
            return None
        ctx = info.context
        try:
            async with ctx.db() as session:
                # One read statement is its own consistent snapshot: no BEGIN/ROLLBACK round trips.
                await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                found = await service.resolve_prompt(session, ctx.principal, pid, name, environment=environment,
                                                     subject_key=subject_key,
                                                     fallback_to_latest=bool(fallback_to_latest))
        except service.UnknownEnvironment as exc:
            raise BadRequest(exc.message) from None
        if found is None:
            return None
        # Later fields (e.g. deployment { version { ... } }) find these rows without querying.
        ctx.by_id(models.Prompt).prime(found.prompt.id, found.prompt)
        for _, v in found.active:
            ctx.by_id(models.PromptVersion).prime(v.id, v)
        ctx.by_id(models.PromptVersion).prime(found.version.id, found.version)
        return ResolvedPrompt(environment=found.environment, bucket=found.bucket, resolution=found)


# ------------------------------------------------------------------ mutations


@strawberry.input
class DeployPromptVersionInput:
    version_id: strawberry.ID
    environment: str


@strawberry.input
class TrafficSplitInput:
    version_id: strawberry.ID
    percentage: int


@strawberry.input
class SetTrafficSplitInput:
    prompt_id: strawberry.ID
    environment: str
    splits: list[TrafficSplitInput] = strawberry.field(description="Percentages must add up to 100.")


@strawberry.input
class UndeployPromptInput:
    prompt_id: strawberry.ID
    environment: str


@strawberry.type
class DeploymentPayload:
    deployments: list[Deployment] = strawberry.field(
        description="The active deployments of the environment after the change.")
    user_errors: list[UserError]


async def _payload(call) -> DeploymentPayload:
    try:
        rows = await call
    except ServiceError as exc:
        return DeploymentPayload(deployments=[], user_errors=user_errors(exc))
    return DeploymentPayload(deployments=[Deployment.from_row(r) for r in rows], user_errors=[])


@strawberry.type
class DeploymentMutation:
    @strawberry.mutation(description="Serve one version at 100% of an environment (retiring what served it before). "
                                     "Needs WRITE access to prompts (EDITOR, or an API key with PROMPTS_WRITE).")
    async def deploy_prompt_version(self, info: Info, input: DeployPromptVersionInput) -> DeploymentPayload:
        ctx = info.context
        principal = ctx.require_auth()
        return await _payload(service.deploy_version(
            ctx.sessionmaker, principal, version_id=decode_gid_of(input.version_id, "PromptVersion"),
            environment=input.environment))

    @strawberry.mutation(description="Serve several versions of one prompt in an environment, with percentages "
                                     "(1-100 each, no version twice) that add up to 100; atomic.")
    async def set_traffic_split(self, info: Info, input: SetTrafficSplitInput) -> DeploymentPayload:
        ctx = info.context
        principal = ctx.require_auth()
        splits = [service.SplitItem(decode_gid_of(s.version_id, "PromptVersion"), s.percentage) for s in input.splits]
        return await _payload(service.set_traffic_split(
            ctx.sessionmaker, principal, prompt_id=decode_gid_of(input.prompt_id, "Prompt"),
            environment=input.environment, splits=splits))

    @strawberry.mutation(description="Stop serving a prompt in an environment (its deployments are retired and stay "
                                     "in the history). Nothing deployed there is not an error.")
    async def undeploy_prompt(self, info: Info, input: UndeployPromptInput) -> DeploymentPayload:
        ctx = info.context
        principal = ctx.require_auth()
        return await _payload(service.undeploy(
            ctx.sessionmaker, principal, prompt_id=decode_gid_of(input.prompt_id, "Prompt"),
            environment=input.environment))


QUERIES: list = [DeploymentQuery]
MUTATIONS: list = [DeploymentMutation]
EXTRA_TYPES: list = [Deployment]
