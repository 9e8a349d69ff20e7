"""The console in a real browser, with no network but the server: sign in, watch executions go from
PENDING to COMPLETED live, stream one's output with its logs and validation results, browse a
prompt's versions and diff two side by side, see the deployments; by keyboard too."""
from __future__ import annotations

from tests.helpers import DEFAULT_PASSWORD, create_api_key, create_project, signup
from tests.subscriptions.util import _ok, create_prompt, execute

ERR = "userErrors { code message field }"

#: Records, in the page, every status each execution row (or the detail view) shows, and the
#: lengths the output goes through: what a person watching would have seen, in order.
RECORDER = """() => {
  window.__seen = {};
  window.__outputs = [];
  window.__loaded = performance.timeOrigin;
  const note = (el) => {
    const id = el.getAttribute("data-execution-id"), status = el.getAttribute("data-status");
    const list = (window.__seen[id] = window.__seen[id] || []);
    if (list[list.length - 1] !== status) list.push(status);
  };
  document.querySelectorAll("[data-execution-id]").forEach(note);
  new MutationObserver((changes) => {
    for (const c of changes) {
      const el = c.target.nodeType === 1 ? c.target : c.target.parentElement;
      if (!el) continue;
      el.querySelectorAll("[data-execution-id]").forEach(note);
      const row = el.closest("[data-execution-id]");
      if (row) note(row);
      const out = document.querySelector(".output");
      if (out) {
        const n = out.textContent.length;
        if (window.__outputs[window.__outputs.length - 1] !== n) window.__outputs.push(n);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true,
                               attributeFilter: ["data-status"]});
}"""


async def owner_with_prompt(gql, template: str = "Hello {{name}}!"):
    await signup(gql, "root")  # the first account is the superuser; the owner below is an ordinary user
    token, _ = await signup(gql, "ann")
    project_id = await create_project(gql, token, "ann-proj", "Ann's project")
    prompt_id, version_id = await create_prompt(gql, token, project_id, "greeting", template)
    return token, project_id, prompt_id, version_id


async def sign_in_with_password(page, base: str, login: str) -> None:
    await page.goto(base + "/console")
    await page.get_by_label("Email or username").fill(login)
    await page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


async def test_an_execution_goes_from_pending_to_completed_live(gql, live, make_app, offline_page):
    token, project_id, prompt_id, _ = await owner_with_prompt(gql)
    async with live() as server, offline_page(server) as page:  # no workers: it stays PENDING until one starts
        await sign_in_with_password(page, server.url, "ann")
        await page.wait_for_url("**/console#/p/ann-proj/executions")  # the only project opens by itself
        await page.wait_for_selector(".live.on", timeout=20_000)
        await page.evaluate(RECORDER)

        eid = await execute(gql, token, prompt_id, {"name": "Ada"})
        row = f'tr[data-execution-id="{eid}"]'
        await page.wait_for_selector(f"{row}[data-status=PENDING]", timeout=20_000)
        assert await page.text_content(f"{row} td:nth-child(2)") == "greeting"

        async with make_app(workers=1):  # a worker joins (another process would do the same)
            await page.wait_for_selector(f"{row}[data-status=COMPLETED]", timeout=30_000)
        seen = (await page.evaluate("() => window.__seen"))[eid]
        assert seen[0] == "PENDING" and seen[-1] == "COMPLETED" and set(seen) <= {"PENDING", "RUNNING", "COMPLETED"}
        assert await page.evaluate("() => window.__loaded") is not None  # the same page all along (no reload)
        cells = await page.eval_on_selector_all(f"{row} td", "tds => tds.map(td => td.textContent)")
        assert cells[2] == "v1" and cells[5].endswith("ms") and int(cells[6]) > 0, cells  # version, latency, tokens

        await page.click(f"{row} a")
        await page.wait_for_selector(".detail[data-status=COMPLETED]")
        assert await page.text_content(".output") == "Hello Ada!"
        assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)


