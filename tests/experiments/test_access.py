"""Who may do what with datasets, evaluators and experiments: VIEWER reads, EDITOR writes, EXPERIMENTS_READ /
EXPERIMENTS_WRITE for keys; another tenant neither reads nor changes anything (NOT_FOUND, nothing changed);
anonymous callers are UNAUTHENTICATED; every mutation is audited."""
from __future__ import annotations

from tests.helpers import add_member, create_api_key, create_project

from .util import (
    ERR,
    add_items,
    create_dataset,
    create_evaluator,
    create_experiment,
    create_prompt,
    db_fetch,
    signup,
    start,
)

READ = """query($ids: [ID!]!) { nodes(ids: $ids) { id } project(slug: "beta") { id } }"""
LISTS = """query($s: String!) { project(slug: $s) { datasets { totalCount } evaluators { totalCount }
  experiments { totalCount } } }"""


async def _beta(gql) -> dict:
    """Project beta with a dataset, an evaluator and a started experiment (its runs pending)."""
    bob, _ = await signup(gql, "bob")
    project = await create_project(gql, bob, "beta")
    _, version = await create_prompt(gql, bob, project, "p", template="Q {{q}}")
    dataset = await create_dataset(gql, bob, project)
    items = (await add_items(gql, bob, dataset, [{"variables": {"q": "1"}}]))["items"]
    evaluator = (await create_evaluator(gql, bob, project, "json", "JSON_VALID", {}))["evaluator"]["id"]
    e = (await create_experiment(gql, bob, project, name="x", type="EVALUATION", datasetId=dataset,
                                 evaluatorIds=[evaluator], variants=[{"name": "v", "versionId": version}]))["experiment"]
    started = await start(gql, bob, e["id"])
    assert started["userErrors"] == []
    body = await gql("query($id: ID!) { node(id: $id) { ... on Experiment { runs { nodes { id } } } } }",
                     {"id": e["id"]}, token=bob)
    return {"token": bob, "project": project, "version": version, "dataset": dataset, "item": items[0]["id"],
            "evaluator": evaluator, "experiment": e["id"], "variant": e["variants"][0]["id"],
            "run": body["data"]["node"]["runs"]["nodes"][0]["id"]}


def _mutations(b: dict, own_project: str) -> dict[str, tuple[str, dict, list[str]]]:
    """Every experiments mutation aimed at beta's objects: (document, input, the field its error names)."""
    def doc(name: str, input_type: str, fields: str) -> str:
        return f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ {fields} {ERR} }} }}"

    return {
        "createDataset": (doc("createDataset", "CreateDatasetInput", "dataset { id }"),
                          {"projectId": b["project"], "name": "evil"}, ["input", "projectId"]),
        "addDatasetItems": (doc("addDatasetItems", "AddDatasetItemsInput", "items { id }"),
                            {"datasetId": b["dataset"], "items": [{"variables": {"q": "evil"}}]},
                            ["input", "datasetId"]),
        "createEvaluator": (doc("createEvaluator", "CreateEvaluatorInput", "evaluator { id }"),
                            {"projectId": b["project"], "name": "evil", "type": "JSON_VALID", "config": {}},
                            ["input", "projectId"]),
        "createExperiment": (doc("createExperiment", "CreateExperimentInput", "experiment { id }"),
                             {"projectId": b["project"], "name": "evil", "type": "EVALUATION", "datasetId": b["dataset"],
                              "evaluatorIds": [], "variants": [{"name": "v", "versionId": b["version"]}]},
                             ["input", "projectId"]),
        "createExperimentWithTheirs": (doc("createExperiment", "CreateExperimentInput", "experiment { id }"),
                                       {"projectId": own_project, "name": "evil", "type": "EVALUATION",
                                        "datasetId": b["dataset"], "evaluatorIds": [b["evaluator"]],
                                        "variants": [{"name": "v", "versionId": b["version"]}]},
                                       ["input", "datasetId"]),
        "startExperiment": (doc("startExperiment", "ExperimentIdInput", "experiment { id }"), {"id": b["experiment"]},
                            ["input", "id"]),
        "cancelExperiment": (doc("cancelExperiment", "ExperimentIdInput", "experiment { id }"),
                             {"id": b["experiment"]}, ["input", "id"]),
        "completeExperiment": (doc("completeExperiment", "CompleteExperimentInput", "experiment { id }"),
                               {"id": b["experiment"]}, ["input", "id"]),
        "scoreRun": (doc("scoreRun", "ScoreRunInput", "run { id }"), {"runId": b["run"], "name": "evil", "value": 1},
                     ["input", "runId"]),
    }


async def _state(db_url: str) -> list:
    return [tuple(r) for r in await db_fetch(db_url, """SELECT
        (SELECT count(*) FROM datasets), (SELECT count(*) FROM dataset_items), (SELECT count(*) FROM evaluators),
        (SELECT count(*) FROM experiments), (SELECT string_agg(status, ',') FROM experiments),
        (SELECT count(*) FROM experiment_scores), (SELECT count(*) FROM experiment_runs WHERE status = 'CANCELLED')""")]


