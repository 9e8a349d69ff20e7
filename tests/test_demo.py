"""`promptstudio demo`: sample data through the API, and how to sign in."""
from __future__ import annotations

import pytest

from app.demo import DemoError, load
from tests.helpers import login
from tests.test_cli import cli

SEEN = """query { project(slug: "demo") {
  prompts(first: 10, orderBy: {field: NAME, direction: ASC}) { nodes { name versionCount
    validations { type } deployments { environment trafficPercentage version { number } } } }
  executions(first: 50) { totalCount nodes { status validationStatus provider usage { totalTokens } } }
} }"""


async def test_the_demo_loads_prompts_a_split_validations_and_finished_executions(settings, db_url, gql):
    said: list[str] = []
    result = await load(settings, db_url, executions=8, say=said.append)
    assert result.username == "demo" and result.password and result.finished == result.executions == 8
    assert said[-1] == "executions finished: 8/8"

    token = await login(gql, "demo", result.password)
    project = (await gql(SEEN, token=token))["data"]["project"]
    prompts = {p["name"]: p for p in project["prompts"]["nodes"]}
    assert {name: p["versionCount"] for name, p in prompts.items()} == {
        "classify-intent": 2, "greeting": 3, "summarize-ticket": 2}
    split = sorted((d["version"]["number"], d["trafficPercentage"]) for d in prompts["greeting"]["deployments"]
                   if d["environment"] == "production")
    assert split == [(2, 90), (3, 10)]
    assert [v["type"] for v in prompts["greeting"]["validations"]] == ["REGEX"]
    assert [v["type"] for v in prompts["classify-intent"]["validations"]] == ["JSON_SCHEMA"]
    executions = project["executions"]
    assert executions["totalCount"] == 8
    assert {e["status"] for e in executions["nodes"]} == {"COMPLETED"}
    assert {e["provider"] for e in executions["nodes"]} == {"echo"}
    assert all(e["usage"]["totalTokens"] > 0 for e in executions["nodes"])
    assert {"PASSED", "FAILED"} <= {e["validationStatus"] for e in executions["nodes"]}  # something to look into

    with pytest.raises(DemoError, match="the project 'demo' exists already"):
        await load(settings, db_url, password=result.password, executions=0, say=said.append)
    with pytest.raises(DemoError, match="give its password with --password"):
        await load(settings, db_url, slug="other", executions=0, say=said.append)
    with pytest.raises(DemoError, match="cannot sign in as 'demo'"):
        await load(settings, db_url, password="not the password", slug="other", executions=0, say=said.append)
    again = await load(settings, db_url, password=result.password, slug="demo-2", executions=0, say=said.append)
    assert again.password is None and again.project_slug == "demo-2"


def test_demo_from_the_command_line_says_how_to_sign_in(db_url):
    result = cli("demo", "--executions", "2", env={"DATABASE_URL": db_url, "PROMPTSTUDIO_PASSWORD": "a demo password"},
                 timeout=120)
    assert result.returncode == 0, result.stderr
    assert "executions finished: 2/2" in result.stdout
    assert "/console" in result.stdout and "username: demo" in result.stdout
    assert "password: a demo password" in result.stdout
    again = cli("demo", env={"DATABASE_URL": db_url, "PROMPTSTUDIO_PASSWORD": "a demo password"}, timeout=120)
    assert again.returncode == 1 and again.stderr.startswith("error: the project 'demo' exists already"), again.stderr
