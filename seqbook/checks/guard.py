"""A guard that makes named functions unusable while a student's code runs.

An exercise that asks for X "from primitives" is graded inside ``forbid_calls``. The
guard works at two depths:

* it replaces each forbidden function at its import path (``torch.nn.functional.
  scaled_dot_product_attention``,
  ``seqbook.models.attention.scaled_dot_product_attention``, ...) by one that raises at
  once with a message, and
* it installs a profiling hook (``sys.setprofile``) that sees every function call, so
  a forbidden function reached through an alias captured *before* the guard started
  (``from torch.nn.functional import scaled_dot_product_attention as f``), or through a
  library function that calls it internally, is caught too.

Removing the hook from inside the guarded code is itself reported as a violation.
:func:`forbid_code` is the hook alone, for code objects captured at import (a class's
methods, so that subclassing or aliasing cannot hide a use), with a message of its own.

The check modules name their paths once, at import, through :func:`existing_paths`: a
path into ``seqbook`` that does not resolve is an error there and then (a renamed
reference must not silently stop being forbidden); a missing path of another library
is left out.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from contextlib import contextmanager
from typing import Any, Iterator

from seqbook.checks.core import CheckFailure

__all__ = [
    "ForbiddenCall",
    "GuardPathError",
    "forbid_calls",
    "forbid_code",
    "existing_paths",
]

_SWITCHED_OFF = (
    "your code switched off the grading guard (sys.setprofile); "
    "this exercise cannot be graded that way."
)


class ForbiddenCall(CheckFailure):
    """The student's code used a function that this exercise asks them to write."""


class GuardPathError(ImportError):
    """A path into ``seqbook`` given to the guard does not resolve."""


def _resolve(path: str) -> tuple[Any, str, Any]:
    """``(owner, attribute, value)`` for a dotted path to a function or a method.

    The longest importable prefix is the module; the rest are attributes, so
    ``"torch.nn.LayerNorm.forward"`` resolves to the class ``torch.nn.LayerNorm`` and
    its attribute ``forward``.
    """
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ImportError(f"cannot resolve {path!r}")


def existing_paths(paths: tuple[str, ...]) -> tuple[str, ...]:
    """The paths that resolve here, in their order.

    A path of another library that does not resolve is left out: private PyTorch
    functions such as ``torch._VF.lstm_cell`` and the attributes of optional libraries
    come and go between versions. A path into ``seqbook`` must resolve, or
    :class:`GuardPathError` names it: the book's own code is always there, so a miss
    means a renamed or moved reference, which the guard would otherwise stop forbidding
    without a word. Check modules call this at import, so the error shows at once.
    """
    found = []
    for path in paths:
        try:
            _resolve(path)
        except (ImportError, AttributeError) as err:
            if path.split(".")[0] == "seqbook":
                raise GuardPathError(
                    f"the guard path {path!r} does not resolve ({err}): update it to "
                    "the reference's new name, or the guard stops forbidding it."
                ) from err
            continue
        found.append(path)
    return tuple(found)


def _refuse(path: str, reason: str):
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise ForbiddenCall(f"`{path}` is not allowed here: {reason}")

    refused.__name__ = path.rpartition(".")[2]
    return refused


@contextmanager
def _profiled(hook: Any) -> Iterator[None]:
    """Run the block with ``hook`` as the profiling function; the code in the block
    removing it is a :class:`ForbiddenCall` (after the block, once the previous one is
    back)."""
    previous_profile = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield
        hook_removed = sys.getprofile() is not hook
    finally:
        sys.setprofile(previous_profile)
    if hook_removed:
        raise ForbiddenCall(_SWITCHED_OFF)


@contextmanager
def forbid_code(codes: tuple[types.CodeType, ...], message: str) -> Iterator[None]:
    """Within the block, running any of ``codes`` is a :class:`ForbiddenCall` with
    ``message``, raised when the block ends.

    Nothing is replaced: the code objects are recognised by identity as they run,
    however they are reached (an alias, a subclass calling ``super()``). Capture them at
    import, before student code can replace the functions that hold them.
    """
    seen: list[bool] = []

    def hook(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call" and any(frame.f_code is code for code in codes):
            seen.append(True)

    with _profiled(hook):
        yield
    if seen:
        raise ForbiddenCall(message)


@contextmanager
def forbid_calls(
    *paths: str, reason: str = "write it from tensor primitives."
) -> Iterator[None]:
    """Within the block, any call to the functions at ``paths`` raises
    :class:`ForbiddenCall`.

    Paths are dotted import paths of functions, such as
    ``"torch.nn.functional.scaled_dot_product_attention"``, or of methods, such as
    ``"torch.nn.LayerNorm.forward"``.
    """
    originals = [_resolve(path) for path in paths]
    forbidden_code: dict[types.CodeType, str] = {}
    forbidden_builtins: dict[int, str] = {}
    forbidden_names: dict[str, str] = {}
    for path, (_, _, fn) in zip(paths, originals):
        # Recognise the function itself, not a decorator's wrapper that other functions
        # may share (torch's clipping functions share one).
        code = getattr(inspect.unwrap(fn), "__code__", None)
        if code is not None:
            forbidden_code[code] = path
        else:  # a C function: recognise it by identity, or by name if re-wrapped
            forbidden_builtins[id(fn)] = path
            forbidden_names[getattr(fn, "__name__", path)] = path

    seen: list[str] = []

    def hook(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call":
            path = forbidden_code.get(frame.f_code)
            if path is not None:
                seen.append(path)
        elif event == "c_call":
            path = forbidden_builtins.get(id(arg))
            if path is None:
                path = forbidden_names.get(getattr(arg, "__name__", None))
            if path is not None:
                seen.append(path)

    # A method inherited from a base class is replaced on the class named in the path
    # and removed again afterwards, so the class dictionary is left as it was.
    owned = [attribute in vars(owner) for owner, attribute, _ in originals]
    # Restore what the owner's dictionary held: for a staticmethod or classmethod that
    # is the descriptor, not the function that getattr returns.
    stored = [
        vars(owner)[attribute] if was_owned else None
        for (owner, attribute, _), was_owned in zip(originals, owned)
    ]
    for path, (owner, attribute, _) in zip(paths, originals):
        setattr(owner, attribute, _refuse(path, reason))
    try:
        with _profiled(hook):
            yield
    finally:
        for (owner, attribute, _), was_owned, raw in zip(originals, owned, stored):
            if was_owned:
                setattr(owner, attribute, raw)
            else:
                delattr(owner, attribute)
    if seen:
        raise ForbiddenCall(
            f"your code called `{seen[0]}` (possibly through another name): {reason}"
        )
