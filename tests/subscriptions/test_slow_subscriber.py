"""A subscriber whose client stops reading is told it fell behind and closed; nobody else waits for it."""
from __future__ import annotations

import asyncio

from app.events import topics
from tests.ws_client import GraphQLWebSocket

from .util import EXECUTION_UPDATED, echo_settings, execute, payloads_to_events, raw_uuid, sequences, tenants

BUFFER = 24
TEXT = "".join(f"line {i:05d} of a long text\n" for i in range(1600))  # ~40 KB, streamed in ~200 pieces
#: Each event of this query is ~1 MB of JSON: the few that fill the socket buffers block the sender.
HEAVY = "subscription($id: ID!) { executionUpdated(id: $id) { type sequence delta " + " ".join(
    f"x{i}: execution {{ variables renderedPrompt }}" for i in range(12)) + " } }"


async def test_a_client_that_does_not_read_is_closed_and_others_get_everything(gql, live):
    t, = await tenants(gql, "ann", template="{{text}}")
    async with live(workers=2, subscriber_buffer=BUFFER) as server:
        eid = await execute(gql, t.token, t.prompt_id, {"text": TEXT}, modelSettings=echo_settings(200, 10))
        async with GraphQLWebSocket(server.url, token=t.token) as fast, \
                GraphQLWebSocket(server.url, token=t.token, reading=False, recv_buffer=4096, max_queue=1) as slow:
            slow_op = await slow.start(HEAVY, {"id": eid})
            started = asyncio.get_running_loop().time()
            got = payloads_to_events(await fast.collect(EXECUTION_UPDATED, {"id": eid}, timeout=30))
            took = asyncio.get_running_loop().time() - started

            # the fast subscriber got all of it, in order, while the slow one was stuck
            assert got[0]["type"] == "SNAPSHOT" and got[-1]["type"] == "COMPLETED"
            assert sequences(got) == list(range(got[0]["sequence"], got[0]["sequence"] + len(got)))
            deltas = "".join(e["delta"] for e in got if e["type"] == "OUTPUT_DELTA")
            assert (got[0]["execution"]["output"] or "") + deltas == got[-1]["execution"]["output"] == TEXT
            assert len([e for e in got if e["type"] == "OUTPUT_DELTA"]) > 2 * BUFFER
            assert took < 15, f"the worker or the fast subscriber was held up ({took:.1f} s)"
            stuck = list(server.bus._by_topic.get(topics.execution(raw_uuid(eid)), ()))
            assert len(stuck) == 1 and stuck[0].overflowed  # the fast one let go; the slow one was marked

            # now the slow client reads: what was in flight, gapless, then the reason it was closed
            slow.resume_reading()
            payloads = [p async for p in slow.stream(slow_op, timeout=30)]
            events, last = payloads_to_events(payloads[:-1]), payloads[-1]
            assert events[0]["type"] == "SNAPSHOT" and len(events) < len(got)
            assert sequences(events) == list(range(events[0]["sequence"], events[0]["sequence"] + len(events)))
            assert last["data"] is None
            assert [e["message"] for e in last["errors"]] == [
                f"This subscriber fell more than {BUFFER} events behind and was closed; subscribe again to resume "
                "from a fresh snapshot."]
            assert last["errors"][0]["extensions"]["code"] == "FELL_BEHIND"
            assert server.bus.subscriber_count == 0

            # subscribing again resumes from a fresh snapshot: the final state
            again = payloads_to_events(await slow.collect(EXECUTION_UPDATED, {"id": eid}))
            assert [e["type"] for e in again] == ["SNAPSHOT"]
            assert again[0]["execution"]["status"] == "COMPLETED" and again[0]["sequence"] == got[-1]["sequence"]
