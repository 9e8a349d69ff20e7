"""The Starlette application: /graphql (HTTP + WebSocket + GraphiQL), /v1/traces (OTLP/HTTP trace
export), /console, /static (the built browser files), /schema.graphql, /healthz, /readyz, /metrics,
and / (a landing page, or a note on where the API is when GraphiQL and the console are off).

``create_app(settings)`` builds it; its lifespan opens the database engine, and starts the event
bus and the execution workers. ``create_app_from_env()`` is the factory uvicorn runs.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from app.settings import Settings

log = logging.getLogger("promptstudio")




def create_app(settings: Settings | None = None, *, database_url: str | None = None,
               static_dir: Path | None = None) -> Starlette:
    """The app. ``static_dir``: where the built browser files are (default: app/http/static)."""
    from app.api.view import GraphQLView
    from app.http import assets, pages
    from app.http.disconnect import CancelOnDisconnect
    from app.http.errors import JSONServerErrors
    from app.http.health import healthz, readyz
    from app.http.limits import BodySizeLimit
    from app.http.metrics import metrics
    from app.http.otlp import traces

    settings = settings or Settings.from_env()
    url = database_url or settings.database_url

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        from app.lifecycle import start_runtime, stop_runtime

        runtime = await start_runtime(settings, url)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await stop_runtime(runtime)

    from app.api.schema import build_schema

    schema = build_schema(settings)
    view = GraphQLView(schema, settings)
    view.ide_page = pages.graphiql_page(lambda: GraphQLView.cdn_graphiql_html(view))
    routes = [
        Route("/", pages.landing, methods=["GET"]),
        Route("/graphql", view),  # every method: the view answers 405 (as JSON) to all but GET and POST
        WebSocketRoute("/graphql", view),
        Route("/console", pages.console, methods=["GET"]),
        Route("/static/{name}", assets.static, methods=["GET"]),
        Route("/schema.graphql", pages.schema_sdl(schema.as_str().rstrip("\n") + "\n"), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        # OTLP/HTTP trace export; its body limit is its own (PROMPTSTUDIO_INGEST_MAX_BODY_BYTES)
        Route("/v1/traces", traces, methods=["POST"]),
    ]
    # Outermost first: exceptions that escape everything else are answered as JSON (503 when the
    # database cannot be reached, else 500); then the body size limit (413).
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(JSONServerErrors),
                                Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                                           exempt=("/v1/traces",)),
                                Middleware(CancelOnDisconnect)])
    app.state.settings = settings
    app.state.assets = assets.Loader(static_dir or assets.STATIC_DIR)
    found = app.state.assets()
    if (settings.graphiql or settings.console) and not found.built:
        log.warning("the browser pages' files are %s: GraphiQL falls back to a CDN (it needs internet access) "
                    "and /console is not available. %s", found.describe(), assets.HOW_TO_BUILD)
    return app


def create_app_from_env() -> Starlette:
    """uvicorn factory: settings from the environment (the CLI has put DATABASE_URL there)."""
    level = os.environ.get("PROMPTSTUDIO_LOG_LEVEL", "info").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    app = create_app(settings)
    # What exists now (modules, the schema, the app) lives as long as the process: move it out of the
    # cyclic garbage collector's generations. Otherwise every full collection scans all of it, holding
    # the GIL for 100 ms or more, and every request in flight waits (under load, every few seconds).
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)
    return app
