"""API keys of a project: created and revoked by the project's ADMINs and OWNERs (never by keys).

The secret (``psk_…``) is returned once, at creation; only its SHA-256 and a recognisable prefix
are stored. ``app.services.auth.authenticate`` refuses revoked and expired keys and keeps
``last_used_at`` (throttled); ``app.services.access`` enforces the scopes.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from app.db.models import ApiKey
from app.db.models.enums import ApiScope

from .access import Action, require
from .auth import hash_token, new_api_key, now
from .errors import ServiceError, invalid, many, not_found
from .tx import Tx, service

NAME_MAX = 200


@service("api_key.create")
async def create_api_key(tx: Tx, *,
                         project_id: uuid.UUID | None, name: str, scopes: list[ApiScope | str],
                         expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns (the key row, the secret — shown this once)."""
    session, note, principal = tx.session, tx.note, tx.principal
    project = await require(session, principal, project_id, Action.MANAGE_API_KEYS,
                            field=["input", "projectId"], note=note)
    errors: list[ServiceError] = []
    clean_name = (name or "").strip()
    if not clean_name:
        errors.append(invalid("An API key needs a name (to tell keys apart).", ["input", "name"]))
    elif len(clean_name) > NAME_MAX:
        errors.append(invalid(f"The name is too long ({len(clean_name)} characters; at most {NAME_MAX}).",
                              ["input", "name"]))
    values = [ApiScope(s).value for s in scopes]
    clean_scopes = sorted(set(values), key=values.index)
    if not clean_scopes:
        errors.append(invalid("Give the key at least one scope: " + ", ".join(ApiScope.values()) + ".",
                              ["input", "scopes"]))
    expiry = expires_at
    if expiry is not None:
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=UTC)
        if expiry <= now():
            errors.append(invalid("expiresAt is in the past; give a future time or leave it out for a key "
                                  "that does not expire.", ["input", "expiresAt"]))
    if errors:
        raise many(errors)
    secret, prefix = new_api_key()
    key = ApiKey(project_id=project.id, name=clean_name, prefix=prefix, secret_hash=hash_token(secret),
                 scopes=clean_scopes, created_by_id=principal.user_id, expires_at=expiry)
    session.add(key)
    await session.flush()
    await session.refresh(key)
    note.about(ApiKey, key.id)
    note.details = {"name": clean_name, "scopes": clean_scopes, "prefix": prefix}
    return key, secret


@service("api_key.revoke")
async def revoke_api_key(tx: Tx, *,
                         key_id: uuid.UUID | None) -> ApiKey:
    """Revoke a key at once (idempotent: revoking a revoked key changes nothing)."""
    session, note, principal = tx.session, tx.note, tx.principal
    key = None
    if key_id is not None:
        key = (await session.execute(select(ApiKey).where(ApiKey.id == key_id).with_for_update())
               ).scalar_one_or_none()
    if key is None:
        raise not_found("No API key with this ID.", ["input", "id"])
    await require(session, principal, key.project_id, Action.MANAGE_API_KEYS,
                  field=["input", "id"], what="API key", note=note)
    note.about(ApiKey, key.id)
    note.details = {"name": key.name, "prefix": key.prefix}
    if key.revoked_at is None:
        key.revoked_at = now()
        await session.flush()
    else:
        note.details["already_revoked"] = True
    return key

