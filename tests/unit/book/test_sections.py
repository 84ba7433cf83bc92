"""The section registry's rules that the package's layout follows."""

from __future__ import annotations

import ast
from pathlib import Path

import seqbook
from seqbook.book.sections import SECTIONS

PACKAGE = Path(seqbook.__file__).resolve().parent
ORDER = {section.slug: index for index, section in enumerate(SECTIONS)}


def _section_modules() -> dict[str, Path]:
    """Modules named after a section (seqbook/<role>/<slug>.py, checks excluded)."""
    return {
        path.stem: path
        for path in PACKAGE.glob("*/*.py")
        if path.stem in ORDER and path.parent.name != "checks"
    }


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_section_module_imports_a_later_section():
    """A reader meets the sections in order; code written for one section must not
    need code that a later section introduces."""
    modules = _section_modules()
    assert len(modules) >= 11, f"section modules not found: {sorted(modules)}"
    for slug, path in modules.items():
        for name in _imported_modules(path):
            later = name.rsplit(".", 1)[-1]
            if name.startswith("seqbook.") and later in modules:
                assert ORDER[later] <= ORDER[slug], (
                    f"{path.relative_to(PACKAGE.parent)} ({slug}) imports {name}, "
                    f"from the later section {later}"
                )


def test_each_reference_module_of_the_registry_exists():
    for section in SECTIONS:
        for module in section.references:
            relative = Path(*module.split(".")[1:]).with_suffix(".py")
            assert (PACKAGE / relative).is_file(), f"{section.slug}: no {module}"
