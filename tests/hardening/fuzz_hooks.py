"""Schemathesis hooks for the fuzz test (tests/hardening/test_fuzz.py): strategies for our custom
scalars and the checks that define "the server held up".

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS=tests.hardening.fuzz_hooks.

Scalars: DateTime (ISO 8601, any year, any offset or none), Decimal (any: NaN, infinities, huge
exponents; a string or a number literal) and JSON (any JSON value as a GraphQL literal: objects, lists, strings with any
character — NUL and other control characters included —, numbers, booleans, null).

Checks (every response):

* ``no_server_error`` — no 5xx, and no error whose code says the server failed
  (INTERNAL_SERVER_ERROR). Errors with other codes (NOT_FOUND, FORBIDDEN, BAD_USER_INPUT, ...) are
  answers, not failures.
* ``every_error_has_a_code`` — the body is a JSON object, and every entry of ``errors`` has a
  non-empty ``extensions.code``.
Plus schemathesis's ``response_schema_conformance``: the response is a JSON object and no
non-null field came back null.
"""
from __future__ import annotations

import datetime as dt
import json
import string

import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

SERVER_FAULT_CODES = {"INTERNAL_SERVER_ERROR"}

# --- scalars

# Any offset a zone may have (up to ±23:59), or none; the whole range of years, the ends included.
_zones = st.none() | st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)))
_datetimes = st.datetimes(timezones=_zones) | st.sampled_from([
    dt.datetime(1, 1, 1, 0, 0, 0, 2), dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(-dt.timedelta(hours=12)))])
schemathesis.graphql.scalar("DateTime", _datetimes.map(lambda d: d.isoformat()).map(nodes.String))

# Any decimal (NaN, infinities and huge exponents included), as a string or a number literal.
schemathesis.graphql.scalar("Decimal", st.decimals().map(str).map(nodes.String)
                            | st.integers().map(nodes.Int)
                            | st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float))

_names = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12)
_json_leaves = (st.none().map(lambda _: nodes.Null)
                | st.booleans().map(nodes.Boolean)
                | st.integers(min_value=-(2**53), max_value=2**53).map(nodes.Int)
                | st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float)
                | st.text(max_size=40).map(nodes.String))


def _object(pairs: dict) -> object:
    import graphql

    return nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v) for k, v in pairs.items()])


_json_values = st.recursive(
    _json_leaves,
    lambda children: st.lists(children, max_size=4).map(nodes.List)
    | st.dictionaries(_names, children, max_size=4).map(_object),
    max_leaves=12,
)
schemathesis.graphql.scalar("JSON", _json_values)


# --- checks

def _body(response) -> object:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"the response is not JSON ({response.status_code}): {response.content[:300]!r}") from exc


@schemathesis.check
def no_server_error(ctx, response, case) -> None:
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.content[:500]!r}")
    body = _body(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors or ():
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        if code in SERVER_FAULT_CODES:
            raise AssertionError(f"a server fault: {json.dumps(error)}")


@schemathesis.check
def every_error_has_a_code(ctx, response, case) -> None:
    body = _body(response)
    if not isinstance(body, dict):
        raise AssertionError(f"the response is not a JSON object: {body!r:.300}")
    for error in body.get("errors") or ():
        extensions = error.get("extensions") if isinstance(error, dict) else None
        if not isinstance(extensions, dict) or not isinstance(extensions.get("code"), str) or not extensions["code"]:
            raise AssertionError(f"an error without extensions.code: {json.dumps(error)}")
