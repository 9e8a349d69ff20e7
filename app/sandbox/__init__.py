"""Untrusted computation, out of the server process: templates, regexes, JMESPath, JSON Schema (and
the experiments' evaluators) run in a pool of worker processes with hard limits set by the
operating system.

* a wall-clock deadline (``PROMPTSTUDIO_SANDBOX_TIMEOUT_SECONDS``), after which the worker is killed
  and replaced — the engines' own cooperative limits (steps, output size, the regex timeout) stop
  most work earlier and say why more precisely;
* a memory cap (``PROMPTSTUDIO_SANDBOX_MEMORY_MB``, RLIMIT_AS on top of what a worker starts with);
* an output cap (``PROMPTSTUDIO_SANDBOX_MAX_OUTPUT_BYTES``) on what a task may send back, besides
  the template engines' limit on rendered text, checked as it grows;
* no secrets (a minimal environment), no files written.

``await sandbox.render(settings, content, variables)`` and friends are what the rest of the code
calls; each keeps its caller's contract (``render`` never raises: a problem is in the outcome's
errors). The pool is one per process (``pool()``), sized from the settings it is first given
(``start``, a start hook of the runtime) and stopped with ``stop``.
"""
from __future__ import annotations

from typing import Any

from app.rules.evaluators import EvalInput, EvaluatorSpec, ScoreData
from app.rules.validation import REGEX_TIMEOUT_SECONDS, ConfigError, ValidationOutcome, ValidationSpec
from app.settings import Settings
from app.templating import ContentError, PromptContent, RenderOutcome, VariableSpec

from . import codec
from .pool import Pool, SandboxError

__all__ = ["Pool", "SandboxError", "apply_rules", "check_content", "check_evaluator", "check_rule", "evaluate", "pool",
           "render", "render_many", "start", "stop"]

class _ThisProcess:
    """The pool of this process (one per process, like the providers' connection pools), and how many
    runtimes use it (``start``/``stop``): it is closed when the last one stops."""

    pool: Pool | None = None
    users = 0


def pool(settings: Settings | None = None) -> Pool:
    """This process's pool (made with ``settings``, or the defaults, on first use)."""
    if _ThisProcess.pool is None:
        s = settings or Settings()
        _ThisProcess.pool = Pool(s.sandbox_workers, s.sandbox_memory_mb, s.sandbox_max_output_bytes)
    return _ThisProcess.pool


async def start(settings: Settings) -> None:
    """A runtime of this process starts using the pool: start its workers now, so the first request does
    not wait for them."""
    _ThisProcess.users += 1
    await pool(settings).start()


async def stop() -> None:
    """A runtime stops using the pool; the last one stops its workers (a later call starts new ones)."""
    _ThisProcess.users = max(0, _ThisProcess.users - 1)
    if _ThisProcess.users:
        return
    current, _ThisProcess.pool = _ThisProcess.pool, None
    if current is not None:
        await current.close()


#: Seconds past the time limit before a worker is killed: the engines' own limits usually stop the work
#: first and say more precisely why.
GRACE_SECONDS = 0.5


async def _run(settings: Settings, task: str, args: list[Any], what: str) -> Any:
    return await pool(settings).run(task, args, limit_seconds=settings.sandbox_timeout_seconds, what=what,
                                    grace=GRACE_SECONDS)


async def render(settings: Settings, content: PromptContent, variables: Any) -> RenderOutcome:
    """Render content with variables (``app.templating.render`` in a worker). Never raises: a template
    that is too slow, too big or too hungry is an error of the outcome."""
    limits = {"timeout_seconds": settings.sandbox_timeout_seconds,
              "max_output_chars": settings.sandbox_max_output_bytes // 4}
    try:
        data = await _run(settings, "render", [codec.content_to_json(content), variables, limits], "template")
    except SandboxError as exc:
        return RenderOutcome(None, None, None, [], [], [exc.message])
    return codec.render_outcome_from_json(data)


async def render_many(settings: Settings, content: PromptContent, variables: list[Any]) -> list[RenderOutcome]:
    """``render`` for many sets of variables in one task (an experiment's dataset items). Raises SandboxError
    when the batch as a whole could not finish in time (each render keeps its own limits too)."""
    limits = {"timeout_seconds": settings.sandbox_timeout_seconds,
              "max_output_chars": settings.sandbox_max_output_bytes // 4}
    data = await _run(settings, "render_many", [codec.content_to_json(content), variables, limits], "templates")
    return [codec.render_outcome_from_json(d) for d in data]


async def check_content(settings: Settings, content: PromptContent,
                        declared: list[VariableSpec] | None) -> tuple[PromptContent, list[ContentError]]:
    """``app.templating.validate_content`` in a worker: the content normalised, and its problems."""
    try:
        data = await _run(settings, "check_content", [codec.content_to_json(content), codec.specs_to_json(declared)],
                          "template check")
    except SandboxError as exc:
        return content, [ContentError([], exc.message)]
    return codec.content_from_json(data["content"]), codec.content_errors_from_json(data["errors"])


async def check_rule(settings: Settings, type: str, config: Any) -> list[ConfigError]:
    """``app.rules.validation.check_config`` in a worker (compiling a regex, a schema, an expression)."""
    try:
        data = await _run(settings, "check_rule", [type, config], "validation")
    except SandboxError as exc:
        return [ConfigError([], exc.message)]
    return codec.config_errors_from_json(data)


async def check_evaluator(settings: Settings, type: str, config: Any) -> list[ConfigError]:
    """``app.rules.evaluators.check_config`` in a worker (compiling its pattern, schema or expression)."""
    try:
        data = await _run(settings, "check_evaluator", [type, config], "evaluator check")
    except SandboxError as exc:
        return [ConfigError([], exc.message)]
    return codec.config_errors_from_json(data)


async def evaluate(settings: Settings, specs: list[EvaluatorSpec], inp: EvalInput) -> list[ScoreData]:
    """``app.rules.evaluators.evaluate`` in a worker. Raises SandboxError when the worker could not finish."""
    regex_timeout = min(REGEX_TIMEOUT_SECONDS, settings.sandbox_timeout_seconds)
    data = await _run(settings, "evaluate", [codec.evaluator_specs_to_json(specs), codec.eval_input_to_json(inp),
                                             regex_timeout], "evaluators")
    return codec.scores_from_json(data)


async def apply_rules(settings: Settings, output: str | None, specs: list[ValidationSpec]) -> ValidationOutcome:
    """``app.rules.validation.apply_validations`` in a worker. Raises SandboxError when the worker could
    not finish (the caller decides what that means for the output)."""
    regex_timeout = min(REGEX_TIMEOUT_SECONDS, settings.sandbox_timeout_seconds)
    data = await _run(settings, "apply_rules", [output, codec.rule_specs_to_json(specs), regex_timeout], "validation")
    return codec.validation_outcome_from_json(data)
