"""Bearer tokens: session tokens (``pss_…``) and API keys (``psk_…``), both stored only as SHA-256.

Tokens are 256-bit random values, so a fast hash is the right tool for lookups (argon2 is for
low-entropy passwords). lastUsedAt is written at most once per
``PROMPTSTUDIO_LAST_USED_RESOLUTION_SECONDS`` per token, not on every request.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import ApiKey, User, UserSession

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


async def authenticate(sessionmaker: async_sessionmaker[AsyncSession], token: str, *, ip_address: str | None,
                       user_agent: str | None, last_used_resolution: int = 60) -> Principal:
    if not token or len(token) > 512:
        raise InvalidToken("The bearer token is not valid.")
    digest = hash_token(token)
    t = now()
    async with sessionmaker() as session:
        if token.startswith(API_KEY_PREFIX):
            key = (await session.execute(select(ApiKey).where(ApiKey.secret_hash == digest))).scalar_one_or_none()
            if key is None or key.revoked_at is not None:
                raise InvalidToken("The API key is not valid or has been revoked.")
            if key.expires_at is not None and key.expires_at <= t:
                raise InvalidToken("The API key has expired.")
            if key.last_used_at is None or (t - key.last_used_at) >= timedelta(seconds=last_used_resolution):
                await session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=t))
                await session.commit()
            return Principal(kind="api_key", api_key_id=key.id, api_key_project_id=key.project_id,
                             scopes=frozenset(key.scopes), ip_address=ip_address, user_agent=user_agent)
        row = (await session.execute(
            select(UserSession, User).join(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == digest))).one_or_none()
        if row is None:
            raise InvalidToken("The session token is not valid; log in again.")
        sess, user = row
        if sess.revoked_at is not None or sess.expires_at <= t:
            raise InvalidToken("The session has expired or was logged out; log in again.")
        if not user.is_active:
            raise InvalidToken("This account is deactivated.")
        if sess.last_used_at is None or (t - sess.last_used_at) >= timedelta(seconds=last_used_resolution):
            await session.execute(update(UserSession).where(UserSession.id == sess.id).values(last_used_at=t))
            await session.commit()
        return Principal(kind="user", user_id=user.id, is_superuser=user.is_superuser, session_id=sess.id,
                         ip_address=ip_address, user_agent=user_agent)


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
