"""Deployments: which versions of a prompt serve an environment, and with what share of its traffic.

Writes
------
``deploy_version`` serves one version at 100 %; ``set_traffic_split`` serves several versions of
one prompt with percentages that add up to 100; ``undeploy`` stops serving the environment. A
change never edits a row: it retires the environment's active rows (``retired_at``,
``retired_by_id``) and inserts new ones, all in one transaction, so the table is the history of
who served what and when. Concurrent changes of one prompt are serialised by locking the prompt
row (``SELECT … FOR UPDATE``); timestamps are read from the database clock *after* the lock is
held, so a change never retires rows "before" they were deployed.

While an A/B test on live traffic runs (``app.services.experiments``), its variants' weights are the
split of its prompt in its environment: the three writes refuse to change that split (CONFLICT,
naming the experiment); the experiment puts back the split it replaced when it ends.

Resolving (the hot path)
------------------------
``resolve_prompt`` answers "which version should this caller use in this environment right now?"
from the process's resolve cache (``app.services.hot``: no statement while nothing changed), or else
with ONE SQL statement: the project (its environments, default environment and — for users — the
caller's role), the prompt by name, its active deployments in the environment (through the partial
index ``uq_deployments_active_version``) and their versions, plus the latest version when asked to fall back.

Buckets. With a subject key, the bucket (0..99) is::

    int.from_bytes(sha256(f"{prompt_id}:{environment}:{subject_key}".encode("utf-8")).digest()[:8], "big") % 100

where ``prompt_id`` is the prompt's UUID in its canonical lower-case hyphenated form (the part
after ``Prompt:`` in its decoded global ID) and ``environment`` is the environment actually used
(after defaulting). Without a subject key the bucket is random (``secrets.randbelow(100)``).
The environment's active deployments are walked in order of (deployed_at, version number, id) —
all rows of one split share deployed_at, so in practice by version number — adding up their
percentages; the first deployment whose cumulative percentage exceeds the bucket is chosen. A
70/30 split of versions 1 and 2 gives buckets 0..69 to version 1 and 70..99 to version 2. The
same subject therefore gets the same version while the split is unchanged, and when the split
changes only the buckets whose range moved change version.
"""
from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.db.models import Deployment, Experiment, Project, ProjectMember, Prompt, PromptVersion
from app.db.models.enums import ExperimentStatus, ProjectRole, PromptStatus

from .access import Action, permits, require
from .audit import AuditNote
from .errors import ServiceError, conflict, invalid, many, not_found
from .hot import HotCaches
from .principal import Principal
from .tx import Tx, service

#: A split has at most this many versions (each needs at least 1 %).
MAX_SPLITS = 100


# ------------------------------------------------------------------ buckets


