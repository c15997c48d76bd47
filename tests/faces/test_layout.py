"""Flip pairs checked against the point names, for every layout kplab defines.

A mirror turns the subject's left into their right, so point `left_x` must pair with `right_x`
(the words `left` and `right` traded, everything else equal) and a point whose name says no side
(nose tip, lip centres) pairs with nothing. The pairs are derived here from the names alone.
"""

import numpy as np
import pytest

from kplab.faces import layout as layout_module
from kplab.faces.layout import KAGGLE15, Layout

SIDES = {"left": "right", "right": "left"}


def all_layouts() -> list[Layout]:
    """Every Layout defined in kplab.faces.layout (a registry added later is covered the same way)."""
    found = {id(v): v for v in vars(layout_module).values() if isinstance(v, Layout)}
    for value in vars(layout_module).values():  # layouts kept in a registry dict, if there is one
        if isinstance(value, dict):
            found.update({id(v): v for v in value.values() if isinstance(v, Layout)})
    return list(found.values())


def mirror_name(name: str) -> str:
    return "_".join(SIDES.get(word, word) for word in name.split("_"))


def pairs_from_names(names) -> set[tuple[int, int]]:
    """(subject-left index, subject-right index) for every name that says a side."""
    pairs = set()
    for i, name in enumerate(names):
        if "left" in name.split("_"):
            partner = mirror_name(name)
            assert partner in names, f"{name} has no mirror point {partner}"
            pairs.add((i, names.index(partner)))
    return pairs


def flip_pair_problems(layout: Layout) -> list[str]:
    """What is wrong with a layout's flip pairs, judged by its names (empty when nothing is)."""
    names = list(layout.names)
    if not any(word in SIDES for name in names for word in name.split("_")):
        return [f"{layout.name}: no point name says left or right, so its flip pairs cannot be checked"]
    expected = pairs_from_names(names)
    given = {tuple(p) for p in layout.flip_pairs}
    problems = [f"{layout.name}: pair {names[a]} <-> {names[b]} is not a mirror pair" for a, b in sorted(given - expected)]
    problems += [f"{layout.name}: missing pair {names[a]} <-> {names[b]}" for a, b in sorted(expected - given)]
    return problems


def test_every_layout_is_found():
    assert KAGGLE15 in all_layouts()


@pytest.mark.parametrize("layout", all_layouts(), ids=lambda lay: lay.name)
def test_flip_pairs_follow_the_names(layout):
    assert flip_pair_problems(layout) == []
    # The permutation the flips use: every named point goes to its mirror name, unsided points stay.
    perm = layout.flip_permutation
    assert [layout.names[p] for p in perm] == [mirror_name(n) for n in layout.names]


def test_the_check_catches_crossed_eye_corners():
    # Inner corner of one eye paired with the outer corner of the other: a plausible slip.
    crossed = Layout("crossed", KAGGLE15.names, ((0, 1), (2, 5), (3, 4), (6, 8), (7, 9), (11, 12)))
    assert len(flip_pair_problems(crossed)) == 4
    # Pairs written right-first also count as wrong (the layout stores subject-left first).
    reversed_pair = Layout("reversed", KAGGLE15.names, ((1, 0), (2, 4), (3, 5), (6, 8), (7, 9), (11, 12)))
    assert flip_pair_problems(reversed_pair) != []
    missing = Layout("missing", KAGGLE15.names, ((0, 1), (2, 4), (3, 5), (6, 8), (7, 9)))
    assert flip_pair_problems(missing) == ["missing: missing pair mouth_left_corner <-> mouth_right_corner"]


# The task definitions (DESIGN.md), written out by index.
DEFINED_PAIRS = {
    "kaggle15": {(0, 1), (2, 4), (3, 5), (6, 8), (7, 9), (11, 12)},
    "ibug68": {*((i, 16 - i) for i in range(8)), (17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35),
               (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (48, 54), (49, 53),
               (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)},
}


def test_layouts_with_a_task_definition_pair_as_defined():
    checked = 0
    for layout in all_layouts():
        if layout.name in DEFINED_PAIRS:  # as unordered pairs: which side comes first is the names' job
            assert {frozenset(p) for p in layout.flip_pairs} == {frozenset(p) for p in DEFINED_PAIRS[layout.name]}
            checked += 1
    assert checked >= 1
    np.testing.assert_array_equal(KAGGLE15.flip_permutation, [1, 0, 4, 5, 2, 3, 8, 9, 6, 7, 10, 12, 11, 13, 14])


def test_layout_round_trips_through_plain_data_and_names_its_csv_columns():
    tiny = Layout("tiny", ("left_eye", "right_eye", "nose"), ((0, 1),))
    assert tiny.to_dict() == {"name": "tiny", "names": ["left_eye", "right_eye", "nose"], "flip_pairs": [[0, 1]]}
    assert Layout.from_dict(tiny.to_dict()) == tiny
    assert Layout.from_dict({"name": "k", "names": list(KAGGLE15.names),
                             "flip_pairs": [list(p) for p in KAGGLE15.flip_pairs]}).flip_pairs == KAGGLE15.flip_pairs
    assert tiny.csv_columns() == ["left_eye_x", "left_eye_y", "right_eye_x", "right_eye_y", "nose_x", "nose_y"]
    assert KAGGLE15.csv_columns()[:3] == ["left_eye_center_x", "left_eye_center_y", "right_eye_center_x"]
    assert (tiny.n_points, tiny.n_outputs, tiny.index("nose")) == (3, 6, 2)


@pytest.mark.parametrize("names, pairs, message", [
    (("a", "b", "a"), (), "layout bad: keypoint names repeat"),
    (("a", "b", "c"), ((0, 3),), "layout bad: flip pairs must be distinct, in-range indices"),  # one past the end
    (("a", "b", "c"), ((0, -1),), "layout bad: flip pairs must be distinct, in-range indices"),
    (("a", "b", "c"), ((0, 1), (1, 2)), "layout bad: flip pairs must be distinct, in-range indices"),  # in range, repeated
])
def test_bad_layouts_are_refused_by_name(names, pairs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Layout("bad", names, pairs)
