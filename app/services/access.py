"""Permissions, in one place: a user's project role or an API key's scopes decide; superusers may do anything.

Writers (service functions) call :func:`require` before they touch anything. Readers (the GraphQL
loaders) ask :func:`permits` for a project and an action, and :func:`may_read` whether a row of a
given model is visible, following :data:`READ_RULES` (which say, per model, what reading it needs
and how a row reaches its project). Something the principal may not even see is reported as
NOT_FOUND, so IDs of other tenants reveal nothing; something visible but not allowed is FORBIDDEN.

Nothing here batches or caches: callers pass the principal's role in the project (the API gets
it from a per-request dataloader over :func:`roles_in`).
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.db.models import (
    ApiKey,
    AuditEvent,
    Dataset,
    DatasetItem,
    Deployment,
    Evaluator,
    Execution,
    ExecutionLog,
    Experiment,
    ExperimentRun,
    ExperimentVariant,
    Feedback,
    LlmUsage,
    ModelConfig,
    Project,
    ProjectMember,
    Prompt,
    PromptVersion,
    ProviderCredential,
    Span,
    Trace,
    User,
    Validation,
)
from app.db.models.enums import ROLE_RANK, ApiScope, ProjectRole

from .errors import forbidden, not_found
from .principal import Principal

if TYPE_CHECKING:
    from .audit import AuditNote


@dataclass(frozen=True, eq=False)
class Rule:
    """What an action needs. Compared by identity: Action's values are Rules, and an Enum makes a
    member whose value equals an earlier one's an alias of it (ADMIN_PROJECT was DELETE_PROMPTS)."""

    min_role: ProjectRole
    #: Scopes any one of which lets an API key do it; None: API keys may never do it.
    scopes: frozenset[str] | None


def _scopes(*s: ApiScope) -> frozenset[str]:
    return frozenset(x.value for x in s) | {ApiScope.PROJECT_ADMIN.value}


class Action(enum.Enum):
    #: See the project itself (name, settings): any member, any key of the project.
    VIEW_PROJECT = Rule(ProjectRole.VIEWER, frozenset(s.value for s in ApiScope))
    READ_PROMPTS = Rule(ProjectRole.VIEWER, _scopes(ApiScope.PROMPTS_READ, ApiScope.PROMPTS_WRITE))
    WRITE_PROMPTS = Rule(ProjectRole.EDITOR, _scopes(ApiScope.PROMPTS_WRITE))
    DELETE_PROMPTS = Rule(ProjectRole.ADMIN, _scopes())
    READ_EXECUTIONS = Rule(ProjectRole.VIEWER, _scopes(ApiScope.EXECUTIONS_READ, ApiScope.EXECUTIONS_WRITE))
    WRITE_EXECUTIONS = Rule(ProjectRole.EDITOR, _scopes(ApiScope.EXECUTIONS_WRITE))
    #: Traces and spans (a key that sends spans may read them back, as with prompts and executions).
    READ_TRACES = Rule(ProjectRole.VIEWER, _scopes(ApiScope.TRACES_READ, ApiScope.TRACES_WRITE))
    #: Usage and cost (LlmUsage rows, costReport): what executions and traces cost, so either kind of key.
    READ_USAGE = Rule(ProjectRole.VIEWER, _scopes(ApiScope.EXECUTIONS_READ, ApiScope.EXECUTIONS_WRITE,
                                                  ApiScope.TRACES_READ, ApiScope.TRACES_WRITE))
    #: Sending spans (OTLP at /v1/traces, ingestSpans).
    WRITE_TRACES = Rule(ProjectRole.EDITOR, _scopes(ApiScope.TRACES_WRITE))
    #: Datasets, evaluators, experiments, their runs and statistics.
    READ_EXPERIMENTS = Rule(ProjectRole.VIEWER, _scopes(ApiScope.EXPERIMENTS_READ, ApiScope.EXPERIMENTS_WRITE))
    WRITE_EXPERIMENTS = Rule(ProjectRole.EDITOR, _scopes(ApiScope.EXPERIMENTS_WRITE))
    #: Members, settings, provider credentials, audit log.
    ADMIN_PROJECT = Rule(ProjectRole.ADMIN, _scopes())  # noqa: PIE796 - Rules compare by identity
    #: Creating and revoking API keys: people only (a key must not mint keys).
    MANAGE_API_KEYS = Rule(ProjectRole.ADMIN, None)
    #: Seeing the member list: any member; keys need PROJECT_ADMIN.
    VIEW_MEMBERS = Rule(ProjectRole.VIEWER, _scopes())


# --------------------------------------------------------------------------- decisions


def is_superuser(principal: Principal) -> bool:
    return principal.kind == "user" and principal.is_superuser


def visible(principal: Principal, role: ProjectRole | None, project_id: uuid.UUID) -> bool:
    """Whether the principal may know the project exists at all."""
    if principal.kind == "user":
        return principal.is_superuser or role is not None
    if principal.kind == "api_key":
        return principal.api_key_project_id == project_id
    return False


