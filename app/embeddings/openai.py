"""Any OpenAI-compatible embeddings endpoint: OpenAI, Ollama, vLLM, LM Studio, ...

Request: ``POST {base_url}/embeddings`` with ``{"model", "input": [texts], "encoding_format":
"float"}`` (and ``dimensions`` when configured, for models that can shorten their vectors);
``Authorization: Bearer <key>`` when a key is set. Response: ``{"data": [{"index", "embedding"}]}``.
Errors are read as the chat providers read them (``app.providers._http``): 408/429/5xx and
transport failures are retryable, the provider's own message is kept.

Inputs longer than ``max_input_chars`` are cut (the endpoint's tokenizer is not known here;
8,000 characters stay under OpenAI's 8,191-token limit for any text).
"""
from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence

import httpx

from app.providers._http import USER_AGENT, error_from_status, error_from_transport

from .base import EmbeddingError, Kind, normalise

DEFAULT_MODEL = "text-embedding-3-small"
#: Longest error body read to find the provider's message.
_MAX_ERROR_BODY = 64 * 1024
#: Largest response accepted (a batch of 256 x 3072 floats is ~16 MB of JSON).
_MAX_BODY = 64 * 1024 * 1024

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    """One pooled client per event loop (connections belong to the loop that opened them)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        for other in [lo for lo in _clients if lo.is_closed()]:
            _clients.pop(other, None)
        client = _clients[loop] = httpx.AsyncClient(headers={"user-agent": USER_AGENT}, follow_redirects=False,
                                                    limits=httpx.Limits(max_connections=20))
    return client


async def aclose_clients() -> None:
    loop = asyncio.get_running_loop()
    client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()


def openai_tag(model: str, dimensions: int | None) -> str:
    """The tag of an endpoint model's vectors; shortened ones (``dimensions``) are another model."""
    return f"openai:{model}" + (f"@{dimensions}" if dimensions else "")


class OpenAIEmbedder:
    label = "OpenAI-compatible embeddings endpoint"

    def __init__(self, *, model: str, base_url: str, api_key: str | None = None, dimensions: int | None = None,
                 timeout: float = 30.0, max_input_chars: int = 8000) -> None:
        self.remote_model = model
        self.model = openai_tag(model, dimensions)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.requested_dimensions = dimensions
        self.dimensions: int | None = dimensions
        self.timeout = timeout
        self.max_input_chars = max_input_chars
        self.max_input = f"{max_input_chars} characters"

    async def embed(self, texts: Sequence[str], kind: Kind) -> list[list[float]]:
        if not texts:
            return []
        body: dict = {"model": self.remote_model, "input": [t[: self.max_input_chars] for t in texts],
                      "encoding_format": "float"}
        if self.requested_dimensions:
            body["dimensions"] = self.requested_dimensions
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/embeddings"
        timeout = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        try:
            async with _client().stream("POST", url, content=json.dumps(body, ensure_ascii=False).encode(),
                                        headers=headers, timeout=timeout) as response:
                raw = await _read(response, _MAX_ERROR_BODY if response.status_code >= 300 else _MAX_BODY)
                if not 200 <= response.status_code < 300:
                    err = error_from_status(self.label, response.status_code, response.headers, raw)
                    raise EmbeddingError(str(err), retryable=err.retryable)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            err = error_from_transport(self.label, exc, self.timeout)
            raise EmbeddingError(str(err), retryable=err.retryable) from exc
        return self._vectors(raw, len(texts))

    def _vectors(self, raw: bytes, count: int) -> list[list[float]]:
        def bad(what: str) -> EmbeddingError:
            return EmbeddingError(f"the {self.label} sent a malformed response: {what}")

        try:
            data = json.loads(raw)
        except ValueError:
            raise bad(f"not JSON: {raw[:200]!r}") from None
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != count:
            raise bad(f"expected 'data' with {count} embeddings")
        vectors: list[list[float] | None] = [None] * count
        for position, item in enumerate(items):
            index = item.get("index", position) if isinstance(item, dict) else None
            vector = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
                raise bad("'index' values are not 0..n-1")
            if (not isinstance(vector, list) or not vector
                    or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                               for x in vector)):
                raise bad("an 'embedding' is not a list of numbers (base64 answers are not asked for)")
            vectors[index] = normalise(vector)
        dims = {len(v) for v in vectors if v is not None}
        if len(dims) != 1:
            raise bad(f"embeddings of different lengths: {sorted(dims)}")
        self.dimensions = dims.pop()
        return [v for v in vectors if v is not None]


async def _read(response: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[:limit]
