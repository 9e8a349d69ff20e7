"""Finding prompts: the filter shared by listings and search, the search document, full-text search.

**The search document.** ``prompts.search_vector`` is rebuilt in SQL, in the transaction that
changes a prompt or adds a version (``refresh_search``), from

====================================  ======
name (``/ _ . -`` read as spaces)     A
tags                                  B
description                           C
latest version: system prompt,        D
template or message contents
====================================  ======

each part parsed twice: with the ``english`` configuration (stemming: refund/refunds,
vulnerability/vulnerabilities) and with ``simple`` (no stemming, no stop words: any language's
words as written). ``prompts.search_text`` keeps the same parts as plain text, for snippets.

**The query** (``search_prompts``): ``websearch_to_tsquery('english', q) ||
websearch_to_tsquery('simple', q)`` (so quotes, ``or`` and ``-word`` work as on the web) matched
against the vector (GIN index ``ix_prompts_search_vector``), or a name that is trigram-similar to
the query (``name % q`` or ``name %> q``, GIN index ``ix_prompts_name_trgm``), which finds names
typed with typos. The candidates of the three operators are found separately (a UNION), so that
each branch can use its index; migration 0002 gives pg_trgm's operators a realistic cost so that
the planner does. Rank = ``ts_rank_cd(vector, query) + greatest(similarity(name, q),
word_similarity(q, name))``. The snippet is ``ts_headline`` over the search text with matches
marked ``<mark>…</mark>`` (none when only the name's similarity matched).

**Semantic search** (``semantic_search``): the query is embedded by the configured model (in its
worker process, or over HTTP; recent queries are cached) and the project's version vectors of that
model are ranked by cosine distance through the HNSW index of their length, with the filters in
the same statement (pgvector's iterative index scan keeps scanning until enough rows pass them).
A prompt ranks by its best-matching version (``version_id`` of the hit); score = cosine similarity.

**Hybrid** (``hybrid_search``, the default mode): reciprocal rank fusion of the full-text and the
semantic rankings, score = sum over both of 1 / (60 + rank) (rank from 1; k = 60 as in pgvector's
example), so at most 2/61 ≈ 0.0328. When the semantic half cannot run (no vectors of the model
yet, or the provider is down) it logs why and returns the full-text ranking.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    ARRAY,
    Float,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import UUID, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from app import embeddings
from app.db.models import Prompt, VersionEmbedding
from app.db.models.enums import EmbeddingStatus, PromptStatus
from app.embeddings import EmbeddingError
from app.settings import Settings

from . import embeddings as embedding_service

#: Longest query accepted by searchPrompts, in characters.
MAX_QUERY = 500
#: How much of a latest version's text goes into the search document (tsvector has a 1 MB limit).
MAX_BODY = 100_000

_REFRESH = text(f"""
UPDATE prompts AS p SET
  search_text = d.name || E'\\n' || d.tag_words || E'\\n' || d.description || E'\\n' || d.body,
  search_vector =
       setweight(to_tsvector('english', d.name_words), 'A') || setweight(to_tsvector('simple', d.name_words), 'A')
    || setweight(to_tsvector('english', d.tag_words), 'B') || setweight(to_tsvector('simple', d.tag_words), 'B')
    || setweight(to_tsvector('english', d.description), 'C')
    || setweight(to_tsvector('simple', d.description), 'C')
    || setweight(to_tsvector('english', d.body), 'D') || setweight(to_tsvector('simple', d.body), 'D')
FROM (
  SELECT p2.id,
         p2.name,
         translate(p2.name, '/_.-', '    ') AS name_words,
         array_to_string(p2.tags, ' ') AS tag_words,
         coalesce(p2.description, '') AS description,
         left(concat_ws(E'\\n', v.system_prompt, v.template, (
             SELECT string_agg(m.value ->> 'content', E'\\n' ORDER BY m.ordinality)
             FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v.messages) = 'array' THEN v.messages
                                            ELSE '[]'::jsonb END) WITH ORDINALITY AS m
         )), {MAX_BODY}) AS body
  FROM prompts AS p2
  LEFT JOIN prompt_versions AS v ON v.prompt_id = p2.id AND v.number = p2.latest_version
  WHERE p2.id = ANY(:ids)
) AS d
WHERE p.id = d.id
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))  # noqa: S608 - MAX_BODY, a constant


