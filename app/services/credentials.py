"""Provider credentials of a project: stored encrypted (Fernet, ``app.services.crypto``), shown as a hint.

``set_provider_credential`` (ADMIN_PROJECT) inserts or replaces the one credential per (project,
provider). ``decrypt_credential`` gives the execution worker the key and base URL.
"""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import ProviderCredential
from app.settings import Settings

from . import crypto
from .access import Action
from .audit import AuditNote, audited
from .errors import ServiceError, invalid, many
from .principal import Principal
from .projects import require_noted

#: Providers that take a key (echo needs none).
PROVIDERS_WITH_KEYS = ("anthropic", "openai")
KEY_MIN = 8
KEY_MAX = 4096
URL_MAX = 2048
HINT_LENGTH = 4


def check_base_url(base_url: str | None, field: list[str]) -> str | None:
    """None, or an http(s) URL with a host (trailing slash dropped); raises INVALID otherwise."""
    if base_url is None:
        return None
    url = base_url.strip()
    if not url:
        return None
    problem = None
    if len(url) > URL_MAX:
        problem = f"is too long ({len(url)} characters; at most {URL_MAX})"
    else:
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError for a port that is not a number or out of range
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok or any(c.isspace() for c in url):
            problem = "must be an http:// or https:// URL with a host, e.g. https://api.openai.com/v1"
    if problem:
        raise invalid(f"baseUrl {problem}.", field)
    return url.rstrip("/")


async def set_provider_credential(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal,
                                  settings: Settings, *, project_id: uuid.UUID | None, provider: str, api_key: str,
                                  base_url: str | None = None) -> ProviderCredential:
    """Store (or replace) the project's key for ``provider``; only the last four characters stay readable."""

    async def run(session: AsyncSession, note: AuditNote) -> ProviderCredential:
        name = (provider or "").strip().lower()
        note.details = {"provider": name[:64]}
        project = await require_noted(session, principal, note, project_id, Action.ADMIN_PROJECT,
                                      field=["input", "projectId"])
        errors: list[ServiceError] = []
        if name not in PROVIDERS_WITH_KEYS:
            errors.append(invalid(f"Unknown provider {provider!r}; credentials are for one of: "
                                  f"{', '.join(PROVIDERS_WITH_KEYS)} (echo needs no key).", ["input", "provider"]))
        key = (api_key or "").strip()
        if len(key) < KEY_MIN:
            errors.append(invalid(f"The API key is too short ({len(key)} characters; at least {KEY_MIN}).",
                                  ["input", "apiKey"]))
        elif len(key) > KEY_MAX:
            errors.append(invalid(f"The API key is too long ({len(key)} characters; at most {KEY_MAX}).",
                                  ["input", "apiKey"]))
        url = None
        try:
            url = check_base_url(base_url, ["input", "baseUrl"])
        except ServiceError as exc:
            errors.append(exc)
        if errors:
            raise many(errors)
        values = dict(project_id=project.id, provider=name, base_url=url,
                      encrypted_key=crypto.encrypt(settings, key), key_hint=key[-HINT_LENGTH:],
                      created_by_id=principal.user_id)
        stmt = insert(ProviderCredential).values(**values).on_conflict_do_update(
            index_elements=[ProviderCredential.project_id, ProviderCredential.provider],
            set_=dict(base_url=url, encrypted_key=values["encrypted_key"], key_hint=values["key_hint"],
                      created_by_id=principal.user_id, updated_at=func.now()),
        ).returning(ProviderCredential.id)
        cred_id = (await session.execute(stmt)).scalar_one()
        cred = (await session.execute(select(ProviderCredential).where(ProviderCredential.id == cred_id)
                                      .execution_options(populate_existing=True))).scalar_one()
        note.resource_type, note.resource_id = "ProviderCredential", cred.id
        note.details.update({"key_hint": cred.key_hint, "base_url": url})
        return cred

    return await audited(sessionmaker, principal, "provider_credential.set", run)


async def decrypt_credential(session: AsyncSession, project_id: uuid.UUID, provider: str,
                             settings: Settings) -> tuple[str, str | None] | None:
    """(api key, base URL) of the project's credential for ``provider``, or None when there is none.

    Raises ``crypto.DecryptionError`` when the stored key cannot be decrypted with the current
    secret key (the message says to set the credential again).
    """
    row = (await session.execute(
        select(ProviderCredential.encrypted_key, ProviderCredential.base_url)
        .where(ProviderCredential.project_id == project_id, ProviderCredential.provider == provider))).first()
    if row is None:
        return None
    return crypto.decrypt(settings, row.encrypted_key), row.base_url