async def test_another_tenant_reads_nothing_and_changes_nothing(gql, db_url):
    await signup(gql, "root")  # the first user is a superuser
    b = await _beta(gql)
    alice, _ = await signup(gql, "alice")
    alpha = await create_project(gql, alice, "alpha")
    key = await create_api_key(gql, alice, alpha, ["EXPERIMENTS_WRITE", "PROMPTS_WRITE", "EXECUTIONS_WRITE",
                                                   "PROJECT_ADMIN"])
    before = await _state(db_url)
    ids = [b[k] for k in ("dataset", "item", "evaluator", "experiment", "variant", "run")]
    for token in (alice, key):
        body = await gql(READ, {"ids": ids}, token=token)
        assert body["data"] == {"nodes": [None] * 6, "project": None}
        for name, (document, input_, field) in _mutations(b, alpha).items():
            body = await gql(document, {"i": input_}, token=token)
            payload = next(iter(body["data"].values()))
            codes = {(e["code"], tuple(e["field"])) for e in payload["userErrors"]}
            assert ("NOT_FOUND", tuple(field)) in codes, (name, payload)
            assert all(code == "NOT_FOUND" for code, _ in codes), (name, payload)
    for name, (document, input_, _) in _mutations(b, alpha).items():
        body = await gql(document, {"i": input_}, token="", check=False)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], name
    assert await _state(db_url) == before
    denied = await db_fetch(db_url, "SELECT count(*) AS n FROM audit_events WHERE result <> 'SUCCESS' AND "
                                    "(action LIKE 'experiment.%' OR action LIKE 'dataset.%' OR action LIKE 'evaluator.%')")
    assert denied[0]["n"] >= 2 * 9  # refused attempts are audited too


async def test_viewers_read_editors_write_and_keys_follow_their_scopes(gql, db_url):
    await signup(gql, "root")
    b = await _beta(gql)
    for name, role in (("vic", "VIEWER"), ("eddie", "EDITOR")):
        await signup(gql, name)
        await add_member(gql, b["token"], b["project"], name, role)
    viewer = (await gql("""mutation { logIn(input: {login: "vic", password: "correct horse battery"}) { token } }""",
                        token=""))["data"]["logIn"]["token"]
    editor = (await gql("""mutation { logIn(input: {login: "eddie", password: "correct horse battery"}) { token } }""",
                        token=""))["data"]["logIn"]["token"]
    reader = await create_api_key(gql, b["token"], b["project"], ["EXPERIMENTS_READ"], name="reader")
    writer = await create_api_key(gql, b["token"], b["project"], ["EXPERIMENTS_WRITE"], name="writer")
    prompts_only = await create_api_key(gql, b["token"], b["project"], ["PROMPTS_WRITE"], name="prompts")
    for token in (viewer, reader):
        lists = (await gql(LISTS, {"s": "beta"}, token=token))["data"]["project"]
        assert lists == {"datasets": {"totalCount": 1}, "evaluators": {"totalCount": 1},
                         "experiments": {"totalCount": 1}}
        p = await create_dataset_raw(gql, token, b["project"], "nope")
        assert [e["code"] for e in p["userErrors"]] == ["FORBIDDEN"]
    lists = (await gql(LISTS, {"s": "beta"}, token=prompts_only))["data"]["project"]
    assert lists == {"datasets": {"totalCount": 0}, "evaluators": {"totalCount": 0}, "experiments": {"totalCount": 0}}
    assert [e["code"] for e in (await create_dataset_raw(gql, prompts_only, b["project"], "nope"))["userErrors"]] == [
        "FORBIDDEN"]
    for token, name in ((editor, "by-editor"), (writer, "by-key")):
        assert (await create_dataset_raw(gql, token, b["project"], name))["userErrors"] == []
    # cancelling needs the write scope; the reader's refusal changes nothing
    cancel = f"mutation($i: ExperimentIdInput!) {{ cancelExperiment(input: $i) {{ experiment {{ status }} {ERR} }} }}"
    body = await gql(cancel, {"i": {"id": b["experiment"]}}, token=reader)
    assert [e["code"] for e in body["data"]["cancelExperiment"]["userErrors"]] == ["FORBIDDEN"]
    body = await gql(cancel, {"i": {"id": b["experiment"]}}, token=writer)
    assert body["data"]["cancelExperiment"] == {"experiment": {"status": "CANCELLED"}, "userErrors": []}
    audit = await db_fetch(db_url, "SELECT action, result FROM audit_events WHERE action = 'experiment.cancel' "
                                   "ORDER BY created_at")
    assert [(r["action"], r["result"]) for r in audit] == [("experiment.cancel", "DENIED"),
                                                            ("experiment.cancel", "SUCCESS")]


async def create_dataset_raw(gql, token: str, project: str, name: str) -> dict:
    body = await gql(f"mutation($i: CreateDatasetInput!) {{ createDataset(input: $i) {{ dataset {{ id }} {ERR} }} }}",
                     {"i": {"projectId": project, "name": name}}, token=token)
    return body["data"]["createDataset"]
