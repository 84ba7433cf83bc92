"""Renamed seqbook modules still import under their old names for one release (a
notebook saved before the rename keeps working), with a warning that names the new
one."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import warnings

import pytest

import seqbook
from seqbook._moved import MOVED


@pytest.mark.parametrize("old_name, new_name", sorted(MOVED.items()))
def test_an_old_module_path_gives_the_same_module_with_a_warning(old_name, new_name):
    sys.modules.pop(old_name, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module(old_name)
    new = importlib.import_module(new_name)
    assert old is new, "the old path must give the very module, not a copy"
    assert new.__name__ == new_name and new.__spec__.name == new_name
    messages = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert any(old_name in m and new_name in m for m in messages), messages


def test_from_import_of_an_old_check_module_works_in_a_fresh_interpreter():
    # What a notebook saved before the rename runs: a new process, the package imported
    # by its set-up cell, then the old name; warnings become errors to see the warning.
    code = (
        "import warnings, seqbook.checks\n"
        "from seqbook.checks import parameter_efficient_fine_tuning as new\n"
        "warnings.simplefilter('error')\n"
        "try:\n"
        "    from seqbook.checks import lora\n"
        "except DeprecationWarning as warning:\n"
        "    print('warned:', warning)\n"
        "warnings.simplefilter('ignore')\n"
        "from seqbook.checks import lora\n"
        "assert lora is new and lora.check_lora_linear is new.check_lora_linear\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "warned: `seqbook.checks.lora` was renamed" in result.stdout


def test_every_new_path_exists_and_no_old_path_is_still_a_file():
    root = seqbook.__path__[0]
    for old_name, new_name in MOVED.items():
        assert importlib.util.find_spec(new_name) is not None, new_name
        old_file = os.path.join(root, *old_name.split(".")[1:]) + ".py"
        assert not os.path.exists(old_file), f"{old_file} still exists"
