#!/usr/bin/env python3
"""Take the screenshots of the browser pages that the README shows (docs/screenshots/*.png).

    .venv/bin/python tools/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]

Starts `promptstudio serve` on a free port with a temporary data directory, loads the demo data
(`promptstudio demo`), runs one slow execution so the console has something live to show, and
drives headless Chromium (Playwright) through the landing page, GraphiQL and the console (its
executions, prompts, a diff, deployments and traces). Needs the built pages (tools/web_build.py)
and Chromium (Debian's chromium package).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web.conftest import CHROMIUM_ARGS, chromium_path  # noqa: E402
from tools.graphql_http_audit import _cleanup, free_port, wait_ready  # noqa: E402

PASSWORD = "screenshots only"  # noqa: S105 - a throwaway account in a throwaway database


def post(url: str, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url + "/graphql", data=body, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own server on loopback
        return json.loads(response.read())["data"]


async def shoot(base: str, out: Path, chromium: str | None) -> None:
    from playwright.async_api import async_playwright

    token = post(base, 'mutation($p: String!) { logIn(input: {login: "demo", password: $p}) { token } }',
                 {"p": PASSWORD})["logIn"]["token"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1360, "height": 820}, device_scale_factor=1)
        page = await context.new_page()

        async def save(name: str) -> None:
            await page.wait_for_timeout(400)
            await page.screenshot(path=str(out / f"{name}.png"))
            print(f"  {out / name}.png", flush=True)

        await page.goto(base + "/")
        await save("landing")
        await page.goto(base + "/graphql")
        await page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=30_000)
        await save("graphiql")

        await page.goto(base + "/console")
        await page.fill("input[name=login]", "demo")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_selector("tr[data-status=COMPLETED]", timeout=30_000)
        prompt = post(base, '{ project(slug: "demo") { prompt(name: "greeting") { id } } }',
                      token=token)["project"]["prompt"]["id"]
        running = post(base, """mutation($id: ID!) { executePrompt(input: {promptId: $id, environment: "production",
            subjectKey: "screenshot", variables: {name: "Ada", topic: "the console"},
            modelSettings: {extra: {chunkSize: 2, chunkDelayMs: 150}}}) { execution { id } } }""",
                       {"id": prompt}, token)["executePrompt"]["execution"]["id"]
        await page.wait_for_selector(f'tr[data-execution-id="{running}"][data-status=RUNNING]', timeout=30_000)
        await save("console-executions")
        await page.click(f'tr[data-execution-id="{running}"] a')
        await page.wait_for_function("() => (document.querySelector('.output')?.textContent || '').length > 12")
        await save("console-execution")
        await page.wait_for_selector(".detail[data-status=COMPLETED] .results li", timeout=60_000)
        await page.goto(base + "/console#/p/demo/prompts/greeting")
        await page.wait_for_selector("#version-title")
        await save("console-prompt")
        await page.goto(base + "/console#/p/demo/prompts/greeting/diff/1/3")
        await page.wait_for_selector("table.diff td.added")
        await save("console-diff")
        await page.goto(base + "/console#/p/demo/deployments")
        await page.wait_for_selector(".split")
        await save("console-deployments")
        await page.goto(base + "/console#/p/demo/traces")
        await page.wait_for_selector("table.traces tbody tr[data-status]")
        await save("console-traces")
        await page.click("table.traces tbody tr td:nth-child(2) a")
        await page.wait_for_selector(".spans tr[data-kind=LLM] a.span-link")
        await page.click(".spans tr[data-kind=LLM] a.span-link")
        await page.wait_for_selector(".span-detail table.attributes")
        await save("console-trace")
        await browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="where the PNG files go")
    parser.add_argument("--chromium", help="Chromium binary (default: as the browser tests find it)")
    args = parser.parse_args()
    chromium = args.chromium or chromium_path()[0]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="promptstudio-screenshots-"))
    env = dict(os.environ, PROMPTSTUDIO_DATA_DIR=str(data_dir), PROMPTSTUDIO_LOG_LEVEL="warning",
               PROMPTSTUDIO_PASSWORD=PASSWORD)
    env.pop("DATABASE_URL", None)
    port = free_port()
    subprocess.run([sys.executable, "-m", "app", "demo"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)],  # noqa: S603 - ours
                              cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready(base + "/readyz", server, 120):
            print("the server did not come up", file=sys.stderr)
            return 1
        asyncio.run(shoot(base, out, chromium))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        time.sleep(0.5)
        _cleanup(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
