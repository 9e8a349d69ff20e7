"""Fixtures of the provider tests.

``fake_llm`` is a :class:`FakeLLMServer` reset to a fresh state for each test (one server runs for
the whole session: starting and stopping uvicorn per test would cost more than the tests). Other
test packages can reuse it by importing ``FakeLLMServer`` from ``tests.providers.fake_llm_server``
and defining the same two fixtures, or by listing this module in the root conftest's
``pytest_plugins``.
"""
from __future__ import annotations

import pytest

from app.providers.anthropic import AnthropicProvider
from app.providers.openai import OpenAIProvider

from .fake_llm_server import FakeLLMServer


@pytest.fixture(scope="session")
def fake_llm_server():
    """The session's FakeLLMServer on 127.0.0.1 and a free port."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake_llm(fake_llm_server):
    """The FakeLLMServer with no recorded requests and its default settings."""
    fake_llm_server.reset()
    yield fake_llm_server
    fake_llm_server.reset()


@pytest.fixture
async def openai_provider():
    provider = OpenAIProvider()
    try:
        yield provider
    finally:
        await provider.aclose()


@pytest.fixture
async def anthropic_provider():
    provider = AnthropicProvider()
    try:
        yield provider
    finally:
        await provider.aclose()
