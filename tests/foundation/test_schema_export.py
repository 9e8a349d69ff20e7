"""schema.graphql is committed and must match the code; the API contract must hold."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_CHECK = ROOT.parent / "shared" / "tools" / "contract_check.py"


def test_committed_schema_is_current():
    from app.api.schema import schema

    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", (
        "schema.graphql is stale: run `promptstudio export-schema` (or `make schema`) and commit it")


@pytest.mark.skipif(not CONTRACT_CHECK.exists(), reason="../shared (the API contract) is not beside this checkout")
def test_contract_holds():
    out = subprocess.run([sys.executable, str(CONTRACT_CHECK), str(ROOT / "schema.graphql")],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "holds" in out.stdout, out.stdout + out.stderr
