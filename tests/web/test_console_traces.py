"""The console's Traces section in a real browser, with no network but the server: traces arrive live
(an execution's, and spans sent over OTLP in two requests, children before their root), filter by
status, open as a span tree (nesting, kinds, an LLM span's usage, a span's attributes), by keyboard;
an API key without TRACES_READ is told why it sees no traces; an open trace redraws as spans arrive."""
from __future__ import annotations

import asyncio
import base64
import time
import uuid

import httpx

from tests.helpers import create_api_key
from tests.subscriptions.util import execute
from tests.traces.otlp_util import MS, T0, post, request, span
from tests.web.test_console import owner_with_prompt, sign_in_with_password

TRACE = 0x5EED_0000_0000_0000_0000_0000_0000_0001
ROOT, PLAN, SEARCH, FETCH = 0xA1, 0xA2, 0xA3, 0xA4


def hex_of(n: int, width: int) -> str:
    return f"{n:0{width}x}"


def uuid_of(gid: str) -> uuid.UUID:
    return uuid.UUID(base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode().split(":", 1)[1])


def agent_spans(now_ms: int, trace: int = TRACE):
    """An agent's trace: agent (root) -> plan (LLM), search (TOOL) -> fetch (an HTTP call that failed)."""
    at = now_ms
    children = [
        span(trace, PLAN, ROOT, name="plan", start_ms=at + 5, end_ms=at + 45,
             attrs={"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
                    "llm.token_count.prompt": 120, "llm.token_count.completion": 30,
                    "input.value": "Where is my order?", "output.value": "Search for it."}),
        span(trace, SEARCH, ROOT, name="search", start_ms=at + 50, end_ms=at + 90,
             attrs={"openinference.span.kind": "TOOL", "tool.name": "orders"}),
        span(trace, FETCH, SEARCH, name="fetch", start_ms=at + 55, end_ms=at + 85, status=2, message="upstream timeout",
             attrs={"http.request.method": "GET", "url.full": "http://orders.internal/42"}),
    ]
    root = span(trace, ROOT, name="agent", start_ms=at, end_ms=at + 100,
                attrs={"openinference.span.kind": "AGENT", "user.id": "user-7", "session.id": "s-1"})
    return children, root


def subscribers(server) -> list:
    return [sub for subs in server.bus._by_topic.values() for sub in subs]


async def subscribed(server, before: list, timeout: float = 20) -> None:
    """Wait until the server has a subscriber that is not in ``before`` (the page's feed has started)."""
    deadline = time.monotonic() + timeout
    while not any(all(sub is not old for old in before) for sub in subscribers(server)):
        assert time.monotonic() < deadline, "the page did not subscribe to the feed"
        await asyncio.sleep(0.05)


async def row_names(page) -> list[str]:
    return await page.eval_on_selector_all("table.traces tbody tr", "trs => trs.map(tr => tr.dataset.traceId)")


