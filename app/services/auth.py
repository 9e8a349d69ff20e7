"""Bearer tokens: session tokens (``pss_…``) and API keys (``psk_…``), both stored only as SHA-256.

Tokens are 256-bit random values, so a fast hash is the right tool for lookups (argon2 is for
low-entropy passwords). lastUsedAt is noted at most once per
``PROMPTSTUDIO_LAST_USED_RESOLUTION_SECONDS`` per token and written behind, in batches
(``app.services.hot.LastUsed``): authenticating never writes. Tokens seen before are answered from the
process's token cache (``app.services.hot``) while the event bus keeps it true.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import ApiKey, User, UserSession

from .hot import HotCaches, LastUsed, TokenEntry
from .principal import Principal

log = logging.getLogger("promptstudio.auth")

SESSION_PREFIX = "pss_"
API_KEY_PREFIX = "psk_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_token() -> str:
    return SESSION_PREFIX + secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """(secret, prefix): the prefix is the recognisable start of the secret shown in listings."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, secret[: len(API_KEY_PREFIX) + 8]


def now() -> datetime:
    return datetime.now(UTC)


class InvalidToken(Exception):
    """The bearer token is unknown, revoked or expired (the message says which, without leaking)."""


_KEY_LOOKUP = (select(ApiKey.id, ApiKey.project_id, ApiKey.scopes, ApiKey.expires_at, ApiKey.revoked_at,
                      ApiKey.last_used_at)
               .where(ApiKey.secret_hash == bindparam("digest")))
_SESSION_LOOKUP = (select(UserSession.id, UserSession.expires_at, UserSession.revoked_at, UserSession.last_used_at,
                          User.id.label("user_id"), User.is_active, User.is_superuser)
                   .join(User, User.id == UserSession.user_id)
                   .where(UserSession.token_hash == bindparam("digest")))


def _principal(entry: TokenEntry, ip_address: str | None, user_agent: str | None) -> Principal:
    if entry.kind == "api_key":
        return Principal(kind="api_key", api_key_id=entry.cred_id, api_key_project_id=entry.project_id,
                         scopes=entry.scopes, ip_address=ip_address, user_agent=user_agent)
    return Principal(kind="user", user_id=entry.user_id, is_superuser=entry.is_superuser, session_id=entry.cred_id,
                     ip_address=ip_address, user_agent=user_agent)


def _expired(entry: TokenEntry, t: datetime) -> InvalidToken | None:
    if entry.expires_at is not None and entry.expires_at <= t:
        if entry.kind == "api_key":
            return InvalidToken("The API key has expired.")
        return InvalidToken("The session has expired or was logged out; log in again.")
    return None


async def _lookup(sessionmaker: async_sessionmaker[AsyncSession], token: str, digest: str) -> TokenEntry:
    """Read the token's credential (one statement, columns only); InvalidToken when it does not hold."""
    async with sessionmaker() as session:
        # One read: its own snapshot, no BEGIN/ROLLBACK round trips.
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        if token.startswith(API_KEY_PREFIX):
            key = (await session.execute(_KEY_LOOKUP, {"digest": digest})).first()
            if key is None or key.revoked_at is not None:
                raise InvalidToken("The API key is not valid or has been revoked.")
            return TokenEntry(kind="api_key", cred_id=key.id, user_id=None, project_id=key.project_id,
                              is_superuser=False, scopes=frozenset(key.scopes), expires_at=key.expires_at,
                              last_used_at=key.last_used_at)
        row = (await session.execute(_SESSION_LOOKUP, {"digest": digest})).first()
    if row is None:
        raise InvalidToken("The session token is not valid; log in again.")
    if row.revoked_at is not None:
        raise InvalidToken("The session has expired or was logged out; log in again.")
    if not row.is_active:
        raise InvalidToken("This account is deactivated.")
    return TokenEntry(kind="user", cred_id=row.id, user_id=row.user_id, project_id=None,
                      is_superuser=row.is_superuser, scopes=frozenset(), expires_at=row.expires_at,
                      last_used_at=row.last_used_at)