async def test_an_execution_streams_in_with_its_logs_and_validation_results(gql, live, make_app, offline_page):
    token, project_id, prompt_id, _ = await owner_with_prompt(gql, "Hello {{name}}, here is a longer answer.")
    body = await gql(f"""mutation($input: CreateValidationInput!) {{ createValidation(input: $input) {{ {ERR} }} }}""",
                     {"input": {"promptId": prompt_id, "name": "says hello", "type": "REGEX",
                                "config": {"pattern": "^Hello"}}}, token=token)
    _ok(body, "createValidation")
    eid = await execute(gql, token, prompt_id, {"name": "Ada"},
                        modelSettings={"extra": {"chunkSize": 4, "chunkDelayMs": 120}})
    async with live() as server, offline_page(server) as page:
        await sign_in_with_password(page, server.url, "ann")
        await page.wait_for_selector(f'tr[data-execution-id="{eid}"] a')
        await page.click(f'tr[data-execution-id="{eid}"] a')
        await page.wait_for_selector(".detail[data-status=PENDING]")
        await page.evaluate(RECORDER)
        async with make_app(workers=1):
            await page.wait_for_selector(".detail[data-status=COMPLETED] .results li", timeout=30_000)
        expected = "Hello Ada, here is a longer answer."
        assert await page.text_content(".output") == expected
        outputs = await page.evaluate("() => window.__outputs")
        partial = [n for n in outputs if 1 < n < len(expected)]
        assert len(partial) >= 3, outputs  # it grew piece by piece, as it streamed
        assert (await page.evaluate("() => window.__seen"))[eid][-1] == "COMPLETED"
        assert "✓ passed says hello" in await page.text_content(".results li")
        logs = await page.eval_on_selector_all(".logs tbody tr td:nth-child(3)", "tds => tds.map(td => td.textContent)")
        assert any("calling echo model" in line for line in logs), logs
        assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)


async def test_an_api_key_browses_prompts_diffs_and_deployments_by_keyboard(gql, live, offline_page):
    token, project_id, prompt_id, v1 = await owner_with_prompt(gql, "Hello {{name}}!\nHow can I help?")
    body = await gql(f"""mutation($input: CreatePromptVersionInput!) {{
        createPromptVersion(input: $input) {{ version {{ id }} {ERR} }} }}""",
                     {"input": {"promptId": prompt_id, "content": {"template": "Hi {{name}}!\nHow can I help?"},
                                "commitMessage": "less formal"}}, token=token)
    v2 = _ok(body, "createPromptVersion")["version"]["id"]
    body = await gql(f"""mutation($input: SetTrafficSplitInput!) {{ setTrafficSplit(input: $input) {{ {ERR} }} }}""",
                     {"input": {"promptId": prompt_id, "environment": "production",
                                "splits": [{"versionId": v1, "percentage": 70}, {"versionId": v2, "percentage": 30}]}},
                     token=token)
    _ok(body, "setTrafficSplit")
    key = await create_api_key(gql, token, project_id, ["PROMPTS_READ", "EXECUTIONS_READ"])

    async with live() as server, offline_page(server) as page:
        await page.goto(server.url + "/console")
        await page.get_by_role("tab", name="Token or API key").click()
        await page.get_by_label("Session token").fill("not a key")
        await page.get_by_role("button", name="Sign in").click()
        assert "UNAUTHENTICATED" in await page.text_content("[role=alert]")  # refused, and says so
        await page.get_by_label("Session token").fill(key)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/console#/p/ann-proj/executions")
        await page.wait_for_selector(".empty")  # no executions yet

        await page.keyboard.press("g")
        await page.keyboard.press("p")  # g p: prompts
        await page.wait_for_url("**#/p/ann-proj/prompts")
        await page.get_by_role("link", name="greeting").focus()
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#version-title")
        # compare v1 (old) with v2 (new): the default pair, chosen with the keyboard's Enter on the button
        await page.get_by_role("button", name="Compare v1 ↔ v2").focus()
        await page.keyboard.press("Enter")
        await page.wait_for_url("**#/p/ann-proj/prompts/greeting/diff/1/2")
        await page.wait_for_selector("table.diff")
        rows = await page.eval_on_selector_all(
            "table.diff tbody tr:not(.hunk)",
            "trs => trs.map(tr => Array.from(tr.children).map(td => [td.className, td.textContent]))")
        changed = [r for r in rows if "removed" in r[1][0]]
        assert changed == [[["ln", "4"], ["side removed", "Hello {{name}}!"], ["ln", "4"], ["side added", "Hi {{name}}!"]]], rows
        assert ["side context", "How can I help?"] in [r[1] for r in rows]
        assert "+1" in await page.text_content(".diff-summary") and "−1" in await page.text_content(".diff-summary")

        await page.keyboard.press("Escape")  # up: back to the prompts
        await page.wait_for_url("**#/p/ann-proj/prompts")
        await page.keyboard.press("g")
        await page.keyboard.press("d")  # g d: deployments
        await page.wait_for_selector("[data-environment=production] .split")
        split = await page.eval_on_selector_all("[data-environment=production] .split-part",
                                                "as => as.map(a => a.textContent)")
        assert split == ["v1 · 70%", "v2 · 30%"]
        assert await page.text_content("[data-environment=development] p") == "Nothing deployed."
        assert page.blocked == [] and page.errors == [], (page.blocked, page.errors)