async def test_traces_arrive_live_and_open_as_a_span_tree(gql, live, offline_page):
    token, project_id, prompt_id, _ = await owner_with_prompt(gql)
    key = await create_api_key(gql, token, project_id, ["TRACES_WRITE"], name="otel")
    otlp_trace = hex_of(TRACE, 32)
    async with live(workers=1) as server, offline_page(server) as page, \
            httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await sign_in_with_password(page, server.url, "ann")
        await page.wait_for_url("**/console#/p/ann-proj/executions")
        assert "traces" in await page.text_content("footer")  # the keys listed include g t
        await page.keyboard.press("g")
        await page.keyboard.press("t")  # g t: traces
        await page.wait_for_url("**/console#/p/ann-proj/traces")
        await page.wait_for_selector("section[aria-labelledby=traces-title] p.empty")  # none yet
        await page.wait_for_selector(".live.on", timeout=20_000)

        # an execution becomes a trace, which appears live (its trace id is the execution's uuid)
        eid = await execute(gql, token, prompt_id, {"name": "Ada"})
        exec_trace = uuid_of(eid).hex
        exec_row = f'tr[data-trace-id="{exec_trace}"]'
        await page.wait_for_selector(f"{exec_row}[data-status=OK]", timeout=30_000)
        assert (await page.text_content(f"{exec_row} td:nth-child(2)")).startswith("execute greeting")
        assert await page.get_attribute(f"{exec_row} td:nth-child(9) a", "href") == f"#/p/ann-proj/executions/{eid}"

        # an application's spans, children first: the trace shows up without a name, then its root names it
        now_ms = (time.time_ns() - T0) // MS
        children, root = agent_spans(now_ms)
        assert (await post(http, request(children), key)).status_code == 200
        row = f'tr[data-trace-id="{otlp_trace}"]'
        await page.wait_for_selector(f"{row}[data-spans='3'][data-status=ERROR]", timeout=20_000)
        assert await page.text_content(f"{row} td:nth-child(2) a") == otlp_trace  # no root yet: its id stands in
        assert (await post(http, request([root]), key)).status_code == 200
        await page.wait_for_selector(f"{row}[data-spans='4']", timeout=20_000)  # the same row, updated in place
        assert await page.text_content(f"{row} td:nth-child(2) a") == "agent"
        assert "upstream timeout" in await page.text_content(f"{row} td:nth-child(2)")
        cells = await page.eval_on_selector_all(f"{row} td", "tds => tds.map(td => td.textContent)")
        assert cells[3] == "100 ms" and cells[4].startswith("4") and cells[5] == "150", cells
        assert cells[6].startswith("$") and cells[7] == "user-7 / s-1" and cells[8] == "—", cells
        assert await row_names(page) == [otlp_trace, exec_trace]  # newest first

        # the status filter, applied to the list and the feed
        await page.get_by_label("Status").select_option("ERROR")
        await page.wait_for_function(f"() => !document.querySelector('{exec_row}')")
        await page.wait_for_selector(row)
        assert await row_names(page) == [otlp_trace]
        await page.get_by_label("Status").select_option("OK")
        await page.wait_for_selector(exec_row)
        assert await row_names(page) == [exec_trace]
        await page.get_by_label("Status").select_option("")
        await page.wait_for_selector(row)

        # one trace: the tree of its spans
        await page.click(f"{row} td:nth-child(2) a")
        await page.wait_for_url(f"**#/p/ann-proj/traces/{otlp_trace}")
        await page.wait_for_selector(".spans tbody tr:nth-child(4)")
        tree = await page.eval_on_selector_all(
            ".spans tbody tr",
            "trs => trs.map(tr => [tr.dataset.spanId, tr.dataset.parentId, tr.dataset.depth, tr.dataset.kind])")
        assert tree == [[hex_of(ROOT, 16), "", "0", "AGENT"], [hex_of(PLAN, 16), hex_of(ROOT, 16), "1", "LLM"],
                        [hex_of(SEARCH, 16), hex_of(ROOT, 16), "1", "TOOL"],
                        [hex_of(FETCH, 16), hex_of(SEARCH, 16), "2", "HTTP"]], tree
        indents = await page.eval_on_selector_all(".spans .span-name", "tds => tds.map(td => td.getBoundingClientRect().left + parseFloat(getComputedStyle(td).paddingLeft))")
        assert indents[0] < indents[1] == indents[2] < indents[3], indents  # indented by depth
        plan = f'.spans tr[data-span-id="{hex_of(PLAN, 16)}"]'
        usage = await page.text_content(f"{plan} td.usage")
        assert "gpt-4o" in usage and "120 in · 30 out" in usage and "$" in usage, usage
        fetch = f'.spans tr[data-span-id="{hex_of(FETCH, 16)}"]'
        assert await page.text_content(f"{fetch} td:nth-child(2)") == "ERROR"
        assert await page.text_content(f'.spans tr[data-span-id="{hex_of(SEARCH, 16)}"] td.usage') == ""
        # the timeline: fetch starts 55 ms into a 100 ms trace and lasts 30 ms
        left, width = await page.eval_on_selector(
            f"{fetch} .bar-fill", "el => [parseFloat(el.style.left), parseFloat(el.style.width)]")
        assert abs(left - 55) < 0.5 and abs(width - 30) < 0.5, (left, width)
        assert "user-7" in await page.text_content(".facts")

        # by keyboard: ↓ moves from span to span and shows the selected one's attributes
        await page.focus(f'.spans tr[data-span-id="{hex_of(ROOT, 16)}"] a.span-link')
        await page.keyboard.press("ArrowDown")
        await page.wait_for_url(f"**#/p/ann-proj/traces/{otlp_trace}/{hex_of(PLAN, 16)}")
        await page.wait_for_selector(f'.span-detail[data-span-id="{hex_of(PLAN, 16)}"] table.attributes')
        attributes = await page.eval_on_selector_all(
            ".span-detail table.attributes tr", "trs => Object.fromEntries(trs.map(tr => [tr.cells[0].textContent, tr.cells[1].textContent]))")
        assert attributes["llm.model_name"] == "gpt-4o" and attributes["input.value"] == "Where is my order?", attributes
        assert "service.name" in attributes["otel.resource"]
        assert "120 in, 30 out" in await page.text_content(".span-detail .facts")
        assert await page.get_attribute(f"{plan} a.span-link", "aria-current") == "true"
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("ArrowDown")
        await page.wait_for_url(f"**#/p/ann-proj/traces/{otlp_trace}/{hex_of(FETCH, 16)}")
        await page.wait_for_selector(f'.span-detail[data-span-id="{hex_of(FETCH, 16)}"] table.attributes')
        assert "upstream timeout" in await page.text_content(".span-detail")
        assert await page.evaluate("() => document.activeElement.closest('tr').dataset.spanId") == hex_of(FETCH, 16)
        await page.keyboard.press("Escape")  # back up to the list
        await page.wait_for_url("**#/p/ann-proj/traces")

        # an execution's trace links to the execution
        await page.click(f"{exec_row} td:nth-child(2) a")
        await page.wait_for_selector(".spans tr[data-kind=LLM] td.usage")
        names = await page.eval_on_selector_all(".spans tbody tr", "trs => trs.map(tr => [tr.dataset.depth, tr.dataset.kind])")
        assert names[0] == ["0", "CHAIN"] and all(depth == "1" for depth, _ in names[1:]) and len(names) >= 3, names
        await page.click('.spans tr[data-kind=LLM] a.span-link')
        await page.wait_for_selector('.span-detail table.attributes')
        await page.click("[data-execution-link]")
        await page.wait_for_url(f"**#/p/ann-proj/executions/{eid}")
        await page.wait_for_selector(".detail[data-status=COMPLETED]")
        assert await page.get_attribute("[data-trace-link]", "href") == f"#/p/ann-proj/traces/{exec_trace}"  # and back
        assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)