async def authenticate(sessionmaker: async_sessionmaker[AsyncSession], token: str, *, ip_address: str | None,
                       user_agent: str | None, last_used_resolution: int = 60, caches: HotCaches | None = None,
                       last_used: LastUsed | None = None) -> Principal:
    """The principal of a bearer token; InvalidToken when it is unknown, revoked or expired.

    With ``caches`` (app.services.hot) a token seen before is answered from memory while the event bus
    keeps the cache true (revocation, logout, deactivation drop it in every process at once); its expiry
    is checked on every use. With ``last_used`` lastUsedAt is noted and written behind, in batches;
    without it (callers with no runtime), it is written here.
    """
    if not token or len(token) > 512:
        raise InvalidToken("The bearer token is not valid.")
    digest = hash_token(token)
    t = now()
    entry: TokenEntry | None = caches.get(caches.tokens, digest) if caches is not None else None
    if entry is None:
        generation = caches.generation if caches is not None else 0
        entry = await _lookup(sessionmaker, token, digest)
        expired = _expired(entry, t)
        if expired:
            raise expired
        if caches is not None:
            caches.put(caches.tokens, digest, entry, generation)
    else:
        expired = _expired(entry, t)
        if expired:
            raise expired
    if entry.last_used_at is None or (t - entry.last_used_at) >= timedelta(seconds=last_used_resolution):
        entry.last_used_at = t
        if last_used is not None:
            last_used.note(entry.kind, entry.cred_id, t)
        else:
            table = ApiKey if entry.kind == "api_key" else UserSession
            async with sessionmaker() as session, session.begin():
                await session.execute(update(table).where(table.id == entry.cred_id).values(last_used_at=t))
    return _principal(entry, ip_address, user_agent)


async def still_valid(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal) -> bool:
    """Whether the credential behind ``principal`` still holds (for long-lived connections, such as
    subscriptions, that authenticated once): the session not logged out or expired and its user
    active, the API key not revoked or expired. Anonymous principals are always "valid"."""
    t = now()
    async with sessionmaker() as session:
        if principal.kind == "user" and principal.session_id is not None:
            row = (await session.execute(
                select(UserSession.revoked_at, UserSession.expires_at, User.is_active)
                .join(User, User.id == UserSession.user_id).where(UserSession.id == principal.session_id))).first()
            return row is not None and row.revoked_at is None and row.expires_at > t and row.is_active
        if principal.kind == "api_key":
            key = (await session.execute(
                select(ApiKey.revoked_at, ApiKey.expires_at).where(ApiKey.id == principal.api_key_id))).first()
            return key is not None and key.revoked_at is None and (key.expires_at is None or key.expires_at > t)
    return True


def credential_of(principal: Principal) -> tuple[str, Any] | None:
    """What ``still_valid_many`` checks for ``principal``: its session or API key (None: nothing to check)."""
    if principal.kind == "user" and principal.session_id is not None:
        return ("session", principal.session_id)
    if principal.kind == "api_key":
        return ("api_key", principal.api_key_id)
    return None


async def still_valid_many(session: AsyncSession, principals: Iterable[Principal]) -> set[tuple[str, Any]]:
    """``still_valid`` for many principals at once (a live feed's subscribers): the credentials
    (``credential_of``) that still hold — at most one query for the sessions and one for the API keys."""
    creds = {c for c in map(credential_of, principals) if c is not None}
    sessions = [i for kind, i in creds if kind == "session"]
    keys = [i for kind, i in creds if kind == "api_key"]
    t = now()
    valid: set[tuple[str, Any]] = set()
    if sessions:
        rows = await session.execute(
            select(UserSession.id).join(User, User.id == UserSession.user_id)
            .where(UserSession.id.in_(sessions), UserSession.revoked_at.is_(None), UserSession.expires_at > t,
                   User.is_active.is_(True)))
        valid.update(("session", i) for i in rows.scalars())
    if keys:
        rows = await session.execute(
            select(ApiKey.id).where(ApiKey.id.in_(keys), ApiKey.revoked_at.is_(None),
                                    (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > t)))
        valid.update(("api_key", i) for i in rows.scalars())
    return valid
