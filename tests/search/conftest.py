"""Semantic search tests: the app embeds with the deterministic test embedder (``embedder.py``) and
runs one worker task, so embedding jobs run as in production; tests that need the real model or an
HTTP endpoint say so with ``make_app``/``live`` overrides."""
from __future__ import annotations

import pytest

from app.settings import Settings

from tests.conftest import ROOT

from .embedder import EMBEDDER


@pytest.fixture
def settings() -> Settings:
    return Settings(workers=1, data_dir=ROOT / ".test-pgdata", heartbeat_seconds=1.0, lease_seconds=5,
                    poll_seconds=0.2, last_used_resolution_seconds=0, embedding_provider="test")


@pytest.fixture(autouse=True)
def embedder():
    EMBEDDER.reset()
    yield EMBEDDER
    EMBEDDER.reset()
