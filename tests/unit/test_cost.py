"""The one cost formula (app.services.models.compute_cost), on the shipped prices."""
from __future__ import annotations

from decimal import Decimal

from app.db.models import ModelConfig
from app.services.models import compute_cost, seed_rows


def shipped(model_id: str) -> ModelConfig:
    return ModelConfig(**next(r for r in seed_rows() if r["model_id"] == model_id))


def test_cost_of_a_call():
    gpt4o = shipped("gpt-4o")
    # 800 fresh input * $2.50 + 200 cached * $1.25 + 500 output * $10, per million
    cost = compute_cost(gpt4o, 1000, 500, cached_input_tokens=200)
    assert (cost.input_usd, cost.output_usd, cost.total_usd) == (Decimal("0.002250"), Decimal("0.005000"),
                                                                  Decimal("0.007250"))
    assert compute_cost(gpt4o, 1, 0).total_usd == Decimal("0.000003")  # rounded half up to 6 places
    assert compute_cost(shipped("echo-1"), 10_000, 10_000).total_usd == Decimal("0")


def test_the_parts_always_add_up_to_the_total():
    """Each part is rounded, and the total is their sum (not a separately rounded figure)."""
    gpt4o = shipped("gpt-4o")
    for input_tokens, output_tokens in [(1, 1), (3, 7), (999, 1), (123_457, 98_765)]:
        cost = compute_cost(gpt4o, input_tokens, output_tokens)
        assert cost.input_usd + cost.output_usd == cost.total_usd
        assert cost.total_usd.as_tuple().exponent == -6


def test_cached_tokens_beyond_the_input_are_capped():
    gpt4o = shipped("gpt-4o")
    assert compute_cost(gpt4o, 100, 0, cached_input_tokens=500) == compute_cost(gpt4o, 100, 0,
                                                                                 cached_input_tokens=100)
