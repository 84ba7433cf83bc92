"""The list of the slowest test files (tests/conftest.py) names files that exist: a
renamed file would silently fall back to collection order."""

from conftest import LONGEST_FIRST, REPO


def test_the_longest_files_started_first_exist():
    missing = [name for name in LONGEST_FIRST if not (REPO / name).is_file()]
    assert not missing, f"LONGEST_FIRST names files that do not exist: {missing}"
