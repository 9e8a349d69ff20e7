"""Projects (the tenant boundary), their settings and their members.

Who may change whom (members):

* Members are managed by project ADMINs and OWNERs (and superusers, who count as OWNERs), and by
  API keys with the PROJECT_ADMIN scope, which count as ADMINs except that they may neither grant
  nor change the ADMIN role (a key must not make people who can mint keys).
* Only OWNERs may grant the OWNER role, or change or remove an OWNER.
* An ADMIN may add members as ADMIN, EDITOR or VIEWER, and change or remove EDITORs and VIEWERs
  (promoting them up to ADMIN), but may not change or remove another ADMIN — that takes an OWNER.
* Anyone may remove themselves (leave the project) and lower their own role; nobody may raise
  their own role (OWNERs and superusers excepted, since nothing is above them).
* The last OWNER can neither leave, be removed, nor be demoted (CONFLICT): make someone else an
  OWNER first.

Membership changes lock the project row (``FOR UPDATE``) so that two concurrent demotions cannot
both pass the last-owner check.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Deployment, Project, ProjectMember, Prompt, User
from app.db.models.enums import ROLE_RANK, ProjectRole
from app.db.models.projects import DEFAULT_ENVIRONMENT, DEFAULT_ENVIRONMENTS

from .access import Action, require, require_user, role_in
from .errors import ServiceError, conflict, forbidden, invalid, many, not_found
from .identity import find_user_by_login
from .principal import Principal
from .tx import Tx, service
from .unset import UNSET

SLUG_RE = re.compile(r"^[a-z0-9-]{2,64}$")
ENVIRONMENT_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_ENVIRONMENTS = 20
NAME_MAX = 200
DESCRIPTION_MAX = 10_000




@dataclass
class SettingsChange:
    environments: list[str] | Any | None = UNSET
    default_environment: str | Any | None = UNSET
    trace_retention_days: int | Any | None = UNSET
    execution_retention_days: int | Any | None = UNSET


def _check_name(name: str | None, errors: list[ServiceError], *, required: bool) -> str | None:
    if name is None:
        if required:
            errors.append(invalid("A project needs a name.", ["input", "name"]))
        return None
    name = name.strip()
    if not name:
        errors.append(invalid("The name must not be blank.", ["input", "name"]))
    elif len(name) > NAME_MAX:
        errors.append(invalid(f"The name is too long ({len(name)} characters; at most {NAME_MAX}).",
                              ["input", "name"]))
    return name


def _check_description(description: str | None, errors: list[ServiceError]) -> str | None:
    if description is None:
        return None
    description = description.strip() or None
    if description is not None and len(description) > DESCRIPTION_MAX:
        errors.append(invalid(f"The description is too long ({len(description)} characters; at most "
                              f"{DESCRIPTION_MAX}).", ["input", "description"]))
    return description


# ---------------------------------------------------------------------- projects

@service("project.create")
async def create_project(tx: Tx, *,
                         name: str, slug: str, description: str | None = None) -> Project:
    """Any signed-in user may create a project; they become its OWNER. API keys may not."""
    session, note, principal = tx.session, tx.note, tx.principal
    note.details = {"slug": (slug or "")[:64]}
    user_id = require_user(principal, "Only signed-in users can create projects; API keys cannot.")
    errors: list[ServiceError] = []
    clean_name = _check_name(name, errors, required=True)
    clean_slug = (slug or "").strip()
    if not SLUG_RE.match(clean_slug):
        errors.append(invalid("A slug has 2 to 64 characters: lower-case letters, digits and hyphens.",
                              ["input", "slug"]))
    clean_description = _check_description(description, errors)
    if errors:
        raise many(errors)
    taken = conflict(f"The slug {clean_slug!r} is taken; choose another.", ["input", "slug"])
    if (await session.execute(select(Project.id).where(Project.slug == clean_slug))).first():
        raise taken
    project = Project(slug=clean_slug, name=clean_name, description=clean_description,
                      environments=list(DEFAULT_ENVIRONMENTS), default_environment=DEFAULT_ENVIRONMENT,
                      created_by_id=user_id)
    try:
        async with session.begin_nested():
            session.add(project)
            await session.flush()
    except IntegrityError:
        raise taken from None
    session.add(ProjectMember(project_id=project.id, user_id=user_id, role=ProjectRole.OWNER.value,
                              added_by_id=user_id))
    await session.flush()
    await session.refresh(project)
    note.project_id = project.id
    note.about(Project, project.id)
    return project


def _check_settings(project: Project, change: SettingsChange, errors: list[ServiceError]) -> dict[str, Any]:
    """Validate a settings change against the project; returns the column values to write."""
    path = ["input", "settings"]
    values: dict[str, Any] = {}
    envs = list(project.environments)
    if change.environments is not UNSET:
        given = change.environments
        if given is None:
            errors.append(invalid("environments cannot be null; leave it out to keep the current ones.",
                                  [*path, "environments"]))
        else:
            given = [e.strip() for e in given]
            bad = [e for e in given if not ENVIRONMENT_RE.match(e)]
            dupes = sorted({e for e in given if given.count(e) > 1})
            if not given or len(given) > MAX_ENVIRONMENTS:
                errors.append(invalid(f"A project has 1 to {MAX_ENVIRONMENTS} environments; {len(given)} given.",
                                      [*path, "environments"]))
            elif bad:
                errors.append(invalid(
                    f"Invalid environment name(s): {', '.join(repr(b) for b in bad)}; use 1 to 64 characters: "
                    "lower-case letters, digits, _ and -.", [*path, "environments"]))
            elif dupes:
                errors.append(invalid(f"Environment names must be unique; repeated: {', '.join(dupes)}.",
                                      [*path, "environments"]))
            else:
                envs = given
                values["environments"] = given
    if change.default_environment is not UNSET:
        default = change.default_environment
        if default is None:
            errors.append(invalid("defaultEnvironment cannot be null; leave it out to keep the current one.",
                                  [*path, "defaultEnvironment"]))
        elif default not in envs:
            errors.append(invalid(f"defaultEnvironment {default!r} is not one of the environments "
                                  f"({', '.join(envs)}).", [*path, "defaultEnvironment"]))
        else:
            values["default_environment"] = default
    elif "environments" in values and project.default_environment not in envs:
        errors.append(invalid(
            f"The default environment {project.default_environment!r} is not among the new environments; "
            f"set defaultEnvironment to one of: {', '.join(envs)}.", [*path, "defaultEnvironment"]))
    for attr, label in (("trace_retention_days", "traceRetentionDays"),
                        ("execution_retention_days", "executionRetentionDays")):
        days = getattr(change, attr)
        if days is UNSET:
            continue
        if days is not None and days < 1:
            errors.append(invalid(f"{label} must be at least 1 (or null to keep data forever); {days} given.",
                                  [*path, label]))
        else:
            values[attr] = days
    return values


async def _environments_in_use(session: AsyncSession, project_id: uuid.UUID, environments: list[str]) -> dict[str, int]:
    """Active deployments per environment (among ``environments``) of the project's prompts."""
    if not environments:
        return {}
    rows = await session.execute(
        select(Deployment.environment, func.count(func.distinct(Deployment.prompt_id)))
        .join(Prompt, Prompt.id == Deployment.prompt_id)
        .where(Prompt.project_id == project_id, Deployment.retired_at.is_(None),
               Deployment.environment.in_(environments))
        .group_by(Deployment.environment))
    return dict(rows.all())