async def refresh_search(session: AsyncSession, prompt_ids: Sequence[uuid.UUID]) -> None:
    """Rebuild the search document of these prompts from their current row and latest version."""
    if prompt_ids:
        await session.execute(_REFRESH, {"ids": list(prompt_ids)})


# ------------------------------------------------------------------ the filter of listings and search

@dataclass(frozen=True)
class PromptFilterSpec:
    """PromptFilter as plain, hashable data (usable as a dataloader key).

    ``statuses`` None: every status but ARCHIVED (archived prompts are hidden unless asked for).
    ``tags``: prompts having all of them (already normalised: trimmed, lower-cased).
    ``category``: exact match. ``search``: case-insensitive substring of name or description.
    """

    statuses: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()
    category: str | None = None
    search: str | None = None


def escape_like(value: str) -> str:
    """``value`` with LIKE wildcards escaped (escape character ``\\``)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_clauses(spec: PromptFilterSpec | None) -> list:
    """WHERE clauses on ``prompts`` for a filter."""
    spec = spec or PromptFilterSpec()
    clauses: list = []
    if spec.statuses is None:
        clauses.append(Prompt.status != PromptStatus.ARCHIVED.value)
    else:
        clauses.append(Prompt.status.in_(list(spec.statuses)))
    if spec.tags:
        # tags @> ARRAY[...]: served by the GIN index ix_prompts_tags.
        clauses.append(Prompt.tags.op("@>")(literal(list(spec.tags), type_=PG_ARRAY(String(64)))))
    if spec.category is not None:
        clauses.append(Prompt.category == spec.category)
    if spec.search:
        pattern = "%" + escape_like(spec.search) + "%"
        clauses.append(or_(Prompt.name.ilike(pattern, escape="\\"), Prompt.description.ilike(pattern, escape="\\")))
    return clauses


# ------------------------------------------------------------------ full-text search

@dataclass
class SearchHit:
    prompt: Prompt
    score: float
    snippet: str | None
    #: The version that matched best (semantic); None: the latest (full-text matches the latest).
    version_id: uuid.UUID | None = None


def search_statement(project_id: uuid.UUID, query: str, limit: int, spec: PromptFilterSpec | None = None):
    """The SELECT behind ``search_prompts``: (Prompt, score, snippet) rows, best first."""
    q = bindparam("q", query, type_=String)
    tsq = func.websearch_to_tsquery(literal_column("'english'::regconfig"), q).op("||")(
        func.websearch_to_tsquery(literal_column("'simple'::regconfig"), q))
    score = (func.ts_rank_cd(Prompt.search_vector, tsq)
             + func.greatest(func.similarity(Prompt.name, q), func.word_similarity(q, Prompt.name))).label("score")
    # Candidates: one branch per operator, so that each can use its GIN index (with an OR of them in
    # one WHERE the planner scans the whole project instead, and trigram similarity row by row is slow).
    candidates = union(
        select(Prompt.id).where(Prompt.project_id == project_id, Prompt.search_vector.op("@@")(tsq)),
        select(Prompt.id).where(Prompt.project_id == project_id, Prompt.name.op("%")(q)),
        select(Prompt.id).where(Prompt.project_id == project_id, Prompt.name.op("%>")(q)),
    ).subquery("candidates")
    ranked = (
        select(Prompt.id.label("id"), score)
        .join(candidates, candidates.c.id == Prompt.id)
        .where(*filter_clauses(spec))
        .order_by(score.desc(), Prompt.name, Prompt.id)
        .limit(limit)
        .subquery("ranked")
    )
    # Only where the text matched: for a name found by similarity alone, ts_headline would just
    # return the start of the text with nothing marked.
    snippet = case(
        (Prompt.search_vector.op("@@")(tsq), func.ts_headline(
            literal_column("'english'::regconfig"), Prompt.search_text, tsq,
            'StartSel=<mark>, StopSel=</mark>, MaxWords=30, MinWords=10, MaxFragments=2, FragmentDelimiter=" … "')),
        else_=None,
    ).label("snippet")
    return (select(Prompt, ranked.c.score.cast(Float), snippet)
            .join(ranked, and_(Prompt.id == ranked.c.id))
            .order_by(ranked.c.score.desc(), Prompt.name, Prompt.id))


async def search_prompts(session: AsyncSession, project_id: uuid.UUID, query: str, limit: int,
                         spec: PromptFilterSpec | None = None) -> list[SearchHit]:
    """Full-text + trigram search of one project's prompts. The caller has checked READ_PROMPTS."""
    query = query.strip()
    if not query or limit <= 0:
        return []
    rows = (await session.execute(search_statement(project_id, query, limit, spec))).all()
    return [SearchHit(prompt=p, score=float(s), snippet=snip or None) for p, s, snip in rows]


