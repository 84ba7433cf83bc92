"""Detect and undo tampering with the grading environment.

When this module is first imported (the locked set-up cell of every notebook imports
``seqbook.checks``, before any student code runs) it records a baseline: the comparison
functions of torch and NumPy, the tensor methods and builtins that the checks rely on,
the IPython input/AST transformers and exception handlers, and the trace function.

:func:`verify`, which every check calls before and after running student code, compares
the present state with that baseline. On a difference it

1. puts the original back (so later cells are graded honestly),
2. writes a line starting with ``SEQBOOK-INTEGRITY`` to the notebook's stderr --
   nbgrader scores a test cell with such output 0, even if an input transformer swallows
   the exception (the book's ``IgnorePattern`` drops all other stderr), and
3. raises :class:`IntegrityError`.

Out of scope: code in the same process can always defeat in-process checks given enough
effort (for instance by replacing this module before it is imported). High-stakes
grading should run each submission in a sandbox; see the instructors' guide.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from typing import Any

from seqbook.checks.core import CheckFailure
from seqbook.grading_protocol import INTEGRITY_MARKER as MARKER

__all__ = ["IntegrityError", "MARKER", "verify"]

_COMPARISONS = [
    "torch.allclose",
    "torch.equal",
    "torch.isclose",
    "torch.eq",
    "torch.abs",
    "torch.sub",
    "torch.isnan",
    "torch.testing.assert_close",
    "numpy.allclose",
    "numpy.isclose",
    "numpy.array_equal",
    "numpy.testing.assert_allclose",
    "numpy.testing.assert_array_equal",
    "numpy.testing.assert_array_almost_equal",
    "numpy.testing.assert_almost_equal",
    "numpy.testing.assert_equal",
]
_TENSOR_METHODS = [
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__sub__",
    "__bool__",
    "__float__",
    "__getitem__",
    "all",
    "any",
    "max",
    "min",
    "abs",
    "double",
    "detach",
    "item",
    "tolist",
    "masked_fill",
    "nan_to_num",
    "isnan",
    "equal",
    "allclose",
]
_BUILTINS = [
    "abs",
    "all",
    "any",
    "bool",
    "callable",
    "float",
    "getattr",
    "int",
    "isinstance",
    "len",
    "max",
    "min",
    "print",
    "range",
    "round",
    "sum",
    "tuple",
    "type",
    "zip",
]


def _lookup(path: str) -> tuple[Any, str] | None:
    module_name, _, attribute = path.rpartition(".")
    try:
        return importlib.import_module(module_name), attribute
    except ImportError:
        return None


def _snapshot_functions() -> dict[tuple[Any, str], Any]:
    import torch

    table: dict[tuple[Any, str], Any] = {}
    for path in _COMPARISONS:
        found = _lookup(path)
        if found is not None and hasattr(found[0], found[1]):
            table[found] = getattr(*found)
    for name in _TENSOR_METHODS:
        if name in vars(torch.Tensor) or hasattr(torch.Tensor, name):
            table[(torch.Tensor, name)] = getattr(torch.Tensor, name)
    for name in _BUILTINS:
        table[(builtins, name)] = getattr(builtins, name)
    return table


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to watch
        return None
    return get_ipython()


def _snapshot_shell(shell: Any) -> dict[str, Any]:
    if shell is None:
        return {}
    return {
        "input_transformers_cleanup": list(shell.input_transformers_cleanup),
        "input_transformers_post": list(shell.input_transformers_post),
        "ast_transformers": list(shell.ast_transformers),
        "custom_exceptions": tuple(shell.custom_exceptions),
        # (class attribute, instance attribute or None): ipykernel itself sets
        # _showtraceback on the instance, so both levels are recorded.
        "showtraceback": (type(shell).showtraceback, vars(shell).get("showtraceback")),
        "_showtraceback": (
            type(shell)._showtraceback,
            vars(shell).get("_showtraceback"),
        ),
    }


_functions = _snapshot_functions()
_shell_at_import = _shell()
_shell_state = _snapshot_shell(_shell_at_import)
_trace_at_import = sys.gettrace()
_stderr = sys.stderr
_checked_modules: dict[str, dict[str, Any]] = {}


def protect_module(module_name: str) -> None:
    """Add the public functions of a ``seqbook`` module to the baseline."""
    module = sys.modules[module_name]
    _checked_modules[module_name] = {
        name: value
        for name, value in vars(module).items()
        if callable(value) and not name.startswith("__")
    }


class IntegrityError(CheckFailure):
    """The grading environment was modified by the code under test."""


def _name(owner: Any, attribute: str) -> str:
    return f"{getattr(owner, '__name__', owner)}.{attribute}"


def _find_and_restore() -> list[str]:
    problems: list[str] = []
    for (owner, attribute), original in _functions.items():
        if getattr(owner, attribute, None) is not original:
            problems.append(f"`{_name(owner, attribute)}` was replaced")
            setattr(owner, attribute, original)
    for module_name, table in _checked_modules.items():
        module = sys.modules.get(module_name)
        for attribute, original in table.items():
            if module is None or getattr(module, attribute, None) is not original:
                problems.append(f"`{module_name}.{attribute}` was replaced")
                if module is not None:
                    setattr(module, attribute, original)
    if sys.gettrace() is not _trace_at_import:
        problems.append("a trace function was installed with sys.settrace")
        sys.settrace(_trace_at_import)
    shell = _shell_at_import
    if shell is not None:
        for name in (
            "input_transformers_cleanup",
            "input_transformers_post",
            "ast_transformers",
        ):
            now = getattr(shell, name)
            if list(now) != _shell_state[name]:
                problems.append(f"IPython's {name} were changed")
                now[:] = _shell_state[name]
        if tuple(shell.custom_exceptions) != _shell_state["custom_exceptions"]:
            problems.append("a custom exception handler was installed (set_custom_exc)")
            shell.custom_exceptions = _shell_state["custom_exceptions"]
        for name in ("showtraceback", "_showtraceback"):
            on_class, on_instance = _shell_state[name]
            if (
                getattr(type(shell), name) is not on_class
                or vars(shell).get(name) is not on_instance
            ):
                problems.append(f"IPython's {name} was replaced")
                setattr(type(shell), name, on_class)
                if on_instance is None:
                    vars(shell).pop(name, None)
                else:
                    vars(shell)[name] = on_instance
    return problems


def verify() -> None:
    """Raise :class:`IntegrityError` (and flag it on stderr) if the baseline changed."""
    problems = _find_and_restore()
    if problems:
        message = (
            f"{MARKER}: the grading environment was modified ({'; '.join(problems)}). "
            "The originals were restored and this check gives no credit."
        )
        try:
            _stderr.write(message + "\n")
            _stderr.flush()
        except Exception:  # noqa: BLE001 - the exception below still reports it
            pass
        raise IntegrityError(message)
