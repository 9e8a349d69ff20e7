"""Static checks of regular expressions written by users, before anything compiles or runs them.

``backtracking_risk(pattern)`` parses the pattern with Python's own parser and looks, inside
every repetition, for two ways of matching the same text. ``repeat_size_problem(pattern)`` refuses
counted repeats that multiply to a huge size (``(?:(?:a{999}){999}){999}``: compiling that makes
the matching engine build a program of ~10^9 steps). Used by the REGEX validation and for the
``pattern``/``patternProperties`` of JSON Schemas (which jsonschema runs with plain ``re`` and no
timeout). Both are cheap; the sandbox's limits stay behind them.
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

# re's own parser (private modules of Python >= 3.11, which typeshed has no stubs for)
from re import _constants as _sre  # type: ignore[attr-defined]
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any


def backtracking_risk(pattern: str, flags: int = 0) -> str | None:
    """Explain why ``pattern`` risks catastrophic backtracking, or return None if it looks safe.

    A static check on the parsed pattern. Inside every part that can repeat (``*``, ``+``,
    ``{m,n}`` with n > 1), it looks for two ways of matching the same text:

    * a variable-length piece followed, possibly after the next repetition begins, by another
      variable-length piece (or itself) that can match the same characters, with no required
      character in between that the first cannot match: ``(a+)+``, ``(a*)*``, ``(.*)*``,
      ``(\\w+\\s?)+``, ``(.*a){20}``. ``([a-z]+,)+`` and ``(\\d{1,3}\\.){3}`` are fine: the
      separator tells the repetitions apart;
    * alternatives that can match the same text: ``(a|a)*``, ``(\\w|\\d+)*``.

    Possessive quantifiers (``a++``) and atomic groups (``(?>...)``) give no choice back and
    count as safe. The check is conservative: it may refuse a few patterns that would in fact
    run fast. Polynomial slowdowns outside repetitions (``.*a.*b`` over long text) are not
    refused; the timeout at apply time covers them. Raises ``re.error`` when the pattern does
    not compile.
    """
    return _Analyzer(_sre_parse.parse(pattern, flags)).run()


#: Largest "size" of a pattern's counted repeats (the counts multiplied through the nesting).
MAX_REPEAT_SIZE = 100_000


def repeat_size(pattern: str, flags: int = 0) -> int:
    """How many times the pattern's parts may be repeated by counted repeats, multiplied through
    their nesting: ``a{3}`` is 3, ``(?:a{10}b){5}`` is 55, ``(?:(?:a{99}){99}){99}`` is 970,299.
    An unbounded repeat (``*``, ``+``, ``{2,}``) counts its minimum: nothing is copied beyond it."""
    return _size(_sre_parse.parse(pattern, flags))


def repeat_size_problem(pattern: str, flags: int = 0, limit: int = MAX_REPEAT_SIZE) -> str | None:
    """Why ``pattern``'s counted repeats are too big for the matching engine, or None. Raises
    ``re.error`` when the pattern does not compile."""
    size = repeat_size(pattern, flags)
    if size <= limit:
        return None
    return (f"its counted repeats ({{m,n}}) multiply to {size:,} through their nesting; at most {limit:,} are "
            "allowed (use * or + for long runs, or fewer nested counts)")


def _size(items: Any) -> int:
    total = 0
    for op, av in items:
        if op in _REPEAT_OPS:
            low, high, sub = av
            count = low if high == _UNBOUNDED else high
            total += max(count, 1) * _size(sub)
        elif op is _OP.SUBPATTERN:
            total += _size(av[-1])
        elif op is _OP.BRANCH:
            total += max((_size(b) for b in av[1]), default=0)
        elif op in (_OP.ASSERT, _OP.ASSERT_NOT):
            total += _size(av[1])
        elif op is _OP.ATOMIC_GROUP:
            total += _size(av)
        elif op is _OP.GROUPREF_EXISTS:
            total += max(_size(av[1]), _size(av[2]) if av[2] is not None else 0)
        else:
            total += 1
        if total > 10 * MAX_REPEAT_SIZE * MAX_REPEAT_SIZE:  # far past any limit: stop multiplying
            return total
    return total



# --------------------------------------------------------------------------- catastrophic backtracking

_OP = _sre
_SINGLE_CHAR_OPS = frozenset({_OP.LITERAL, _OP.NOT_LITERAL, _OP.ANY, _OP.IN})
_REPEAT_OPS = frozenset({_OP.MAX_REPEAT, _OP.MIN_REPEAT, _OP.POSSESSIVE_REPEAT})
_ZERO_WIDTH_OPS = frozenset({_OP.AT, _OP.ASSERT, _OP.ASSERT_NOT})
_UNBOUNDED = int(_OP.MAXREPEAT)
_CATEGORY_RE = {
    _OP.CATEGORY_DIGIT: re.compile(r"\d"),
    _OP.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    _OP.CATEGORY_SPACE: re.compile(r"\s"),
    _OP.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    _OP.CATEGORY_WORD: re.compile(r"\w"),
    _OP.CATEGORY_NOT_WORD: re.compile(r"\W"),
    _OP.CATEGORY_LINEBREAK: re.compile(r"\n"),
    _OP.CATEGORY_NOT_LINEBREAK: re.compile(r"[^\n]"),
}
_CATEGORY_TEXT = {
    _OP.CATEGORY_DIGIT: r"\d", _OP.CATEGORY_NOT_DIGIT: r"\D", _OP.CATEGORY_SPACE: r"\s",
    _OP.CATEGORY_NOT_SPACE: r"\S", _OP.CATEGORY_WORD: r"\w", _OP.CATEGORY_NOT_WORD: r"\W",
}
_AT_TEXT = {
    _OP.AT_BEGINNING: "^", _OP.AT_BEGINNING_STRING: r"\A", _OP.AT_END: "$",
    _OP.AT_END_STRING: r"\Z", _OP.AT_BOUNDARY: r"\b", _OP.AT_NON_BOUNDARY: r"\B",
}
# Characters used to decide whether two character classes overlap: Latin-1 and samples of
# other scripts, digits, spaces and case oddities; each pattern adds its own literals and
# range endpoints (and samples inside ranges), which makes range-vs-range overlap exact.
_BASE_PROBES = tuple(chr(i) for i in range(256)) + tuple(
    "\u0100\u0130\u0131\u017f\u01c5\u0391\u03a9\u03c9\u0416\u0436\u05d0\u0627\u0663\u0966"
    "\u0e01\u1e9e\u2000\u200b\u2013\u201c\u2028\u2029\u20ac\u212a\u2160\u3000\u3042\u30a2"
    "\u4e00\u4e2d\uac00\ufeff\uff11\uff21\U0001d400\U0001f600\U00020000"
)
_ADVICE = (
    "Rewrite it so that each repetition can match in only one way: drop the nested quantifier "
    "(a+ instead of (a+)+), end each repetition with a character the repeated part cannot "
    "contain (([a-z]+,)+), make alternatives mutually exclusive, or make the inner part "
    "possessive (a++) or atomic ((?>...))."
)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One piece of a sequence, as the backtracking check sees it."""

    item: tuple
    chars: frozenset  # every character it may consume
    first: frozenset  # characters it may start with
    ext: frozenset  # characters that may extend one of its complete matches
    min: int
    max: int
    variable: bool  # its length is a backtracking choice
    simple: bool  # a single character class, possibly repeated


