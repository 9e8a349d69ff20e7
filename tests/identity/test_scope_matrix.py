"""Scopes hold on every path: every API-key scope x every node type x the paths that reach it.

An object is governed by the scope of what it is, whatever the path that reaches it: a key that may
not read prompts gets no version through `node(<execution>) { ... on Execution { version } }`, just as
`node(<version>)` gives it null. Where the path is a non-null field, the object that holds it goes
(with a FORBIDDEN error), as GraphQL's null propagation does; nothing of the object leaks.

Each case below is (the type that holds the path, the query, the type it reaches, which object of it).
The test runs every case with a key of every scope and checks both ways: the object is in the answer
exactly when the key may read the holder and the object.
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.executions.util import create_prompt, execute_ok, set_credential, wait_for
from tests.helpers import create_api_key, create_project, signup

from .util import ERR

#: Stands for the trace id of the execution's trace in the queries (known once the execution has run).
TRACE_ID = "TRACE_ID_OF_THE_EXECUTION"
_TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
#: Days around the execution's call, so its usage is in the reports.
REPORT_FROM, REPORT_TO = ((_TODAY + timedelta(days=d)).isoformat() for d in (-1, 2))

ALL_SCOPES = ["PROMPTS_READ", "PROMPTS_WRITE", "EXECUTIONS_READ", "EXECUTIONS_WRITE", "TRACES_READ", "TRACES_WRITE",
              "EXPERIMENTS_READ", "EXPERIMENTS_WRITE", "PROJECT_ADMIN"]
PROMPTS = {"PROMPTS_READ", "PROMPTS_WRITE", "PROJECT_ADMIN"}
EXECUTIONS = {"EXECUTIONS_READ", "EXECUTIONS_WRITE", "PROJECT_ADMIN"}
TRACES = {"TRACES_READ", "TRACES_WRITE", "PROJECT_ADMIN"}
EXPERIMENTS = {"EXPERIMENTS_READ", "EXPERIMENTS_WRITE", "PROJECT_ADMIN"}
#: Which scopes may read an object of each node type (app.services.access.READ_RULES).
MAY_READ = {
    "Project": set(ALL_SCOPES), "User": set(ALL_SCOPES), "ModelConfig": set(ALL_SCOPES),
    "Prompt": PROMPTS, "PromptVersion": PROMPTS, "Deployment": PROMPTS, "Validation": PROMPTS,
    "Execution": EXECUTIONS, "ExecutionLog": EXECUTIONS, "Feedback": EXECUTIONS,
    "Trace": TRACES, "Span": TRACES,
    # usage and cost: what executions and traces cost, so either kind of key
    "LlmUsage": EXECUTIONS | TRACES,
    "Dataset": EXPERIMENTS, "DatasetItem": EXPERIMENTS, "Evaluator": EXPERIMENTS, "Experiment": EXPERIMENTS,
    "ExperimentVariant": EXPERIMENTS, "ExperimentRun": EXPERIMENTS,
    "ApiKey": {"PROJECT_ADMIN"}, "ProviderCredential": {"PROJECT_ADMIN"}, "AuditEvent": {"PROJECT_ADMIN"},
    # not a node: the member list (VIEW_MEMBERS, which keys have with PROJECT_ADMIN)
    "ProjectMember": {"PROJECT_ADMIN"},
}

# (holder type[/types between it and the reached one], query with $id the holder's id (None: the reached
#  object's id), reached type, which object)
CASES: list[tuple[str | None, str, str, str]] = [
    # node(id) itself, for every type
    *[(None, "query($id: ID!) { node(id: $id) { id } }", t, t) for t in MAY_READ if t != "ProjectMember"],
    # Prompt
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { prompts { nodes { id } } } } }", "Prompt", "Prompt"),
    ("Project", 'query($id: ID!) { node(id: $id) { ... on Project { prompt(name: "greeting") { id } } } }', "Prompt",
     "Prompt"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { prompt { id } } } }", "Prompt", "Prompt"),
    ("PromptVersion", "query($id: ID!) { node(id: $id) { ... on PromptVersion { prompt { id } } } }", "Prompt",
     "Prompt"),
    ("Deployment", "query($id: ID!) { node(id: $id) { ... on Deployment { prompt { id } } } }", "Prompt", "Prompt"),
    ("Validation", "query($id: ID!) { node(id: $id) { ... on Validation { prompt { id } } } }", "Prompt", "Prompt"),
    ("Project", 'query($id: ID!) { searchPrompts(projectId: $id, query: "greeting") { prompt { id } } }', "Prompt",
     "Prompt"),
    ("Project", 'query($id: ID!) { resolvePrompt(projectId: $id, name: "greeting") { prompt { id } } }', "Prompt",
     "Prompt"),
    # PromptVersion
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { versions { nodes { id } } } } }", "PromptVersion",
     "PromptVersion"),
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { version(number: 1) { id } } } }", "PromptVersion",
     "PromptVersion"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { version { id template } } } }",
     "PromptVersion", "PromptVersion"),
    ("Deployment", "query($id: ID!) { node(id: $id) { ... on Deployment { version { id template } } } }",
     "PromptVersion", "PromptVersion"),
    ("Project", 'query($id: ID!) { resolvePrompt(projectId: $id, name: "greeting") { version { id template } } }',
     "PromptVersion", "PromptVersion"),
    ("Project/Execution",
     "query($id: ID!) { node(id: $id) { ... on Project { executions { nodes { version { id template } } } } } }",
     "PromptVersion", "PromptVersion"),
    # Deployment
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { deployments { id } } } }", "Deployment", "Deployment"),
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { deploymentHistory { nodes { id } } } } }",
     "Deployment", "Deployment"),
    ("PromptVersion", "query($id: ID!) { node(id: $id) { ... on PromptVersion { deployments { id } } } }",
     "Deployment", "Deployment"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { deployment { id } } } }", "Deployment",
     "Deployment"),
    # Validation
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { validations { id } } } }", "Validation", "Validation"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { validationResults { validation { id } } } } }",
     "Validation", "Validation"),
    # Execution, its logs and feedback
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { executions { nodes { id } } } } }", "Execution",
     "Execution"),
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { executions { nodes { id } } } } }", "Execution",
     "Execution"),
    ("Feedback", "query($id: ID!) { node(id: $id) { ... on Feedback { execution { id } } } }", "Execution", "Execution"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { logs(first: 100) { nodes { id } } } } }",
     "ExecutionLog", "ExecutionLog"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { feedback { id } } } }", "Feedback", "Feedback"),
    # API keys, credentials, the audit log
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { apiKeys { nodes { id } } } } }", "ApiKey", "ApiKey"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { apiKey { id } } } }", "ApiKey", "ApiKey"),
    ("AuditEvent", "query($id: ID!) { node(id: $id) { ... on AuditEvent { apiKey { id } } } }", "ApiKey", "ApiKey"),
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { providerCredentials { id } } } }",
     "ProviderCredential", "ProviderCredential"),
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { auditEvents(first: 100) { nodes { id } } } } }",
     "AuditEvent", "AuditEvent"),
    # Traces, spans and usage
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { traces { nodes { id } } } } }", "Trace", "Trace"),
    ("Project", f'query($id: ID!) {{ node(id: $id) {{ ... on Project {{ trace(traceId: "{TRACE_ID}") {{ id }} }} }} }}',
     "Trace", "Trace"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { trace { id } } } }", "Trace", "Trace"),
    ("Span", "query($id: ID!) { node(id: $id) { ... on Span { trace { id } } } }", "Trace", "Trace"),
    ("Trace", "query($id: ID!) { node(id: $id) { ... on Trace { spans { nodes { id } } } } }", "Span", "Span"),
    ("Trace", "query($id: ID!) { node(id: $id) { ... on Trace { rootSpan { id } } } }", "Span", "RootSpan"),
    ("Span", "query($id: ID!) { node(id: $id) { ... on Span { parent { id } } } }", "Span", "RootSpan"),
    ("Trace/Span", "query($id: ID!) { node(id: $id) { ... on Trace { rootSpan { children { id } } } } }", "Span",
     "Span"),
    ("LlmUsage", "query($id: ID!) { node(id: $id) { ... on LlmUsage { span { id } } } }", "Span", "Span"),
    ("Span", "query($id: ID!) { node(id: $id) { ... on Span { usage { id } } } }", "LlmUsage", "LlmUsage"),
    ("Trace", "query($id: ID!) { node(id: $id) { ... on Trace { execution { id } } } }", "Execution", "Execution"),
    ("LlmUsage", "query($id: ID!) { node(id: $id) { ... on LlmUsage { execution { id } } } }", "Execution",
     "Execution"),
    ("LlmUsage", "query($id: ID!) { node(id: $id) { ... on LlmUsage { prompt { id } } } }", "Prompt", "Prompt"),
    ("LlmUsage", "query($id: ID!) { node(id: $id) { ... on LlmUsage { version { id template } } } }",
     "PromptVersion", "PromptVersion"),
    # costReport needs what reading usage needs; its groups' prompts, what reading prompts needs
    ("Project/LlmUsage", f'query($id: ID!) {{ costReport(projectId: $id, from: "{REPORT_FROM}", to: "{REPORT_TO}", '
     "groupBy: [PROMPT, VERSION]) { buckets { prompt { id } } } }", "Prompt", "Prompt"),
    ("Project/LlmUsage", f'query($id: ID!) {{ costReport(projectId: $id, from: "{REPORT_FROM}", to: "{REPORT_TO}", '
     "groupBy: [PROMPT, VERSION]) { buckets { version { id template } } } }", "PromptVersion", "PromptVersion"),
    # Users
    ("Project/ProjectMember", "query($id: ID!) { node(id: $id) { ... on Project { members { nodes { user { id } } } } } }",
     "User", "User"),
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { createdBy { id } } } }", "User", "User"),
    ("PromptVersion", "query($id: ID!) { node(id: $id) { ... on PromptVersion { author { id } } } }", "User", "User"),
    ("Deployment", "query($id: ID!) { node(id: $id) { ... on Deployment { deployedBy { id } } } }", "User", "User"),
    ("Validation", "query($id: ID!) { node(id: $id) { ... on Validation { createdBy { id } } } }", "User", "User"),
    ("Feedback", "query($id: ID!) { node(id: $id) { ... on Feedback { user { id } } } }", "User", "User"),
    ("ApiKey", "query($id: ID!) { node(id: $id) { ... on ApiKey { createdBy { id } } } }", "User", "User"),
    # Datasets, evaluators, experiments, and what they reach
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { datasets { nodes { id } } } } }", "Dataset",
     "Dataset"),
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { evaluators { nodes { id } } } } }", "Evaluator",
     "Evaluator"),
    ("Project", "query($id: ID!) { node(id: $id) { ... on Project { experiments { nodes { id } } } } }", "Experiment",
     "Experiment"),
    ("Dataset", "query($id: ID!) { node(id: $id) { ... on Dataset { items { nodes { id } } } } }", "DatasetItem",
     "DatasetItem"),
    ("Experiment", "query($id: ID!) { node(id: $id) { ... on Experiment { dataset { id } } } }", "Dataset", "Dataset"),
    ("Experiment", "query($id: ID!) { node(id: $id) { ... on Experiment { evaluators { id } } } }", "Evaluator",
     "Evaluator"),
    ("Experiment", "query($id: ID!) { node(id: $id) { ... on Experiment { variants { id } winner { id } } } }",
     "ExperimentVariant", "ExperimentVariant"),
    ("Experiment", "query($id: ID!) { node(id: $id) { ... on Experiment { runs { nodes { id } } } } }",
     "ExperimentRun", "ExperimentRun"),
    ("ExperimentRun", "query($id: ID!) { node(id: $id) { ... on ExperimentRun { datasetItem { id } } } }",
     "DatasetItem", "DatasetItem"),
    ("ExperimentRun", "query($id: ID!) { node(id: $id) { ... on ExperimentRun { execution { id } } } }",
     "Execution", "RunExecution"),
    ("ExperimentVariant", "query($id: ID!) { node(id: $id) { ... on ExperimentVariant { version { id template } } } }",
     "PromptVersion", "PromptVersion"),
    ("ExperimentRun", "query($id: ID!) { node(id: $id) { ... on ExperimentRun { experiment { id } } } }",
     "Experiment", "Experiment"),
    ("Project/Experiment",
     "query($id: ID!) { node(id: $id) { ... on Project { experiments { nodes { runs { nodes { id } } } } } } }",
     "ExperimentRun", "ExperimentRun"),
    # Projects, from below
    ("Prompt", "query($id: ID!) { node(id: $id) { ... on Prompt { project { id } } } }", "Project", "Project"),
    ("Execution", "query($id: ID!) { node(id: $id) { ... on Execution { project { id } } } }", "Project", "Project"),
    ("ApiKey", "query($id: ID!) { node(id: $id) { ... on ApiKey { project { id } } } }", "Project", "Project"),
    ("Trace", "query($id: ID!) { node(id: $id) { ... on Trace { project { id } } } }", "Project", "Project"),
    ("Dataset", "query($id: ID!) { node(id: $id) { ... on Dataset { project { id } } } }", "Project", "Project"),
    ("Experiment", "query($id: ID!) { node(id: $id) { ... on Experiment { project { id } } } }", "Project", "Project"),
]


def ids_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["id"]} if isinstance(value.get("id"), str) else set()
        for v in value.values():
            found |= ids_in(v)
        return found
    if isinstance(value, list):
        return set().union(*(ids_in(v) for v in value)) if value else set()
    return set()


async def _trace(gql, owner: str, execution: str) -> dict[str, str]:
    """The execution's trace, as the engine wrote it: its root span and its LLM call's span with the usage
    (of the prompt, version and execution); returns the node ids of the trace, the spans and the usage."""
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Execution { trace { id traceId
        rootSpan { id } spans { nodes { id kind usage { id } } } } } } }""", {"id": execution}, token=owner)
    trace = body["data"]["node"]["trace"]
    llm = next(s for s in trace["spans"]["nodes"] if s["kind"] == "LLM")
    assert llm["usage"] is not None, "the execution's call has no usage"
    return {"Trace": trace["id"], "TraceId": trace["traceId"], "RootSpan": trace["rootSpan"]["id"], "Span": llm["id"],
            "LlmUsage": llm["usage"]["id"]}


