"""Query.resolvePrompt: the hot path for applications."""
from __future__ import annotations

import strawberry

from app.db import models
from app.services import deployments as service

from ..core.context import Info
from ..core.errors import ClientError
from ..core.relay import decode_id
from .types import ResolvedPrompt


@strawberry.type
class DeploymentQuery:
    @strawberry.field(description=(
        "The hot path for applications: the version to use for a prompt in an environment. Needs PROMPTS_READ "
        "(or a VIEWER role). Null, without an error, when the project does not exist or you may not read its "
        "prompts: such callers learn nothing. Callers who may read them get null with an error saying why there "
        "is no answer (extensions.code): PROMPT_NOT_FOUND (no prompt of that name), NOT_DEPLOYED (nothing "
        "deployed in the environment, and fallbackToLatest not set: with it, the latest version comes back with "
        "deployment null), or BAD_USER_INPUT for an environment the project does not have (the message lists "
        "its environments). `environment` defaults to the project's default environment. The bucket: "
        "int.from_bytes(sha256(f\"{promptId}:{environment}:{subjectKey}\".encode()).digest()[:8], \"big\") % 100 "
        "(promptId: the prompt's UUID), random without subjectKey; the environment's active deployments, in "
        "order of version number, take consecutive bucket ranges of their percentage (70/30 of v1 and v2: "
        "buckets 0-69 get v1, 70-99 get v2). Archiving a prompt does not retire its deployments: an ARCHIVED "
        "prompt keeps being served where it is deployed until undeployPrompt (it cannot be deployed anew)."))
    async def resolve_prompt(self, info: Info, project_id: strawberry.ID, name: str, environment: str | None = None,
                             subject_key: str | None = None,
                             fallback_to_latest: bool | None = False) -> ResolvedPrompt | None:
        ctx = info.context
        pid = decode_id(project_id, models.Project)
        if pid is None:
            return None
        try:
            found = await service.resolve_prompt(ctx.sessionmaker, ctx.principal, pid, name, environment=environment,
                                                 subject_key=subject_key,
                                                 fallback_to_latest=bool(fallback_to_latest),
                                                 caches=ctx.services.caches if ctx.services is not None else None)
        except service.Unresolved as exc:
            raise ClientError(exc.message, exc.code) from None
        if found is None:
            return None
        # Later fields (e.g. deployment { version { ... } }) find these rows without querying.
        ctx.by_id(models.Prompt).prime(found.prompt.id, found.prompt)
        for _, v in found.active:
            ctx.by_id(models.PromptVersion).prime(v.id, v)
        ctx.by_id(models.PromptVersion).prime(found.version.id, found.version)
        return ResolvedPrompt(environment=found.environment, bucket=found.bucket, resolution=found)
