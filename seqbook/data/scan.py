"""SCAN (Lake and Baroni, 2018), generated from its phrase-structure grammar.

A *command* such as ``"jump around left twice and walk"`` is translated into a sequence
of *actions* (``I_TURN_LEFT I_JUMP ...``). The grammar has a finite language of 20,910
commands; :func:`scan_examples` lists each exactly once, with its actions, in a fixed
order. Two splits are provided:

* :func:`simple_split` -- a random 80/20 split of all commands (seeded);
* :func:`length_split` -- train on commands whose action sequence has at most 22
  actions, test on the longer ones, as in the paper's length experiment.

Grammar (terminals in quotes)::

    C -> S "and" S | S "after" S | S
    S -> V "twice" | V "thrice" | V
    V -> D "opposite" DIR | D "around" DIR | D | U
    D -> U DIR | "turn" DIR
    U -> "walk" | "look" | "run" | "jump"
    DIR -> "left" | "right"

where ``D "opposite" DIR`` and ``D "around" DIR`` are written ``"walk opposite left"``,
``"turn around right"``: the direction word follows ``opposite``/``around``.
"""

from __future__ import annotations

import random

__all__ = [
    "scan_examples",
    "simple_split",
    "length_split",
    "interpret",
    "LENGTH_SPLIT_MAX_ACTIONS",
]

LENGTH_SPLIT_MAX_ACTIONS = 22
_PRIMITIVES = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
_TURNS = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}
_REPEATS = {"twice": 2, "thrice": 3}


def _verb_phrases() -> list[str]:
    """Every V, in a fixed order."""
    phrases = []
    for verb in [*_PRIMITIVES, "turn"]:
        for direction in _TURNS:
            phrases.append(f"{verb} {direction}")
            phrases.append(f"{verb} opposite {direction}")
            phrases.append(f"{verb} around {direction}")
    phrases.extend(_PRIMITIVES)  # a bare primitive; a bare "turn" is not a command
    return phrases


def _interpret_verb_phrase(words: list[str]) -> list[str]:
    verb = words[0]
    action = [] if verb == "turn" else [_PRIMITIVES[verb]]
    if len(words) == 1:
        return action
    turn = [_TURNS[words[-1]]]
    if len(words) == 2:  # "walk left": turn, then act
        return turn + action
    if words[1] == "opposite":  # turn twice, then act
        return turn * 2 + action
    return (turn + action) * 4  # around: four times (turn, act)


def _interpret_sentence(words: list[str]) -> list[str]:
    times = _REPEATS.get(words[-1], 1)
    if times > 1:
        words = words[:-1]
    return _interpret_verb_phrase(words) * times


def interpret(command: str) -> list[str]:
    """The action sequence of one command (a list of action names)."""
    words = command.split()
    if "and" in words:
        i = words.index("and")
        return _interpret_sentence(words[:i]) + _interpret_sentence(words[i + 1 :])
    if "after" in words:  # "x after y" does y first
        i = words.index("after")
        return _interpret_sentence(words[i + 1 :]) + _interpret_sentence(words[:i])
    return _interpret_sentence(words)


def scan_examples() -> list[tuple[str, str]]:
    """Every SCAN command exactly once, as ``(command, actions)`` string pairs."""
    sentences = [
        f"{v} {r}".strip() for v in _verb_phrases() for r in ("", "twice", "thrice")
    ]
    commands = list(sentences)
    for conjunction in ("and", "after"):
        commands.extend(f"{a} {conjunction} {b}" for a in sentences for b in sentences)
    return [(command, " ".join(interpret(command))) for command in commands]


def simple_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A random split of all commands: ``(train, test)``."""
    examples = scan_examples()
    random.Random(seed).shuffle(examples)
    n_test = round(test_fraction * len(examples))
    return examples[n_test:], examples[:n_test]


def length_split(
    max_train_actions: int = LENGTH_SPLIT_MAX_ACTIONS,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Train on commands with at most ``max_train_actions`` actions, test on the
    rest."""
    train, test = [], []
    for command, actions in scan_examples():
        (train if len(actions.split()) <= max_train_actions else test).append(
            (command, actions)
        )
    return train, test
