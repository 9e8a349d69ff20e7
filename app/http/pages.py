"""The pages a browser gets: / (a landing page), GraphiQL at /graphql, the console at /console, and
/schema.graphql (the schema in SDL, the API's reference).

GraphiQL and the console run on the files built from ``web/`` (``app.http.assets``), served by
this server: nothing comes from a CDN. When those files were not built, GraphiQL falls back to
Strawberry's page, which loads them from unpkg.com, with a banner saying why; the console says
what is missing. ``PROMPTSTUDIO_GRAPHIQL`` and ``PROMPTSTUDIO_CONSOLE`` switch the two off; with
both off, / is a short plain-text note on where the API is.
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from app.settings import Settings

from . import examples
from .assets import HOW_TO_BUILD, Assets

TEMPLATES = Path(__file__).resolve().with_name("templates")

API_NOTE = """Prompt Studio: the GraphQL API is at /graphql.

  POST /graphql        queries and mutations (GraphQL over HTTP, application/json)
  GET  /graphql        queries only (?query=...)
  WebSocket /graphql   subscriptions (protocols graphql-transport-ws and graphql-ws); over HTTP,
                       POST them with Accept: text/event-stream or multipart/mixed

GET /healthz: the process is up. GET /readyz: the database answers. GET /metrics: Prometheus text.
"""

#: Pages change with the server's version and the built files: browsers ask again each time.
NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@cache
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text()


def render(name: str, **values: str) -> str:
    """The template with each ``{{ key }}`` replaced by its value (escaped by the caller)."""
    text = _template(name)
    for key, value in values.items():
        text = text.replace("{{ " + key + " }}", value)
    return text


def script_json(value: Any) -> str:
    """JSON that is safe inside <script type="application/json"> (no "</script>", no "<!--")."""
    return (json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _version() -> str:
    try:
        return version("promptstudio")
    except PackageNotFoundError:
        return "unknown"


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _assets(request: Request) -> Assets:
    return request.app.state.assets()


# ---------------------------------------------------------------------- /


async def landing(request: Request) -> Response:
    settings = _settings(request)
    root = _root(request)
    params = request.query_params
    if settings.graphiql and ("query" in params or "q" in params):
        # A shared GraphiQL link: open it there. GraphiQL reads the query from ?q= (GET /graphql?query=
        # would run the query instead of opening GraphiQL).
        shared = [("q", v) if k == "query" else (k, v) for k, v in params.multi_items()]
        return RedirectResponse(f"{root}/graphql?{urlencode(shared)}", status_code=307)
    if not settings.graphiql and not settings.console:
        return PlainTextResponse(API_NOTE)
    links = []
    if settings.console:
        links.append((f"{root}/console", "Console",
                      "Watch executions live, browse prompts and their versions, diffs and deployments."))
    if settings.graphiql:
        links.append((f"{root}/graphql", "GraphiQL", "Explore and run the API, starting with the quick tour."))
    if settings.introspection:
        docs = f"{root}/graphql?docs" if settings.graphiql else f"{root}/schema.graphql"
        links.append((docs, "API documentation",
                      "Every type and field, described: GraphiQL's documentation explorer, or "
                      f'<a href="{root}/schema.graphql">the schema as SDL</a>.'))
    links.append((f"{root}/metrics", "Metrics", "Prometheus text: executions, jobs, subscribers, workers, pool."))
    links.append((f"{root}/readyz", "Health", "Whether the database answers (/healthz: the process is up)."))
    items = "\n    ".join(
        f'<li><a href="{html.escape(url)}">{html.escape(title)}</a><p>{text}</p></li>' for url, title, text in links)
    assets = _assets(request)
    warning = ""
    if not assets.built:
        warning = (f'<p class="warn" role="alert"><strong>The browser pages were not built with this installation'
                   f"</strong> ({html.escape(assets.problem or '')}). GraphiQL falls back to files from a CDN, which "
                   f"needs internet access, and the console is not available. {html.escape(HOW_TO_BUILD)}</p>")
    return HTMLResponse(render("landing.html", links=items, warning=warning, root=html.escape(root),
                               version=html.escape(_version())), headers=NO_CACHE)


# ---------------------------------------------------------------------- GraphiQL


def graphiql_page(fallback_html: Callable[[], str]) -> Callable[[Request], Response]:
    """The GraphiQL page for GraphQLView.render_graphql_ide: ours, or ``fallback_html()`` (Strawberry's
    CDN page) with a banner when the files were not built."""

    def page(request: Request) -> Response:
        assets = _assets(request)
        root = _root(request)
        if not assets.built:
            banner = (
                '<div role="alert" style="font: 14px/1.4 system-ui, sans-serif; padding: 10px 14px; '
                'background: #fff4d6; color: #3a2a00; border-bottom: 1px solid #d9a400;">'
                "<strong>GraphiQL's own files were not built with this installation</strong> "
                f"({html.escape(assets.problem or '')}), so this page loads React and GraphiQL from unpkg.com: "
                "without internet access it stays on “Loading...”. "
                f"{html.escape(HOW_TO_BUILD)}</div>")
            text = fallback_html().replace("<body>", "<body>\n" + banner, 1)
            return HTMLResponse(text, headers=NO_CACHE)
        config = {"tabs": examples.tabs(), "home": root + "/", "consoleURL": root + "/console"}
        return HTMLResponse(render("graphiql.html", js=html.escape(assets.url("graphiql.js", root)),
                                   css=html.escape(assets.url("graphiql.css", root)), config=script_json(config)),
                            headers=NO_CACHE)

    return page


# ---------------------------------------------------------------------- /console


async def console(request: Request) -> Response:
    settings = _settings(request)
    root = _root(request)
    if not settings.console:
        return PlainTextResponse("The console is switched off on this server (PROMPTSTUDIO_CONSOLE=false).",
                                 status_code=404)
    assets = _assets(request)
    if not assets.built:
        return HTMLResponse(
            "<!doctype html><title>Console · Prompt Studio</title><main style=\"font: 15px system-ui; max-width: "
            "700px; margin: 8vh auto\"><h1>The console is not available</h1><p>Its files were not built with this "
            f"installation: {html.escape(assets.problem or '')}.</p><p>{html.escape(HOW_TO_BUILD)}</p>"
            f'<p>The API works: <a href="{html.escape(root)}/graphql">{html.escape(root)}/graphql</a>.</p></main>',
            status_code=503, headers=NO_CACHE)
    config = {"graphqlURL": root + "/graphql", "graphiqlURL": root + "/graphql", "home": root + "/"}
    return HTMLResponse(render("console.html", js=html.escape(assets.url("console.js", root)),
                               css=html.escape(assets.url("console.css", root)), config=script_json(config),
                               graphql=html.escape(root + "/graphql")), headers=NO_CACHE)


# ---------------------------------------------------------------------- /schema.graphql


def schema_sdl(sdl: str) -> Callable[[Request], Any]:
    """GET /schema.graphql: the schema in SDL (404 when introspection is switched off)."""

    async def endpoint(request: Request) -> Response:
        if not _settings(request).introspection:
            return PlainTextResponse("The schema is not published on this server (PROMPTSTUDIO_INTROSPECTION=false).",
                                     status_code=404)
        return PlainTextResponse(sdl, headers={"Cache-Control": "no-cache"})

    return endpoint
