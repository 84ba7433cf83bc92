"""chapters/ is exactly what the regeneration command produces, and each solution that
also lives in seqbook is the same code (one source, never two copies that drift)."""

from __future__ import annotations

import ast
import importlib
import inspect

import nbformat
import pytest
import regenerate_chapters
from conftest import REPO, chapter_notebooks, solution_notebooks

from grading.notebook_cells import normalised_definition, solution_definitions
from seqbook.book.sections import SECTIONS

# Section notebook -> the seqbook modules holding its reference implementations.
SECTION_MODULES = {s.notebook: s.references for s in SECTIONS if s.references}


def test_committed_chapters_match_a_fresh_regeneration(tmp_path):
    release = tmp_path / "release"
    written = regenerate_chapters.regenerate(
        release, f"sqlite:///{tmp_path / 'gradebook.db'}"
    )
    fresh = {p.relative_to(release) for p in written}
    committed = {p.relative_to(REPO / "chapters") for p in chapter_notebooks()}
    assert fresh == committed, (
        "chapters/ and solutions/ hold different notebooks: run `make chapters`"
    )
    for relative in sorted(fresh):
        assert (release / relative).read_bytes() == (
            REPO / "chapters" / relative
        ).read_bytes(), (
            f"chapters/{relative} is out of date: run `make chapters` "
            "and commit the result"
        )


@pytest.mark.parametrize("section, module_names", sorted(SECTION_MODULES.items()))
def test_solutions_are_the_package_reference(section, module_names):
    functions = solution_definitions(
        nbformat.read(REPO / "solutions" / f"{section}.ipynb", as_version=4)
    )
    compared = 0
    for module_name in module_names:
        module = importlib.import_module(module_name)
        shared = [
            name
            for name in functions
            if inspect.isfunction(getattr(module, name, None))
            or inspect.isclass(getattr(module, name, None))
        ]
        assert shared, f"no solution of {section} is shared with {module_name}"
        for name in shared:
            package_function = ast.parse(inspect.getsource(getattr(module, name))).body[
                0
            ]
            assert normalised_definition(functions[name]) == normalised_definition(
                package_function
            ), (
                f"the solution of `{name}` in solutions/{section}.ipynb differs from "
                f"{module_name}.{name}"
            )
            compared += 1
    assert compared >= 1


def test_every_section_names_the_modules_its_solutions_define():
    for notebook in solution_notebooks():
        section = str(notebook.relative_to(REPO / "solutions").with_suffix(""))
        assert section in SECTION_MODULES, (
            f"give {section} its reference modules in seqbook/book/sections.py"
        )
