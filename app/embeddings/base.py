"""What an embedding model is to the rest of Prompt Studio: texts in, unit vectors out.

An :class:`Embedder` has a ``model`` tag (stored beside every vector, so that vectors of different
models are never compared and the model can change), embeds ``documents`` (prompt versions) and
``queries`` (searches) separately (some models, such as E5, prefix them differently), and cuts an
input longer than the model's limit (``max_input``) instead of failing. It never blocks the event
loop: built-in models run in worker processes (``builtin``), remote ones over HTTP (``openai``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

Kind = Literal["query", "document"]


class EmbeddingError(Exception):
    """The embedding provider failed. ``retryable``: a later call may work (down, rate limited, timeout)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class Embedder(Protocol):
    #: Stored with each vector: ``builtin:wordllama``, ``openai:text-embedding-3-small``, ...
    model: str
    #: Known in advance for built-in models; None for a remote model until its first answer.
    dimensions: int | None
    #: A human description of the input limit (for --help and errors), e.g. "512 tokens".
    max_input: str

    async def embed(self, texts: Sequence[str], kind: Kind) -> list[list[float]]:
        """One unit-length vector per text, in order. Raises :class:`EmbeddingError`."""
        ...


def normalise(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to unit length (cosine distance then equals 1 - dot product)."""
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0 or not math.isfinite(norm):
        raise EmbeddingError("the model returned a zero or non-finite vector")
    return [x / norm for x in vector]
