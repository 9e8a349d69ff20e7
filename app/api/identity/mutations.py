"""signUp, logIn, logOut, createApiKey, revokeApiKey."""
from __future__ import annotations

from datetime import datetime

import strawberry

from app.db import models
from app.db.models.enums import ApiScope
from app.services import api_keys, identity

from ..core.context import Info
from ..core.mutations import Payload, mutation, run
from ..core.relay import decode_id
from .types import ApiKey, User


@strawberry.input
class SignUpInput:
    email: str
    username: str
    password: str
    display_name: str | None = None


@strawberry.input
class LogInInput:
    login: str = strawberry.field(description="Email or username.")
    password: str


@strawberry.type
class AuthPayload(Payload):
    token: str | None = strawberry.field(
        default=None, description="A bearer token for the Authorization header; null on failure.")
    user: User | None = None


@strawberry.type
class LogOutPayload(Payload):
    ok: bool = False


@strawberry.input
class CreateApiKeyInput:
    project_id: strawberry.ID
    name: str
    scopes: list[ApiScope]
    expires_at: datetime | None = None


@strawberry.type
class CreateApiKeyPayload(Payload):
    api_key: ApiKey | None = None
    secret: str | None = strawberry.field(default=None, description="The whole key. Shown here once, never again.")


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class ApiKeyPayload(Payload):
    api_key: ApiKey | None = None


@strawberry.type
class IdentityMutation:
    @mutation("Create an account (the first one becomes superuser) and sign in.")
    async def sign_up(self, info: Info, input: SignUpInput) -> AuthPayload:
        user, token = await run(info, identity.sign_up, email=input.email, username=input.username,
                                password=input.password, display_name=input.display_name)
        return AuthPayload(token=token, user=User.from_row(user, reveal_email=True))

    @mutation("Sign in by email or username; returns a session token.")
    async def log_in(self, info: Info, input: LogInInput) -> AuthPayload:
        user, token = await run(info, identity.log_in, login=input.login, password=input.password)
        return AuthPayload(token=token, user=User.from_row(user, reveal_email=True))

    @mutation("End the current session: its token stops working.")
    async def log_out(self, info: Info) -> LogOutPayload:
        return LogOutPayload(ok=await run(info, identity.log_out))

    @mutation("Create an API key of a project (ADMIN or OWNER); the secret is shown once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        key, secret = await run(info, api_keys.create_api_key, project_id=decode_id(input.project_id, models.Project),
                                name=input.name, scopes=list(input.scopes), expires_at=input.expires_at)
        return CreateApiKeyPayload(api_key=ApiKey.from_row(key), secret=secret)

    @mutation("Revoke an API key at once.")
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> ApiKeyPayload:
        key = await run(info, api_keys.revoke_api_key, key_id=decode_id(input.id, ApiKey))
        return ApiKeyPayload(api_key=ApiKey.from_row(key))
