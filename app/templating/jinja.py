"""Jinja2 templates, rendered in a hardened sandbox.

The environment is Jinja2's `ImmutableSandboxedEnvironment` (no access to private or
internal attributes such as ``__class__``, no methods that modify lists, dicts or sets),
with no loader (``include``/``import``/``extends`` are refused), autoescaping off (prompts
are not HTML) and `StrictUndefined` (a missing variable is an error, not an empty string).

On top of the sandbox, every render is bounded (`app.templating.limits`): the template is
instrumented after parsing so that each loop iteration, each piece of output (also inside
macros and ``{% set %}`` blocks) and each ``~`` concatenation is counted; ``*``, ``**``,
``%`` and ``+`` are intercepted and refuse results larger than the output limit; filters and
string methods refuse size arguments above it; ``range()`` is capped. Together with the step
and time budget this means a template cannot hang a worker or exhaust its memory.

Output of ``{{ value }}``: strings as they are, ``none`` as nothing, booleans ``true``/``false``,
objects and arrays as JSON (the same as Mustache).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context
from jinja2.visitor import NodeTransformer

from app.templating.analysis import TemplateAnalysis
from app.templating.limits import Meter, RenderLimitExceeded, current_meter
from app.templating.values import name_problem, to_text

_BIG_NUMBER = re.compile(r"\d{7,}")
_NESTED_FIELD = re.compile(r"\{[^{}]*\{")
_MAX_INT_BITS = 100_000


def _finalize(value: Any) -> Any:
    return to_text(value)


def _check_int_args(what: str, values: Any) -> None:
    limit = current_meter().limits.max_output_chars
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > limit:
            raise RenderLimitExceeded(f"{what} was given {value}; numbers above {limit} are not accepted there")


def _check_format(fmt: str, args: Any) -> None:
    """Refuse format strings that could build a huge string (``%0999999999d``, ``{:>{}}``)."""
    if _BIG_NUMBER.search(fmt):
        raise RenderLimitExceeded("a format string asks for a width or precision above the output limit")
    if "*" in fmt or _NESTED_FIELD.search(fmt):
        values = args.values() if isinstance(args, dict) else args if isinstance(args, (tuple, list)) else (args,)
        _check_int_args("a format string", values)


def _check_replace(text: str, old: Any, new: Any) -> None:
    if isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        current_meter().check_size(len(text) + count * max(0, len(new) - len(old)), "replace()")


def _check_result(result: Any, what: str) -> None:
    if isinstance(result, (str, list, tuple, dict)):
        current_meter().check_size(len(result), what)


def _bounded_range(*args: int) -> range:
    """range() capped at `RenderLimits.max_range` items."""
    rng = range(*args)
    limit = current_meter().limits.max_range
    if len(rng) > limit:
        raise RenderLimitExceeded(f"range() may produce at most {limit} items; this one has {len(rng)}")
    return rng


class _GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with every operator/call/lookup metered (see module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        meter = current_meter()
        meter.tick()
        if operator == "**":
            if (isinstance(left, int) and isinstance(right, int) and right > 0
                    and max(left.bit_length(), 1) * right > _MAX_INT_BITS):
                raise RenderLimitExceeded(f"{left} ** {right} is too large a number")
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    meter.check_size(len(seq) * times, "repeating a value with *")
            if (isinstance(left, int) and isinstance(right, int)
                    and left.bit_length() + right.bit_length() > _MAX_INT_BITS):
                raise RenderLimitExceeded("a multiplication produces too large a number")
        elif operator == "%" and isinstance(left, str):
            _check_format(left, right)
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            meter.check_size(len(left) + len(right), "adding two values with +")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        current_meter().tick()
        owner = getattr(__obj, "__self__", None)
        if owner is None:
            owner = getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            _check_int_args(f"str.{name}()", (*args, *kwargs.values()))
            if name in ("format", "format_map"):
                _check_format(owner, args[0] if name == "format_map" and args else (*args, *kwargs.values()))
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
        result = super().call(__context, __obj, *args, **kwargs)
        if not isinstance(__obj, Macro):
            _check_result(result, "a function call")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        current_meter().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        current_meter().tick()
        return super().getitem(obj, argument)


def _guard_filter(name: str, func: Any) -> Any:
    """Wrap a built-in filter: count it, refuse size arguments above the output limit,
    refuse results larger than the output limit (and obvious blow-ups before they happen)."""
    lead = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        current_meter().tick()
        value = args[lead] if len(args) > lead else None
        params = args[lead + 1 :]
        _check_int_args(f"the {name} filter", (*params, *kwargs.values()))
        if name == "replace" and isinstance(value, str) and len(params) >= 2:
            _check_replace(value, params[0], params[1])
        elif name == "format" and isinstance(value, str):
            _check_format(value, (*params, *kwargs.values()))
        result = func(*args, **kwargs)
        _check_result(result, f"the {name} filter")
        return result

    return guarded


@pass_context
def _iterate(context: Any, iterable: Any) -> Any:
    """Injected around every ``{% for %}`` iterable: one step per iteration."""
    meter = current_meter()
    for item in iterable:
        meter.tick()
        yield item


@pass_context
def _output(context: Any, value: Any) -> str:
    """Injected around every output node: text the way `_finalize` writes it, counted."""
    text = value if isinstance(value, str) else to_text(value)
    current_meter().build(len(text))
    return text


@pass_context
def _concat(context: Any, values: list) -> str:
    """Replaces ``a ~ b``: same result, but refuses to build more than the output limit."""
    parts = [v if isinstance(v, str) else to_text(v) for v in values]
    current_meter().check_size(sum(map(len, parts)), "joining values with ~")
    return "".join(parts)


def _call_filter(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Instrument(NodeTransformer):
    """Rewrites a parsed template so its work and output are metered."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call_filter(node.iter, "__ps_iterate")
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            _call_filter(
                nodes.Const(child.data, lineno=child.lineno) if isinstance(child, nodes.TemplateData) else child,
                "__ps_output",
            )
            for child in node.nodes
        ]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call_filter(nodes.List(list(node.nodes), lineno=node.lineno), "__ps_concat")


