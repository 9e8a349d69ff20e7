"""Rendering prompt content with variable values. `render` never raises.

Rules for the values given:

- A variable given as null counts as not given.
- Not given: its default is used; without a default a required variable is *missing*, an
  optional one is null (empty text in Mustache, ``none`` in Jinja2, falsy in both).
- Types are enforced strictly (see `app.templating.values`): ``"3"`` is not an INTEGER,
  ``1`` is not a BOOLEAN; ints are accepted for NUMBER and integral floats for INTEGER.
- A variable with options must have one of them.
- Names given but not declared are reported as unknown and not passed to the template;
  they do not make rendering fail.

Anything missing or wrong means no text and no messages, only the reasons. Rendering itself
is bounded by `RenderLimits` (output size, steps, time). It is CPU work: async callers
use `render_in_thread`, which also stops the render when the caller is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from jinja2 import TemplateError

from app.templating import jinja, mustache
from app.templating.limits import DEFAULT_LIMITS, Meter, RenderLimitExceeded, RenderLimits, metered
from app.templating.model import ChatMessage, PromptContent, RenderOutcome, enum_str
from app.templating.validation import inferred_specs
from app.templating.values import check_value, describe, same_value

logger = logging.getLogger(__name__)


def render(content: PromptContent, variables: Any, *, limits: RenderLimits | None = None,
           cancelled: threading.Event | None = None) -> RenderOutcome:
    """Render content (system prompt, then template or messages) with variable values (a JSON object,
    or None for none; anything else is reported as an error). Setting ``cancelled`` stops it."""
    try:
        return _render(content, {} if variables is None else variables, limits or DEFAULT_LIMITS, cancelled)
    except Exception as exc:  # the contract: report, never raise
        logger.exception("unexpected error while rendering a prompt")
        return RenderOutcome(None, None, None, [], [], [f"rendering failed unexpectedly: {type(exc).__name__}: {exc}"])


#: Threads that render for async callers. Rendering is pure Python, so the GIL lets only one render
#: run at a time whatever the number of threads: more would not render faster, they would only take
#: the GIL from the event loop more often (every request waits) and fill the default executor that
#: password hashing and the rest share. Renders beyond these wait in line.
RENDER_THREADS = 1
_pool = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="render")


async def render_in_thread(content: PromptContent, variables: Any, *,
                           limits: RenderLimits | None = None) -> RenderOutcome:
    """`render` in one of the rendering threads. When the caller is cancelled (its client went away), a
    render still waiting for a thread never starts, and one under way stops at its next step."""
    cancelled = threading.Event()
    job = partial(render, content, variables, limits=limits, cancelled=cancelled)
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool, job)
    except asyncio.CancelledError:
        cancelled.set()
        raise


def bind_variables(content: PromptContent, variables: dict) -> tuple[dict, list[str], list[str], list[str]]:
    """Check given values against the declared variables.

    Returns ``(values to render with, missing, unknown, errors)``. When content declares no
    variables, they are inferred from its templates.
    """
    specs = content.variables or inferred_specs(content)
    values: dict[str, Any] = {}
    missing: list[str] = []
    errors: list[str] = []
    for spec in specs:
        vtype = enum_str(spec.type)
        raw = variables.get(spec.name)
        if raw is None:
            if spec.default is not None:
                raw = spec.default
            elif spec.required is False:
                values[spec.name] = None
                continue
            else:
                missing.append(spec.name)
                continue
        value, expected = check_value(raw, vtype)
        if expected is not None:
            errors.append(f'variable "{spec.name}" must be {expected}; got {describe(raw)}')
            continue
        if spec.options is not None and not any(same_value(value, option) for option in spec.options):
            allowed = ", ".join(json.dumps(o, ensure_ascii=False) for o in spec.options)
            errors.append(f'variable "{spec.name}" must be one of {allowed}; got {describe(raw)}')
            continue
        values[spec.name] = value
    declared = {spec.name for spec in specs}
    unknown = [name for name in variables if name not in declared]
    return values, missing, unknown, errors


def _render(content: PromptContent, variables: Any, limits: RenderLimits,
            cancelled: threading.Event | None = None) -> RenderOutcome:
    if not isinstance(variables, dict):
        return RenderOutcome(
            None, None, None, [], [],
            [f"variables must be a JSON object of names and values; got {describe(variables)}"],
        )
    values, missing, unknown, errors = bind_variables(content, variables)
    if missing or errors:
        return RenderOutcome(None, None, None, missing, unknown, errors)

    fmt, kind = enum_str(content.format), enum_str(content.kind)
    if fmt not in ("MUSTACHE", "JINJA2"):
        return RenderOutcome(None, None, None, [], unknown, [f"unknown template format {describe(fmt)}"])
    if kind not in ("TEXT", "CHAT"):
        return RenderOutcome(None, None, None, [], unknown, [f"unknown prompt kind {describe(kind)}"])

    with metered(limits, cancelled) as meter:
        renderer = _PartRenderer(fmt, values, meter)
        system_prompt = renderer.part("system prompt", content.system_prompt) if content.system_prompt else None
        text: str | None = None
        messages: list[ChatMessage] | None = None
        if kind == "TEXT":
            if content.template is None:
                renderer.errors.append("a TEXT prompt has no template")
            else:
                text = renderer.part("template", content.template)
        else:
            if not content.messages:
                renderer.errors.append("a CHAT prompt has no messages")
            messages = [
                ChatMessage(role=m.role, content=renderer.part(f"message {i + 1} ({m.role})", m.content) or "")
                for i, m in enumerate(content.messages or [])
            ]
    if renderer.errors:
        return RenderOutcome(None, None, None, [], unknown, renderer.errors)
    return RenderOutcome(text, messages, system_prompt, [], unknown, [])


class _PartRenderer:
    """Renders the parts of one prompt under one meter, collecting errors. After a limit is
    exceeded the remaining parts are skipped (the budget is spent)."""

    def __init__(self, fmt: str, values: dict, meter: Meter) -> None:
        self.fmt = fmt
        self.values = values
        self.meter = meter
        self.errors: list[str] = []
        self.stopped = False

    def part(self, label: str, source: Any) -> str | None:
        if self.stopped:
            return None
        if not isinstance(source, str):
            self.errors.append(f"{label}: the template is not a string")
            return None
        try:
            if self.fmt == "JINJA2":
                return jinja.render(source, self.values, self.meter)
            return mustache.render(source, self.values, self.meter)
        except RenderLimitExceeded as exc:
            self.stopped = True
            self._error(label, jinja.error_message(exc) if self.fmt == "JINJA2" else str(exc))
        except TemplateError as exc:
            self._error(label, jinja.error_message(exc))
        except SyntaxError as exc:  # mstache's TokenException family
            self._error(label, mustache.syntax_error_message(exc))
        except RecursionError:
            self._error(label, "the template recurses too deeply")
        except MemoryError:
            self.stopped = True
            self._error(label, "the template needs too much memory")
        except Exception as exc:  # errors raised by template code, e.g. 1/0 or int("x")
            if self.fmt == "JINJA2":
                self._error(label, jinja.error_message(exc, include_type=True))
            else:
                self._error(label, f"{type(exc).__name__}: {exc}")
        return None

    def _error(self, label: str, message: str) -> None:
        sep = ", " if message.startswith("line ") else ": "
        self.errors.append(f"{label}{sep}{message}")
