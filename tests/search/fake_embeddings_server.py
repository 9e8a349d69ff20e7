"""The fake LLM server (tests/providers/fake_llm_server.py) plus ``POST /v1/embeddings``, speaking the
OpenAI embeddings protocol over real HTTP on 127.0.0.1.

Behaviour by the request's ``model``: ``server-error`` (HTTP 500), ``bad-request`` (HTTP 400 with
OpenAI's error body), ``malformed`` (200 with embeddings of different lengths), anything else: one
vector of :data:`DIMENSIONS` floats per input (words hashed into signed buckets; deterministic), in
``data[].embedding`` with its ``index`` (answered in reverse order, as the protocol allows).
"""
from __future__ import annotations

import hashlib
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.fake_llm_server import FakeLLMServer

DIMENSIONS = 16


def fake_vector(text: str) -> list[float]:
    v = [0.0] * DIMENSIONS
    v[0] = 0.1
    for word in re.findall(r"\w+", text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=4).digest()
        v[1 + h[0] % (DIMENSIONS - 1)] += 1.0 if h[1] & 1 else -1.0
    return v  # not normalised: the client normalises


class FakeEmbeddingsServer(FakeLLMServer):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.app.router.routes.append(Route("/v1/embeddings", self._embeddings, methods=["POST"]))

    async def _embeddings(self, request: Request) -> Response:
        record = await self._record(request, "openai")
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._openai_error(401, "Incorrect API key provided", "invalid_request_error", "invalid_api_key")
        body = record.body or {}
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return self._openai_error(400, "'input' must be a string or a list of strings", "invalid_request_error",
                                      None)
        if record.model == "server-error":
            return self._openai_error(500, "The server had an error while processing your request.", "server_error",
                                      None)
        if record.model == "bad-request":
            return self._openai_error(400, "This model's maximum context length is 8192 tokens.",
                                      "invalid_request_error", None)
        data = [{"object": "embedding", "index": i, "embedding": fake_vector(t)} for i, t in enumerate(inputs)]
        if record.model == "malformed" and data:
            data[0]["embedding"] = data[0]["embedding"][:3]
        record.completed = True
        return JSONResponse({"object": "list", "data": list(reversed(data)), "model": record.model,
                             "usage": {"prompt_tokens": 5, "total_tokens": 5}})
