"""What a sandbox worker can be asked to do: the untrusted computations of Prompt Studio.

Each task takes and returns JSON-ready values (``codec``). They run only inside a worker process
(``worker``), under its memory cap and the pool's deadline; the engines' own cooperative limits
(``app.templating.limits``, the ``regex`` module's timeout) still apply inside.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.rules import evaluators, validation
from app.templating import RenderLimits, render, validate_content

from . import codec


def render_task(content: dict[str, Any], variables: Any, limits: dict[str, Any]) -> Any:
    return codec.to_json(render(codec.content_from_json(content), variables, limits=RenderLimits(**limits)))


def render_many_task(content: dict[str, Any], variables: list[Any], limits: dict[str, Any]) -> Any:
    """One content rendered with many sets of variables (an experiment's dataset items), in one round trip."""
    parsed, render_limits = codec.content_from_json(content), RenderLimits(**limits)
    return [codec.to_json(render(parsed, v, limits=render_limits)) for v in variables]


def check_content_task(content: dict[str, Any], declared: list[dict[str, Any]] | None) -> Any:
    normalised, errors = validate_content(codec.content_from_json(content), codec.specs_from_json(declared))
    return {"content": codec.content_to_json(normalised), "errors": codec.to_json(errors)}


def check_rule_task(type: str, config: Any) -> Any:
    return codec.to_json(validation.check_config(type, config))


def apply_rules_task(output: str | None, specs: list[dict[str, Any]], regex_timeout: float) -> Any:
    return codec.to_json(validation.apply_validations(output, codec.rule_specs_from_json(specs),
                                                      regex_timeout=regex_timeout))


def check_evaluator_task(type: str, config: Any) -> Any:
    return codec.to_json(evaluators.check_config(type, config))


def evaluate_task(specs: list[dict[str, Any]], inp: dict[str, Any], regex_timeout: float) -> Any:
    return codec.to_json(evaluators.evaluate(codec.evaluator_specs_from_json(specs), evaluators.EvalInput(**inp),
                                             regex_timeout=regex_timeout))


def sleep_task(seconds: float) -> Any:
    """For tests of the pool itself: take this long."""
    import time

    time.sleep(seconds)
    return seconds


def allocate_task(megabytes: int) -> Any:
    """For tests of the pool itself: hold this much memory."""
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


TASKS: dict[str, Callable[..., Any]] = {
    "render": render_task,
    "check_content": check_content_task,
    "check_rule": check_rule_task,
    "apply_rules": apply_rules_task,
    "render_many": render_many_task,
    "check_evaluator": check_evaluator_task,
    "evaluate": evaluate_task,
    "sleep": sleep_task,
    "allocate": allocate_task,
}
