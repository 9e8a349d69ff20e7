"""tools/web_build.py: what the package build does when the pages can or cannot be built."""
from __future__ import annotations

import json
import sys

import pytest

from app.http import assets
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import web_build  # noqa: E402


@pytest.fixture
def out(tmp_path, monkeypatch):
    """web_build writing into a directory of the test's, with no Node.js to be found."""
    monkeypatch.setattr(web_build, "OUT", tmp_path)
    monkeypatch.setattr(web_build, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setattr(web_build, "FAILED", tmp_path / "build-failed.txt")
    monkeypatch.setattr(web_build, "find_node", lambda **kw: None)
    return tmp_path


def test_without_node_the_build_says_so_loudly_and_the_server_knows_why(out, monkeypatch, capsys):
    monkeypatch.delenv("PROMPTSTUDIO_WEB_BUILD", raising=False)
    web_build.build_for_package()
    banner = capsys.readouterr().err
    assert banner.count("!" * 78) == 2 and "no Node.js 18+ with npm was found" in banner
    assert "serve GraphiQL from a CDN" in banner
    found = assets.load(out)
    assert not found.built and found.problem.startswith("no Node.js 18+ with npm was found")
    assert web_build.status() == 1 and "no Node.js 18+" in capsys.readouterr().err


def test_require_makes_a_failed_build_fail_the_install(out, monkeypatch):
    monkeypatch.setenv("PROMPTSTUDIO_WEB_BUILD", "require")
    with pytest.raises(SystemExit, match="web build failed .*no Node.js"):
        web_build.build_for_package()


def test_skip_records_why_there_are_no_pages(out, monkeypatch, capsys):
    monkeypatch.setenv("PROMPTSTUDIO_WEB_BUILD", "skip")
    web_build.build_for_package()
    assert assets.load(out).problem == "PROMPTSTUDIO_WEB_BUILD=skip: the build was skipped"
    monkeypatch.setenv("PROMPTSTUDIO_WEB_BUILD", "sometimes")
    with pytest.raises(SystemExit, match="is not one of auto, require, skip"):
        web_build.build_for_package()


def test_the_built_pages_match_the_sources(built_assets):
    """build.mjs and tools/web_build.py hash the sources alike, so an install skips a build that is
    up to date and redoes one that is not."""
    manifest = json.loads((built_assets.directory / "manifest.json").read_text())
    assert manifest["sourceHash"] == web_build.source_hash()
    assert web_build.up_to_date()
