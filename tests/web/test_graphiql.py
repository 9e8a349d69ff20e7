"""GraphiQL in a real browser with no network but the server: it renders from our files, opens on
the tour, runs it step by step, and its Headers pane authenticates a subscription (sent as the
WebSocket's connection_init payload)."""
from __future__ import annotations

import json

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
RESULT = "section.result-window .CodeMirror"
#: The variables and headers editors share one pane; the one whose tab is chosen is shown.
TOOL_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"


async def editor_text(page, selector: str) -> str:
    return await page.evaluate("(s) => document.querySelector(s).CodeMirror.getValue()", selector)


async def set_editor(page, selector: str, text: str) -> None:
    await page.evaluate("([s, t]) => document.querySelector(s).CodeMirror.setValue(t)", [selector, text])


async def run_operation(page, name: str, *, until: str) -> dict:
    """Pick `name` from the run button's menu (the tour has several operations) and wait for the
    result to contain `until`; returns the result as JSON."""
    await set_editor(page, RESULT, "")
    await page.click(".graphiql-execute-button")
    await page.get_by_role("menuitem", name=name, exact=True).click()
    try:
        await page.wait_for_function("([s, u]) => document.querySelector(s).CodeMirror.getValue().includes(u)",
                                     arg=[RESULT, until], timeout=20_000)
    except Exception:
        raise AssertionError(f"{name}: no {until} in the result: {await editor_text(page, RESULT)!r}") from None
    return json.loads(await editor_text(page, RESULT))


async def test_graphiql_works_offline_and_runs_the_tour(live, offline_page):
    async with live(workers=1) as server, offline_page(server) as page:
        await page.goto(server.url + "/graphql")
        await page.wait_for_selector(QUERY_EDITOR, timeout=30_000)
        tour = await editor_text(page, QUERY_EDITOR)
        assert tour.startswith("# Welcome to Prompt Studio.") and "mutation SignUp" in tour
        variables = TOOL_EDITOR
        assert "projectId" in await editor_text(page, TOOL_EDITOR)

        signed_up = await run_operation(page, "SignUp", until='"token"')
        token = signed_up["data"]["signUp"]["token"]
        assert token and signed_up["data"]["signUp"]["userErrors"] == []

        await page.click("button[data-name=headers]")
        await set_editor(page, TOOL_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))
        project = (await run_operation(page, "CreateProject", until='"slug"'))["data"]["createProject"]["project"]
        await page.click("button[data-name=variables]")
        await set_editor(page, variables, json.dumps({"projectId": project["id"]}))
        prompt = (await run_operation(page, "CreatePrompt", until='"variables"'))["data"]["createPrompt"]["prompt"]
        await set_editor(page, variables, json.dumps({"promptId": prompt["id"]}))
        execution = (await run_operation(page, "Run", until='"status"'))["data"]["executePrompt"]["execution"]

        # The subscription needs the token: it is authenticated only through connection_init.
        await set_editor(page, variables, json.dumps({"id": execution["id"]}))
        # The echo run may end before the subscription starts: then its one event is a SNAPSHOT of the
        # finished execution; otherwise the last event is COMPLETED. Either way it shows the output.
        watched = await run_operation(page, "Watch", until='"status": "COMPLETED"')
        event = watched["data"]["executionUpdated"]
        assert event["type"] in ("COMPLETED", "SNAPSHOT") and event["execution"]["status"] == "COMPLETED"
        assert event["execution"]["output"] == "Hello Ada, how can I help you with billing?"

        assert page.blocked == [], page.blocked  # nothing was asked of any other host
        assert page.errors == [], page.errors


async def test_a_shared_link_opens_its_query(live, offline_page):
    async with live() as server, offline_page(server) as page:
        await page.goto(server.url + "/?query=%7B%20__typename%20%7D")  # the landing page sends it on
        await page.wait_for_selector(QUERY_EDITOR, timeout=30_000)
        assert page.url.startswith(server.url + "/graphql?q=")
        assert (await editor_text(page, QUERY_EDITOR)).strip() == "{ __typename }"
        await page.click(".graphiql-execute-button")
        await page.wait_for_function("(s) => document.querySelector(s).CodeMirror.getValue().includes('Query')",
                                     arg=RESULT, timeout=20_000)
        assert json.loads(await editor_text(page, RESULT)) == {"data": {"__typename": "Query"}}
        assert page.blocked == []