@service("project.update")
async def update_project(tx: Tx, *,
                         project_id: uuid.UUID | None, name: str | Any | None = UNSET,
                         description: str | Any | None = UNSET,
                         settings: SettingsChange | None = None) -> Project:
    """Change name, description (None clears it) and settings (ADMIN_PROJECT).

    An environment that still has active deployments cannot be removed (undeploy first).
    """
    session, note, principal = tx.session, tx.note, tx.principal
    await require(session, principal, project_id, Action.ADMIN_PROJECT, field=["input", "id"], note=note)
    project = (await session.execute(
        select(Project).where(Project.id == project_id).with_for_update())).scalar_one()
    note.about(Project, project.id)
    errors: list[ServiceError] = []
    values: dict[str, Any] = {}
    if name is not UNSET:
        if name is None:
            errors.append(invalid("The name cannot be null; leave it out to keep it.", ["input", "name"]))
        else:
            values["name"] = _check_name(name, errors, required=True)
    if description is not UNSET:
        values["description"] = _check_description(description, errors)
    if settings is not None:
        values.update(_check_settings(project, settings, errors))
    if errors:
        raise many(errors)
    if "environments" in values:
        removed = [e for e in project.environments if e not in values["environments"]]
        in_use = await _environments_in_use(session, project.id, removed)
        if in_use:
            listed = ", ".join(f"{env!r} ({n} prompt{'s' if n != 1 else ''})" for env, n in sorted(in_use.items()))
            raise invalid(f"Cannot remove environment(s) with active deployments: {listed}; "
                          "undeploy those prompts there first.", ["input", "settings", "environments"])
    changed = {k: v for k, v in values.items() if getattr(project, k) != v}
    note.details = {"changed": sorted(changed)}
    if changed:
        for k, v in changed.items():
            setattr(project, k, v)
        project.updated_at = func.now()
        await session.flush()
        await session.refresh(project)
    return project


