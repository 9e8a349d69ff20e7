"""Accounts and sessions: sign-up, log-in, log-out, and ``create_user`` for the CLI.

* Passwords are hashed with argon2id (argon2-cffi's ``PasswordHasher`` defaults, RFC 9106 low-memory
  profile); hashes are upgraded on log-in when the parameters change (``check_needs_rehash``).
  Hashing runs in a thread so the event loop keeps serving other requests.
* Session tokens are random (``auth.new_session_token``), stored as SHA-256 only, and expire after
  ``settings.session_ttl_hours``.
* The first account created on a server becomes a superuser. With ``allow_signup`` off, only a
  signed-in superuser may call signUp (or use ``promptstudio create-user``). When a superuser
  creates an account through signUp, no session is opened for the new user (the token is null).
* Log-in failures give one message whatever went wrong (unknown login, wrong password, deactivated
  account) and take about as long either way: an unknown login is verified against a dummy hash.
"""
from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import User, UserSession
from app.settings import Settings

from .access import is_superuser
from .auth import hash_token, new_session_token, now
from .errors import ServiceError, conflict, forbidden, invalid, many
from .principal import Principal
from .tx import Tx, service

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
# Pragmatic: one @, no spaces, a dot in the domain, no empty labels. (Delivery is the proof.)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
EMAIL_MAX = 320
PASSWORD_MAX = 1024  # bounds the argon2 work a request can cause
DISPLAY_NAME_MAX = 200
LOGIN_FAILED = "Wrong login or password."
#: Serialises sign-ups, so that exactly one "first user" becomes superuser.
_SIGNUP_LOCK_KEY = 0x5053_5349_474E  # "PSSIGN"

def _make_hasher() -> PasswordHasher:
    """argon2id with the cost from PROMPTSTUDIO_ARGON2_TIME_COST / PROMPTSTUDIO_ARGON2_MEMORY_KIB."""
    from app.settings import Settings

    settings = Settings.from_env()
    return PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)


_hasher = _make_hasher()
#: A hash of nobody's password with the hasher's parameters, verified when a login names no account
#: (recomputed once if the parameters change, so the work stays the same as for a real account).
_dummy_hash = "$argon2id$v=19$m=65536,t=3,p=4$9bEwD2iJn+lyCWduEiNSAA$oG3266n2FYiqN4KuM4ki4arV1CezjBhvxtlzzxZQlvs"


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def run() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(run)


async def _verify_dummy(password: str) -> None:
    """Spend the time a real verification takes, so unknown logins are not told apart by timing."""
    global _dummy_hash  # noqa: PLW0603 - a module-wide cache, recomputed at most once
    if _hasher.check_needs_rehash(_dummy_hash):
        _dummy_hash = await hash_password("not the password of anyone")
    await verify_password(_dummy_hash, password)


# ---------------------------------------------------------------------- validation

def check_account_input(*, email: str, username: str, password: str, display_name: str | None,
                        settings: Settings) -> tuple[str, str, str | None]:
    """Check all fields at once; returns (email, username, display_name) trimmed, or raises INVALID."""
    errors: list[ServiceError] = []
    email = (email or "").strip()
    username = (username or "").strip()
    if len(email) > EMAIL_MAX:
        errors.append(invalid(f"The email is too long ({len(email)} characters; at most {EMAIL_MAX}).",
                              ["input", "email"]))
    elif not EMAIL_RE.match(email):
        errors.append(invalid("This is not an email address (expected name@example.com).", ["input", "email"]))
    if not USERNAME_RE.match(username):
        errors.append(invalid(
            "A username has 3 to 64 characters: letters, digits, and _ . - (no spaces).", ["input", "username"]))
    minimum = settings.password_min_length
    if len(password or "") < minimum:
        errors.append(invalid(f"The password is too short ({len(password or '')} characters); it needs at least "
                              f"{minimum}.", ["input", "password"]))
    elif len(password) > PASSWORD_MAX:
        errors.append(invalid(f"The password is too long ({len(password)} characters); at most {PASSWORD_MAX}.",
                              ["input", "password"]))
    if display_name is not None:
        display_name = display_name.strip() or None
        if display_name is not None and len(display_name) > DISPLAY_NAME_MAX:
            errors.append(invalid(f"The display name is too long ({len(display_name)} characters; at most "
                                  f"{DISPLAY_NAME_MAX}).", ["input", "displayName"]))
    if errors:
        raise many(errors)
    return email, username, display_name


async def _check_unique(session: AsyncSession, email: str, username: str) -> None:
    rows = (await session.execute(
        select(func.lower(User.email), func.lower(User.username))
        .where(or_(func.lower(User.email) == email.lower(), func.lower(User.username) == username.lower())))).all()
    errors: list[ServiceError] = []
    if any(e == email.lower() for e, _ in rows):
        errors.append(conflict("An account with this email already exists.", ["input", "email"]))
    if any(u == username.lower() for _, u in rows):
        errors.append(conflict("This username is taken.", ["input", "username"]))
    if errors:
        raise many(errors)