# ------------------------------------------------------------------ semantic search

#: Reciprocal rank fusion constant (pgvector's hybrid search example uses 60).
RRF_K = 60
#: Candidates taken from each ranking before fusing: this many times ``first`` (at least RRF_MIN).
RRF_DEPTH = 3
RRF_MIN = 30
#: Versions fetched per wanted prompt before keeping each prompt's best one (doubled while short).
VERSIONS_PER_PROMPT = 4
MAX_VERSION_CANDIDATES = 4000
#: Recent query vectors kept per process (model, query) -> vector.
QUERY_CACHE_SIZE = 1024

log = logging.getLogger("promptstudio.search")


class SemanticUnavailable(Exception):
    """Semantic ranking cannot run now. ``code``: EMBEDDINGS_NOT_READY or EMBEDDING_PROVIDER_UNAVAILABLE."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


Db = Callable[[], AbstractAsyncContextManager[AsyncSession]]

_query_cache: OrderedDict[tuple[str, str], list[float]] = OrderedDict()


async def embed_query(db: Db, settings: Settings, project_id: uuid.UUID, query: str) -> tuple[str, list[float]]:
    """(model tag, vector) of ``query`` by the configured model; cut to the model's input limit.

    Raises SemanticUnavailable(EMBEDDING_PROVIDER_UNAVAILABLE) when the model cannot be called.
    """
    try:
        async with db() as session:
            embedder = await embedding_service.embedder_for(session, settings, project_id)
        key = (embedder.model + "|" + getattr(embedder, "base_url", ""), query)
        cached = _query_cache.get(key)
        if cached is not None:
            _query_cache.move_to_end(key)
            return embedder.model, cached
        [vector] = await embedder.embed([query], "query")
    except EmbeddingError as exc:
        raise SemanticUnavailable("EMBEDDING_PROVIDER_UNAVAILABLE",
                                  f"the embedding model cannot be used: {exc.message}") from exc
    _query_cache[key] = vector
    if len(_query_cache) > QUERY_CACHE_SIZE:
        _query_cache.popitem(last=False)
    return embedder.model, vector


async def _iterative_scan(session: AsyncSession, candidates: int) -> None:
    """In the current transaction: let the HNSW scan go on past ef_search until the filters let
    ``candidates`` rows through (pgvector 0.8's iterative index scans), and plan each statement for
    its parameters (a prepared statement's generic plan, chosen after five runs, cannot see how
    selective the project and the filters are, and was measured twice as slow)."""
    await session.execute(text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                               "set_config('hnsw.ef_search', :ef, true), "
                               "set_config('plan_cache_mode', 'force_custom_plan', true)"),
                          {"ef": str(min(1000, max(40, candidates)))})


def _nearest_versions(project_id: uuid.UUID, model: str, dims: int, query_vector: Any, candidates: int,
                      spec: PromptFilterSpec | None):
    """The ``candidates`` nearest READY versions of the project (filters applied), nearest first."""
    E = VersionEmbedding
    n = int(dims)
    distance = cast(E.embedding, Vector(n)).cosine_distance(query_vector)
    where = [E.project_id == project_id, E.model == model, E.dimensions == literal_column(str(n)),
             *filter_clauses(spec)]
    return (select(E.prompt_id, E.version_id, distance.label("distance"))
            .join(Prompt, Prompt.id == E.prompt_id).where(*where)
            .order_by(distance).limit(candidates))


@dataclass
class SemanticHit:
    prompt_id: uuid.UUID
    version_id: uuid.UUID
    similarity: float
    prompt: Prompt | None = None


async def _ranked(session: AsyncSession, project_id: uuid.UUID, model: str, vector: list[float], limit: int,
                  spec: PromptFilterSpec | None) -> list[SemanticHit]:
    """Prompts (with their rows) by their best version's cosine similarity, best first, ``limit`` at most."""
    candidates = max(limit * VERSIONS_PER_PROMPT, 40)
    q = bindparam("q", vector, type_=Vector(len(vector)))
    while True:
        await _iterative_scan(session, candidates)
        # A CTE referenced twice is evaluated once (the index scan runs once).
        nearest = _nearest_versions(project_id, model, len(vector), q, candidates, spec).cte("nearest")
        best = (select(nearest.c.prompt_id, nearest.c.version_id, nearest.c.distance)
                .ext(distinct_on(nearest.c.prompt_id))
                .order_by(nearest.c.prompt_id, nearest.c.distance)).subquery("best")
        seen = select(func.count()).select_from(nearest).scalar_subquery().label("seen")
        stmt = (select(Prompt, best.c.version_id, best.c.distance, seen).join(best, best.c.prompt_id == Prompt.id)
                .order_by(best.c.distance, best.c.prompt_id).limit(limit))
        rows = (await session.execute(stmt)).all()
        found = rows[0].seen if rows else 0
        if len(rows) >= limit or found < candidates or candidates >= MAX_VERSION_CANDIDATES:
            return [SemanticHit(r.Prompt.id, r.version_id, 1.0 - float(r.distance), r.Prompt) for r in rows]
        candidates = min(candidates * 2, MAX_VERSION_CANDIDATES)  # many versions of few prompts: look further


async def _why_empty(session: AsyncSession, project_id: uuid.UUID, model: str) -> SemanticUnavailable | None:
    """None when the project has vectors of ``model`` (an empty result is then the answer), else why not."""
    E = VersionEmbedding
    has_ready = (await session.execute(select(select(E.version_id).where(
        E.project_id == project_id, E.model == model, E.status == EmbeddingStatus.READY.value).exists()))).scalar()
    if has_ready:
        return None
    counts = dict((await session.execute(select(E.status, func.count()).where(E.project_id == project_id)
                                         .group_by(E.status))).all())
    pending = counts.get(EmbeddingStatus.PENDING.value, 0)
    failed = counts.get(EmbeddingStatus.FAILED.value, 0)
    if not counts:
        return None  # no versions at all: nothing to find, not an error
    detail = f"{pending} pending" + (f", {failed} failed" if failed else "")
    if counts.get(EmbeddingStatus.READY.value):
        detail += f", the others made by another model (run `promptstudio reindex` for {model})"
    return SemanticUnavailable("EMBEDDINGS_NOT_READY",
                               f"semantic search needs the embeddings of this project's prompt versions by {model}, "
                               f"and none is ready yet ({detail}); try again shortly, or search with FULLTEXT")


async def semantic_search(db: Db, settings: Settings, project_id: uuid.UUID, query: str, limit: int,
                          spec: PromptFilterSpec | None = None) -> list[SearchHit]:
    """Prompts ranked by the cosine similarity of their best-matching version to ``query``.

    Raises SemanticUnavailable when there are no vectors of the configured model in the project yet
    or the model cannot be called.
    """
    query = query.strip()
    if not query or limit <= 0:
        return []
    model, vector = await embed_query(db, settings, project_id, query)
    async with db() as session, session.begin():
        ranked = await _ranked(session, project_id, model, vector, limit, spec)
        if not ranked:
            why = await _why_empty(session, project_id, model)
            if why is not None:
                raise why
    return [SearchHit(prompt=h.prompt, score=h.similarity, snippet=None, version_id=h.version_id)
            for h in ranked if h.prompt is not None]


async def hybrid_search(db: Db, settings: Settings, project_id: uuid.UUID, query: str, limit: int,
                        spec: PromptFilterSpec | None = None) -> list[SearchHit]:
    """Full-text and semantic rankings fused by reciprocal rank fusion (k = 60); the full-text
    ranking alone, with a log line saying why, when the semantic one cannot run."""
    query = query.strip()
    if not query or limit <= 0:
        return []
    depth = max(limit * RRF_DEPTH, RRF_MIN)

    async def fulltext() -> list[SearchHit]:
        async with db() as session:
            return await search_prompts(session, project_id, query, depth, spec)

    async def semantic() -> list[SearchHit]:
        return await semantic_search(db, settings, project_id, query, depth, spec)

    text_hits, semantic_hits = await asyncio.gather(fulltext(), semantic(), return_exceptions=True)
    if isinstance(text_hits, BaseException):
        raise text_hits
    if isinstance(semantic_hits, BaseException):
        if not isinstance(semantic_hits, SemanticUnavailable):
            raise semantic_hits
        log.info("searchPrompts HYBRID in project %s fell back to FULLTEXT: %s", project_id, semantic_hits.message)
        return text_hits[:limit]
    fused: dict[uuid.UUID, SearchHit] = {}
    scores: dict[uuid.UUID, float] = {}
    for hits in (semantic_hits, text_hits):
        for rank, hit in enumerate(hits, start=1):
            pid = hit.prompt.id
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (RRF_K + rank)
            seen = fused.get(pid)
            if seen is None:
                fused[pid] = SearchHit(prompt=hit.prompt, score=0.0, snippet=hit.snippet, version_id=hit.version_id)
            elif seen.snippet is None:
                seen.snippet = hit.snippet
    order = sorted(fused, key=lambda pid: (-scores[pid], fused[pid].prompt.name, pid))[:limit]
    for pid in order:
        fused[pid].score = scores[pid]
    return [fused[pid] for pid in order]


# ------------------------------------------------------------------ similar prompts

_SOURCE_DIMS: dict[str, int] = {}


async def model_dimensions(session: AsyncSession, model: str) -> int | None:
    """The length of ``model``'s vectors (from one stored vector; remembered)."""
    dims = _SOURCE_DIMS.get(model)
    if dims is None:
        E = VersionEmbedding
        dims = (await session.execute(select(E.dimensions).where(
            E.model == model, E.status == EmbeddingStatus.READY.value).limit(1))).scalar()
        if dims is not None:
            _SOURCE_DIMS[model] = dims
    return dims


async def similar_prompts(session: AsyncSession, settings: Settings, prompt_ids: Sequence[uuid.UUID],
                          limit: int) -> dict[uuid.UUID, list[SemanticHit]]:
    """For each prompt: the nearest other prompts of its project (not archived), by their best
    version's cosine similarity to the prompt's latest embedded version. One statement for all.

    A prompt none of whose versions has a vector of the configured model yet has no similar prompts.
    """
    result: dict[uuid.UUID, list[SemanticHit]] = {pid: [] for pid in prompt_ids}
    if not prompt_ids or limit <= 0:
        return result
    model = embeddings.model_tag(settings)
    dims = await model_dimensions(session, model)
    if dims is None:
        return result
    n = int(dims)
    candidates = max(limit * VERSIONS_PER_PROMPT, 40)
    await _iterative_scan(session, candidates)
    stmt = text(f"""
        SELECT src.id AS source_id, best.prompt_id, best.version_id, best.distance
        FROM unnest(:ids) AS src(id)
        CROSS JOIN LATERAL (
            SELECT e.embedding::vector({n}) AS v, e.project_id
            FROM version_embeddings AS e JOIN prompt_versions AS pv ON pv.id = e.version_id
            WHERE e.prompt_id = src.id AND e.model = :model AND e.dimensions = {n} AND e.status = 'READY'
            ORDER BY pv.number DESC LIMIT 1
        ) AS source
        CROSS JOIN LATERAL (
            SELECT DISTINCT ON (nearest.prompt_id) nearest.prompt_id, nearest.version_id, nearest.distance
            FROM (
                SELECT e.prompt_id, e.version_id, e.embedding::vector({n}) <=> source.v AS distance
                FROM version_embeddings AS e JOIN prompts AS p ON p.id = e.prompt_id
                WHERE e.project_id = source.project_id AND e.model = :model AND e.dimensions = {n}
                  AND e.prompt_id <> src.id AND p.status <> 'ARCHIVED'
                ORDER BY e.embedding::vector({n}) <=> source.v
                LIMIT :candidates
            ) AS nearest
            ORDER BY nearest.prompt_id, nearest.distance
        ) AS best
        ORDER BY src.id, best.distance, best.prompt_id
    """).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))  # noqa: S608 - n is an int
    rows = (await session.execute(stmt, {"ids": list(prompt_ids), "model": model, "candidates": candidates})).all()
    for r in rows:
        hits = result[r.source_id]
        if len(hits) < limit:
            hits.append(SemanticHit(r.prompt_id, r.version_id, 1.0 - float(r.distance)))
    return result
