"""Text that PostgreSQL cannot store is refused where it enters: every string of a request's inputs.

PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000 (NUL), and a lone UTF-16 surrogate (U+D800
to U+DFFF, which JSON's ``"\\ud800"`` escape produces) is not a character at all: it cannot even be
encoded to send. Left alone, either fails deep inside a statement as an internal error. Refused
here, it is a BAD_USER_INPUT error whose message names where the string was.

Checked centrally, for every input of every operation, whatever its type (String, ID, JSON —
values and keys, at any depth —, enums, custom scalars):

* literals in the document: :class:`RefuseUnstorableLiterals`, a validation rule
  (``createProject(input: {name: "a\\u0000"})``); a lone surrogate cannot be written as a GraphQL
  literal (the parser refuses it), so this is about NUL;
* variables: :class:`RefuseUnstorableVariables`, a schema extension that looks at the variables
  of the operation before it executes.

(Strawberry's ``scalar_overrides`` cannot do it for ``String``: graphql-core 3.3 refuses to define a
second scalar named String.)
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    FieldNode,
    GraphQLError,
    ListValueNode,
    Node,
    ObjectValueNode,
    StringValueNode,
    ValidationRule,
    ValueNode,
    VariableDefinitionNode,
)
from strawberry.extensions import SchemaExtension

BAD_USER_INPUT = "BAD_USER_INPUT"


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None when it can."""
    if "\x00" in text:
        return "text must not contain the NUL character (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"text must not contain a lone surrogate (U+{ord(text[exc.start]):04X}); "
                "send valid Unicode (UTF-16 surrogates only in pairs)")
    return None


def find_unstorable(value: Any) -> tuple[list[str | int], str] | None:
    """The first string in ``value`` (a JSON-like value: keys too, at any depth) that cannot be
    stored: (its path, why), or None."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = unstorable(item)
            if problem:
                return path, problem
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if isinstance(key, str) and (problem := unstorable(key)):
                    return [*path, _printable(key)], f"a key: {problem}"
                stack.append((child, [*path, key]))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, [*path, index]) for index, child in reversed(list(enumerate(item))))
    return None


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")


def print_path(path: list[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{_printable(part)}" for part in path).lstrip(".")


class RefuseUnstorableLiterals(ValidationRule):
    """A string literal in an argument (inside input objects, lists and JSON values too) or in a
    variable's default value that cannot be stored is an error naming the argument and the path."""

    def enter_argument(self, node: ArgumentNode, _key: Any, _parent: Any, _path: Any,
                       ancestors: list[Node | Any]) -> None:
        found = _find_in_literal(node.value)
        if found is None:
            return
        inner, problem, at = found
        owner = next((a for a in reversed(ancestors) if isinstance(a, (FieldNode, DirectiveNode))), None)
        of = (f" of directive '@{owner.name.value}'" if isinstance(owner, DirectiveNode)
              else f" of field '{owner.name.value}'" if owner is not None else "")
        where = f" at '{print_path([node.name.value, *inner])}'" if inner else ""
        self.report_error(GraphQLError(f"Argument '{node.name.value}'{of} has invalid value{where}: {problem}.", at,
                                       extensions={"code": BAD_USER_INPUT}))

    def enter_variable_definition(self, node: VariableDefinitionNode, *_args: Any) -> None:
        found = _find_in_literal(node.default_value) if node.default_value is not None else None
        if found is None:
            return
        inner, problem, at = found
        name = node.variable.name.value
        where = f" at '{print_path([name, *inner])}'" if inner else ""
        self.report_error(GraphQLError(f"Variable '${name}' has invalid default value{where}: {problem}.", at,
                                       extensions={"code": BAD_USER_INPUT}))


def _find_in_literal(value: ValueNode) -> tuple[list[str | int], str, ValueNode] | None:
    stack: list[tuple[ValueNode, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, StringValueNode):
            problem = unstorable(node.value)
            if problem:
                return path, problem, node
        elif isinstance(node, ObjectValueNode):
            stack.extend((field.value, [*path, field.name.value]) for field in reversed(node.fields))
        elif isinstance(node, ListValueNode):
            stack.extend((item, [*path, index]) for index, item in reversed(list(enumerate(node.values))))
    return None


class RefuseUnstorableVariables(SchemaExtension):
    """A variable of the operation holding a string (anywhere inside it, keys too) that cannot be
    stored fails the operation before it runs: BAD_USER_INPUT, naming the variable and the path."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        variables = context.variables or {}
        document = context.graphql_document
        if variables and document is not None:
            for definition in document.definitions:
                for variable in getattr(definition, "variable_definitions", None) or ():
                    name = variable.variable.name.value
                    if name not in variables:
                        continue
                    found = find_unstorable(variables[name])
                    if found is not None:
                        inner, problem = found
                        where = f" at '{print_path([name, *inner])}'" if inner else ""
                        raise GraphQLError(f"Variable '${name}' has invalid value{where}: {problem}.", variable,
                                           extensions={"code": BAD_USER_INPUT})
        yield
