"""The providers Prompt Studio knows, by name: one instance of each per process.

``get_provider(name)`` returns the shared instance (its HTTP connection pool is reused by every
execution in the process); ``aclose_providers()`` closes the pools at shutdown. ``PROVIDERS``
describes them for listings (GraphQL, CLI).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .anthropic import DEFAULT_BASE_URL as ANTHROPIC_BASE_URL
from .anthropic import AnthropicProvider
from .base import Provider, ProviderError
from .echo import EchoProvider
from .openai import DEFAULT_BASE_URL as OPENAI_BASE_URL
from .openai import OpenAIProvider


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    display_name: str
    description: str
    requires_api_key: bool
    supports_streaming: bool
    default_base_url: str | None


PROVIDERS: list[ProviderInfo] = [
    ProviderInfo(
        name="openai",
        display_name="OpenAI-compatible",
        description=(
            "Any OpenAI-compatible Chat Completions API: OpenAI, OpenRouter, Ollama, vLLM and "
            "others; set the base URL for anything but OpenAI. The API key may be omitted for "
            "servers that need none."
        ),
        requires_api_key=True,
        supports_streaming=True,
        default_base_url=OPENAI_BASE_URL,
    ),
    ProviderInfo(
        name="anthropic",
        display_name="Anthropic",
        description="Anthropic's Messages API (Claude models).",
        requires_api_key=True,
        supports_streaming=True,
        default_base_url=ANTHROPIC_BASE_URL,
    ),
    ProviderInfo(
        name="echo",
        display_name="Echo (built in)",
        description=(
            "Offline and deterministic: streams back the rendered prompt. For demos and tests "
            "without credentials."
        ),
        requires_api_key=False,
        supports_streaming=True,
        default_base_url=None,
    ),
]

_FACTORIES: dict[str, Callable[[], Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "echo": EchoProvider,
}
_instances: dict[str, Provider] = {}


class UnknownProvider(ProviderError, LookupError):
    """No provider has this name. Never retryable."""

    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(_FACTORIES))
        super().__init__(f"unknown provider {name!r}; the providers are: {known}", retryable=False)
        self.name = name


def provider_names() -> list[str]:
    return [info.name for info in PROVIDERS]


def provider_info(name: str) -> ProviderInfo:
    for info in PROVIDERS:
        if info.name == name:
            return info
    raise UnknownProvider(name)


def get_provider(name: str) -> Provider:
    """The process-wide instance of the provider called ``name`` (exact, lower-case)."""
    provider = _instances.get(name)
    if provider is None:
        factory = _FACTORIES.get(name)
        if factory is None:
            raise UnknownProvider(name)
        provider = _instances[name] = factory()
    return provider


async def aclose_providers() -> None:
    """Close every provider's connection pool (at application shutdown). The instances stay
    usable: a later call opens a new pool."""
    for provider in list(_instances.values()):
        await provider.aclose()
