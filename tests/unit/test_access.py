"""Access rules: the Action enum (no database)."""

from __future__ import annotations

from app.db.models.enums import ApiScope, ProjectRole
from app.services.access import Action


def test_actions_with_the_same_rule_stay_distinct():
    # DELETE_PROMPTS and ADMIN_PROJECT need the same (ADMIN, or PROJECT_ADMIN for keys); an Enum
    # whose values compare equal would make the second an alias of the first.
    assert Action.ADMIN_PROJECT is not Action.DELETE_PROMPTS
    assert Action.ADMIN_PROJECT.name == "ADMIN_PROJECT"
    assert [a.name for a in Action] == [
        "VIEW_PROJECT", "READ_PROMPTS", "WRITE_PROMPTS", "DELETE_PROMPTS", "READ_EXECUTIONS", "WRITE_EXECUTIONS",
        "READ_TRACES", "READ_USAGE", "WRITE_TRACES",
        "READ_EXPERIMENTS", "WRITE_EXPERIMENTS", "ADMIN_PROJECT", "MANAGE_API_KEYS", "VIEW_MEMBERS",
    ]


def test_rules_are_unchanged():
    admin = frozenset({ApiScope.PROJECT_ADMIN.value})
    assert Action.ADMIN_PROJECT.value.min_role is ProjectRole.ADMIN
    assert Action.ADMIN_PROJECT.value.scopes == admin
    assert Action.DELETE_PROMPTS.value.min_role is ProjectRole.ADMIN
    assert Action.DELETE_PROMPTS.value.scopes == admin
