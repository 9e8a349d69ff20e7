"""A deterministic embedder for tests where the model's quality is not the point.

Words (``\\w+``, lower-cased, the first 64: its "input limit") are mapped to concepts through a small
synonym table, so that paraphrases sharing no word embed close ("money back" ~ "refund"), and hashed
into 384 signed buckets; the vector is normalised. ``down`` makes it fail as a provider that is
unreachable; a text containing REFUSE is refused (not retryable); FLAKY fails once (retryable).
"""
from __future__ import annotations

import hashlib
import math
import re

from app.embeddings import EmbeddingError, register

DIMENSIONS = 384
MAX_WORDS = 64
CONCEPTS = {
    "refund": "refund", "refunds": "refund", "money": "refund", "reimburse": "refund", "reimbursement": "refund",
    "rückerstattung": "refund", "repay": "refund",
    "vulnerability": "security", "vulnerabilities": "security", "exploit": "security", "attack": "security",
    "holes": "security", "security": "security",
    "poem": "poetry", "poetry": "poetry", "verses": "poetry", "haiku": "poetry", "rhymes": "poetry",
    "translate": "translation", "translation": "translation", "french": "translation", "language": "translation",
}


def _bucket(word: str) -> tuple[int, float]:
    h = hashlib.blake2b(word.encode(), digest_size=8).digest()
    return 1 + int.from_bytes(h[:4], "big") % (DIMENSIONS - 1), 1.0 if h[4] & 1 else -1.0


class HashEmbedder:
    model = "test:hash"
    dimensions: int | None = DIMENSIONS
    max_input = f"{MAX_WORDS} words"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.down = False
        self.calls: list[tuple[str, list[str]]] = []
        self.flaky_seen: set[str] = set()

    def vector(self, text: str) -> list[float]:
        v = [0.0] * DIMENSIONS
        v[0] = 0.05
        for word in re.findall(r"\w+", text.lower())[:MAX_WORDS]:
            i, sign = _bucket(CONCEPTS.get(word, word))
            v[i] += sign
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    async def embed(self, texts, kind):
        self.calls.append((kind, list(texts)))
        if self.down:
            raise EmbeddingError("could not connect to the test embedding service: connection refused", retryable=True)
        for t in texts:
            if "REFUSE" in t:
                raise EmbeddingError("the test model refuses this text (400)")
            if "FLAKY" in t and t not in self.flaky_seen:
                self.flaky_seen.add(t)
                raise EmbeddingError("the test model is overloaded (503)", retryable=True)
        return [self.vector(t) for t in texts]


EMBEDDER = HashEmbedder()
register("test", lambda settings, endpoint: EMBEDDER)
