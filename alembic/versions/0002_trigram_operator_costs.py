"""Tell the planner what pg_trgm's similarity operators really cost.

pg_trgm declares the functions behind ``%``, ``%>`` and ``<%`` with the default COST 1, as
cheap as an integer comparison, while each call builds the trigrams of both strings (about
10 µs per row). With that estimate the planner prefers filtering a project's rows one by one
over the GIN index ix_prompts_name_trgm, and searchPrompts's typo branch gets slow as projects
grow (about 150 ms at 10,000 prompts instead of a few ms through the index). COST 100 is
what PostgreSQL itself uses for the comparable text-search functions (ts_match_tt,
ts_match_tq). No table changes; autogenerate sees nothing.

Changing the cost needs ownership of the extension's functions. Where the extension belongs to
someone else (a managed database whose admin installed pg_trgm), the costs stay as they are
and a NOTICE says so: search still works, only its plans are not improved.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

FUNCTIONS = (
    "similarity_op(text, text)",
    "word_similarity_op(text, text)",
    "word_similarity_commutator_op(text, text)",
)


def _set_cost(cost: int) -> None:
    statements = "\n".join(f"  ALTER FUNCTION {f} COST {cost};" for f in FUNCTIONS)
    op.execute(f"""
DO $$
BEGIN
{statements}
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'pg_trgm operator costs left unchanged: %', SQLERRM;
END
$$;
""")


def upgrade() -> None:
    _set_cost(100)


def downgrade() -> None:
    _set_cost(1)
