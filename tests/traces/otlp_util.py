"""Helpers of the ingest tests: OTLP requests built with opentelemetry-proto, a project with API keys,
and reading what was stored back through SQL (column by column, including what the API does not show).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.helpers import create_api_key, create_project, signup

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
T0 = 1_796_000_000_000_000_000  # 2026-11-30 (after the shipped prices' date), in nanoseconds since the epoch
MS = 1_000_000


def any_value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, (list, tuple)):
        out = AnyValue()
        out.array_value.values.extend(any_value(x) for x in v)
        return out
    if isinstance(v, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(x)) for k, x in v.items())
        return out
    return AnyValue(string_value=str(v))


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def span(trace: int | bytes, sid: int | bytes, parent: int | bytes | None = None, *, name: str = "span",
         start_ms: int = 0, end_ms: int | None = 10, attrs: dict[str, Any] | None = None, status: int = 0,
         message: str = "", kind: int = 1, events: list[tuple[str, int, dict]] | None = None) -> Span:
    def b(x: int | bytes, n: int) -> bytes:
        return x if isinstance(x, bytes) else x.to_bytes(n, "big")

    s = Span(trace_id=b(trace, 16), span_id=b(sid, 8), name=name, kind=kind,
             start_time_unix_nano=T0 + start_ms * MS,
             end_time_unix_nano=0 if end_ms is None else T0 + end_ms * MS,
             status=Status(code=status, message=message))
    if parent is not None:
        s.parent_span_id = b(parent, 8)
    s.attributes.extend(kvs(attrs or {}))
    for ev_name, at_ms, ev_attrs in events or ():
        ev = s.events.add(name=ev_name, time_unix_nano=T0 + at_ms * MS)
        ev.attributes.extend(kvs(ev_attrs))
    return s


def request(spans: list[Span], *, resource: dict[str, Any] | None = None, scope: str = "tests",
            scope_version: str = "1.0") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(kvs(resource if resource is not None else {"service.name": "tests"}))
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = scope, scope_version
    ss.spans.extend(spans)
    return req


def as_json(req: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON of a request: protobuf's JSON mapping with hex ids, as the OTLP specification says."""
    doc = json_format.MessageToDict(req)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        import base64

                        sp[key] = base64.b64decode(sp[key]).hex()
    return doc


def response(body: bytes, media: str = PROTOBUF) -> ExportTraceServiceResponse:
    if media == JSON:
        return json_format.Parse(body, ExportTraceServiceResponse())
    return ExportTraceServiceResponse.FromString(body)


def status(body: bytes, media: str = PROTOBUF) -> status_pb2.Status:
    if media == JSON:
        return json_format.Parse(body, status_pb2.Status(), ignore_unknown_fields=True)
    return status_pb2.Status.FromString(body)


async def post(client, req: ExportTraceServiceRequest | bytes, key: str | None, *, media: str = PROTOBUF,
               headers: dict[str, str] | None = None, path: str = "/v1/traces"):
    body = req if isinstance(req, bytes) else req.SerializeToString()
    h = {"content-type": media, **(headers or {})}
    if key is not None:
        h["authorization"] = f"Bearer {key}"
    return await client.post(path, content=body, headers=h)


@dataclass
class Tenant:
    """A user, a project and API keys of it: ``key`` has TRACES_WRITE, ``reader`` only PROMPTS_READ."""

    token: str
    project_gid: str
    project_id: uuid.UUID
    key: str
    reader: str


async def tenant(gql, name: str) -> Tenant:
    import base64

    token, _ = await signup(gql, name)
    gid = await create_project(gql, token, f"{name}-project")
    project_id = uuid.UUID(base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode().split(":", 1)[1])
    key = await create_api_key(gql, token, gid, ["TRACES_WRITE"], name="otel")
    reader = await create_api_key(gql, token, gid, ["PROMPTS_READ"], name="reader")
    return Tenant(token, gid, project_id, key, reader)


async def rows(db_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def spans_of(db_url: str, project_id: uuid.UUID) -> dict[str, asyncpg.Record]:
    """The project's spans by span id (attributes and events decoded)."""
    import json

    conn = await asyncpg.connect(db_url)
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        found = await conn.fetch("SELECT s.*, t.trace_id FROM spans s JOIN traces t ON t.id = s.trace_pk "
                                 "WHERE s.project_id = $1", project_id)
    finally:
        await conn.close()
    return {r["span_id"]: r for r in found}
