"""The pages over HTTP (no browser): the landing page, GraphiQL's page and its CDN fallback, the
console's page, /static, /schema.graphql, and the tour GraphiQL opens on."""
from __future__ import annotations

import gzip
import json
import re
import shutil

import httpx
import pytest
from graphql import parse, validate

from app.http import assets, examples
from app.settings import Settings
from tests.conftest import ROOT


async def test_the_landing_page_links_the_console_graphiql_metrics_and_the_docs(client, built_assets):
    r = await client.get("/", headers={"accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    links = re.findall(r'<li><a href="([^"]+)">', r.text)
    assert links[:5] == ["/console", "/graphql", "/graphql?docs", "/metrics", "/readyz"]
    assert '<a href="/schema.graphql">' in r.text
    assert "not built" not in r.text
    for link in ("/console", "/graphql", "/metrics", "/readyz", "/schema.graphql"):
        assert (await client.get(link, headers={"accept": "text/html"})).status_code == 200, link


async def test_a_shared_graphiql_link_at_the_root_still_opens_graphiql(client):
    r = await client.get("/", params={"query": "{ __typename }", "variables": "{}"})
    assert r.status_code == 307 and r.headers["location"] == "/graphql?q=%7B+__typename+%7D&variables=%7B%7D"
    page = await client.get(r.headers["location"], headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")  # GraphiQL, not a result


async def test_graphiql_is_served_from_our_files_and_opens_on_the_tour(client, built_assets):
    r = await client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200
    html = r.text
    assert "unpkg.com" not in html and "https://" not in html.replace("https://ecma", "")
    scripts = re.findall(r'<script src="([^"]+)"', html)
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert scripts == [built_assets.url("graphiql.js")] and styles == [built_assets.url("graphiql.css")]
    config = json.loads(re.search(r'<script id="ps-graphiql-config" type="application/json">(.*?)</script>',
                                  html, re.S).group(1))
    assert config["tabs"][0]["query"].startswith("# Welcome to Prompt Studio.")
    for url in scripts + styles:
        asset = await client.get(url, headers={"accept-encoding": "gzip"})
        assert asset.status_code == 200 and len(asset.content) > 10_000, url


@pytest.mark.parametrize("encoding, expected", [("br, gzip", "br"), ("gzip", "gzip"), ("identity", None),
                                                ("br;q=0, gzip", "gzip")])
async def test_static_files_are_precompressed_and_cached_for_good(client, built_assets, encoding, expected):
    name = built_assets.manifest["files"]["console.js"]
    raw = (built_assets.directory / name).read_bytes()
    async with client.stream("GET", f"/static/{name}", headers={"accept-encoding": encoding}) as r:
        body = b"".join([chunk async for chunk in r.aiter_raw()])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers.get("content-encoding") == expected
    suffix = {"br": ".br", "gzip": ".gz", None: ""}[expected]
    assert body == (built_assets.directory / (name + suffix)).read_bytes()
    if expected == "gzip":
        assert gzip.decompress(body) == raw


async def test_only_built_files_are_served(client, built_assets):
    for name in ("manifest.json", "build-failed.txt", "..%2F..%2Fsettings.py", "nothing.js",
                 built_assets.manifest["files"]["console.js"] + ".gz"):
        r = await client.get(f"/static/{name}")
        assert r.status_code == 404, name


async def test_the_console_page_loads_our_files_and_is_small(client, built_assets):
    r = await client.get("/console")
    assert r.status_code == 200
    assert built_assets.url("console.js") in r.text and built_assets.url("console.css") in r.text
    sizes = built_assets.manifest["sizes"]
    compressed = len(r.content) + sum(sizes[built_assets.manifest["files"][n]]["gzip"]
                                      for n in ("console.js", "console.css"))
    assert compressed < 300 * 1024, compressed  # the first load of the console, gzipped


async def test_the_schema_is_published_unless_introspection_is_off(client, make_app):
    r = await client.get("/schema.graphql")
    assert r.status_code == 200 and "type Query {" in r.text
    assert r.text == (ROOT / "schema.graphql").read_text()
    async with make_app(introspection=False) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get("/schema.graphql")).status_code == 404
            landing = await c.get("/")
            assert "/schema.graphql" not in landing.text and "/graphql?docs" not in landing.text


async def test_the_console_can_be_switched_off(make_app):
    async with make_app(console=False) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get("/console")
            assert r.status_code == 404 and "PROMPTSTUDIO_CONSOLE" in r.text
            assert "/console" not in (await c.get("/")).text


async def test_without_built_files_graphiql_falls_back_to_the_cdn_and_says_why(settings, db_url, tmp_path, caplog):
    (tmp_path / assets.BUILD_FAILED).write_text("no Node.js 18+ with npm was found\n")
    with caplog.at_level("WARNING", logger="promptstudio"):
        from app.main import create_app

        app = create_app(settings, database_url=db_url, static_dir=tmp_path)
    assert any("no Node.js 18+ with npm was found" in r.getMessage() and "CDN" in r.getMessage()
               for r in caplog.records)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            page = await c.get("/graphql", headers={"accept": "text/html"})
            assert page.status_code == 200
            assert "unpkg.com" in page.text  # Strawberry's page ...
            assert 'role="alert"' in page.text and "no Node.js 18+ with npm was found" in page.text  # ... saying why
            console = await c.get("/console")
            assert console.status_code == 503 and "no Node.js 18+ with npm was found" in console.text
            landing = await c.get("/")
            assert "were not built" in landing.text
            assert (await c.get("/static/manifest.json")).status_code == 404


def test_a_half_built_directory_is_not_taken_for_built(tmp_path, built_assets):
    shutil.copy(built_assets.directory / assets.MANIFEST, tmp_path / assets.MANIFEST)
    found = assets.load(tmp_path)
    assert not found.built and "graphiql.js" in found.problem
    assert not assets.load(tmp_path / "nowhere").built


def test_the_tour_is_valid_against_the_schema():
    from app.api.schema import schema

    document = parse(examples.TOUR)
    assert validate(schema._schema, document) == []
    names = [d.name.value for d in document.definitions]
    assert names == ["SignUp", "LogIn", "CreateProject", "CreatePrompt", "Run", "Watch", "Explore"]
    variables = json.loads(examples.TOUR_VARIABLES)
    declared = {v.variable.name.value for d in document.definitions for v in (d.variable_definitions or ())}
    assert set(variables) == declared


def test_the_readme_tour_is_the_one_graphiql_opens_on():
    readme = (ROOT / "README.md").read_text()
    for snippet in ('signUp(input: {email: "ada@example.com", username: "ada", password: "correct horse battery"})',
                    'createProject(input: {name: "Support bot", slug: "support-bot"})',
                    'content: {template: "Hello {{name}}, how can I help you with {{topic}}?"}',
                    'executePrompt(input: {promptId: $promptId, variables: {name: "Ada", topic: "billing"}})',
                    "executionUpdated(id: $id)"):
        assert snippet in readme and snippet in examples.TOUR, snippet


def test_script_json_cannot_end_its_script_element():
    from app.http.pages import script_json

    text = script_json({"q": "</script><script>alert(1)</script> <!-- & \u2028"})
    assert "</" not in text and "<!--" not in text and json.loads(text)["q"].startswith("</script>")


def test_settings_read_the_console_switch(monkeypatch):
    monkeypatch.setenv("PROMPTSTUDIO_CONSOLE", "off")
    assert Settings.from_env().console is False
