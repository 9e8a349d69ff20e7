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
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ARRAY,
    Float,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Prompt
from app.db.models.enums import PromptStatus

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
