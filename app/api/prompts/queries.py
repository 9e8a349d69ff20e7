"""Query.searchPrompts."""
from __future__ import annotations

import strawberry

from app.db import models
from app.services import search as search_service
from app.services.access import Action

from ..core.context import Info
from ..core.errors import BadRequest
from ..core.pagination import MAX_PAGE
from ..core.relay import decode_id
from .content import SearchMode
from .inputs import PromptFilter, filter_spec
from .loaders import VersionByNumber
from .types import Prompt, PromptSearchHit, PromptVersion


@strawberry.type
class PromptQuery:
    @strawberry.field(description=(
        "Prompts ranked by how well their name, tags, description and latest version's text match `query` "
        "(PostgreSQL full-text search with the english and simple configurations, so inflections and other "
        "languages match; web-search syntax: quotes, or, -word) plus trigram similarity of names, so misspelt "
        "names are found. `mode`: semantic ranking is not available yet, so SEMANTIC and HYBRID currently rank "
        "exactly as FULLTEXT. ARCHIVED prompts are left out unless the filter asks for them. Empty when the "
        "project is not visible or you may not read its prompts. `first`: 1-100."))
    async def search_prompts(self, info: Info, project_id: strawberry.ID, query: str,
                             mode: SearchMode | None = SearchMode.HYBRID, first: int | None = 10,
                             filter: PromptFilter | None = None) -> list[PromptSearchHit]:
        limit = 10 if first is None else first
        if limit < 0:
            raise BadRequest("`first` must not be negative")
        if len(query) > search_service.MAX_QUERY:
            raise BadRequest(f"the query is {len(query)} characters long; at most {search_service.MAX_QUERY} "
                             "are allowed")
        pid = decode_id(project_id, models.Project)
        ctx = info.context
        if pid is None or not await ctx.can(pid, Action.READ_PROMPTS):
            return []
        async with ctx.db() as session:
            hits = await search_service.search_prompts(session, pid, query, min(limit, MAX_PAGE),
                                                       filter_spec(filter))
        for hit in hits:
            ctx.by_id(models.Prompt).prime(hit.prompt.id, hit.prompt)
        versions = await ctx.loader(VersionByNumber).load_many([(h.prompt.id, h.prompt.latest_version)
                                                                for h in hits])
        return [PromptSearchHit(prompt=Prompt.from_row(h.prompt), score=h.score, snippet=h.snippet,
                                version=PromptVersion.from_row(v) if v is not None else None)
                for h, v in zip(hits, versions, strict=True)]