async def find_user_by_login(session: AsyncSession, login: str) -> User | None:
    """The user whose email or username is ``login`` (case-insensitive)."""
    login = (login or "").strip().lower()
    if not login or len(login) > EMAIL_MAX:
        return None
    column = func.lower(User.email) if "@" in login else func.lower(User.username)
    return (await session.execute(select(User).where(column == login))).scalar_one_or_none()


# ---------------------------------------------------------------------- account creation

async def create_user(session: AsyncSession, *, email: str, username: str, password: str,
                      display_name: str | None = None, is_superuser: bool = False,
                      settings: Settings | None = None) -> User:
    """Create an account in the caller's transaction (used by signUp and ``promptstudio create-user``).

    Raises INVALID for bad fields and CONFLICT (on ``["input", "email"]`` / ``["input", "username"]``)
    when the email or username is taken, case-insensitively.
    """
    settings = settings or Settings()
    email, username, display_name = check_account_input(
        email=email, username=username, password=password, display_name=display_name, settings=settings)
    await _check_unique(session, email, username)
    password_hash = await hash_password(password)
    user = User(email=email, username=username, password_hash=password_hash, display_name=display_name,
                is_active=True, is_superuser=is_superuser)
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:  # a concurrent sign-up took the email or username between check and insert
        await _check_unique(session, email, username)
        raise conflict("An account with this email or username already exists.", ["input", "username"]) from None
    await session.refresh(user)
    return user


async def _open_session(session: AsyncSession, user: User, principal: Principal, settings: Settings) -> str:
    token = new_session_token()
    session.add(UserSession(
        user_id=user.id, token_hash=hash_token(token),
        expires_at=now() + timedelta(hours=settings.session_ttl_hours),
        ip_address=(principal.ip_address or "")[:64] or None,
        user_agent=(principal.user_agent or "")[:512] or None,
    ))
    await session.flush()
    return token


@service("user.sign_up", anonymous=True)
async def sign_up(tx: Tx, *, email: str, username: str, password: str,
                  display_name: str | None = None) -> tuple[User, str | None]:
    """Create an account; returns (user, session token). The first account becomes a superuser.

    Open sign-up can be turned off (``allow_signup``); then only superusers create accounts, and
    for them no session is opened (token None): they create accounts for others.
    """
    session, note, settings = tx.session, tx.note, tx.settings
    by_superuser = is_superuser(tx.principal)
    note.details = {"username": (username or "")[:64], "email": (email or "")[:EMAIL_MAX]}
    if not settings.allow_signup and not by_superuser:
        raise forbidden("Sign-up is closed on this server; ask an administrator to create your account.")
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SIGNUP_LOCK_KEY})
    first = (await session.execute(select(User.id).limit(1))).first() is None
    user = await create_user(session, email=email, username=username, password=password,
                             display_name=display_name, is_superuser=first, settings=settings)
    note.about(User, user.id)
    if first:
        note.details["superuser"] = True
    if by_superuser:
        return user, None
    note.actor_id = user.id
    return user, await _open_session(session, user, tx.principal, settings)


@service("user.log_in", anonymous=True)
async def log_in(tx: Tx, *, login: str, password: str) -> tuple[User, str]:
    """Check the password of the account named by email or username; returns (user, new session token)."""
    session, note = tx.session, tx.note
    note.details = {"login": (login or "")[:EMAIL_MAX]}
    user = await find_user_by_login(session, login)
    if password is None or len(password) > PASSWORD_MAX:
        await _verify_dummy("")
        raise invalid(LOGIN_FAILED)
    if user is None:
        await _verify_dummy(password)
        raise invalid(LOGIN_FAILED)
    if not await verify_password(user.password_hash, password) or not user.is_active:
        raise invalid(LOGIN_FAILED)
    if _hasher.check_needs_rehash(user.password_hash):
        new_hash = await hash_password(password)
        await session.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
    note.actor_id = user.id
    note.about(User, user.id)
    return user, await _open_session(session, user, tx.principal, tx.settings)


@service("user.log_out")
async def log_out(tx: Tx) -> bool:
    """Revoke the session the request was made with. API keys cannot log out (revoke them instead)."""
    principal = tx.principal
    if principal.kind != "user" or principal.session_id is None:
        raise forbidden("Only a signed-in user's session can be logged out; API keys are revoked with "
                        "revokeApiKey.")
    tx.note.about(User, principal.user_id)
    await tx.session.execute(update(UserSession).where(UserSession.id == principal.session_id,
                                                       UserSession.revoked_at.is_(None))
                             .values(revoked_at=now()))
    return True


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)
