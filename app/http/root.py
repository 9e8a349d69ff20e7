"""/: a browser is sent to GraphiQL; with GraphiQL switched off, a short note on where the API is."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

API_NOTE = """Prompt Studio: the GraphQL API is at /graphql.

  POST /graphql        queries and mutations (GraphQL over HTTP, application/json)
  GET  /graphql        queries only (?query=...)
  WebSocket /graphql   subscriptions (protocols graphql-transport-ws and graphql-ws); over HTTP,
                       POST them with Accept: text/event-stream or multipart/mixed

GET /healthz: the process is up. GET /readyz: the database answers. GET /metrics: Prometheus text.
"""


async def root(request: Request) -> Response:
    if request.app.state.settings.graphiql:
        target = request.scope.get("root_path", "") + "/graphql"
        if request.url.query:  # GraphiQL reads ?query=... from its address
            target += "?" + request.url.query
        return RedirectResponse(target, status_code=307)
    return PlainTextResponse(API_NOTE)