async def _world(gql, make_app, app) -> tuple[dict[str, str], dict[str, str]]:
    """A project with one of everything; returns (node ids by type, a key's secret by scope)."""
    await signup(gql, "root")  # the first user is a superuser: the owner below is an ordinary user
    owner, user_id = await signup(gql, "owner")
    project = await create_project(gql, owner, "matrix")
    prompt, version = await create_prompt(gql, owner, project, "greeting", template="Secret {{name}}")
    body = await gql(f"""mutation($v: ID!) {{ deployPromptVersion(input: {{versionId: $v, environment: "production"}})
        {{ deployments {{ id }} {ERR} }} }}""", {"v": version}, token=owner)
    deployment = body["data"]["deployPromptVersion"]["deployments"][0]["id"]
    body = await gql(f"""mutation($p: ID!) {{ createValidation(input: {{promptId: $p, name: "has a name",
        type: REGEX, config: {{pattern: "Secret"}}}}) {{ validation {{ id }} {ERR} }} }}""", {"p": prompt}, token=owner)
    validation = body["data"]["createValidation"]["validation"]["id"]
    await set_credential(gql, owner, project, "openai", "sk-test-credential", "http://127.0.0.1:9")
    keys = {scope: await create_api_key(gql, owner, project, [scope], name=scope) for scope in ALL_SCOPES}
    experiments = await _experiment(gql, owner, project, version)
    async with make_app(workers=1):  # run one execution, submitted with a key (so it has no requestedBy), to the end
        execution = await execute_ok(gql, keys["EXECUTIONS_WRITE"], promptId=prompt, environment="production",
                                     variables={"name": "Ada"})
        done = await wait_for(gql, owner, execution, fields="id status logs(first: 1) { nodes { id } }")
        body = await gql(f"""mutation($id: ID!) {{ startExperiment(input: {{id: $id}}) {{ experiment {{ id }} {ERR}
            }} }}""", {"id": experiments["Experiment"]}, token=owner)
        assert body["data"]["startExperiment"]["userErrors"] == []
        for _ in range(200):
            body = await gql("""query($id: ID!) { node(id: $id) { ... on Experiment { status runs { nodes { id execution { id } } } }
                } }""", {"id": experiments["Experiment"]}, token=owner)
            if body["data"]["node"]["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.1)
    assert done["status"] == "COMPLETED" and body["data"]["node"]["status"] == "COMPLETED"
    experiments["ExperimentRun"] = body["data"]["node"]["runs"]["nodes"][0]["id"]
    experiments["RunExecution"] = body["data"]["node"]["runs"]["nodes"][0]["execution"]["id"]
    body = await gql(f"""mutation($e: ID!) {{ submitFeedback(input: {{executionId: $e, rating: 5}}) {{
        feedback {{ id }} {ERR} }} }}""", {"e": execution}, token=owner)
    feedback = body["data"]["submitFeedback"]["feedback"]["id"]
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Project {
        apiKeys(first: 100) { nodes { id name } } providerCredentials { id }
        auditEvents(first: 100, filter: {action: "execution.create"}) { nodes { id } } } }
        models { id } }""", {"id": project}, token=owner)
    node = body["data"]["node"]
    ids = {
        "Project": project, "Prompt": prompt, "PromptVersion": version, "Deployment": deployment,
        "Validation": validation, "Execution": execution, "ExecutionLog": done["logs"]["nodes"][0]["id"],
        "Feedback": feedback, "ProviderCredential": node["providerCredentials"][0]["id"],
        "ApiKey": next(k["id"] for k in node["apiKeys"]["nodes"] if k["name"] == "EXECUTIONS_WRITE"),
        "AuditEvent": node["auditEvents"]["nodes"][0]["id"], "ModelConfig": body["data"]["models"][0]["id"],
        "User": user_id, **experiments,
        **await _trace(gql, owner, execution),
    }
    return ids, keys


async def _experiment(gql, owner: str, project: str, version: str) -> dict[str, str]:
    """A dataset of one item, an evaluator and a DRAFT experiment of one variant on them."""
    body = await gql(f"""mutation($p: ID!) {{ createDataset(input: {{projectId: $p, name: "d"}}) {{ dataset {{ id }}
        {ERR} }} }}""", {"p": project}, token=owner)
    dataset = body["data"]["createDataset"]["dataset"]["id"]
    body = await gql(f"""mutation($d: ID!) {{ addDatasetItems(input: {{datasetId: $d, items: [{{variables: {{name:
        "Bo"}}, expectedOutput: "Secret Bo"}}]}}) {{ items {{ id }} {ERR} }} }}""", {"d": dataset}, token=owner)
    item = body["data"]["addDatasetItems"]["items"][0]["id"]
    body = await gql(f"""mutation($p: ID!) {{ createEvaluator(input: {{projectId: $p, name: "json", type: JSON_VALID,
        config: {{}}}}) {{ evaluator {{ id }} {ERR} }} }}""", {"p": project}, token=owner)
    evaluator = body["data"]["createEvaluator"]["evaluator"]["id"]
    body = await gql(f"""mutation($p: ID!, $d: ID!, $e: ID!, $v: ID!) {{ createExperiment(input: {{projectId: $p,
        name: "x", type: EVALUATION, datasetId: $d, evaluatorIds: [$e], variants: [{{name: "v", versionId: $v}}]}})
        {{ experiment {{ id variants {{ id }} }} {ERR} }} }}""",
                     {"p": project, "d": dataset, "e": evaluator, "v": version}, token=owner)
    experiment = body["data"]["createExperiment"]["experiment"]
    return {"Dataset": dataset, "DatasetItem": item, "Evaluator": evaluator, "Experiment": experiment["id"],
            "ExperimentVariant": experiment["variants"][0]["id"]}


async def test_every_scope_reaches_exactly_what_it_may_read_on_every_path(gql, make_app, app):
    ids, keys = await _world(gql, make_app, app)
    failures = []
    forbidden_seen = 0
    for holder, query, reached, which in CASES:
        path = holder.split("/") if holder is not None else []
        holder_id = ids[path[0]] if path else ids[which]
        for scope in ALL_SCOPES:
            body = await gql(query.replace(TRACE_ID, ids["TraceId"]), {"id": holder_id}, token=keys[scope], check=False)
            assert "data" in body, (query, scope, body)  # never a request error
            for error in body.get("errors", []):
                code = error.get("extensions", {}).get("code")
                assert code == "FORBIDDEN", (query, scope, error)  # the only error: a non-null path refused
                forbidden_seen += 1
            reachable = all(scope in MAY_READ[t] for t in path)
            expected = reachable and scope in MAY_READ[reached]
            got = ids[which] in ids_in(body["data"])
            if got != expected:
                failures.append(f"{scope:18} {'sees' if got else 'misses'} {reached} via {query}")
            if got and "template" in query:
                assert "Secret" in str(body["data"])
            if not got:
                assert "Secret" not in str(body["data"]), (scope, query, body)  # nothing of the version leaks
    assert not failures, "\n".join(failures)
    assert forbidden_seen > 0  # e.g. Execution.version (non-null) for EXECUTIONS_READ: refused, not leaked


async def test_a_refused_non_null_relation_says_why_and_hides_the_holder(gql, make_app, app):
    ids, keys = await _world(gql, make_app, app)
    body = await gql("query($id: ID!) { node(id: $id) { ... on Execution { status version { template } } } }",
                     {"id": ids["Execution"]}, token=keys["EXECUTIONS_READ"], check=False)
    assert body["data"] == {"node": None}
    (error,) = body["errors"]
    assert error["path"] == ["node", "version"] and error["extensions"]["code"] == "FORBIDDEN"
    assert "PROMPTS_READ" in error["message"] and "PromptVersion" in error["message"]
    # The same key still reads what it may: the execution without the version
    body = await gql("query($id: ID!) { node(id: $id) { ... on Execution { status output } } }",
                     {"id": ids["Execution"]}, token=keys["EXECUTIONS_READ"])
    assert body["data"]["node"]["status"] == "COMPLETED"
