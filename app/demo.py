"""``promptstudio demo``: sample data to look at in the console and GraphiQL within a minute.

It runs the real app in this process (with its workers) and makes everything through the public
GraphQL API, as a client would: a user (signUp, so the first account of a server becomes its
superuser as usual; with sign-up closed, the account is created directly), a project, three prompts
with several versions each (TEXT with Mustache, CHAT, and one whose output is JSON), a 90/10 traffic
split in production, validations (a regex, a JSON Schema), and executions with the built-in echo
provider, which it waits for so they show finished with their output, tokens, latency and checks.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.settings import Settings

ERR = "userErrors { code field message }"
#: How long to wait for the sample executions to finish.
WAIT_SECONDS = 90.0


class DemoError(Exception):
    """An expected problem (the project exists, a wrong password): one line for the user."""


@dataclass
class DemoResult:
    username: str
    password: str | None
    project_slug: str
    prompts: int
    versions: int
    executions: int
    finished: int


GREETING_VERSIONS = [
    ("Hello {{name}}, how can I help you?", "first draft"),
    ("Hello {{name}}, how can I help you with {{topic}}?", "ask about the topic"),
    ("Hi {{name}}! Ask me anything about {{topic}}.", "shorter, friendlier"),
]
SUMMARY_SYSTEM = "You are a support agent. Summarize tickets for the on-call engineer."
SUMMARY_VERSIONS = [
    ([{"role": "user", "content": "Summarize this ticket:\n{{ticket}}"}], "first draft"),
    ([{"role": "user", "content": "Summarize this ticket in one sentence:\n{{ticket}}"},
      {"role": "assistant", "content": "Summary:"}], "one sentence, primed answer"),
]
INTENT_VERSIONS = [
    ('{"intent": "{{intent}}", "confidence": 0.5}', "first draft"),
    ('{"intent": "{{intent}}", "confidence": 0.9, "language": "{{language}}"}', "report the language"),
]
TICKETS = ["The invoice PDF is empty since Monday.", "I cannot reset my password: the e-mail never arrives.",
           "Export to CSV times out for large projects."]
NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken"]
TOPICS = ["billing", "passwords", "exports", "the API"]


class Client:
    def __init__(self, http: httpx.AsyncClient):
        self.http = http
        self.token: str | None = None

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=headers)
        body = response.json()
        if body.get("errors"):
            raise DemoError("; ".join(e["message"] for e in body["errors"]))
        return body["data"]

    async def payload(self, field: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        data = (await self(query, variables))[field]
        if data["userErrors"]:
            raise DemoError("; ".join(
                (".".join(p for p in (e["field"] or []) if p != "input") + ": " if e["field"] else "") + e["message"]
                for e in data["userErrors"]))
        return data


async def _sign_in(gql: Client, settings: Settings, url: str, username: str, password: str | None,
                   email: str) -> str | None:
    """Sign the client in as ``username``, creating the account when there is none; returns the
    password when this made the account."""
    from app.db.engine import create_engine_and_sessionmaker
    from app.services.identity import create_user, find_user_by_login

    engine, sessionmaker = create_engine_and_sessionmaker(url, settings)
    try:
        async with sessionmaker() as session:
            existing = await find_user_by_login(session, username)
            if existing is None:
                password = password or secrets.token_urlsafe(12)
                if settings.allow_signup:
                    data = await gql.payload("signUp", f"""mutation($input: SignUpInput!) {{
                        signUp(input: $input) {{ token {ERR} }} }}""",
                                             {"input": {"email": email, "username": username, "password": password,
                                                        "displayName": "Demo user"}})
                    gql.token = data["token"]
                    return password
                await create_user(session, email=email, username=username, password=password,
                                  display_name="Demo user", settings=settings)
                await session.commit()
                made = password
            elif password is None:
                raise DemoError(f"the user {username!r} exists already: give its password with --password, "
                                "or choose another user with --username")
            else:
                made = None
    finally:
        await engine.dispose()
    try:
        data = await gql.payload("logIn", f"""mutation($input: LogInInput!) {{
            logIn(input: $input) {{ token {ERR} }} }}""", {"input": {"login": username, "password": password}})
    except DemoError as exc:
        raise DemoError(f"cannot sign in as {username!r}: {exc}") from None
    gql.token = data["token"]
    return made


async def _prompt(gql: Client, project_id: str, name: str, versions: list[dict[str, Any]], *, description: str,
                  tags: list[str]) -> tuple[str, list[str]]:
    first = versions[0]
    data = await gql.payload("createPrompt", f"""mutation($input: CreatePromptInput!) {{
        createPrompt(input: $input) {{ prompt {{ id }} version {{ id }} {ERR} }} }}""",
                             {"input": {"projectId": project_id, "name": name, "description": description,
                                        "tags": tags, "content": first["content"],
                                        "commitMessage": first["message"]}})
    prompt_id, ids = data["prompt"]["id"], [data["version"]["id"]]
    for version in versions[1:]:
        data = await gql.payload("createPromptVersion", f"""mutation($input: CreatePromptVersionInput!) {{
            createPromptVersion(input: $input) {{ version {{ id }} {ERR} }} }}""",
                                 {"input": {"promptId": prompt_id, "content": version["content"],
                                            "commitMessage": version["message"]}})
        ids.append(data["version"]["id"])
    return prompt_id, ids


async def _execute(gql: Client, prompt_id: str, variables: dict[str, Any], **more: Any) -> str:
    data = await gql.payload("executePrompt", f"""mutation($input: ExecutePromptInput!) {{
        executePrompt(input: $input) {{ execution {{ id }} {ERR} }} }}""",
                             {"input": {"promptId": prompt_id, "variables": variables, **more}})
    return data["execution"]["id"]


async def load(settings: Settings, url: str, *, username: str = "demo", password: str | None = None,
               email: str | None = None, slug: str = "demo", executions: int = 12,
               say: Callable[[str], None] = print) -> DemoResult:
    """Load the sample data into the database at ``url``; ``say`` reports progress."""
    from app.main import create_app

    app = create_app(settings.replace(workers=max(settings.workers, 2)), database_url=url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo", timeout=60) as http:
            gql = Client(http)
            made_password = await _sign_in(gql, settings, url, username, password,
                                            email or f"{username}@demo.example")
            say(f"signed in as {username}" + (" (a new account)" if made_password else ""))
            taken = (await gql("query($slug: String!) { project(slug: $slug) { id } }", {"slug": slug}))["project"]
            if taken:
                raise DemoError(f"the project {slug!r} exists already (the demo data is loaded): sign in as "
                                f"{username}, or load another copy with --project-slug")
            project = (await gql.payload("createProject", f"""mutation($input: CreateProjectInput!) {{
                createProject(input: $input) {{ project {{ id }} {ERR} }} }}""",
                                         {"input": {"name": "Demo: support bot", "slug": slug, "description":
                                                    "Sample data from `promptstudio demo`: prompts with versions, a "
                                                    "traffic split, validations and echo executions."}}))["project"]
            pid = project["id"]
            greeting, greeting_versions = await _prompt(
                gql, pid, "greeting",
                [{"content": {"template": t}, "message": m} for t, m in GREETING_VERSIONS],
                description="Greets a customer and asks what they need.", tags=["support", "greeting"])
            summary, summary_versions = await _prompt(
                gql, pid, "summarize-ticket",
                [{"content": {"kind": "CHAT", "systemPrompt": SUMMARY_SYSTEM, "messages": msgs}, "message": m}
                 for msgs, m in SUMMARY_VERSIONS],
                description="Turns a support ticket into a one-line summary.", tags=["support", "tickets"])
            intent, intent_versions = await _prompt(
                gql, pid, "classify-intent",
                [{"content": {"template": t}, "message": m} for t, m in INTENT_VERSIONS],
                description="Classifies what a message is about, as JSON.", tags=["routing"])
            say("made 3 prompts with 7 versions")

            await gql.payload("setTrafficSplit", f"""mutation($input: SetTrafficSplitInput!) {{
                setTrafficSplit(input: $input) {{ {ERR} }} }}""",
                              {"input": {"promptId": greeting, "environment": "production", "splits": [
                                  {"versionId": greeting_versions[1], "percentage": 90},
                                  {"versionId": greeting_versions[2], "percentage": 10}]}})
            for version_id, environment in ((greeting_versions[2], "staging"), (summary_versions[1], "production"),
                                            (intent_versions[1], "production"), (intent_versions[1], "staging")):
                await gql.payload("deployPromptVersion", f"""mutation($input: DeployPromptVersionInput!) {{
                    deployPromptVersion(input: $input) {{ {ERR} }} }}""",
                                  {"input": {"versionId": version_id, "environment": environment}})
            say("deployed: greeting 90/10 (v2/v3) in production and v3 in staging; the others in production")

            await gql.payload("createValidation", f"""mutation($input: CreateValidationInput!) {{
                createValidation(input: $input) {{ {ERR} }} }}""",
                              {"input": {"promptId": greeting, "name": "says hello", "type": "REGEX",
                                         "config": {"pattern": "^Hello\\b"}}})
            await gql.payload("createValidation", f"""mutation($input: CreateValidationInput!) {{
                createValidation(input: $input) {{ {ERR} }} }}""",
                              {"input": {"promptId": intent, "name": "intent object", "type": "JSON_SCHEMA",
                                         "config": {"schema": {
                                             "type": "object", "required": ["intent", "confidence"],
                                             "properties": {"intent": {"enum": ["billing", "account", "bug"]},
                                                            "confidence": {"type": "number"}}}}}})
            say("added 2 validations (a regex on greeting, a JSON Schema on classify-intent)")

            ids = []
            for i in range(executions):
                kind = i % 4
                if kind in (0, 1):  # production splits 90/10 between v2 and v3; staging runs v3
                    ids.append(await _execute(gql, greeting, {"name": NAMES[i % len(NAMES)],
                                                              "topic": TOPICS[i % len(TOPICS)]},
                                              environment="production" if kind == 0 else "staging",
                                              subjectKey=f"customer-{i}"))
                elif kind == 2:
                    ids.append(await _execute(gql, summary, {"ticket": TICKETS[i % len(TICKETS)]},
                                              environment="production"))
                else:
                    ids.append(await _execute(gql, intent, {"intent": ["billing", "account", "refund"][i % 3],
                                                            "language": "en"}, environment="production"))
            say(f"queued {len(ids)} executions (echo provider); waiting for the workers ...")
            finished = await _wait(gql, slug, len(ids), say)
    return DemoResult(username=username, password=made_password, project_slug=slug, prompts=3, versions=7,
                      executions=len(ids), finished=finished)


async def _wait(gql: Client, slug: str, total: int, say: Callable[[str], None]) -> int:
    query = """query($slug: String!) { project(slug: $slug) {
        open: executions(first: 1, filter: {status: [PENDING, RUNNING]}) { totalCount } } }"""
    deadline = time.monotonic() + WAIT_SECONDS
    shown = -1
    while True:
        left = (await gql(query, {"slug": slug}))["project"]["open"]["totalCount"]
        if total - left != shown:
            shown = total - left
            say(f"executions finished: {shown}/{total}")
        if left == 0 or time.monotonic() > deadline:
            return total - left
        await asyncio.sleep(0.25)
