"""Provider credentials of a project: stored encrypted (Fernet, ``app.services.crypto``), shown as a hint.

``set_provider_credential`` (ADMIN_PROJECT) inserts or replaces the one credential per (project,
provider). ``credential_for`` is what a call uses: the project's stored credential, else the
server's (environment), else none; ``provider_statuses`` says for each provider whether a
project can call it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ProviderCredential
from app.providers import PROVIDERS, Credential, ProviderInfo
from app.providers.registry import provider_info
from app.settings import Settings

from . import crypto
from .access import Action, require
from .errors import ServiceError, invalid, many
from .tx import Tx, service

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


@service("provider_credential.set")
async def set_provider_credential(tx: Tx, *, project_id: uuid.UUID | None, provider: str, api_key: str,
                                  base_url: str | None = None) -> ProviderCredential:
    """Store (or replace) the project's key for ``provider``; only the last four characters stay readable."""
    session, note, principal, settings = tx.session, tx.note, tx.principal, tx.settings
    name = (provider or "").strip().lower()
    note.details = {"provider": name[:64]}
    project = await require(session, principal, project_id, Action.ADMIN_PROJECT,
                            field=["input", "projectId"], note=note)
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
    values = {"project_id": project.id, "provider": name, "base_url": url,
              "encrypted_key": crypto.encrypt(settings, key), "key_hint": key[-HINT_LENGTH:],
              "created_by_id": principal.user_id}
    stmt = insert(ProviderCredential).values(**values).on_conflict_do_update(
        index_elements=[ProviderCredential.project_id, ProviderCredential.provider],
        set_={"base_url": url, "encrypted_key": values["encrypted_key"], "key_hint": values["key_hint"],
              "created_by_id": principal.user_id, "updated_at": func.now()},
    ).returning(ProviderCredential.id)
    cred_id = (await session.execute(stmt)).scalar_one()
    cred = (await session.execute(select(ProviderCredential).where(ProviderCredential.id == cred_id)
                                  .execution_options(populate_existing=True))).scalar_one()
    note.about(ProviderCredential, cred.id)
    note.details.update({"key_hint": cred.key_hint, "base_url": url})
    return cred


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


class MissingCredential(Exception):
    """A provider that needs a key has none for this project, stored or in the server's environment."""


#: provider -> (settings attribute of its key, of its base URL, environment variable of its key)
_ENVIRONMENT = {
    "openai": ("openai_api_key", "openai_base_url", "OPENAI_API_KEY"),
    "anthropic": ("anthropic_api_key", "anthropic_base_url", "ANTHROPIC_API_KEY"),
}


def environment_credential(settings: Settings, provider: str) -> Credential | None:
    """The server's own credential for ``provider`` (its key, or a base URL other than the provider's
    default: a local server that needs no key), or None."""
    names = _ENVIRONMENT.get(provider)
    if names is None:
        return None
    api_key, base_url = getattr(settings, names[0]), getattr(settings, names[1])
    default = provider_info(provider).default_base_url
    custom_url = bool(base_url and default and base_url.rstrip("/") != default.rstrip("/"))
    if api_key or custom_url:
        return Credential(api_key=api_key, base_url=base_url)
    return None


async def credential_for(session: AsyncSession, settings: Settings, project_id: uuid.UUID,
                         provider: str) -> Credential:
    """The credential a call of ``provider`` for this project uses: the project's stored one, else the
    server's, else an empty one for providers that need no key.

    Raises ``crypto.DecryptionError`` for a stored key the current secret key cannot decrypt, and
    :class:`MissingCredential` when the provider needs a key and there is none.
    """
    stored = await decrypt_credential(session, project_id, provider, settings)
    if stored is not None:
        api_key, base_url = stored
        return Credential(api_key=api_key, base_url=base_url)
    env = environment_credential(settings, provider)
    if env is not None:
        return env
    if provider_info(provider).requires_api_key:
        variable = _ENVIRONMENT.get(provider, (None, None, "an API key"))[2]
        raise MissingCredential(f"no credential for provider {provider}: store one for this project with "
                                f"setProviderCredential, or set {variable} on the server")
    return Credential()


@dataclass(frozen=True)
class ProviderStatus:
    info: ProviderInfo
    #: Whether the project can call it: a stored credential, one in the server's environment, or none needed.
    configured: bool
    has_stored_credential: bool


async def provider_statuses(session: AsyncSession, settings: Settings, project_id: uuid.UUID) -> list[ProviderStatus]:
    """Every provider, and whether this project can call it (one query)."""
    stored = set((await session.execute(
        select(ProviderCredential.provider).where(ProviderCredential.project_id == project_id))).scalars())
    return [ProviderStatus(info=p, has_stored_credential=p.name in stored,
                           configured=(not p.requires_api_key or p.name in stored
                                       or environment_credential(settings, p.name) is not None))
            for p in PROVIDERS]
