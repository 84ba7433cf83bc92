"""The SCAN grammar and splits against the paper's counts and examples."""

import pytest

from seqbook.data.scan import interpret, length_split, scan_examples, simple_split


def test_scan_has_the_papers_size_and_length_split():
    examples = scan_examples()
    assert len(examples) == 20910 and len({c for c, _ in examples}) == 20910
    train, test = length_split()
    assert (len(train), len(test)) == (16990, 3920)  # the paper's length split
    assert max(len(a.split()) for _, a in train) == 22
    assert min(len(a.split()) for _, a in test) == 24
    train, test = simple_split()
    assert len(train) + len(test) == 20910 and len(test) == 4182
    assert not {c for c, _ in train} & {c for c, _ in test}
    assert simple_split() == (train, test)  # seeded


@pytest.mark.parametrize(
    "command, actions",
    [
        ("jump", "I_JUMP"),
        ("turn right", "I_TURN_RIGHT"),
        ("walk left", "I_TURN_LEFT I_WALK"),
        ("look opposite right", "I_TURN_RIGHT I_TURN_RIGHT I_LOOK"),
        ("turn opposite left", "I_TURN_LEFT I_TURN_LEFT"),
        ("turn around right", "I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT"),
        (
            "run around left",
            "I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN I_TURN_LEFT I_RUN",
        ),
        ("jump twice after walk thrice", "I_WALK I_WALK I_WALK I_JUMP I_JUMP"),
        (
            "look right and turn left twice",
            "I_TURN_RIGHT I_LOOK I_TURN_LEFT I_TURN_LEFT",
        ),
    ],
)
def test_scan_semantics(command, actions):
    assert " ".join(interpret(command)) == actions
    assert dict(scan_examples())[command] == actions
