"""/healthz: the process is up. /readyz: the database answers."""
from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return JSONResponse({"status": "starting", "database": "unknown"}, status_code=503)
    try:
        async with asyncio.timeout(2):
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable", "error": type(exc).__name__},
                            status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
