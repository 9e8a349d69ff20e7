"""``POST /v1/traces``: OTLP/HTTP trace export (binary protobuf or JSON, plain or gzip).

The order of a request, cheapest refusals first:

1. media type (``application/x-protobuf`` or ``application/json``: else 415) and content encoding
   (``gzip`` or none: else 415);
2. credentials: ``Authorization: Bearer <API key with TRACES_WRITE>`` (401 without a valid one, 403
   without the scope); a user's session token works too, naming the project in ``X-Project-Id``
   (EDITOR or higher);
3. a turn at the write gate (503 with Retry-After when too many requests are writing and waiting, or
   the wait is too long; OTLP exporters retry those) — nothing of the body has been read yet;
4. the body, at most ``PROMPTSTUDIO_INGEST_MAX_BODY_BYTES`` as sent and after decompression (413),
   within ``PROMPTSTUDIO_INGEST_BODY_TIMEOUT_SECONDS`` (408);
5. decoding (400 when the body does not parse; 413 past ``PROMPTSTUDIO_INGEST_MAX_SPANS`` spans),
   each span checked on its own;
6. one transaction writes the valid spans; after COMMIT the answer is 200 with an
   ``ExportTraceServiceResponse`` in the request's encoding, whose ``partial_success`` counts the
   rejected spans and says why. A 200 means the spans are committed.

Failures answer with a ``google.rpc.Status`` (protobuf, or JSON for JSON requests) whose message says
what was wrong. The database being unreachable is a 503 with Retry-After (retryable), not a 500.
"""
from __future__ import annotations

import asyncio
import logging
import zlib

import asyncpg
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app.services import ingest, otlp
from app.services.auth import InvalidToken, authenticate
from app.services.principal import Principal

log = logging.getLogger("promptstudio.ingest")

#: Seconds an exporter is asked to wait when the database cannot be reached.
DB_RETRY_AFTER = 5
#: Failures worth a retry: the database unreachable or restarting, a deadlock or serialization failure.
_UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.TransactionRollbackError,
                asyncpg.CannotConnectNowError, OperationalError, InterfaceError)


class _Refused(Exception):  # an answer, not a fault
    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None,
                 bad_field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.bad_field = bad_field


def _media_type(header: str | None) -> str | None:
    media = (header or "").split(";", 1)[0].strip().lower()
    if media in (otlp.PROTOBUF, "application/protobuf"):
        return otlp.PROTOBUF
    if media == otlp.JSON:
        return otlp.JSON
    return None


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def traces(request: Request) -> Response:
    media = _media_type(request.headers.get("content-type"))
    try:
        if media is None:
            raise _Refused(415, otlp.INVALID_ARGUMENT,
                           f"Content-Type {request.headers.get('content-type')!r} is not supported: send OTLP as "
                           f"{otlp.PROTOBUF} or {otlp.JSON}.")
        encoding = request.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip"):
            raise _Refused(415, otlp.INVALID_ARGUMENT,
                           f"Content-Encoding {encoding!r} is not supported: send gzip or no encoding.")
        runtime = request.app.state.runtime
        state = ingest.for_runtime(runtime)
        principal = await _principal(request, runtime)
        allowed = await ingest.permit(runtime.sessionmaker, principal, request.headers.get("x-project-id"),
                                      state.summaries)
        if allowed.project_id is None:
            code = {401: otlp.UNAUTHENTICATED, 403: otlp.PERMISSION_DENIED}.get(allowed.status, otlp.INVALID_ARGUMENT)
            raise _Refused(allowed.status, code, allowed.message, _challenge(allowed.status))
        try:
            async with state.gate.turn():
                body = await _body(request, encoding, state.limits.max_body_bytes,
                                   runtime.settings.ingest_body_timeout_seconds)
                decoded = _decode(body, media, state.limits)
                del body
                outcome = await ingest.store(runtime.sessionmaker, principal, allowed.project_id, decoded.spans,
                                             decoded.rejected, state.summaries)
        except ingest.Busy as busy:
            raise _Refused(503, otlp.UNAVAILABLE, busy.message, {"Retry-After": str(busy.retry_after)}) from None
        except _UNAVAILABLE as exc:
            log.warning("ingest: the database is unavailable or the write conflicted (%s: %s); asking the "
                        "exporter to retry", type(exc).__name__, exc)
            raise _Refused(503, otlp.UNAVAILABLE, "The database is unavailable; retry later.",
                           {"Retry-After": str(DB_RETRY_AFTER)}) from None
    except _Refused as refusal:
        answer = media or otlp.JSON
        if refusal.status >= 500 or refusal.status == 413:
            log.info("ingest refused (%d): %s", refusal.status, refusal.message)
        return Response(otlp.status_body(refusal.code, refusal.message, answer, bad_field=refusal.bad_field),
                        status_code=refusal.status, media_type=answer, headers=refusal.headers)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening
    except Exception:
        log.exception("ingest: failed to store spans")
        return Response(otlp.status_body(otlp.INTERNAL, "Internal server error: the spans were not stored.",
                                         media or otlp.JSON), status_code=500, media_type=media or otlp.JSON)
    message = ingest.describe(outcome.rejected, decoded.total) if outcome.rejected else None
    if outcome.rejected:
        log.info("ingest: project %s: %s", allowed.project_id, message)
    log.debug("ingest: project %s: %d spans stored, %d already stored, %d rejected", allowed.project_id,
              outcome.accepted, outcome.duplicates, len(outcome.rejected))
    return Response(otlp.export_response(len(outcome.rejected), message, media), media_type=media)