def bucket_for(prompt_id: uuid.UUID | str, environment: str, subject_key: str | None) -> int:
    """The traffic bucket 0..99 of a subject: stable for a subject key, random without one."""
    if subject_key is None:
        return secrets.randbelow(100)
    digest = hashlib.sha256(f"{prompt_id}:{environment}:{subject_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def choose(deployments: Sequence[Deployment], bucket: int) -> Deployment | None:
    """The deployment whose cumulative percentage range holds ``bucket``.

    ``deployments`` must be the environment's active rows in resolve order (see
    :func:`resolve_order`). Their percentages add up to 100; should they not (a hand-edited
    database), buckets past the total go to the last deployment.
    """
    cumulative = 0
    for d in deployments:
        cumulative += d.traffic_percentage
        if bucket < cumulative:
            return d
    return deployments[-1] if deployments else None


def resolve_order(pairs: Sequence[tuple[Deployment, PromptVersion]]) -> list[tuple[Deployment, PromptVersion]]:
    """Sort (deployment, version) pairs in the order buckets are assigned."""
    return sorted(pairs, key=lambda p: (p[0].deployed_at, p[1].number, str(p[0].id)))


async def active_deployments(session: AsyncSession, prompt_id: uuid.UUID,
                             environment: str) -> list[tuple[Deployment, PromptVersion]]:
    """The active (deployment, version) pairs of one prompt and environment, in resolve order.

    One statement, using ``uq_deployments_active_version``. For callers that already hold the prompt
    (e.g. executing a prompt by environment); access checks are theirs.
    """
    rows = (await session.execute(
        select(Deployment, PromptVersion)
        .join(PromptVersion, PromptVersion.id == Deployment.version_id)
        .where(Deployment.prompt_id == prompt_id, Deployment.environment == environment,
               Deployment.retired_at.is_(None))
        .order_by(Deployment.deployed_at, PromptVersion.number, Deployment.id))).all()
    return [(d, v) for d, v in rows]


# ------------------------------------------------------------------ resolving


class Unresolved(Exception):
    """Why ``resolve_prompt`` has no answer; raised only to callers who may read the project's prompts
    (everyone else gets None and learns nothing). ``code`` goes to the GraphQL error's extensions."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _unknown_environment(environment: str, environments: Sequence[str]) -> Unresolved:
    return Unresolved("BAD_USER_INPUT", f"Unknown environment {environment!r}; this project's environments are: "
                                        f"{', '.join(environments)}.")


@dataclass
class Resolution:
    prompt: Prompt
    version: PromptVersion
    #: None when the answer fell back to the latest version.
    deployment: Deployment | None
    environment: str
    bucket: int
    #: Every active (deployment, version) of the environment, in resolve order.
    active: list[tuple[Deployment, PromptVersion]]


@functools.cache
def _resolve_statement(by_user: bool, env_given: bool, fallback: bool):
    """The one resolve statement, built once per shape (then only its parameters change).

    Columns: project environments, default environment, the caller's role (users only), then the
    Prompt, Deployment and PromptVersion entities, and the latest version when ``fallback``. One
    row per active deployment (or one row with NULLs when there is none or no such prompt); no row
    when the project does not exist. Parameters: project_id, name, environment (when
    ``env_given``), user_id (when ``by_user``).
    """
    version = aliased(PromptVersion, name="v")
    role_col: ColumnElement[Any]
    if by_user:
        role_col = (select(ProjectMember.role)
                    .where(ProjectMember.project_id == Project.id,
                           ProjectMember.user_id == bindparam("user_id", type_=ProjectMember.user_id.type))
                    .scalar_subquery())
    else:
        role_col = null()
    env_col = bindparam("environment", type_=Deployment.environment.type) if env_given \
        else Project.default_environment
    stmt = (select(Project.environments, Project.default_environment, role_col.label("role"), Prompt, Deployment,
                   version)
            .select_from(Project)
            .outerjoin(Prompt, and_(Prompt.project_id == Project.id,
                                    Prompt.name == bindparam("name", type_=Prompt.name.type)))
            .outerjoin(Deployment, and_(Deployment.prompt_id == Prompt.id, Deployment.environment == env_col,
                                        Deployment.retired_at.is_(None)))
            .outerjoin(version, version.id == Deployment.version_id))
    if fallback:
        latest = aliased(PromptVersion, name="lv")
        stmt = stmt.add_columns(latest).outerjoin(
            latest, and_(Deployment.id.is_(None), latest.prompt_id == Prompt.id,
                         latest.number == Prompt.latest_version))
    return (stmt.where(Project.id == bindparam("project_id", type_=Project.id.type))
            .order_by(Deployment.deployed_at, version.number, Deployment.id))


@dataclass(frozen=True)
class ResolveData:
    """What answering resolvePrompt for (project, name, environment, fallback) needs, whoever asks: what
    the resolve cache (app.services.hot) keeps. Read-only once made (shared by concurrent requests)."""

    environments: list[str]
    default_environment: str
    #: None: the project has no prompt of that name.
    prompt: Prompt | None
    #: Every active (deployment, version) of the environment, in resolve order.
    active: list[tuple[Deployment, PromptVersion]]
    #: The latest version, read when asked to fall back and nothing is deployed.
    latest: PromptVersion | None


#: A role cache entry for "not a member" (None means "not cached").
_NO_ROLE = ""


async def _read(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, project_id: uuid.UUID,
                name: str, environment: str | None, fallback: bool) -> tuple[ResolveData, ProjectRole | None] | None:
    """The one resolve statement (None: no such project), with the caller's role for users."""
    by_user = principal.kind == "user" and principal.user_id is not None
    params: dict = {"project_id": project_id, "name": name}
    if environment is not None:
        params["environment"] = environment
    if by_user:
        params["user_id"] = principal.user_id
    stmt = _resolve_statement(by_user, environment is not None, fallback)
    async with sessionmaker() as session:
        # One read statement is its own consistent snapshot: no BEGIN/ROLLBACK round trips.
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        rows = (await session.execute(stmt, params)).all()
    if not rows:
        return None
    first = rows[0]
    role = ProjectRole(first[2]) if first[2] else None
    active = [(r[4], r[5]) for r in rows if r[4] is not None and r[5] is not None]
    latest = first[6] if fallback and not active else None
    return ResolveData(list(first[0]), first[1], first[3], active, latest), role


async def resolve_prompt(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, project_id: uuid.UUID,
                         name: str, *, environment: str | None = None, subject_key: str | None = None,
                         fallback_to_latest: bool = False, caches: HotCaches | None = None) -> Resolution | None:
    """The version ``principal`` should use for prompt ``name`` of a project in an environment.

    None when the project does not exist or the caller may not read its prompts (READ_PROMPTS):
    such callers learn nothing. Callers who may read them get :class:`Unresolved` instead, saying
    why there is no answer: an environment the project does not have (BAD_USER_INPUT), no prompt
    of that name (PROMPT_NOT_FOUND), or nothing deployed in the environment while
    ``fallback_to_latest`` is false (NOT_DEPLOYED). See the module docstring for the buckets.

    At most one SQL statement; none when ``caches`` (app.services.hot) hold the answer's data and,
    for users, their role in the project (both are dropped by NOTIFY when a change commits).
    """
    if not principal.is_authenticated:
        return None
    if principal.kind == "api_key" and (principal.api_key_project_id != project_id
                                        or not permits(principal, None, project_id, Action.READ_PROMPTS)):
        return None
    fallback = bool(fallback_to_latest)
    key = (project_id, name, environment, fallback)
    role_key = (principal.user_id, project_id)
    by_user = principal.kind == "user" and principal.user_id is not None
    data: ResolveData | None = None
    role: ProjectRole | None = None
    if caches is not None:
        data = caches.get(caches.resolves, key)
        if data is not None and by_user and not principal.is_superuser:
            cached_role = caches.get(caches.roles, role_key)
            if cached_role is None:
                data = None  # one statement reads both
            else:
                role = ProjectRole(cached_role) if cached_role else None
    if data is None:
        generation = caches.generation if caches is not None else 0
        found = await _read(sessionmaker, principal, project_id, name, environment, fallback)
        if found is None:
            return None
        data, role = found
        if caches is not None:
            caches.put(caches.resolves, key, data, generation)
            if by_user:
                caches.put(caches.roles, role_key, role.value if role else _NO_ROLE, generation)
    return _answer(principal, role, project_id, name, data, environment, subject_key, fallback)


def _answer(principal: Principal, role: ProjectRole | None, project_id: uuid.UUID, name: str, data: ResolveData,
            environment: str | None, subject_key: str | None, fallback: bool) -> Resolution | None:
    if not permits(principal, role, project_id, Action.READ_PROMPTS):
        return None
    env = environment if environment is not None else data.default_environment
    if env not in data.environments:
        raise _unknown_environment(env, data.environments)
    prompt = data.prompt
    if prompt is None:
        raise Unresolved("PROMPT_NOT_FOUND", f"This project has no prompt named {name!r}.")
    active = data.active
    bucket = bucket_for(prompt.id, env, subject_key)
    chosen = choose([d for d, _ in active], bucket)
    if chosen is not None:
        chosen_version = next(v for d, v in active if d is chosen)
        return Resolution(prompt, chosen_version, chosen, env, bucket, active)
    if not fallback or data.latest is None:
        raise Unresolved("NOT_DEPLOYED", f"Nothing of prompt {name!r} is deployed in environment {env!r}; deploy "
                                         "a version there, or ask with fallbackToLatest: true for the latest "
                                         "version.")
    return Resolution(prompt, data.latest, None, env, bucket, active)


# ------------------------------------------------------------------ changing deployments


@dataclass(frozen=True)
class SplitItem:
    """One entry of a traffic split as given by the caller (None: an ID that could not be read)."""

    version_id: uuid.UUID | None
    percentage: int


async def owning_experiment(session: AsyncSession, prompt_id: uuid.UUID, environment: str) -> Experiment | None:
    """The running experiment (a live A/B test) that owns the prompt's traffic split in ``environment``, if any."""
    return (await session.execute(
        select(Experiment).where(Experiment.prompt_id == prompt_id, Experiment.environment == environment,
                                 Experiment.status == ExperimentStatus.RUNNING.value))).scalar_one_or_none()


async def _refuse_if_owned(session: AsyncSession, prompt: Prompt, environment: str) -> None:
    """While a live A/B test runs, its variants' weights are the split: changing it by hand is refused."""
    owner = await owning_experiment(session, prompt.id, environment)
    if owner is not None:
        raise conflict(f"Experiment {owner.name!r} (an A/B test on live traffic) owns the traffic split of prompt "
                       f"{prompt.name!r} in {environment} while it runs; end it first (completeExperiment, which "
                       "can promote the winner, or cancelExperiment), and the split it replaced comes back.",
                       ["input", "environment"])


async def _prompt_to_change(tx: Tx, prompt: Prompt | None, field: list[str], what: str) -> tuple[Prompt, Project]:
    """The prompt (locked: changes of one prompt's deployments queue up here) and its project (locked FOR
    SHARE), after the WRITE_PROMPTS check; the audit note is told the project when it is visible, so
    denials are in the project's audit log too."""
    if prompt is None:
        raise not_found(f"No {what} with this ID.", field)
    project = await require(tx.session, tx.principal, prompt.project_id, Action.WRITE_PROMPTS, field=field,
                            what=what, note=tx.note)
    tx.note.about(Prompt, prompt.id)
    return await _lock_prompt(tx.session, prompt.id), await _share_lock_project(tx.session, project)


async def _lock_prompt(session: AsyncSession, prompt_id: uuid.UUID) -> Prompt:
    """Lock the prompt row for the rest of the transaction; concurrent changes of it wait here."""
    return (await session.execute(
        select(Prompt).where(Prompt.id == prompt_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one()


def _check_deployable(prompt: Prompt, field: list[str]) -> None:
    if prompt.status == PromptStatus.ARCHIVED.value:
        raise conflict(f"Prompt {prompt.name!r} is archived, and archived prompts cannot be deployed; restore it "
                       "first (updatePrompt with status DRAFT or PUBLISHED).", field)


async def _share_lock_project(session: AsyncSession, project: Project) -> Project:
    """Re-read the project under FOR SHARE: an updateProject removing an environment (which locks the
    row FOR UPDATE and refuses while the environment has active deployments) cannot interleave with a
    deployment into that environment."""
    return (await session.execute(
        select(Project).where(Project.id == project.id).with_for_update(read=True)
        .execution_options(populate_existing=True))).scalar_one()


def _environment_error(project: Project, environment: str, field: list[str]) -> ServiceError | None:
    if environment in project.environments:
        return None
    return invalid(f"Unknown environment {environment!r}; this project's environments are: "
                   f"{', '.join(project.environments)}.", field)


def _describe(pairs: Sequence[tuple[Deployment, PromptVersion]]) -> list[dict]:
    return [{"version": v.number, "versionId": str(v.id), "percentage": d.traffic_percentage} for d, v in pairs]


async def _replace(session: AsyncSession, principal: Principal, note: AuditNote, prompt: Prompt, environment: str,
                   wanted: Sequence[tuple[PromptVersion, int]]) -> list[Deployment]:
    """Retire the environment's active rows and insert ``wanted`` (nothing changes if it is the same split)."""
    current = await active_deployments(session, prompt.id, environment)
    before = _describe(current)
    note.details.update({"environment": environment, "promptName": prompt.name, "previous": before})
    same = (sorted((v.id, d.traffic_percentage) for d, v in current)
            == sorted((v.id, pct) for v, pct in wanted))
    if same:
        note.details.update({"versions": [v.number for v, _ in wanted],
                             "percentages": [pct for _, pct in wanted], "unchanged": True})
        return [d for d, _ in current]
    now: datetime = (await session.execute(select(func.clock_timestamp()))).scalar_one()
    if current:
        await session.execute(
            update(Deployment)
            .where(Deployment.id.in_([d.id for d, _ in current]))
            .values(retired_at=now, retired_by_id=principal.user_id))
    rows = [Deployment(prompt_id=prompt.id, version_id=v.id, environment=environment, traffic_percentage=pct,
                       deployed_by_id=principal.user_id, deployed_at=now, retired_at=None, retired_by_id=None)
            for v, pct in sorted(wanted, key=lambda item: item[0].number)]
    session.add_all(rows)
    await session.flush()
    note.details.update({"versions": [v.number for v, _ in wanted], "percentages": [pct for _, pct in wanted],
                         "retired": len(current)})
    return rows


async def _versions_by_id(session: AsyncSession,
                          ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[PromptVersion, Prompt]]:
    if not ids:
        return {}
    rows = (await session.execute(
        select(PromptVersion, Prompt).join(Prompt, Prompt.id == PromptVersion.prompt_id)
        .where(PromptVersion.id.in_(list(set(ids)))))).all()
    return {v.id: (v, p) for v, p in rows}


@service("deployment.set")
async def deploy_version(tx: Tx, *,
                         version_id: uuid.UUID | None, environment: str) -> list[Deployment]:
    """Serve one version at 100 % of an environment; returns the environment's active deployments."""
    session, note, principal = tx.session, tx.note, tx.principal
    field = ["input", "versionId"]
    found = (await _versions_by_id(session, [version_id])) if version_id else {}
    if version_id is None or version_id not in found:
        raise not_found("No version with this ID.", field)
    version, owner = found[version_id]
    prompt, project = await _prompt_to_change(tx, owner, field, "version")
    _check_deployable(prompt, field)
    error = _environment_error(project, environment, ["input", "environment"])
    if error:
        raise error
    await _refuse_if_owned(session, prompt, environment)
    return await _replace(session, principal, note, prompt, environment, [(version, 100)])


@service("deployment.split")
async def set_traffic_split(tx: Tx, *,
                            prompt_id: uuid.UUID | None, environment: str,
                            splits: Sequence[SplitItem]) -> list[Deployment]:
    """Serve several versions of one prompt with percentages adding up to 100, atomically.

    Every problem with the input is reported at once (unknown environment, percentages out of
    1..100 or not adding up to 100, duplicate versions, versions of another prompt).
    """
    session, note, principal = tx.session, tx.note, tx.principal
    field = ["input", "promptId"]
    prompt, project = await _prompt_to_change(tx, await session.get(Prompt, prompt_id) if prompt_id else None,
                                              field, "prompt")
    _check_deployable(prompt, field)
    errors: list[ServiceError] = []
    env_error = _environment_error(project, environment, ["input", "environment"])
    if env_error:
        errors.append(env_error)
    if not splits:
        errors.append(invalid("Give at least one version and its percentage; to stop serving the environment "
                              "use undeployPrompt.", ["input", "splits"]))
    elif len(splits) > MAX_SPLITS:
        errors.append(invalid(f"A split has at most {MAX_SPLITS} versions; {len(splits)} given.",
                              ["input", "splits"]))
    if not splits or len(splits) > MAX_SPLITS:
        raise many(errors)
    found = await _versions_by_id(session, [s.version_id for s in splits if s.version_id])
    wanted: list[tuple[PromptVersion, int]] = []
    seen: dict[uuid.UUID, int] = {}
    for i, item in enumerate(splits):
        at = ["input", "splits", str(i)]
        if not 1 <= item.percentage <= 100:
            errors.append(invalid(f"percentage must be between 1 and 100; got {item.percentage}.",
                                  [*at, "percentage"]))
        version, owner = found.get(item.version_id, (None, None)) if item.version_id else (None, None)
        if version is None or owner is None or owner.project_id != project.id:
            errors.append(not_found("No version with this ID.", [*at, "versionId"]))
            continue
        if owner.id != prompt.id:
            errors.append(invalid(f"This is version {version.number} of prompt {owner.name!r}, not of "
                                  f"{prompt.name!r}; a traffic split serves versions of one prompt.",
                                  [*at, "versionId"]))
            continue
        if version.id in seen:
            errors.append(invalid(f"Version {version.number} appears more than once (entries {seen[version.id]} "
                                  f"and {i}); list each version once.", [*at, "versionId"]))
            continue
        seen[version.id] = i
        wanted.append((version, item.percentage))
    total = sum(s.percentage for s in splits)
    if total != 100:
        errors.append(invalid(f"The percentages add up to {total}; they must add up to 100.",
                              ["input", "splits"]))
    if errors:
        raise many(errors)
    await _refuse_if_owned(session, prompt, environment)
    return await _replace(session, principal, note, prompt, environment, wanted)


@service("deployment.undeploy")
async def undeploy(tx: Tx, *,
                   prompt_id: uuid.UUID | None, environment: str) -> list[Deployment]:
    """Stop serving a prompt in an environment: retire its active rows. Returns [] (nothing is active after).

    Undeploying an environment where nothing is deployed is not an error (nothing changes).
    Archived prompts may be undeployed.
    """
    session, note, principal = tx.session, tx.note, tx.principal
    field = ["input", "promptId"]
    prompt, project = await _prompt_to_change(tx, await session.get(Prompt, prompt_id) if prompt_id else None,
                                              field, "prompt")
    error = _environment_error(project, environment, ["input", "environment"])
    if error:
        raise error
    await _refuse_if_owned(session, prompt, environment)
    current = await active_deployments(session, prompt.id, environment)
    note.details.update({"environment": environment, "promptName": prompt.name, "previous": _describe(current),
                         "retired": len(current)})
    if current:
        now = (await session.execute(select(func.clock_timestamp()))).scalar_one()
        await session.execute(
            update(Deployment).where(Deployment.id.in_([d.id for d, _ in current]))
            .values(retired_at=now, retired_by_id=principal.user_id))
    return []


# ------------------------------------------------------------------ for live A/B tests (app.services.experiments)

#: Lock a prompt's row: deployment changes of the prompt queue up behind it.
lock_prompt = _lock_prompt
#: Re-read a project FOR SHARE (its environments cannot change under a deployment).
share_lock_project = _share_lock_project
#: Replace an environment's active split by another (the experiment's, or the one it replaced).
replace_split = _replace
describe_split = _describe
