"""The section registry's rules that the package's layout follows."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import seqbook
from seqbook.book.sections import SECTIONS

PACKAGE = Path(seqbook.__file__).resolve().parent
ORDER = {section.slug: index for index, section in enumerate(SECTIONS)}


def _module_path(name: str) -> Path | None:
    """The file of the seqbook module ``name``, or None when it is not one."""
    parts = name.split(".")
    if parts[0] != "seqbook":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(name: str) -> frozenset[str]:
    """The seqbook modules that module ``name`` imports directly (``from seqbook.text
    import bleu`` imports ``seqbook.text.bleu``)."""
    tree = ast.parse(_module_path(name).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if _module_path(submodule) else node.module)
    return frozenset(n for n in found if _module_path(n) and n != name)


def _reachable(name: str) -> dict[str, list[str]]:
    """Every seqbook module that importing ``name`` imports, with one import chain."""
    chains = {name: [name]}
    pending = [name]
    while pending:
        current = pending.pop()
        for imported in _imports(current):
            if imported not in chains:
                chains[imported] = chains[current] + [imported]
                pending.append(imported)
    return chains


def _introduced_by() -> dict[str, int]:
    """Each module that belongs to a section, with the index of the first section it
    belongs to: the section's reference modules, and the modules named after it
    (seqbook/<role>/<slug>.py; the check modules are not reference code)."""
    first: dict[str, int] = {}
    for index, section in enumerate(SECTIONS):
        for module in section.references:
            first.setdefault(module, index)
    for path in PACKAGE.glob("*/*.py"):
        if path.stem in ORDER and path.parent.name != "checks":
            name = f"seqbook.{path.parent.name}.{path.stem}"
            first[name] = min(first.get(name, ORDER[path.stem]), ORDER[path.stem])
    return first


def test_no_section_module_needs_a_later_section():
    """A reader meets the sections in order: code written for one section must not
    import, even through a shared module, code that a later section introduces."""
    introduced = _introduced_by()
    assert len(introduced) >= 17, f"section modules not found: {sorted(introduced)}"
    for module, index in introduced.items():
        for reached, chain in _reachable(module).items():
            later = introduced.get(reached, -1)
            assert later <= index, (
                f"{module} ({SECTIONS[index].slug}) imports {reached}, which the "
                f"later section {SECTIONS[later].slug} introduces: "
                + " -> ".join(chain)
            )


def test_each_reference_module_of_the_registry_exists():
    for section in SECTIONS:
        for module in section.references:
            assert _module_path(module), f"{section.slug}: no {module}"