def _challenge(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else {}


async def _principal(request: Request, runtime: object) -> Principal:
    header = request.headers.get("authorization")
    token = _bearer(header)
    if token is None:
        message = ingest.NO_CREDENTIAL if not header else "The Authorization header must be `Bearer <API key>`."
        raise _Refused(401, otlp.UNAUTHENTICATED, message, _challenge(401))
    client = request.client
    try:
        return await authenticate(runtime.sessionmaker, token,  # type: ignore[attr-defined]
                                  ip_address=client.host if client else None,
                                  user_agent=request.headers.get("user-agent"),
                                  last_used_resolution=runtime.settings.last_used_resolution_seconds,  # type: ignore[attr-defined]
                                  caches=getattr(runtime, "caches", None),
                                  last_used=getattr(runtime, "last_used", None))
    except InvalidToken as exc:
        raise _Refused(401, otlp.UNAUTHENTICATED, str(exc), _challenge(401)) from None


async def _body(request: Request, encoding: str, limit: int, seconds: float) -> bytes:
    """The request body, decompressed, within the size limit and the time limit."""
    too_large = _Refused(413, otlp.RESOURCE_EXHAUSTED,
                         f"The body is larger than {limit} bytes (PROMPTSTUDIO_INGEST_MAX_BODY_BYTES); send smaller "
                         f"batches.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise _Refused(408, otlp.DEADLINE_EXCEEDED,
                       f"The body did not arrive within {seconds:g} s (PROMPTSTUDIO_INGEST_BODY_TIMEOUT_SECONDS).") \
            from None
    body = b"".join(chunks)
    if encoding in ("gzip", "x-gzip"):
        body = _gunzip(body, limit, too_large)
    return body


def _gunzip(data: bytes, limit: int, too_large: _Refused) -> bytes:
    """Decompress gzip (one member or several), stopping as soon as the output passes ``limit``: a small
    body that inflates to gigabytes (a gzip bomb) costs no more than ``limit`` bytes of memory."""
    out = bytearray()
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=31)
            out += d.decompress(rest, limit + 1 - len(out))
            if len(out) > limit or d.unconsumed_tail:
                raise _Refused(413, otlp.RESOURCE_EXHAUSTED,
                               f"The body decompresses to more than {limit} bytes "
                               f"(PROMPTSTUDIO_INGEST_MAX_BODY_BYTES); send smaller batches.")
            if not d.eof:
                raise _Refused(400, otlp.INVALID_ARGUMENT, "The gzip body is cut short.", bad_field="body")
            rest = d.unused_data
    except zlib.error as exc:
        raise _Refused(400, otlp.INVALID_ARGUMENT, f"The body is not valid gzip ({exc}).", bad_field="body") \
            from None
    del too_large
    return bytes(out)


def _decode(body: bytes, media: str, limits: ingest.Limits) -> otlp.Decoded:
    try:
        if media == otlp.PROTOBUF:
            return otlp.decode_protobuf(body, limits)
        return otlp.decode_json(body, limits)
    except otlp.BadBody as exc:
        raise _Refused(400, otlp.INVALID_ARGUMENT, exc.message, bad_field="body") from None
    except otlp.TooManySpans as exc:
        raise _Refused(413, otlp.RESOURCE_EXHAUSTED, exc.message) from None
    except RecursionError:
        raise _Refused(400, otlp.INVALID_ARGUMENT, "The body is nested too deeply.", bad_field="body") from None
