"""The Starlette application: /graphql (HTTP + WebSocket + GraphiQL), /healthz, /readyz, /metrics,
and / (to GraphiQL, or a note on where the API is when GraphiQL is off).

``create_app(settings)`` builds it; its lifespan opens the database engine, and starts the event
bus and the execution workers. ``create_app_from_env()`` is the factory uvicorn runs.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from app.settings import Settings

log = logging.getLogger("promptstudio")


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> Starlette:
    from app.api.view import GraphQLView
    from app.http.disconnect import CancelOnDisconnect
    from app.http.health import healthz, readyz
    from app.http.limits import BodySizeLimit
    from app.http.metrics import metrics
    from app.http.root import root

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

    view = GraphQLView(build_schema(settings), settings)
    routes = [
        Route("/", root, methods=["GET"]),
        Route("/graphql", view, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", view),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
                                Middleware(CancelOnDisconnect)])
    app.state.settings = settings
    return app


def create_app_from_env() -> Starlette:
    """uvicorn factory: settings from the environment (the CLI has put DATABASE_URL there)."""
    level = os.environ.get("PROMPTSTUDIO_LOG_LEVEL", "info").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(Settings.from_env())
    # What exists now (modules, the schema, the app) lives as long as the process: move it out of the
    # cyclic garbage collector's generations. Otherwise every full collection scans all of it, holding
    # the GIL for 100 ms or more, and every request in flight waits (under load, every few seconds).
    gc.collect()
    gc.freeze()
    return app
