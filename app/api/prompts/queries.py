"""Query.searchPrompts."""
from __future__ import annotations

import strawberry

from app.db import models
from app.services import search as search_service
from app.services.access import Action

from ..core.context import Info
from ..core.errors import BadRequest, ClientError
from ..core.pagination import MAX_PAGE
from ..core.relay import decode_id
from .content import SearchMode
from .inputs import PromptFilter, filter_spec
from .types import PromptSearchHit, search_hits


@strawberry.type
class PromptQuery:
    @strawberry.field(description=(
        "Prompts of a project matching `query`, best first. `mode` (default HYBRID): FULLTEXT ranks by the words of "
        "the name, tags, description and latest version's text (PostgreSQL full-text search with the english and "
        "simple configurations, so inflections and other languages match; web-search syntax: quotes, or, -word) "
        "plus trigram similarity of names, so misspelt names are found; SEMANTIC ranks by meaning (embeddings of "
        "every version, cosine similarity, the best version of each prompt); HYBRID fuses both rankings. Filters "
        "apply inside the search, so `first` hits come back when there are that many. ARCHIVED prompts are left "
        "out unless the filter asks for them. An empty query is BAD_USER_INPUT; a query longer than the embedding "
        "model's input limit is cut to it for the semantic part. Empty when the project is not visible or you may "
        "not read its prompts. `first`: 1-100."))
    async def search_prompts(self, info: Info, project_id: strawberry.ID, query: str,
                             mode: SearchMode | None = SearchMode.HYBRID, first: int | None = 10,
                             filter: PromptFilter | None = None) -> list[PromptSearchHit]:
        limit = 10 if first is None else first
        if limit < 0:
            raise BadRequest("`first` must not be negative")
        if len(query) > search_service.MAX_QUERY:
            raise BadRequest(f"the query is {len(query)} characters long; at most {search_service.MAX_QUERY} "
                             "are allowed")
        if not query.strip():
            raise BadRequest("the query is empty; give some words to search for")
        pid = decode_id(project_id, models.Project)
        ctx = info.context
        if pid is None or not await ctx.can(pid, Action.READ_PROMPTS):
            return []
        limit = min(limit, MAX_PAGE)
        spec = filter_spec(filter)
        try:
            if mode == SearchMode.SEMANTIC:
                hits = await search_service.semantic_search(ctx.db_transaction, ctx.settings, pid, query, limit, spec)
            elif mode == SearchMode.FULLTEXT:
                async with ctx.db() as session:
                    hits = await search_service.search_prompts(session, pid, query, limit, spec)
            else:
                hits = await search_service.hybrid_search(ctx.db_transaction, ctx.settings, pid, query, limit, spec)
        except search_service.SemanticUnavailable as exc:
            raise ClientError(exc.message, exc.code) from None
        for hit in hits:
            ctx.by_id(models.Prompt).prime(hit.prompt.id, hit.prompt)
        return await search_hits(info, [(h.prompt.id, h.version_id, h.score, h.snippet) for h in hits])