# ---------------------------------------------------------------------- members


def _rank(role: ProjectRole | str | None) -> int:
    return ROLE_RANK[ProjectRole(role)] if role is not None else 0


async def _actor_rank(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> int:
    """The acting principal's power over members, as a role rank (superusers rank as OWNER)."""
    if principal.kind == "user":
        if principal.is_superuser:
            return ROLE_RANK[ProjectRole.OWNER]
        return _rank(await role_in(session, principal, project_id))
    if principal.kind == "api_key":
        return ROLE_RANK[ProjectRole.ADMIN]
    return 0


def _check_grant(principal: Principal, actor_rank: int, role: ProjectRole, field: list[str]) -> None:
    """May the actor give someone ``role``?"""
    if role == ProjectRole.OWNER and actor_rank < ROLE_RANK[ProjectRole.OWNER]:
        raise forbidden("Only owners can grant the OWNER role.", field)
    if principal.kind == "api_key" and ROLE_RANK[role] >= ROLE_RANK[ProjectRole.ADMIN]:
        raise forbidden("API keys may only grant the EDITOR and VIEWER roles; ask an owner or admin.", field)


def _check_may_change(principal: Principal, actor_rank: int, target: ProjectMember, field: list[str]) -> None:
    """May the actor change or remove ``target`` (someone other than themself)?"""
    current = ProjectRole(target.role)
    if current == ProjectRole.OWNER and actor_rank < ROLE_RANK[ProjectRole.OWNER]:
        raise forbidden("Only owners can change or remove an owner.", field)
    if current == ProjectRole.ADMIN and (actor_rank < ROLE_RANK[ProjectRole.OWNER] or principal.kind == "api_key"):
        raise forbidden("Only owners can change or remove an admin.", field)


async def _lock_project(session: AsyncSession, project_id: uuid.UUID) -> None:
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())


async def _owner_count(session: AsyncSession, project_id: uuid.UUID) -> int:
    return int((await session.execute(
        select(func.count()).select_from(ProjectMember)
        .where(ProjectMember.project_id == project_id, ProjectMember.role == ProjectRole.OWNER.value))).scalar_one())


async def _member(session: AsyncSession, project_id: uuid.UUID, user_id: uuid.UUID | None) -> ProjectMember | None:
    if user_id is None:
        return None
    return await session.get(ProjectMember, (project_id, user_id))


async def _guard_last_owner(session: AsyncSession, target: ProjectMember, new_role: ProjectRole | None,
                            username: str, field: list[str]) -> None:
    if (target.role == ProjectRole.OWNER.value and new_role != ProjectRole.OWNER
            and await _owner_count(session, target.project_id) <= 1):
        raise conflict(f"{username} is the last owner of this project; make another member OWNER first.", field)