async def test_a_key_without_traces_read_is_told_why_and_one_with_it_sees_a_trace_grow(gql, live, offline_page):
    token, project_id, prompt_id, _ = await owner_with_prompt(gql)
    writer = await create_api_key(gql, token, project_id, ["TRACES_WRITE"], name="otel")
    key = await create_api_key(gql, token, project_id, ["PROMPTS_READ", "EXECUTIONS_READ"])
    async with live() as server, offline_page(server) as page, \
            httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        children, root = agent_spans((time.time_ns() - T0) // MS)
        assert (await post(http, request([*children, root]), writer)).status_code == 200

        await page.goto(server.url + "/console")
        await page.get_by_role("tab", name="Token or API key").click()
        await page.get_by_label("Session token").fill(key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/console#/p/ann-proj/executions")
        await page.get_by_role("link", name="Traces").click()  # the server has traces: the tab is there
        await page.wait_for_url("**/console#/p/ann-proj/traces")
        alert = await page.wait_for_selector("[data-forbidden]", timeout=20_000)
        assert "TRACES_READ" in await alert.text_content()
        assert await page.query_selector("p.empty") is None and await page.query_selector("table.traces") is None

        await page.goto(f"{server.url}/console#/p/ann-proj/traces/{hex_of(TRACE, 32)}")  # a link to a trace
        empty = await page.wait_for_selector("p.empty")
        assert "TRACES_READ" in await empty.text_content()

        # a key with the scope reads the same trace
        reader = await create_api_key(gql, token, project_id, ["TRACES_READ"], name="reader")
        await page.get_by_role("button", name="Sign out").click()
        await page.get_by_role("tab", name="Token or API key").click()
        await page.get_by_label("Session token").fill(reader)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/console#/p/ann-proj/executions")
        await page.goto(f"{server.url}/console#/p/ann-proj/traces/{hex_of(TRACE, 32)}")
        await page.wait_for_selector(".spans tbody tr:nth-child(4)")

        # a trace open while its spans arrive: children whose parent is missing are shown at the top, marked,
        # then the root comes and the tree is redrawn with it
        children, root = agent_spans((time.time_ns() - T0) // MS, TRACE + 1)
        assert (await post(http, request(children), writer)).status_code == 200
        before = subscribers(server)
        await page.goto(f"{server.url}/console#/p/ann-proj/traces/{hex_of(TRACE + 1, 32)}")
        await page.wait_for_selector(f'.detail[data-trace-id="{hex_of(TRACE + 1, 32)}"] .spans tbody tr:nth-child(3)')
        tree = await page.eval_on_selector_all(
            ".spans tbody tr", "trs => trs.map(tr => [tr.dataset.spanId, tr.dataset.depth, "
                               "tr.querySelector('.span-name').textContent.includes('parent not arrived')])")
        assert tree == [[hex_of(PLAN, 16), "0", True], [hex_of(SEARCH, 16), "0", True],
                        [hex_of(FETCH, 16), "1", False]], tree
        await subscribed(server, before)  # the open trace's feed
        assert (await post(http, request([root]), writer)).status_code == 200
        await page.wait_for_selector(f'.spans tbody tr:nth-child(4)[data-span-id="{hex_of(FETCH, 16)}"][data-depth="2"]',
                                     timeout=20_000)
        assert await page.text_content("#trace-title") == "agent ERROR"
        assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)