def allowed(principal: Principal, role: ProjectRole | None, project_id: uuid.UUID, action: Action) -> bool:
    """The decision for a visible project, given the principal's role in it (None when not a member)."""
    rule: Rule = action.value
    if principal.kind == "user":
        if principal.is_superuser:
            return True
        return role is not None and ROLE_RANK[role] >= ROLE_RANK[rule.min_role]
    if principal.kind == "api_key":
        if principal.api_key_project_id != project_id or rule.scopes is None:
            return False
        return bool(principal.scopes & rule.scopes)
    return False


def permits(principal: Principal, role: ProjectRole | None, project_id: uuid.UUID, action: Action) -> bool:
    """Visible and allowed: what readers ask before they show anything of a project."""
    return visible(principal, role, project_id) and allowed(principal, role, project_id, action)


def may_see_email(principal: Principal, user_id: uuid.UUID) -> bool:
    """A user's email: for themself and superusers."""
    return principal.kind == "user" and (principal.is_superuser or principal.user_id == user_id)


def may_list_users(principal: Principal) -> bool:
    return is_superuser(principal)


def has_roles(principal: Principal) -> bool:
    """Only signed-in users have project roles (API keys have scopes; superusers may have none)."""
    return principal.kind == "user"


# --------------------------------------------------------------------------- what readers may see


@dataclass(frozen=True)
class ReadRule:
    """What reading a row of one model needs.

    Exactly one of: ``project`` (the row's attribute holding its project id; a row without a
    project is for superusers only), ``parent`` (the row is visible when the parent row it points
    at through that attribute is), ``public`` (anyone may read it), ``users`` (the rule of users).
    """

    action: Action | None = None
    project: str | None = None
    parent: tuple[type, str] | None = None
    public: bool = False
    users: bool = False


#: Per model: what reading a row needs. The generic "visible rows" loader of the API follows it.
READ_RULES: dict[type, ReadRule] = {
    Project: ReadRule(Action.VIEW_PROJECT, project="id"),
    Prompt: ReadRule(Action.READ_PROMPTS, project="project_id"),
    PromptVersion: ReadRule(parent=(Prompt, "prompt_id")),
    Deployment: ReadRule(parent=(Prompt, "prompt_id")),
    Validation: ReadRule(parent=(Prompt, "prompt_id")),
    Execution: ReadRule(Action.READ_EXECUTIONS, project="project_id"),
    ExecutionLog: ReadRule(parent=(Execution, "execution_id")),
    Feedback: ReadRule(parent=(Execution, "execution_id")),
    Trace: ReadRule(Action.READ_TRACES, project="project_id"),
    #: Spans carry their trace's project (denormalised), so no parent lookup is needed.
    Span: ReadRule(Action.READ_TRACES, project="project_id"),
    LlmUsage: ReadRule(Action.READ_USAGE, project="project_id"),
    Dataset: ReadRule(Action.READ_EXPERIMENTS, project="project_id"),
    DatasetItem: ReadRule(parent=(Dataset, "dataset_id")),
    Evaluator: ReadRule(Action.READ_EXPERIMENTS, project="project_id"),
    Experiment: ReadRule(Action.READ_EXPERIMENTS, project="project_id"),
    ExperimentVariant: ReadRule(parent=(Experiment, "experiment_id")),
    ExperimentRun: ReadRule(parent=(Experiment, "experiment_id")),
    ApiKey: ReadRule(Action.ADMIN_PROJECT, project="project_id"),
    ProviderCredential: ReadRule(Action.ADMIN_PROJECT, project="project_id"),
    #: Project events: the project's admins. Account events (sign-up, log-in): superusers only.
    AuditEvent: ReadRule(Action.ADMIN_PROJECT, project="project_id"),
    #: Prices are no secret.
    ModelConfig: ReadRule(public=True),
    #: Visible to themself, superusers, and members (or keys) of a project they are in.
    User: ReadRule(users=True),
}


def read_rule(model: type) -> ReadRule:
    try:
        return READ_RULES[model]
    except KeyError:
        raise LookupError(f"no read rule for {model.__name__}: add one to app.services.access.READ_RULES") from None


def project_of(row: Any, rule: ReadRule) -> uuid.UUID | None:
    """The project id of a row whose rule names a ``project`` attribute."""
    assert rule.project is not None
    return getattr(row, rule.project)


def may_read(principal: Principal, role: ProjectRole | None, project_id: uuid.UUID | None, rule: ReadRule) -> bool:
    """Whether a row of a ``project`` rule is visible, given the principal's role in its project."""
    assert rule.action is not None
    if project_id is None:
        return is_superuser(principal)
    return permits(principal, role, project_id, rule.action)


