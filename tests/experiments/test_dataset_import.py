"""`promptstudio dataset import`, run as a real process against a real server."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.helpers import create_api_key, create_project

from .util import create_dataset, db_fetch, signup

ROOT = Path(__file__).resolve().parents[2]


async def _cli(*args: str, token: str | None) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMPTSTUDIO_TOKEN", None)
    if token:
        env["PROMPTSTUDIO_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "app", "dataset", "import", *args, cwd=ROOT,
                                                env=env, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_import_jsonl_and_csv_in_batches_with_progress(gql, live, db_url, tmp_path):
    token, _ = await signup(gql, "ivy")
    project = await create_project(gql, token, "ivy-proj")
    key = await create_api_key(gql, token, project, ["EXPERIMENTS_WRITE"])
    lines = [json.dumps({"variables": {"n": i}, "expectedOutput": str(i), **({"metadata": {"odd": True}} if i % 2
                                                                              else {})}) for i in range(12_000)]
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    async with live() as server:
        url = server.url + "/graphql"
        code, out, err = await _cli(str(jsonl), "--project", "ivy-proj", "--dataset", "big", "--create", "--url", url,
                                    token=key)
        assert code == 0, err
        assert "created dataset 'big'" in err and "imported 12,000 items" in out
        progress = [line for line in err.splitlines() if line.startswith("[")]
        assert [p.split("] ")[1].split(" items")[0] for p in progress] == ["5,000/12,000", "10,000/12,000",
                                                                          "12,000/12,000"]
        rows = await db_fetch(db_url, "SELECT count(*) AS n, min(position) AS lo, max(position) AS hi, "
                                      "count(*) FILTER (WHERE metadata IS NOT NULL) AS meta, "
                                      "bool_and(expected_output = (variables->>'n')) AS same FROM dataset_items")
        assert dict(rows[0]) == {"n": 12_000, "lo": 1, "hi": 12_000, "meta": 6_000, "same": True}
        order = await db_fetch(db_url, "SELECT (variables->>'n')::int AS n FROM dataset_items ORDER BY position")
        assert [r["n"] for r in order] == list(range(12_000))

        csv_file = tmp_path / "items.csv"
        csv_file.write_text('question,expected_output,metadata.source\n"2 + 2, say",4,book\nsix?,6,\n',
                            encoding="utf-8")
        small = await create_dataset(gql, token, project, "small")
        code, out, err = await _cli(str(csv_file), "--dataset", small, "--url", url, token=key)
        assert code == 0, err
        items = await db_fetch(db_url, "SELECT variables, expected_output, metadata FROM dataset_items d JOIN datasets "
                                       "s ON s.id = d.dataset_id WHERE s.name = 'small' ORDER BY position")
        assert [(json.loads(r["variables"]), r["expected_output"], json.loads(r["metadata"])) for r in items] == [
            ({"question": "2 + 2, say"}, "4", {"source": "book"}), ({"question": "six?"}, "6", {"source": ""})]

        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"variables": {"a": 1}}\n{"variables": [1]}\nnot json\n', encoding="utf-8")
        code, out, err = await _cli(str(bad), "--dataset", small, "--url", url, token=key)
        assert code == 1 and "nothing was imported" in err and "line 2" in err and "line 3: not JSON" in err
        code, out, err = await _cli(str(jsonl), "--dataset", small, "--url", url, token=None)
        assert code == 1 and "PROMPTSTUDIO_TOKEN" in err
        reader = await create_api_key(gql, token, project, ["EXPERIMENTS_READ"], name="reader")
        code, out, err = await _cli(str(csv_file), "--dataset", small, "--url", url, token=reader)
        assert code == 1 and "FORBIDDEN" in err, err
    count = await db_fetch(db_url, "SELECT count(*) AS n FROM dataset_items d JOIN datasets s ON s.id = d.dataset_id "
                                   "WHERE s.name = 'small'")
    assert count[0]["n"] == 2