def _make_environment() -> _GuardedEnvironment:
    env = _GuardedEnvironment(
        autoescape=False,
        undefined=StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
        loader=None,
        cache_size=0,
    )
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    env.filters.update({"__ps_iterate": _iterate, "__ps_output": _output, "__ps_concat": _concat})
    env.globals.pop("lipsum", None)  # lorem ipsum generator: no use in prompts, and a memory hazard
    env.globals["range"] = _bounded_range
    return env


_ENV = _make_environment()
_GLOBAL_NAMES = frozenset(_ENV.globals)
_UNSUPPORTED = {
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
}


def _error_with_line(exc: BaseException, include_type: bool = False) -> str:
    """An exception from parsing or rendering as a sentence, with the template line if known."""
    lineno = getattr(exc, "lineno", None)
    if lineno is None:
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>":
                lineno = tb.tb_lineno
            tb = tb.tb_next
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if include_type:
        message = f"{type(exc).__name__}: {message}"
    return f"line {lineno}: {message}" if lineno else message


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> Any:
    """Parse, instrument and compile; raises jinja2.TemplateError on syntax errors."""
    ast = _ENV.parse(source)
    ast = _Instrument().visit(ast)
    ast.set_environment(_ENV)
    return _ENV.from_string(ast)


def analyse(source: str) -> TemplateAnalysis:
    """Parse a Jinja2 template and report the variables it uses.

    Variables are the names `jinja2.meta.find_undeclared_variables` finds (names the template
    reads without setting them, less the sandbox's globals such as ``range``), in order of
    first appearance.
    """
    result = TemplateAnalysis()
    try:
        ast = _ENV.parse(source)
    except TemplateError as exc:
        result.errors.append(_error_with_line(exc))
        return result
    for node_type, label in _UNSUPPORTED.items():
        for node in ast.find_all(node_type):
            result.errors.append(
                f"line {node.lineno}: {label} is not supported: a prompt is one template and cannot load others"
            )
    if result.errors:
        return result
    try:
        _compile(source)  # unknown filters and tests are found when compiling
    except TemplateError as exc:
        result.errors.append(_error_with_line(exc))
        return result
    except RenderLimitExceeded as exc:  # pragma: no cover - constant folding is bounded too
        result.errors.append(str(exc))
        return result

    free = meta.find_undeclared_variables(ast) - _GLOBAL_NAMES
    structural: set[str] = set()
    for loop in ast.find_all(nodes.For):
        if isinstance(loop.iter, nodes.Name):
            structural.add(loop.iter.name)
    accesses: Iterator[nodes.Getattr | nodes.Getitem] = ast.find_all((nodes.Getattr, nodes.Getitem))
    for access in accesses:
        if isinstance(access.node, nodes.Name):
            structural.add(access.node.name)
    for name in ast.find_all(nodes.Name):
        if name.ctx == "load" and name.name in free and name.name not in result.referenced:
            problem = name_problem(name.name)
            if problem is not None:
                result.errors.append(f"line {name.lineno}: {problem}")
                free.discard(name.name)
                continue
            result.use(name.name, structural=name.name in structural)
    return result


def render(source: str, variables: dict, meter: Meter) -> str:
    """Render a Jinja2 template with the given (already type-checked) variables.

    Raises jinja2.TemplateError (undefined names, sandbox refusals, syntax) and
    RenderLimitExceeded past the limits; `error_message` words them.
    """
    template = _compile(source)
    chunks: list[str] = []
    for chunk in template.generate(**variables):
        meter.emit(len(chunk))
        chunks.append(chunk)
    return "".join(chunks)


def error_message(exc: BaseException, include_type: bool = False) -> str:
    """A sentence for an exception raised by `render`, with the template line if known
    (and the exception's type, for errors raised by Python code the template called)."""
    return _error_with_line(exc, include_type)