def read_denied_message(principal: Principal, model: type) -> str:
    """Why the principal may not read a row of ``model`` it reached (through a relation of something it
    may read), in words for it: the permission reading it needs."""
    rule = read_rule(model)
    while rule.parent is not None:
        rule = read_rule(rule.parent[0])
    if rule.action is None:
        return f"You may not see this {model.__name__}."
    return f"Reading this {model.__name__} is not allowed: " + _denied_message(principal, rule.action)


async def visible_user_ids(session: AsyncSession, principal: Principal, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """The users among ``ids`` that the principal may see (one query; none for superusers and strangers)."""
    wanted = set(ids)
    if not wanted:
        return set()
    if is_superuser(principal):
        return wanted
    if principal.kind == "user":
        mine, theirs = aliased(ProjectMember), aliased(ProjectMember)
        rows = await session.execute(
            select(theirs.user_id).distinct().join(mine, mine.project_id == theirs.project_id)
            .where(mine.user_id == principal.user_id, theirs.user_id.in_(wanted)))
        return {r for (r,) in rows.all()} | ({principal.user_id} & wanted)  # type: ignore[operator]
    if principal.kind == "api_key":
        rows = await session.execute(
            select(ProjectMember.user_id).where(ProjectMember.project_id == principal.api_key_project_id,
                                                ProjectMember.user_id.in_(wanted)))
        return {r for (r,) in rows.all()}
    return set()


def visible_projects(principal: Principal) -> ColumnElement[bool]:
    """A condition on ``Project.id``: the projects the principal may see (for listings)."""
    if principal.kind == "user":
        if principal.is_superuser:
            return true()
        m = aliased(ProjectMember)
        return Project.id.in_(select(m.project_id).where(m.user_id == principal.user_id))
    if principal.kind == "api_key":
        return Project.id == principal.api_key_project_id
    return false()


# --------------------------------------------------------------------------- roles


async def roles_in(session: AsyncSession, principal: Principal,
                   project_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ProjectRole]:
    """The principal's role in each of the projects it is a member of (no query for API keys)."""
    ids = list(set(project_ids))
    if not has_roles(principal) or not ids:
        return {}
    rows = await session.execute(
        select(ProjectMember.project_id, ProjectMember.role)
        .where(ProjectMember.user_id == principal.user_id, ProjectMember.project_id.in_(ids)))
    return {pid: ProjectRole(role) for pid, role in rows.all()}


async def role_in(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> ProjectRole | None:
    return (await roles_in(session, principal, [project_id])).get(project_id)


# --------------------------------------------------------------------------- writers


async def require(session: AsyncSession, principal: Principal, project_id: uuid.UUID | None, action: Action,
                  *, field: list[str] | None = None, what: str = "project", note: AuditNote | None = None,
                  conceal_unless: Action | None = None) -> Project:
    """Load the project and check that the principal may do ``action`` in it.

    Raises NOT_FOUND when the project does not exist or is not visible to the principal (the two
    are not told apart), FORBIDDEN when it is visible but the action is not allowed — unless the
    principal may not even do ``conceal_unless`` there (e.g. read the prompts whose ID it gave):
    then it is NOT_FOUND too, so the thing asked for is not revealed.

    ``note``: the audit note of the running mutation; it is told the project when the project is
    visible to the principal (allowed, or FORBIDDEN), so its admins see refused attempts too.
    """
    project = await session.get(Project, project_id) if project_id is not None else None
    role = await role_in(session, principal, project.id) if project is not None else None
    if project is None or not visible(principal, role, project.id):
        raise not_found(f"No {what} with this ID.", field)
    if not allowed(principal, role, project.id, action):
        if conceal_unless is not None and not allowed(principal, role, project.id, conceal_unless):
            raise not_found(f"No {what} with this ID.", field)
        if note is not None:
            note.project_id = project.id
        raise forbidden(_denied_message(principal, action), field)
    if note is not None:
        note.project_id = project.id
    return project


def _denied_message(principal: Principal, action: Action) -> str:
    rule: Rule = action.value
    if principal.kind == "api_key":
        if rule.scopes is None:
            return "API keys cannot do this; sign in as a project admin."
        return "This API key lacks the scope for this; one of: " + ", ".join(sorted(rule.scopes)) + "."
    return f"Your role in this project does not allow this; it needs {rule.min_role.value} or higher."


def require_user(principal: Principal, message: str = "Only signed-in users can do this.") -> uuid.UUID:
    if principal.kind != "user" or principal.user_id is None:
        raise forbidden(message)
    return principal.user_id


def require_superuser(principal: Principal) -> None:
    if not is_superuser(principal):
        raise forbidden("Only superusers can do this.")


async def roles_of_users(session: AsyncSession, project_id: uuid.UUID,
                         user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ProjectRole]:
    """Each user's role in the project, for those who are members (one query: a live feed re-checking
    all its subscribers at once)."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(ProjectMember.user_id, ProjectMember.role)
        .where(ProjectMember.project_id == project_id, ProjectMember.user_id.in_(ids)))
    return {uid: ProjectRole(role) for uid, role in rows.all()}
