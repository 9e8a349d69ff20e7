"""LLM providers behind one streaming interface (see :mod:`app.providers.base`)."""
from .base import (
    Credential,
    Provider,
    ProviderError,
    ProviderRequest,
    StreamEvent,
    TextDelta,
    UsageReport,
    count_message_tokens,
    count_tokens,
    stream_with_retries,
)
from .registry import PROVIDERS, ProviderInfo, UnknownProvider, aclose_providers, get_provider

__all__ = [
    "PROVIDERS",
    "Credential",
    "Provider",
    "ProviderError",
    "ProviderInfo",
    "ProviderRequest",
    "StreamEvent",
    "TextDelta",
    "UnknownProvider",
    "UsageReport",
    "aclose_providers",
    "count_message_tokens",
    "count_tokens",
    "get_provider",
    "stream_with_retries",
]
