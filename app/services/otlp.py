"""OTLP trace requests (``ExportTraceServiceRequest``, binary protobuf or OTLP/JSON) decoded into span
records, and the answers (``ExportTraceServiceResponse``, ``google.rpc.Status``) encoded.

Decoding uses the ``opentelemetry-proto`` package's messages. Each span is checked on its own: a span
with a bad id, no start, an end before its start, or a mapped attribute that cannot be stored (a
token count out of range) is rejected with its reason while the others go on. A body that does not
parse at all is :class:`BadBody` (HTTP 400); more spans than allowed is :class:`TooManySpans` (413).

Where things go (``app.services.ingest.finish_span`` does the semantic conventions):

* span attributes: kept as they came, as a flat JSON object (arrays stay arrays, key-value lists become
  objects, bytes become base64, NaN and infinities become the strings "NaN", "Infinity", "-Infinity");
* the resource's attributes: under ``otel.resource`` (an object); the instrumentation scope: under
  ``otel.scope.name``, ``otel.scope.version`` and ``otel.scope.attributes``; OpenTelemetry's span kind
  when it says more than INTERNAL: ``otel.span.kind`` (SERVER, CLIENT, PRODUCER, CONSUMER); links:
  ``otel.links`` ([{trace_id, span_id, attributes}]); dropped counts: ``otel.dropped_attributes_count``,
  ``otel.dropped_events_count``, ``otel.dropped_links_count`` (when not 0);
* events: ``[{"name", "time" (ISO 8601, UTC), "attributes"}]``;
* status: UNSET, OK or ERROR; the status message of an ERROR is the span's error (else the first
  ``exception`` event's type and message).

OTLP/JSON: ids are hex as the specification says (case-insensitive; base64, which some exporters send
from protobuf's generic JSON mapping, is accepted too — the lengths tell them apart); enums as
integers or their names; 64-bit integers as numbers or strings; lowerCamelCase keys (the original
snake_case names are accepted too).
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app.db.models.enums import SpanStatus

from .ingest import (
    MAX_DEPTH,
    MAX_INT4,
    MAX_KEY_CHARS,
    MAX_NANOS,
    Cleaner,
    Limits,
    Reject,
    Rejection,
    finish_span,
    nanos_to_datetime,
    non_finite,
    too_many_spans,
)
from .traces import SpanRecord

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: google.rpc.Code values used in Status answers (OTLP/HTTP clients go by the HTTP status).
INVALID_ARGUMENT, DEADLINE_EXCEEDED, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 3, 4, 7, 8
UNIMPLEMENTED, UNAVAILABLE, UNAUTHENTICATED, INTERNAL = 12, 14, 16, 13

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_STATUS = {0: SpanStatus.UNSET.value, 1: SpanStatus.OK.value, 2: SpanStatus.ERROR.value}
_OTEL_KINDS = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
               "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


class BadBody(ValueError):
    """The body cannot be decoded at all (HTTP 400)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TooManySpans(ValueError):
    """More spans than ``PROMPTSTUDIO_INGEST_MAX_SPANS`` in one request (HTTP 413)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Decoded:
    spans: list[SpanRecord] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    total: int = 0


# --------------------------------------------------------------------------- binary protobuf


def decode_protobuf(body: bytes, limits: Limits) -> Decoded:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise BadBody(f"The body is not an OTLP ExportTraceServiceRequest in binary protobuf ({exc}).") from None
    out = Decoded(total=sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans))
    if out.total > limits.max_spans:
        raise TooManySpans(too_many_spans(out.total, limits))
    limit = limits.max_attribute_chars
    index = 0
    for rs in request.resource_spans:
        outer = Cleaner(limit)
        resource = _pb_attrs(rs.resource.attributes, outer, "otel.resource.") if rs.resource.attributes else None
        for ss in rs.scope_spans:
            scope = ss.scope
            base: dict[str, Any] = {}
            if resource:
                base["otel.resource"] = resource
            if scope.name:
                base["otel.scope.name"] = outer.value(scope.name, "otel.scope.name")
            if scope.version:
                base["otel.scope.version"] = outer.value(scope.version, "otel.scope.version")
            if scope.attributes:
                base["otel.scope.attributes"] = _pb_attrs(scope.attributes, outer, "otel.scope.attributes.")
            for sp in ss.spans:
                try:
                    out.spans.append(_pb_span(sp, base, Cleaner(limit), outer.truncated))
                except Reject as r:
                    sid = sp.span_id.hex() if len(sp.span_id) == 8 else None
                    out.rejected.append(Rejection(index, r.reason, span_id=sid))
                index += 1
    return out


def _pb_value(v: Any, c: Cleaner, where: str, kind: str | None = None) -> Any:
    kind = kind or v.WhichOneof("value")
    if kind == "string_value":
        s = v.string_value
        if len(s) > c.limit or "\x00" in s:
            s = c.text(s, where)
        return s
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        d = v.double_value
        return d if d - d == 0 else non_finite(d)
    if kind == "bool_value":
        return v.bool_value
    if kind == "array_value":
        return [_pb_value(x, c, where) for x in v.array_value.values]
    if kind == "kvlist_value":
        return _pb_attrs(v.kvlist_value.values, c, where + ".")
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def _pb_attrs(kvs: Iterable[Any], c: Cleaner, prefix: str = "") -> dict[str, Any]:
    """Attributes as a dict (the hot loop of ingest: strings and integers inline)."""
    out: dict[str, Any] = {}
    limit = c.limit
    for kv in kvs:
        k = kv.key
        v = kv.value
        if v.HasField("string_value"):  # cheaper than WhichOneof, and most values are strings
            x = v.string_value
            if len(x) > limit or "\x00" in x:
                x = c.text(x, prefix + k)
        else:
            x = _pb_value(v, c, prefix + k)
        if len(k) > MAX_KEY_CHARS or "\x00" in k:
            k = c.key(k)
        out[k] = x
    return out


def _pb_span(sp: Any, base: dict[str, Any], c: Cleaner, outer_truncated: list[str]) -> SpanRecord:
    tid, sid, pid = sp.trace_id, sp.span_id, sp.parent_span_id
    if len(tid) != 16 or tid == _ZERO_TRACE:
        raise Reject("trace_id must be 16 bytes, not all zero" + _got(tid))
    if len(sid) != 8 or sid == _ZERO_SPAN:
        raise Reject("span_id must be 8 bytes, not all zero" + _got(sid))
    parent = None
    if pid and pid != _ZERO_SPAN:
        if len(pid) != 8:
            raise Reject("parent_span_id must be empty or 8 bytes" + _got(pid))
        if pid == sid:
            raise Reject("parent_span_id is the span's own span_id")
        parent = pid.hex()
    start_ns, end_ns = sp.start_time_unix_nano, sp.end_time_unix_nano
    if not start_ns:
        raise Reject("start_time_unix_nano is missing")
    if end_ns and end_ns < start_ns:
        raise Reject(f"the span ends before it starts (end_time_unix_nano {end_ns} < start_time_unix_nano "
                     f"{start_ns})")
    if start_ns > MAX_NANOS or end_ns > MAX_NANOS:
        raise Reject("a time is past the year 9999")
    name = sp.name
    if len(name) > c.limit or "\x00" in name:
        name = c.text(name, "name")
    attrs = _pb_attrs(sp.attributes, c) if sp.attributes else {}
    if base:
        attrs.update(base)
    otel_kind = _OTEL_KINDS.get(sp.kind)
    if otel_kind is not None:
        attrs["otel.span.kind"] = otel_kind
    events = None
    if sp.events:
        events = [{"name": c.value(ev.name, f"events[{i}].name"),
                   "time": nanos_to_datetime(min(ev.time_unix_nano, MAX_NANOS)).isoformat(),
                   "attributes": _pb_attrs(ev.attributes, c, f"events[{i}].")}
                  for i, ev in enumerate(sp.events)]
    if sp.links:
        attrs["otel.links"] = [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                                "attributes": _pb_attrs(link.attributes, c, f"otel.links[{i}].")}
                               for i, link in enumerate(sp.links)]
    if sp.dropped_attributes_count:
        attrs["otel.dropped_attributes_count"] = sp.dropped_attributes_count
    if sp.dropped_events_count:
        attrs["otel.dropped_events_count"] = sp.dropped_events_count
    if sp.dropped_links_count:
        attrs["otel.dropped_links_count"] = sp.dropped_links_count
    status = sp.status
    code = status.code
    error = None
    if code == 2:
        error = status.message or _exception(events)
        if error and (len(error) > c.limit or "\x00" in error):
            error = c.text(error, "status.message")
    if outer_truncated:
        c.truncated.extend(outer_truncated)
    return finish_span(trace_id=tid.hex(), span_id=sid.hex(), parent_span_id=parent, name=name,
                       start=nanos_to_datetime(start_ns), end=nanos_to_datetime(end_ns) if end_ns else None,
                       status=_STATUS.get(code, SpanStatus.UNSET.value), error=error, attributes=attrs,
                       events=events, cleaner=c,
                       latency_ms=min((end_ns - start_ns) // 1_000_000, MAX_INT4) if end_ns else None)


def _got(b: bytes) -> str:
    return f" (got {len(b)} bytes: {b.hex()[:40]})" if b else " (got none)"


def _exception(events: list[dict[str, Any]] | None) -> str | None:
    """"Type: message" of the first exception event (OpenTelemetry's record_exception)."""
    for ev in events or ():
        if ev.get("name") == "exception":
            a = ev.get("attributes") or {}
            kind, message = a.get("exception.type"), a.get("exception.message")
            text = ": ".join(str(x) for x in (kind, message) if x)
            if text:
                return text
    return None


# --------------------------------------------------------------------------- OTLP/JSON


def decode_json(body: bytes, limits: Limits) -> Decoded:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody(f"The body is not valid JSON ({exc}).") from None
    except RecursionError:
        raise BadBody("The body's JSON is nested too deeply.") from None
    if not isinstance(doc, dict):
        raise BadBody("The body must be a JSON object: an OTLP ExportTraceServiceRequest "
                      '({"resourceSpans": [...]}).')
    resource_spans = _list(doc, "resourceSpans", "resource_spans", "the request")
    scopes: list[tuple[dict[str, Any], list[Any]]] = []
    total = 0
    for i, rs in enumerate(resource_spans):
        where = f"resourceSpans[{i}]"
        if not isinstance(rs, dict):
            raise BadBody(f"{where} must be an object.")
        resource = _get(rs, "resource", "resource")
        if resource is not None and not isinstance(resource, dict):
            raise BadBody(f"{where}.resource must be an object.")
        resource_attrs = _list(resource or {}, "attributes", "attributes", f"{where}.resource")
        for j, ss in enumerate(_list(rs, "scopeSpans", "scope_spans", where)):
            if not isinstance(ss, dict):
                raise BadBody(f"{where}.scopeSpans[{j}] must be an object.")
            scope = _get(ss, "scope", "scope") or {}
            if not isinstance(scope, dict):
                raise BadBody(f"{where}.scopeSpans[{j}].scope must be an object.")
            spans = _list(ss, "spans", "spans", f"{where}.scopeSpans[{j}]")
            total += len(spans)
            scopes.append(({"resource": resource_attrs, "scope": scope}, spans))
    out = Decoded(total=total)
    if total > limits.max_spans:
        raise TooManySpans(too_many_spans(total, limits))
    limit = limits.max_attribute_chars
    index = 0
    for context, spans in scopes:
        outer = Cleaner(limit)
        try:
            base = _j_base(context, outer)
        except Reject as r:  # the resource or scope is bad: so is every span under it
            for sp in spans:
                out.rejected.append(Rejection(index, r.reason, span_id=_j_span_id(sp)))
                index += 1
            continue
        for sp in spans:
            try:
                if not isinstance(sp, dict):
                    raise Reject("a span must be a JSON object")
                out.spans.append(_j_span(sp, base, Cleaner(limit), outer.truncated))
            except Reject as r:
                out.rejected.append(Rejection(index, r.reason, span_id=_j_span_id(sp)))
            index += 1
    return out


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    value = d.get(camel)
    return d.get(snake) if value is None and snake != camel else value


def _list(d: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _get(d, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadBody(f"{camel} of {where} must be an array.")
    return value


def _j_base(context: dict[str, Any], c: Cleaner) -> dict[str, Any]:
    base: dict[str, Any] = {}
    if context["resource"]:
        base["otel.resource"] = _j_attrs(context["resource"], c, "otel.resource.")
    scope = context["scope"]
    for camel, key in (("name", "otel.scope.name"), ("version", "otel.scope.version")):
        value = scope.get(camel)
        if value:
            if not isinstance(value, str):
                raise Reject(f"the scope's {camel} must be a string")
            base[key] = c.value(value, key)
    attrs = scope.get("attributes")
    if attrs:
        if not isinstance(attrs, list):
            raise Reject("the scope's attributes must be an array")
        base["otel.scope.attributes"] = _j_attrs(attrs, c, "otel.scope.attributes.")
    return base


def _j_span_id(sp: Any) -> str | None:
    if not isinstance(sp, dict):
        return None
    value = _get(sp, "spanId", "span_id")
    return value[:32] if isinstance(value, str) else None


_ANY = {"stringValue": "s", "string_value": "s", "intValue": "i", "int_value": "i", "doubleValue": "d",
        "double_value": "d", "boolValue": "b", "bool_value": "b", "arrayValue": "a", "array_value": "a",
        "kvlistValue": "k", "kvlist_value": "k", "bytesValue": "y", "bytes_value": "y"}


def _j_value(v: Any, c: Cleaner, where: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise Reject(f"attribute {where!r} is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(v, dict):
        raise Reject(f"the value of attribute {where!r} must be an AnyValue object "
                     '(e.g. {"stringValue": "..."})')
    for key, x in v.items():
        kind = _ANY.get(key)
        if kind is None:
            continue  # unknown fields are ignored, as the specification asks
        if kind == "s":
            if not isinstance(x, str):
                raise Reject(f"stringValue of attribute {where!r} must be a string")
            return c.value(x, where)
        if kind == "i":
            return _j_int(x, f"intValue of attribute {where!r}", signed=True)
        if kind == "d":
            if isinstance(x, str) and x in ("NaN", "Infinity", "-Infinity"):
                return x
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise Reject(f"doubleValue of attribute {where!r} must be a number")
            return float(x) if x - x == 0 else non_finite(float(x))
        if kind == "b":
            if not isinstance(x, bool):
                raise Reject(f"boolValue of attribute {where!r} must be true or false")
            return x
        if kind == "a":
            values = x.get("values") if isinstance(x, dict) else None
            if values is not None and not isinstance(values, list):
                raise Reject(f"arrayValue of attribute {where!r} must be {{\"values\": [...]}}")
            return [_j_value(e, c, where, depth + 1) for e in values or ()]
        if kind == "k":
            values = x.get("values") if isinstance(x, dict) else None
            if values is not None and not isinstance(values, list):
                raise Reject(f"kvlistValue of attribute {where!r} must be {{\"values\": [...]}}")
            return _j_attrs(values or [], c, where + ".", depth + 1)
        if kind == "y":
            if not isinstance(x, str):
                raise Reject(f"bytesValue of attribute {where!r} must be a base64 string")
            return c.value(x, where)
    return None


def _j_attrs(kvs: Any, c: Cleaner, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    if not isinstance(kvs, list):
        raise Reject("attributes must be an array of {key, value}")
    out: dict[str, Any] = {}
    for kv in kvs:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise Reject('an attribute must be an object {"key": "...", "value": {...}}')
        k = c.key(kv["key"])
        out[k] = _j_value(kv.get("value") or {}, c, prefix + k, depth)
    return out


def _j_int(x: Any, what: str, *, signed: bool = False) -> int:
    if isinstance(x, int) and not isinstance(x, bool):
        n = x
    elif (isinstance(x, str) and (x.isdigit() or (signed and x.startswith("-") and x[1:].isdigit()))) or (
            isinstance(x, float) and x.is_integer()):
        n = int(x)
    else:
        raise Reject(f"{what} must be an integer (a number or a string of digits)")
    if not (-(2**63) if signed else 0) <= n < 2**64:
        raise Reject(f"{what} is out of the range of a 64-bit integer")
    return n


def _j_enum(x: Any, names: dict[str, int], what: str) -> int:
    if x is None:
        return 0
    if isinstance(x, str) and x in names:
        return names[x]
    return _j_int(x, what)


def _j_id(x: Any, size: int, what: str) -> bytes:
    """A trace or span id: hex (as OTLP/JSON says), or base64 (protobuf's generic JSON mapping)."""
    if not isinstance(x, str):
        raise Reject(f"{what} must be a string of {2 * size} hex characters")
    try:
        if len(x) == 2 * size:
            return bytes.fromhex(x)
        raw = base64.b64decode(x, validate=True)
        if len(raw) == size:
            return raw
    except (ValueError, binascii.Error):
        pass
    raise Reject(f"{what} must be {2 * size} hex characters; got {x[:40]!r}")


def _j_span(sp: dict[str, Any], base: dict[str, Any], c: Cleaner, outer_truncated: list[str]) -> SpanRecord:
    tid = _j_id(_get(sp, "traceId", "trace_id"), 16, "traceId")
    sid = _j_id(_get(sp, "spanId", "span_id"), 8, "spanId")
    if tid == _ZERO_TRACE:
        raise Reject("traceId is all zeros")
    if sid == _ZERO_SPAN:
        raise Reject("spanId is all zeros")
    parent = None
    raw_parent = _get(sp, "parentSpanId", "parent_span_id")
    if raw_parent:
        pid = _j_id(raw_parent, 8, "parentSpanId")
        if pid == sid:
            raise Reject("parentSpanId is the span's own spanId")
        parent = pid.hex() if pid != _ZERO_SPAN else None
    start_ns = _j_int(_get(sp, "startTimeUnixNano", "start_time_unix_nano") or 0, "startTimeUnixNano")
    end_ns = _j_int(_get(sp, "endTimeUnixNano", "end_time_unix_nano") or 0, "endTimeUnixNano")
    if not start_ns:
        raise Reject("startTimeUnixNano is missing")
    if end_ns and end_ns < start_ns:
        raise Reject(f"the span ends before it starts (endTimeUnixNano {end_ns} < startTimeUnixNano {start_ns})")
    if start_ns > MAX_NANOS or end_ns > MAX_NANOS:
        raise Reject("a time is past the year 9999")
    name = sp.get("name") or ""
    if not isinstance(name, str):
        raise Reject("name must be a string")
    name = c.value(name, "name")
    attrs = _j_attrs(sp.get("attributes") or [], c)
    if base:
        attrs.update(base)
    otel_kind = _OTEL_KINDS.get(_j_enum(sp.get("kind"), _KIND_NAMES, "kind"))
    if otel_kind is not None:
        attrs["otel.span.kind"] = otel_kind
    events = None
    raw_events = sp.get("events")
    if raw_events:
        if not isinstance(raw_events, list):
            raise Reject("events must be an array")
        events = []
        for i, ev in enumerate(raw_events):
            if not isinstance(ev, dict):
                raise Reject(f"events[{i}] must be an object")
            t = _j_int(_get(ev, "timeUnixNano", "time_unix_nano") or 0, f"events[{i}].timeUnixNano")
            ev_name = ev.get("name") or ""
            events.append({"name": c.value(ev_name if isinstance(ev_name, str) else str(ev_name), f"events[{i}].name"),
                           "time": nanos_to_datetime(min(t, MAX_NANOS)).isoformat(),
                           "attributes": _j_attrs(ev.get("attributes") or [], c, f"events[{i}].")})
    links = sp.get("links")
    if links:
        if not isinstance(links, list):
            raise Reject("links must be an array")
        out_links = []
        for i, link in enumerate(links):
            if not isinstance(link, dict):
                raise Reject(f"links[{i}] must be an object")
            out_links.append({"trace_id": _j_id(_get(link, "traceId", "trace_id"), 16, f"links[{i}].traceId").hex(),
                              "span_id": _j_id(_get(link, "spanId", "span_id"), 8, f"links[{i}].spanId").hex(),
                              "attributes": _j_attrs(link.get("attributes") or [], c, f"otel.links[{i}].")})
        attrs["otel.links"] = out_links
    for camel, snake, key in (("droppedAttributesCount", "dropped_attributes_count", "otel.dropped_attributes_count"),
                              ("droppedEventsCount", "dropped_events_count", "otel.dropped_events_count"),
                              ("droppedLinksCount", "dropped_links_count", "otel.dropped_links_count")):
        n = _get(sp, camel, snake)
        if n:
            attrs[key] = _j_int(n, camel)
    status = sp.get("status") or {}
    if not isinstance(status, dict):
        raise Reject("status must be an object")
    code = _j_enum(status.get("code"), _STATUS_NAMES, "status.code")
    error = None
    if code == 2:
        message = status.get("message")
        error = (message if isinstance(message, str) and message else None) or _exception(events)
        if error:
            error = c.value(error, "status.message")
    if outer_truncated:
        c.truncated.extend(outer_truncated)
    return finish_span(trace_id=tid.hex(), span_id=sid.hex(), parent_span_id=parent, name=name,
                       start=nanos_to_datetime(start_ns), end=nanos_to_datetime(end_ns) if end_ns else None,
                       status=_STATUS.get(code, SpanStatus.UNSET.value), error=error, attributes=attrs,
                       events=events, cleaner=c)


# --------------------------------------------------------------------------- answers


def export_response(rejected: int, message: str | None, media_type: str) -> bytes:
    """An ExportTraceServiceResponse: partial_success set when spans were rejected (or with a warning)."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message or ""
    if media_type == JSON:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def status_body(code: int, message: str, media_type: str, *, bad_field: str | None = None) -> bytes:
    """A google.rpc.Status (the body of every OTLP/HTTP failure), with a BadRequest detail for bad data."""
    status = status_pb2.Status(code=code, message=message)
    if bad_field is not None:
        detail = error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=bad_field, description=message)])
        status.details.add().Pack(detail)
    if media_type == JSON:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()
