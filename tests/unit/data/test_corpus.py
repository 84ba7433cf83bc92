"""The language-model corpus is one text on every supported Python (issue: one corpus).

``seqbook.data.corpus`` reads a frozen snapshot of Python 3.11's help topics; these
tests pin its hash and show that Python 3.10-3.13 (where pyenv has them) read the same
corpus.
"""

import gzip
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqbook.data import corpus
from seqbook.data.corpus import ALPHABET, clean_text, load_corpus, split_text

ROOT = Path(__file__).resolve().parents[3]
SNAPSHOT = ROOT / "seqbook" / "data" / "python_help_topics.json.gz"
# Written by tools/freeze_corpus.py from Python 3.11.7; change only with that script.
SNAPSHOT_JSON_SHA256 = (
    "128bdb755053fa3beef3c2c2c3f1380d51efcbb6d6256fd7655429deea4b538e"
)
CORPUS_SHA256 = "5254cf30fb025a8fe258738e3028c417b6cd84e0b27f4cf05984e21167d6f492"
CORPUS_CHARACTERS = 246_089

_PRINT_HASH = (
    "import hashlib, importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('corpus', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "print(hashlib.sha256(module.load_corpus().encode('utf-8')).hexdigest())\n"
)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_snapshot_is_the_one_the_book_expects():
    payload = gzip.decompress(SNAPSHOT.read_bytes())
    assert hashlib.sha256(payload).hexdigest() == SNAPSHOT_JSON_SHA256


def test_the_corpus_is_pinned():
    text = corpus.load_corpus()
    assert len(text) == CORPUS_CHARACTERS
    assert _sha256(text) == CORPUS_SHA256
    assert set(text) <= corpus.ALPHABET


def test_help_topics_match_raw_topics_and_are_a_copy():
    topics = corpus.help_topics()
    assert "while" in topics and len(topics) == 79
    assert corpus.raw_topics() == "\n\n".join(topics[name] for name in sorted(topics))
    topics["while"] = "changed"
    assert corpus.help_topics()["while"] != "changed"


def test_the_licence_notice_ships_beside_the_snapshot():
    notice = (SNAPSHOT.parent / "PYTHON_LICENSE.txt").read_text(encoding="utf-8")
    assert "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in notice
    assert "python_help_topics.json.gz" in notice.splitlines()[0]


def _interpreter(version: str) -> str | None:
    # pyenv's own builds first: its shims on PATH exit 127 for a version not selected.
    pyenv = sorted(
        (Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python")
    )
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which(f"python{version}")
    return found if found and "shims" not in found else None


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_every_supported_python_reads_the_same_corpus(version):
    python = (
        sys.executable
        if sys.version.startswith(version + ".")
        else _interpreter(version)
    )
    if python is None:
        pytest.skip(f"no Python {version} on this machine")
    result = subprocess.run(
        [python, "-c", _PRINT_HASH, str(ROOT / "seqbook" / "data" / "corpus.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == CORPUS_SHA256


def test_clean_text_follows_its_rules():
    raw = (
        "Title\n*****\n\n------ ----\nSome \u201cQuoted\u201d Text\u2014here.\n"
        "   code = 1\n\n\n\nNext   para_graph."
    )
    assert clean_text(raw) == 'title\n\nsome "quoted" text-here.\n\nnext para graph.\n'
    with pytest.raises(TypeError):
        clean_text(None)


def test_corpus_is_large_clean_and_offline():
    text = load_corpus()
    assert len(text) > 150_000 and set(text) <= ALPHABET
    train_text, valid_text, test_text = split_text(text)
    assert train_text + valid_text + test_text == text
    assert len(train_text) == int(0.8 * len(text))