@service("project_member.add")
async def add_member(tx: Tx, *,
                     project_id: uuid.UUID | None, login: str, role: ProjectRole) -> ProjectMember:
    """Add an existing user (by email or username) to the project."""
    session, note, principal = tx.session, tx.note, tx.principal
    note.details = {"login": (login or "")[:320], "role": role.value}
    project = await require(session, principal, project_id, Action.ADMIN_PROJECT,
                            field=["input", "projectId"], note=note)
    await _lock_project(session, project.id)
    rank = await _actor_rank(session, principal, project.id)
    _check_grant(principal, rank, role, ["input", "role"])
    user = await find_user_by_login(session, login)
    if user is None or not user.is_active:
        raise not_found("No user with this email or username.", ["input", "login"])
    note.about(User, user.id)
    existing = await _member(session, project.id, user.id)
    if existing is not None:
        raise conflict(f"{user.username} is already a member ({existing.role}); use updateProjectMember "
                       "to change the role.", ["input", "login"])
    member = ProjectMember(project_id=project.id, user_id=user.id, role=role.value,
                           added_by_id=principal.user_id)
    session.add(member)
    await session.flush()
    await session.refresh(member)
    return member


async def _change_of_member(tx: Tx, project_id: uuid.UUID | None,
                            user_id: uuid.UUID | None) -> tuple[Project, ProjectMember, bool]:
    """(project, the member changed — locked with the project, whether it is the caller) for an update or
    removal. Anyone may change themself within the rules; changing others needs ADMIN_PROJECT."""
    session, principal = tx.session, tx.principal
    is_self = principal.kind == "user" and user_id is not None and user_id == principal.user_id
    project = await require(session, principal, project_id,
                            Action.VIEW_PROJECT if is_self else Action.ADMIN_PROJECT,
                            field=["input", "projectId"], note=tx.note)
    await _lock_project(session, project.id)
    target = await _member(session, project.id, user_id)
    if target is None:
        raise not_found("No member with this user ID in this project.", ["input", "userId"])
    tx.note.about(User, target.user_id)
    return project, target, is_self


@service("project_member.update")
async def update_member(tx: Tx, *,
                        project_id: uuid.UUID | None, user_id: uuid.UUID | None, role: ProjectRole) -> ProjectMember:
    """Change a member's role (see the module docstring for who may change whom)."""
    session, note, principal = tx.session, tx.note, tx.principal
    note.details = {"role": role.value}
    project, target, is_self = await _change_of_member(tx, project_id, user_id)
    note.details["from"] = target.role
    rank = await _actor_rank(session, principal, project.id)
    if is_self:
        if ROLE_RANK[role] > _rank(target.role) and rank < ROLE_RANK[ProjectRole.OWNER]:
            raise forbidden("You cannot raise your own role.", ["input", "role"])
    else:
        _check_may_change(principal, rank, target, ["input", "userId"])
        _check_grant(principal, rank, role, ["input", "role"])
    username = (await session.get_one(User, target.user_id)).username
    await _guard_last_owner(session, target, role, username, ["input", "role"])
    target.role = role.value
    await session.flush()
    return target


@service("project_member.remove")
async def remove_member(tx: Tx, *,
                        project_id: uuid.UUID | None, user_id: uuid.UUID | None) -> ProjectMember:
    """Remove a member (or leave, when it is oneself). Returns the removed membership as it was."""
    session, note, principal = tx.session, tx.note, tx.principal
    project, target, is_self = await _change_of_member(tx, project_id, user_id)
    note.details = {"role": target.role, "self": is_self}
    if not is_self:
        _check_may_change(principal, await _actor_rank(session, principal, project.id), target,
                          ["input", "userId"])
    username = (await session.get_one(User, target.user_id)).username
    await _guard_last_owner(session, target, None, username, ["input", "userId"])
    await session.delete(target)
    await session.flush()
    return target

