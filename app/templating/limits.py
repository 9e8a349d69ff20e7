"""Resource limits for rendering untrusted templates with untrusted data.

A render gets a `Meter` (held in a context variable, so concurrent renders in threads or
asyncio tasks do not share one). Both engines call `tick()` on every unit of work they can
observe (a loop iteration, a variable lookup, a call, a filter, an operator) and `emit()` for
every piece of output, so a render stops with `RenderLimitExceeded` when it writes too much,
does too many steps, or runs too long, whatever the template does — or when whoever waited for
it has stopped waiting (its `cancelled` event is set: the request was cancelled).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RenderLimits:
    """Bounds of one `render` call (all parts of a prompt together)."""

    #: Characters of output, all parts together.
    max_output_chars: int = 1_000_000
    #: Steps: loop iterations, lookups, calls, filters, operators.
    max_operations: int = 2_000_000
    #: Wall-clock seconds.
    timeout_seconds: float = 2.0
    #: Largest range() a Jinja2 template may ask for.
    max_range: int = 100_000


DEFAULT_LIMITS = RenderLimits()


class RenderLimitExceeded(Exception):
    """A render went past one of its `RenderLimits`."""


class Meter:
    """Counts the work and output of one render against its limits."""

    __slots__ = ("built_chars", "cancelled", "deadline", "limits", "operations", "output_chars")

    #: Intermediate text (macro bodies, ``{% set %}`` blocks) may be this many times the
    #: output limit in total: templates build and discard some, but not without bound.
    BUILD_FACTOR = 8

    def __init__(self, limits: RenderLimits, cancelled: threading.Event | None = None) -> None:
        self.limits = limits
        self.cancelled = cancelled
        self.operations = 0
        self.output_chars = 0
        self.built_chars = 0
        self.deadline = time.monotonic() + limits.timeout_seconds

    def tick(self, amount: int = 1) -> None:
        """Account for ``amount`` steps of work; raise when over budget or over time."""
        self.operations += amount
        if self.operations > self.limits.max_operations:
            raise RenderLimitExceeded(
                f"rendering took more than {self.limits.max_operations} steps (loop iterations, "
                "lookups and calls); the template does too much work"
            )
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"rendering took longer than {self.limits.timeout_seconds:g} seconds")
        if self.cancelled is not None and self.cancelled.is_set():
            raise RenderLimitExceeded("rendering was cancelled: its request was cancelled")

    def emit(self, chars: int) -> None:
        """Account for ``chars`` characters of output."""
        self.output_chars += chars
        if self.output_chars > self.limits.max_output_chars:
            raise RenderLimitExceeded(
                f"the rendered prompt is longer than {self.limits.max_output_chars} characters"
            )
        self.tick()

    def build(self, chars: int) -> None:
        """Account for ``chars`` characters of text written anywhere by the template (to its
        output or to a buffer such as a macro body)."""
        self.built_chars += chars
        if self.built_chars > self.limits.max_output_chars * self.BUILD_FACTOR:
            raise RenderLimitExceeded(
                f"the template writes more than {self.limits.max_output_chars * self.BUILD_FACTOR} "
                "characters of text in total (macros, blocks and output)"
            )
        self.tick()

    def check_size(self, size: int, what: str) -> None:
        """Refuse to build a value of ``size`` characters/items when it exceeds the output limit."""
        if size > self.limits.max_output_chars:
            raise RenderLimitExceeded(
                f"{what} would make a value of {size} characters or items; "
                f"at most {self.limits.max_output_chars} are allowed"
            )


_current: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("promptstudio_render_meter", default=None)


def current_meter() -> Meter:
    """The meter of the render in progress; outside a render, a fresh one with default limits
    (so guarded code, e.g. Jinja2 constant folding at compile time, is still bounded)."""
    meter = _current.get()
    return meter if meter is not None else Meter(DEFAULT_LIMITS)


@contextmanager
def metered(limits: RenderLimits, cancelled: threading.Event | None = None) -> Iterator[Meter]:
    """Run a render under a new meter (stopped at its next step once ``cancelled`` is set)."""
    meter = Meter(limits, cancelled)
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)
