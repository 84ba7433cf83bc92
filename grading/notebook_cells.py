"""Finding cells by grade id and reading the code of a solution cell: the one place the
grading tools and the tests do it."""

from __future__ import annotations

import ast

from nbformat import NotebookNode

__all__ = [
    "cell_with_id",
    "normalised_definition",
    "solution_code",
    "solution_definitions",
]

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def cell_with_id(notebook: NotebookNode, grade_id: str) -> NotebookNode:
    """The cell of ``notebook`` whose nbgrader grade id is ``grade_id`` (KeyError if
    none)."""
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def solution_code(cell: NotebookNode) -> str:
    """The cell's source without nbgrader's solution markers: the code a student who
    answered exactly like the solution would submit."""
    return "\n".join(
        line
        for line in cell.source.splitlines()
        if not any(marker in line for marker in SOLUTION_MARKERS)
    )


def solution_definitions(
    notebook: NotebookNode,
) -> dict[str, ast.FunctionDef | ast.ClassDef]:
    """Every function and class defined at the top of the notebook's solution cells."""
    found = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get(
            "solution"
        ):
            for node in ast.parse(solution_code(cell)).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    found[node.name] = node
    return found


def normalised_definition(node: ast.FunctionDef | ast.ClassDef) -> str:
    """A function or class as a canonical AST dump without docstrings and annotations
    (at every depth): what must agree between a solution and its copy in seqbook."""
    node = ast.parse(ast.unparse(node)).body[0]
    for item in ast.walk(node):
        if isinstance(item, (ast.FunctionDef, ast.ClassDef)):
            body = item.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                item.body = body[1:] or [ast.Pass()]
        if isinstance(item, ast.FunctionDef):
            item.returns = None
            for argument in item.args.args + item.args.kwonlyargs:
                argument.annotation = None
    return ast.dump(node)
