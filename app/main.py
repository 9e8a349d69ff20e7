"""The Starlette application: /graphql (HTTP + WebSocket + GraphiQL), /v1/traces (OTLP/HTTP trace
export), /healthz, /readyz, /metrics, and / (to GraphiQL, or a note on where the API is when GraphiQL
is off).

``create_app(settings)`` builds it; its lifespan opens the database engine, and starts the event
bus and the execution workers. ``create_app_from_env()`` is the factory uvicorn runs.
"""
from __future__ import annotations

import contextlib
import logging
import os

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from app.settings import Settings

log = logging.getLogger("promptstudio")


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> Starlette:
    from app.api.view import GraphQLView
    from app.http.health import healthz, readyz
    from app.http.limits import BodySizeLimit
    from app.http.metrics import metrics
    from app.http.otlp import traces
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
        # OTLP/HTTP trace export; its body limit is its own (PROMPTSTUDIO_INGEST_MAX_BODY_BYTES)
        Route("/v1/traces", traces, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                                           exempt=("/v1/traces",))])
    app.state.settings = settings
    return app


def create_app_from_env() -> Starlette:
    """uvicorn factory: settings from the environment (the CLI has put DATABASE_URL there)."""
    level = os.environ.get("PROMPTSTUDIO_LOG_LEVEL", "info").upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(Settings.from_env())
