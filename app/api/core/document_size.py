"""How big a GraphQL document is, measured before it is validated.

Validation is the costly part of a large document: graphql-core's OverlappingFieldsCanBeMerged
compares every pair of fields that share a response name at the same place, so its work grows with
the square of the copies of one field (1,200 ``viewer { id }`` in one 17 KB document take seconds).
Two numbers bound it, both measured here in one pass that costs far less than validation:

* ``selections``: every field selection of the document, fragments counted where they are spread
  (a fragment spread three times counts three times), in every operation, plus the fragments that
  no operation spreads (validation reads them too);
* ``repeated``: the most selections of one response name at one place (its path from the root of an
  operation, fragments spread), i.e. the largest group validation compares pairwise.

Nothing here needs the schema, and it tolerates documents validation would refuse (unknown
fragments, fragment cycles): it must never be slower than what it protects.

Parsing is costly too (graphql-core builds some 2 MB of objects for a 17 KB document), so
``as_written`` counts the field selections (and the tokens) in the text itself, each once: a lower
bound of ``selections`` that refuses the largest documents before they are parsed.
"""
from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass

from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True)
class DocumentSize:
    #: Field selections, fragments counted where they are spread.
    selections: int
    #: The most selections of one response name at one place (0 when it was not measured because
    #: ``selections`` passed ``stop_above``), and that place ("viewer.projects.nodes").
    repeated: int = 0
    repeated_at: str = ""


def measure(document: DocumentNode, *, stop_above: int) -> DocumentSize:
    """The size of ``document``. Counting takes time in proportion to the text (each fragment is
    counted once, however often it is spread); the places are only walked, fragments expanded, when
    there are at most ``stop_above`` selections."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    counter = _Counter(fragments)
    roots: list[SelectionSetNode] = [d.selection_set for d in document.definitions
                                     if isinstance(d, OperationDefinitionNode)]
    spread: set[str] = set()
    total = sum(counter.count(root, spread) for root in roots)
    unspread = [f.selection_set for name, f in fragments.items() if name not in spread]
    total += sum(counter.count(root, spread) for root in unspread)
    if total > stop_above:
        return DocumentSize(total)
    # Small enough now to walk with every spread expanded: count the copies of each field per place.
    places: Counter[tuple[int, tuple[str, ...]]] = Counter()
    for i, root in enumerate(roots + unspread):
        _places(root, (), i, fragments, (), places)
    if not places:
        return DocumentSize(total)
    ((_, path), repeated), = places.most_common(1)
    return DocumentSize(total, repeated, ".".join(path))


class _Counter:
    """Selections of a selection set with spreads expanded, each fragment's count computed once."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]):
        self.fragments = fragments
        self.memo: dict[str, int] = {}
        self.active: set[str] = set()

    def count(self, selection_set: SelectionSetNode, spread: set[str]) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += 1
                if selection.selection_set is not None:
                    total += self.count(selection.selection_set, spread)
            elif isinstance(selection, InlineFragmentNode):
                total += self.count(selection.selection_set, spread)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, spread)
        return total

    def fragment(self, name: str, spread: set[str]) -> int:
        spread.add(name)
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.active:
            return 0  # unknown fragment or a cycle: validation reports them
        self.active.add(name)
        try:
            self.memo[name] = n = self.count(fragment.selection_set, spread)
        finally:
            self.active.discard(name)
        return n


def _places(selection_set: SelectionSetNode, path: tuple[str, ...], root: int,
            fragments: dict[str, FragmentDefinitionNode], active: tuple[str, ...],
            places: Counter[tuple[int, tuple[str, ...]]]) -> None:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            here = (*path, (selection.alias or selection.name).value)
            places[root, here] += 1
            if selection.selection_set is not None:
                _places(selection.selection_set, here, root, fragments, active, places)
        elif isinstance(selection, InlineFragmentNode):
            _places(selection.selection_set, path, root, fragments, active, places)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in active:
                _places(fragment.selection_set, path, root, fragments, (*active, name), places)


_STRING = r'"""(?:\\"""|[^"]|"(?!""))*"""|"(?:\\.|[^"\\\n\r])*"'
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"

#: GraphQL's lexical grammar, as far as counting needs it: what is ignored (white space, commas),
#: comments, strings (whose contents are not names), numbers, spreads, names, one-character
#: punctuators (and any other character: the parser will say what is wrong with it).
_LEXEMES = re.compile(rf"""
    (?P<ignored> [\s,\ufeff]+ )
  | (?P<comment> \#[^\n\r]* )
  | (?P<string> {_STRING} )
  | (?P<number> {_NUMBER} )
  | (?P<spread> \.\.\. )
  | (?P<name> [_A-Za-z][_0-9A-Za-z]* )
  | (?P<other> . )
""", re.VERBOSE)

#: The tokens graphql-core's parser counts for its ``max_tokens`` (comments included), in one pattern
#: without groups (so that ``findall`` counts them without a Python loop), the commonest first.
_TOKENS = re.compile(rf"[_A-Za-z][_0-9A-Za-z]*|[{{}}():@!$&=\[\]|]|\#[^\n\r]*|{_STRING}|{_NUMBER}|\.\.\.|[^\s,\ufeff]")


@dataclass(frozen=True)
class Written:
    #: Field selections as written (a fragment's once, wherever it is spread); counting stopped
    #: once there were more than ``max_fields``.
    fields: int
    #: Where the token past ``max_tokens`` starts, when there is one (the fields are not counted then).
    too_many_tokens_at: int | None = None


def as_written(text: str, *, max_fields: int, max_tokens: int | None = None) -> Written:
    """The field selections written in ``text``: names in a selection set (inside braces, outside
    arguments), except aliases, directives, fragment names and type conditions. A lower bound of
    ``measure(parse(text)).selections``, in a small fraction of the time parsing takes; for text that
    does not parse, a number that means nothing. Tokens are counted first, as graphql-core's parser
    counts them for ``max_tokens``."""
    if max_tokens is not None and len(_TOKENS.findall(text)) > max_tokens:
        past = next(itertools.islice(_TOKENS.finditer(text), max_tokens, None))
        return Written(0, past.start())
    fields = braces = parens = 0
    previous = ""  # the previous significant lexeme ("@", "...", "...on" for "on" after it, a name, ...)
    for match in _LEXEMES.finditer(text):
        kind = match.lastgroup
        if kind in ("ignored", "comment"):
            continue
        lexeme = match.group()
        if parens:  # arguments, variable definitions, input values: no selections in there
            if lexeme == "(":
                parens += 1
            elif lexeme == ")":
                parens -= 1
        elif kind == "name":
            if braces and previous not in ("@", "...", "...on"):
                fields += 1
                if fields > max_fields + 1:  # (+1: this name may be an alias)
                    return Written(fields - 1)
            if previous == "..." and lexeme == "on":
                lexeme = "...on"
        elif lexeme == ":" and braces and previous not in ("@", "...", "...on"):
            fields -= 1  # the name before was an alias; the field's name comes next
        elif lexeme == "(":
            parens = 1
        elif lexeme == "{":
            braces += 1
        elif lexeme == "}":
            braces = max(0, braces - 1)
        previous = lexeme
    return Written(fields)