class _Analyzer:
    def __init__(self, tree: Any) -> None:
        self.state = tree.state
        flags = tree.state.flags
        for op, av in self._walk(tree):
            if op is _OP.SUBPATTERN:
                flags |= av[1]
        self.ignorecase = bool(flags & re.IGNORECASE)
        self.dotall = bool(flags & re.DOTALL)
        self.tree = tree
        self.names = {number: name for name, number in tree.state.groupdict.items()}
        extra: set[str] = set()
        for op, av in self._walk(tree):
            for code in self._codes(op, av):
                extra.add(chr(code))
        if self.ignorecase:
            extra |= {v for ch in list(extra) for v in self._case_variants(ch)}
        self.probes = tuple(dict.fromkeys(_BASE_PROBES + tuple(sorted(extra))))
        self.everything = frozenset(self.probes)
        # probe -> the characters it stands for (its case variants when ignoring case)
        self._forms = {p: tuple(self._case_variants(p)) if self.ignorecase else (p,) for p in self.probes}
        self._probes_by_form: dict[str, set[str]] = {}
        for probe, forms in self._forms.items():
            for form in forms:
                self._probes_by_form.setdefault(form, set()).add(probe)
        self._char_cache: dict[Any, frozenset] = {}
        self._composite_cache: dict[int, frozenset] = {}  # by id(): the tree outlives the analysis
        self._unit_cache: dict[tuple, _Unit] = {}

    # -- traversal

    @staticmethod
    def _children(op: Any, av: Any) -> list:
        if op in _REPEAT_OPS:
            return [av[2]]
        if op is _OP.SUBPATTERN:
            return [av[-1]]
        if op is _OP.BRANCH:
            return list(av[1])
        if op in (_OP.ASSERT, _OP.ASSERT_NOT):
            return [av[1]]
        if op is _OP.ATOMIC_GROUP:
            return [av]
        if op is _OP.GROUPREF_EXISTS:
            return [p for p in av[1:] if p is not None]
        return []

    def _walk(self, sub: Any) -> Iterator[tuple]:
        for op, av in sub:
            yield op, av
            for child in self._children(op, av):
                yield from self._walk(child)

    @staticmethod
    def _codes(op: Any, av: Any) -> Iterator[int]:
        if op in (_OP.LITERAL, _OP.NOT_LITERAL):
            yield av
        elif op is _OP.IN:
            for o, a in av:
                if o in (_OP.LITERAL, _OP.NOT_LITERAL):
                    yield a
                elif o is _OP.RANGE:
                    lo, hi = a
                    yield from {lo, hi, max(lo - 1, 0), min(hi + 1, 0x10FFFF)}
                    yield from range(lo, hi, max(1, (hi - lo) // 8))

    # -- the check

    def run(self) -> str | None:
        return self._visit(self.tree)

    def _visit(self, sub: Any) -> str | None:
        for op, av in sub:
            if op in _REPEAT_OPS:
                lo, hi, body = av
                # A possessive repeat gives nothing back; only its own minimum count can force
                # it to try the splits of its body.
                if hi > 1 and (op is not _OP.POSSESSIVE_REPEAT or lo > 1):
                    problem = self._check_repeat((op, av), body)
                    if problem:
                        return problem
            for child in self._children(op, av):
                problem = self._visit(child)
                if problem:
                    return problem
        return None

    def _check_repeat(self, item: tuple, body: Any) -> str | None:
        units = self._units(body)
        for i, first in enumerate(units):
            if not first.ext:
                continue  # its end is fixed by what it matched: nothing to share
            for later in units[i + 1:] + units[: i + 1]:  # on into the next repetition
                if later.variable and first.ext & later.first:
                    return self._nested_message(item, first, later)
                if later.min >= 1 and not first.chars & later.first:
                    break  # a separator: `first` can never run past it
        for branch in self._branches(body):
            pair = self._overlapping_alternatives(branch)
            if pair is not None:
                return self._alternation_message(item, pair)
        return None

    def _units(self, sub: Any) -> list[_Unit]:
        units: list[_Unit] = []
        for op, av in sub:
            if op in _ZERO_WIDTH_OPS:
                continue
            if op is _OP.SUBPATTERN:
                units.extend(self._units(av[-1]))
                continue
            key = (op, id(av))  # the tree is alive as long as the analyzer: ids are stable
            unit = self._unit_cache.get(key)
            if unit is None:
                unit = self._unit_cache[key] = self._make_unit(op, av)
            if unit.max > 0:
                units.append(unit)
        return units

    def _make_unit(self, op: Any, av: Any) -> _Unit:
        item = (op, av)
        lo, hi = _sre_parse.SubPattern(self.state, [item]).getwidth()
        chars = self._chars(item)
        empty: frozenset = frozenset()
        if op in _SINGLE_CHAR_OPS:
            return _Unit(item, chars, chars, empty, lo, hi, False, True)
        if op in _REPEAT_OPS:
            count_lo, count_hi, body = av
            first, ext, _ = self._sequence(self._units(body))
            if op is _OP.POSSESSIVE_REPEAT:
                ext = empty  # takes all it can and gives nothing back
            elif count_lo != count_hi:
                ext = ext | first  # one more repetition
            simple = len(body) == 1 and body[0][0] in _SINGLE_CHAR_OPS
            return _Unit(item, chars, first, ext, lo, hi, lo != hi and op is not _OP.POSSESSIVE_REPEAT, simple)
        if op is _OP.BRANCH:
            alternatives = av[1]
            first, ext = empty, empty
            for alternative in alternatives:
                alt_first, alt_ext, _ = self._sequence(self._units(alternative))
                first, ext = first | alt_first, ext | alt_ext
            shapes = [self._signature(alt) for alt in alternatives]
            widths = [alt.getwidth() for alt in alternatives]
            extending = {
                y  # a match of x may go on as a match of y
                for x, y in itertools.permutations(range(len(alternatives)), 2)
                if widths[x][0] < widths[y][1] and not _distinct(shapes[x], shapes[y])
            }
            for y in extending:
                ext = ext | self._sub_chars(alternatives[y])
            return _Unit(item, chars, first, ext, lo, hi, lo != hi, False)
        if op is _OP.ATOMIC_GROUP:
            first, _, _ = self._sequence(self._units(av))
            return _Unit(item, chars, first, empty, lo, hi, False, False)
        if op is _OP.GROUPREF_EXISTS:
            first, ext = empty, empty
            for branch in av[1:]:
                if branch is not None:
                    branch_first, branch_ext, _ = self._sequence(self._units(branch))
                    first, ext = first | branch_first, ext | branch_ext
            return _Unit(item, chars, first, ext, lo, hi, lo != hi, False)
        # back-references and anything unforeseen: may start with anything, no choice of length
        return _Unit(item, chars, self.everything, empty, lo, hi, False, False)

    @staticmethod
    def _sequence(units: list[_Unit]) -> tuple[frozenset, frozenset, bool]:
        """(first characters, extension characters, nullable) of a sequence of units."""
        first: frozenset = frozenset()
        for unit in units:
            first |= unit.first
            if unit.min >= 1:
                break
        ext: frozenset = frozenset()
        for unit in reversed(units):
            ext |= unit.ext
            if unit.min >= 1:
                break
        return first, ext, all(unit.min == 0 for unit in units)

    def _branches(self, sub: Any) -> Iterator[Any]:
        for op, av in sub:
            if op is _OP.BRANCH:
                yield av
            if op in (_OP.ATOMIC_GROUP, _OP.POSSESSIVE_REPEAT, _OP.ASSERT, _OP.ASSERT_NOT):
                continue  # no backtracking into these once they matched
            for child in self._children(op, av):
                yield from self._branches(child)

    def _overlapping_alternatives(self, branch: Any) -> tuple | None:
        alternatives = branch[1]
        shapes = [self._signature(alt) for alt in alternatives]
        for i, j in itertools.combinations(range(len(alternatives)), 2):
            (lo_i, hi_i), (lo_j, hi_j) = alternatives[i].getwidth(), alternatives[j].getwidth()
            if lo_i > hi_j or lo_j > hi_i:
                # They never match text of the same length: one may begin like the other
                # ("x" and "xy"), which the unit check judges through the branch's extension.
                continue
            if not _distinct(shapes[i], shapes[j]):
                return alternatives[i], alternatives[j]
        return None

    def _signature(self, sub: Any) -> tuple[bool, list[frozenset]]:
        """(whether it can match the empty string, character sets of its leading positions)."""
        lo = sub.getwidth()[0]
        units = self._units(sub)
        lead: frozenset = frozenset()
        for index, unit in enumerate(units):
            if unit.min == 0:
                lead |= unit.first
                continue
            if lead:  # optional pieces before: only the first character is known
                return lo == 0, [lead | unit.first]
            positions: list[frozenset] = []
            for piece in units[index:]:
                if piece.min == 0:
                    break
                if piece.simple and piece.min == piece.max:  # a fixed run of one class
                    positions.extend([piece.first] * min(piece.min, 16))
                else:
                    positions.append(piece.first)
                    break
                if len(positions) >= 16:
                    break
            return lo == 0, positions
        return lo == 0, [lead] if lead else []

    # -- character sets

    def _chars(self, item: tuple) -> frozenset:
        op, av = item
        if op in _SINGLE_CHAR_OPS:
            key = (op, tuple(av) if op is _OP.IN else av)
            cached = self._char_cache.get(key)
            if cached is None:
                cached = self._char_cache[key] = self._single_chars(op, av)
            return cached
        if op in _ZERO_WIDTH_OPS:
            return frozenset()
        if op in (_OP.GROUPREF, getattr(_OP, "GROUPREF_IGNORE", None)):
            return self.everything
        result: frozenset = frozenset()
        for child in self._children(op, av):
            result |= self._sub_chars(child)
        return result

    def _sub_chars(self, sub: Any) -> frozenset:
        cached = self._composite_cache.get(id(sub))
        if cached is None:
            cached = frozenset()
            for item in sub:
                cached |= self._chars(item)
            self._composite_cache[id(sub)] = cached
        return cached

    def _single_chars(self, op: Any, av: Any) -> frozenset:
        """The probes a one-character item matches (case-insensitively when the pattern is)."""
        if op is _OP.LITERAL:
            return frozenset(self._probes_by_form.get(chr(av), ()))
        if op is _OP.NOT_LITERAL:
            return self.everything - self._probes_by_form.get(chr(av), set())
        if op is _OP.ANY:
            return self.everything if self.dotall else self.everything - {"\n"}
        negate = bool(av) and av[0][0] is _OP.NEGATE
        matched: frozenset = frozenset()
        for o, a in av[1:] if negate else av:
            if o is _OP.LITERAL:
                matched |= self._probes_by_form.get(chr(a), set())
            elif o is _OP.RANGE:
                lo, hi = a
                matched |= {p for p, forms in self._forms.items() if any(lo <= ord(f) <= hi for f in forms)}
            elif o is _OP.CATEGORY and a in _CATEGORY_RE:
                matched |= self._category(a)
            else:  # unknown set item: assume it may match anything
                matched = self.everything
        return self.everything - matched if negate else matched

    def _category(self, category: Any) -> frozenset:
        cached = self._char_cache.get(("category", category))
        if cached is None:
            pattern = _CATEGORY_RE[category]
            cached = frozenset(
                p for p, forms in self._forms.items() if any(pattern.fullmatch(f) for f in forms)
            )
            self._char_cache[("category", category)] = cached
        return cached

    @staticmethod
    def _case_variants(ch: str) -> set[str]:
        return {v for v in (ch, ch.lower(), ch.upper(), ch.casefold(), ch.swapcase()) if len(v) == 1}

    # -- messages

    def _nested_message(self, item: tuple, first: _Unit, later: _Unit) -> str:
        group = self._shown([item])
        if first is later:
            what = (
                f"the repeated group {group} contains {self._shown([first.item])}, which can itself "
                "match a varying number of characters, so the text can be divided among the "
                "repetitions in exponentially many ways when the match fails (nested quantifiers)."
            )
        else:
            what = (
                f"inside the repeated group {group}, {self._shown([first.item])} and "
                f"{self._shown([later.item])} can match the same characters with no required "
                "character between them that only one can match, so the text can be divided "
                "between them in exponentially many ways when the match fails."
            )
        return f"{what} {_ADVICE}"

    def _alternation_message(self, item: tuple, pair: tuple) -> str:
        if len(pair[0]) and len(pair[1]):
            which = f"the alternatives {self._shown(pair[0])} and {self._shown(pair[1])}"
        else:  # the parser moved their common beginning out of the group: what is left is empty
            which = "two alternatives (identical once their common beginning is set aside)"
        return (
            f"inside the repeated group {self._shown([item])}, {which} can match the same text, "
            "so each repetition can be matched in more than one way and a failing match takes "
            f"exponential time. {_ADVICE}"
        )

    def _shown(self, items: Any) -> str:
        items = list(items)
        text = self._render(items)
        if len(items) == 1 and items[0][0] is _OP.BRANCH:
            text = f"(?:{text})"
        return _clip(text, 60)

    def _render(self, items: Any) -> str:
        items = list(items)
        parts = []
        for op, av in items:
            text = self._render_item(op, av)
            parts.append(f"(?:{text})" if op is _OP.BRANCH and len(items) > 1 else text)
        return "".join(parts)

    def _render_atom(self, sub: Any) -> str:
        items = list(sub)
        text = self._render(items)
        if len(items) == 1 and (items[0][0] in _SINGLE_CHAR_OPS or items[0][0] in (
            _OP.SUBPATTERN, _OP.ATOMIC_GROUP, _OP.GROUPREF, _OP.ASSERT, _OP.ASSERT_NOT
        )):
            return text
        return f"(?:{text})"

    def _render_item(self, op: Any, av: Any) -> str:
        if op is _OP.LITERAL:
            return re.escape(chr(av))
        if op is _OP.NOT_LITERAL:
            return f"[^{_set_escape(chr(av))}]"
        if op is _OP.ANY:
            return "."
        if op is _OP.IN:
            negate = bool(av) and av[0][0] is _OP.NEGATE
            members = av[1:] if negate else av
            if not negate and len(members) == 1 and members[0][0] is _OP.CATEGORY:
                return _CATEGORY_TEXT.get(members[0][1], "?")
            parts = []
            for o, a in members:
                if o is _OP.LITERAL:
                    parts.append(_set_escape(chr(a)))
                elif o is _OP.RANGE:
                    parts.append(f"{_set_escape(chr(a[0]))}-{_set_escape(chr(a[1]))}")
                elif o is _OP.CATEGORY:
                    parts.append(_CATEGORY_TEXT.get(a, "?"))
            return "[" + ("^" if negate else "") + "".join(parts) + "]"
        if op in _REPEAT_OPS:
            lo, hi, body = av
            if (lo, hi) == (0, _UNBOUNDED):
                quantifier = "*"
            elif (lo, hi) == (1, _UNBOUNDED):
                quantifier = "+"
            elif (lo, hi) == (0, 1):
                quantifier = "?"
            elif lo == hi:
                quantifier = f"{{{lo}}}"
            elif hi == _UNBOUNDED:
                quantifier = f"{{{lo},}}"
            else:
                quantifier = f"{{{lo},{hi}}}"
            suffix = {_OP.MIN_REPEAT: "?", _OP.POSSESSIVE_REPEAT: "+"}.get(op, "")
            return self._render_atom(body) + quantifier + suffix
        if op is _OP.SUBPATTERN:
            group, add_flags, del_flags, body = av
            inner = self._render(body)
            if group is None:
                flags = _flag_letters(add_flags) + ("-" + _flag_letters(del_flags) if del_flags else "")
                return f"(?{flags}:{inner})"
            name = self.names.get(group)
            return f"(?P<{name}>{inner})" if name else f"({inner})"
        if op is _OP.BRANCH:
            return "|".join(self._render(alt) for alt in av[1])
        if op is _OP.AT:
            return _AT_TEXT.get(av, "")
        if op in (_OP.ASSERT, _OP.ASSERT_NOT):
            direction, body = av
            mark = ("=" if op is _OP.ASSERT else "!") if direction >= 0 else ("<=" if op is _OP.ASSERT else "<!")
            return f"(?{mark}{self._render(body)})"
        if op is _OP.ATOMIC_GROUP:
            return f"(?>{self._render(av)})"
        if op is _OP.GROUPREF:
            return f"\\{av}"
        if op is _OP.GROUPREF_EXISTS:
            condition, yes, no = av
            return f"(?({condition}){self._render(yes)}" + (f"|{self._render(no)}" if no is not None else "") + ")"
        return "?"


def _distinct(a: tuple[bool, list[frozenset]], b: tuple[bool, list[frozenset]]) -> bool:
    """Whether two alternatives' signatures (see _Analyzer._signature) can never match alike."""
    if a[0] and b[0]:
        return False  # both can match the empty string
    return any(not (x & y) for x, y in zip(a[1], b[1], strict=False))  # the lead both signatures know


def _set_escape(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else re.escape(ch) if not ch.isprintable() else ch


_FLAG_LETTERS = (("i", re.I), ("L", re.L), ("m", re.M), ("s", re.S), ("x", re.X), ("a", re.A))


def _flag_letters(flags: int) -> str:
    return "".join(letter for letter, bit in _FLAG_LETTERS if flags & bit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
