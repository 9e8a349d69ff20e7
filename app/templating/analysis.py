"""What a template uses, as found by parsing it (shared by the Mustache and Jinja2 engines)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TemplateAnalysis:
    """The outcome of parsing one template.

    ``used``: variables the template needs from the caller, in order of first appearance.
    ``structural``: those of ``used`` that the template treats as data rather than text
    (a Mustache section or dotted lookup, a Jinja2 loop or attribute/item access); inference
    gives them the JSON type.
    ``referenced``: every top-level name the template mentions anywhere. For Mustache this
    also holds names used only inside sections, which may be fields of the section's item
    rather than variables; a declared variable is "used" if it is referenced.
    ``errors``: syntax and support problems, each a sentence with line information if known.
    """

    used: list[str] = field(default_factory=list)
    structural: set[str] = field(default_factory=set)
    referenced: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def use(self, name: str, structural: bool) -> None:
        if name not in self.used:
            self.used.append(name)
        self.referenced.add(name)
        if structural:
            self.structural.add(name)
