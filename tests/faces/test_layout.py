"""Layouts: flip pairs checked against the point names, against geometry and against the task
definitions, for every layout kplab defines; references, derivations and the file round trip.

A mirror turns the subject's left into their right, so in a layout named like Kaggle's, point
`left_x` must pair with `right_x` (the words `left` and `right` traded, everything else equal) and a
point whose name says no side (nose tip, lip centres) pairs with nothing. iBUG's names number each
side's points in image order (right_eye_1 is the outer corner, left_eye_1 the inner one), so its
pairs are checked against its template's mirror image and the 300-W definition instead.
"""

import json

import numpy as np
import pytest

from kplab.errors import KplabError
from kplab.faces.training import layout as layout_module
from kplab.faces.training.layout import (IBUG68, KAGGLE15, LAYOUTS, Contour, Layout, convert_points, get_layout, layout_for_count,
                                layout_for_names)
from kplab.faces.training.metrics import keypoint_metrics, per_image_nme, per_region_table

SIDES = {"left": "right", "right": "left"}


def all_layouts() -> list[Layout]:
    """Every Layout defined in kplab.faces.training.layout (a registry added later is covered the same way)."""
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


def pairs_by_name(layout: Layout) -> bool:
    """Whether the names pair by side alone (Kaggle-style): some name says a side, and no sided name is
    numbered (numbered points, as iBUG's right_eye_1..6, run in image order on both sides)."""
    sided = [n for n in layout.names if {"left", "right"} & set(n.split("_"))]
    return bool(sided) and not any(n.split("_")[-1].isdigit() for n in sided)


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
    assert KAGGLE15 in all_layouts() and IBUG68 in all_layouts()
    assert pairs_by_name(KAGGLE15) and not pairs_by_name(IBUG68)


@pytest.mark.parametrize("layout", [lay for lay in all_layouts() if pairs_by_name(lay)], ids=lambda lay: lay.name)
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


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_flip_pairs_are_the_mirror_image_of_the_template(layout):
    """Mirror the layout's own template about its left-right axis and match mirrored points to points by
    the flip permutation: no exchange of two matches may bring the points closer (a pair that joins an
    inner and an outer corner, or 37 with 43 instead of 44, fails). Nearest neighbours alone would not
    do: iBUG's outer and inner mouth corners nearly coincide."""
    shape = np.asarray(layout.template)  # (K, 2)
    mirrored = shape * (-1, 1) + (2 * shape[:, 0].mean(), 0)
    cost = ((mirrored[:, None] - shape[None]) ** 2).sum(-1)  # (K, K) squared distances
    perm, rows = layout.flip_permutation, np.arange(layout.n_points)
    kept = cost[rows, perm]  # (K,)
    exchanged = cost[rows[:, None], perm[None, :]] + cost[rows[None, :], perm[:, None]]  # i gets perm[j], j perm[i]
    assert (kept[:, None] + kept[None, :] - exchanged).max() <= 1e-9


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_a_flip_pair_is_subject_left_then_subject_right(layout):
    """'left' is the subject's left, which shows at image right (larger x)."""
    shape = np.asarray(layout.template)
    for left, right in layout.flip_pairs:
        assert shape[left, 0] > shape[right, 0], (layout.names[left], layout.names[right])
        if layout is KAGGLE15:
            assert layout.names[left].startswith("left_") or layout.names[left].startswith("mouth_left")


def test_ibug68_markup_as_the_300w_convention_numbers_it():
    assert IBUG68.n_points == 68
    assert {k: (v[0], v[-1]) for k, v in IBUG68.regions.items()} == {
        "jaw": (0, 16), "brows": (17, 26), "nose": (27, 35), "eyes": (36, 47), "mouth": (48, 67)}
    assert IBUG68.references["io"] == ((45,), (36,))  # outer eye corners: 46 and 37 counted from 1
    assert IBUG68.references["ip"] == (tuple(range(42, 48)), tuple(range(36, 42)))
    perm = IBUG68.flip_permutation
    assert [perm[i] for i in (0, 8, 17, 21, 30, 31, 36, 39, 40, 48, 51, 57, 60, 62, 65)] == \
           [16, 8, 26, 22, 30, 35, 45, 42, 47, 54, 51, 57, 64, 62, 67]


def test_nme_io_of_68_points_divides_by_the_outer_eye_corners():
    truth = np.asarray(IBUG68.template)[None] / 48  # (1, 68, 2), any units
    pred = truth.copy()
    pred[0, 10] += (0.3, 0.4)  # one point off by 0.5
    io = np.linalg.norm(truth[0, 45] - truth[0, 36])
    ip = np.linalg.norm(truth[0, 42:48].mean(0) - truth[0, 36:42].mean(0))
    np.testing.assert_allclose(per_image_nme(pred, truth, IBUG68, "io"), [0.5 / 68 / io])
    np.testing.assert_allclose(per_image_nme(pred, truth, IBUG68, "ip"), [0.5 / 68 / ip])
    rows = {r["region"]: r for r in per_region_table(pred, truth, IBUG68)}
    np.testing.assert_allclose(rows["jaw"]["nme_io"], 0.5 / 17 / io)
    assert rows["eyes"]["nme_io"] == 0 and rows["all"]["points"] == 68
    np.testing.assert_allclose(rows["jaw"]["mean_px"], 48 * 0.5 / 17)
    metrics = keypoint_metrics(pred, truth, IBUG68)
    np.testing.assert_allclose(metrics["nme_io"], 0.5 / 68 / io)
    np.testing.assert_allclose(metrics["score"], 1 / (2 * (0.25 / 136)))


def test_68_points_give_the_15_kaggle_points():
    points = np.random.default_rng(0).normal(size=(3, 68, 2))
    fifteen = convert_points(points, IBUG68, KAGGLE15)
    assert fifteen.shape == (3, 15, 2)
    np.testing.assert_allclose(fifteen[:, KAGGLE15.index("left_eye_center")], points[:, 42:48].mean(1))
    np.testing.assert_allclose(fifteen[:, KAGGLE15.index("right_eye_outer_corner")], points[:, 36])
    np.testing.assert_allclose(fifteen[:, KAGGLE15.index("nose_tip")], points[:, 30])
    np.testing.assert_allclose(fifteen[:, KAGGLE15.index("mouth_center_bottom_lip")], points[:, 57])
    points[1, 44] = np.nan  # a missing left-eye point leaves the left eye centre missing, nothing else
    fifteen = convert_points(points, IBUG68, KAGGLE15)
    assert np.isnan(fifteen[1]).any(-1).tolist() == [True] + [False] * 14
    # deriving commutes with mirroring: flip the 68, derive = derive, then flip the 15
    mirror68 = (points * (-1, 1))[:, IBUG68.flip_permutation]
    mirror15 = (convert_points(points, IBUG68, KAGGLE15) * (-1, 1))[:, KAGGLE15.flip_permutation]
    np.testing.assert_allclose(convert_points(mirror68, IBUG68, KAGGLE15), mirror15)
    with pytest.raises(KplabError, match="cannot give ibug68"):
        KAGGLE15.converter(IBUG68)


def test_layouts_are_found_by_names_count_name_or_file(tmp_path):
    assert layout_for_names(list(reversed(IBUG68.names))) is IBUG68
    assert layout_for_count(15) is KAGGLE15
    with pytest.raises(KplabError, match="match no known layout"):
        layout_for_names(["a", "b"])
    assert get_layout("ibug68") is IBUG68
    custom = {"name": "eyes2", "names": ["left_eye_center", "right_eye_center"], "flip_pairs": [[0, 1]],
              "contours": [{"points": [0, 1]}]}
    (tmp_path / "eyes2.json").write_text(json.dumps(custom))
    eyes = get_layout(tmp_path / "eyes2.json")
    assert eyes.n_points == 2 and eyes.contours[0].points == (0, 1)
    with pytest.raises(KplabError, match="unknown layout"):
        get_layout("nope")


def test_a_layout_survives_its_dict_and_old_model_files_get_the_registered_one():
    for layout in LAYOUTS.values():
        again = Layout.from_dict(json.loads(json.dumps(layout.to_dict())))
        assert again == layout and again.regions == layout.regions and again.derive == layout.derive
    bare = {"name": "kaggle15", "names": list(KAGGLE15.names), "flip_pairs": [list(p) for p in KAGGLE15.flip_pairs]}
    assert Layout.from_dict(bare) is KAGGLE15
    with pytest.raises(ValueError, match="outside"):
        Layout("bad", ("a", "b"), (), regions={"r": (0, 2)})


@pytest.mark.real
def test_faces15_points_are_derived_from_its_68_source_points(shared_data):
    data = np.load(shared_data / "faces" / "faces15.npz")
    derived = convert_points(data["keypoints68"], IBUG68, KAGGLE15)
    np.testing.assert_allclose(derived, data["keypoints"], atol=1e-4)


# ---- plain data, conversion and lookup, on small hand-built layouts ----------------------------------

FOUR = Layout("four", ("l_eye", "r_eye", "nose", "chin"), ((0, 1),),
              regions={"eyes": (0, 1), "middle": (2, 3)},
              contours=(Contour((0, 1, 2), closed=True), Contour((2, 3))),
              references={"io": ((0,), (1,)), "ip": ((0, 2), (1, 3))},
              derive={"two": ((0, 1), (2, 3)), "eyes2": ((0,), (1,))},
              template=((60.0, 40.0), (36.0, 40.0), (48.0, 55.0), (48.0, 80.0)),
              description="a test face")


def test_a_full_layout_writes_every_field_and_reads_it_back():
    d = FOUR.to_dict()
    assert d == {"name": "four", "names": ["l_eye", "r_eye", "nose", "chin"], "flip_pairs": [[0, 1]],
                 "description": "a test face",
                 "regions": {"eyes": [0, 1], "middle": [2, 3]},
                 "contours": [{"points": [0, 1, 2], "closed": True}, {"points": [2, 3]}],
                 "references": {"io": [[0], [1]], "ip": [[0, 2], [1, 3]]},
                 "derive": {"two": [[0, 1], [2, 3]], "eyes2": [[0], [1]]},
                 "template": [[60.0, 40.0], [36.0, 40.0], [48.0, 55.0], [48.0, 80.0]]}
    again = Layout.from_dict(json.loads(json.dumps(d)))
    assert again == FOUR and again is not FOUR
    assert (again.regions, again.references, again.derive) == (FOUR.regions, FOUR.references, FOUR.derive)
    assert again.contours == FOUR.contours and again.description == "a test face"
    assert again.template == FOUR.template and type(again.template[0][0]) is float
    assert all(type(g) is tuple for g in again.regions.values())
    assert all(type(g) is tuple for pair in again.references.values() for g in pair)
    assert all(type(g) is tuple for rows in again.derive.values() for g in rows)
    # an integer template is read as floats; a layout without extras gets the defaults
    d["template"] = [[60, 40], [36, 40], [48, 55], [48, 80]]
    assert Layout.from_dict(d).template == FOUR.template
    bare = Layout.from_dict({"name": "b", "names": ["x"], "flip_pairs": []})
    assert (bare.regions, bare.contours, bare.references, bare.derive, bare.template, bare.description) == \
           ({}, (), {}, {}, None, "")


@pytest.mark.parametrize("d", [{"names": ["a"], "flip_pairs": []}, {"name": "x", "flip_pairs": []},
                               {"name": "x", "names": ["a"]}, {"name": "x", "names": ["a"], "flip_pairs": [["z"]]},
                               {"name": "x", "names": 3, "flip_pairs": []}])
def test_a_layout_dict_without_its_three_fields_is_refused_by_name(d):
    with pytest.raises(KplabError, match=r"^a layout needs name, names and flip_pairs \(.+\)$"):
        Layout.from_dict(d)


def test_only_a_registered_name_with_its_own_points_and_pairs_gets_the_registered_layout():
    names, pairs = list(KAGGLE15.names), [list(reversed(p)) for p in KAGGLE15.flip_pairs]
    assert Layout.from_dict({"name": "kaggle15", "names": names, "flip_pairs": pairs}) is KAGGLE15  # pair order free
    fewer = Layout.from_dict({"name": "kaggle15", "names": names, "flip_pairs": pairs[1:]})
    assert fewer is not KAGGLE15 and len(fewer.flip_pairs) == len(KAGGLE15.flip_pairs) - 1 and fewer.regions == {}
    renamed = Layout.from_dict({"name": "kaggle15", "names": names[::-1], "flip_pairs": []})
    assert renamed is not KAGGLE15 and renamed.names == tuple(names[::-1])
    for name in LAYOUTS:  # the registry is what the packaged files hold
        assert layout_module._load_registered(name) is LAYOUTS[name] or \
               layout_module._load_registered(name).to_dict() == LAYOUTS[name].to_dict()
    assert layout_module._load_registered("ibug68").to_dict() == IBUG68.to_dict()
    assert layout_module._load_registered("kaggle15").names == KAGGLE15.names


@pytest.mark.parametrize("kw, message", [
    ({"regions": {"r": (0, 4)}}, "a region, contour, reference or derivation names an index outside 0..3, or is empty"),
    ({"regions": {"r": ()}}, "a region, contour, reference or derivation names an index outside 0..3, or is empty"),
    ({"contours": (Contour((-1, 0)),)}, "a region, contour, reference or derivation names an index outside 0..3"),
    ({"derive": {"x": ((0,), (4,))}}, "a region, contour, reference or derivation names an index outside 0..3"),
    ({"references": {"io": ((0,), (5,))}}, "a region, contour, reference or derivation names an index outside 0..3"),
    ({"references": {"io": ((0,), (1,), (2,))}}, "each reference is a \\(left, right\\) pair of index groups"),
    ({"references": {"io": ((0,),)}}, "each reference is a \\(left, right\\) pair of index groups"),
    ({"template": ((0.0, 0.0),) * 3}, "template must hold 4 \\(x, y\\) points"),
    ({"template": ((0.0, 0.0),) * 3 + ((0.0, 0.0, 0.0),)}, "template must hold 4 \\(x, y\\) points"),
    ({"template": ((0.0, 0.0),) * 4 + ((0.0,),)}, "template must hold 4 \\(x, y\\) points"),
])
def test_bad_groups_references_and_templates_are_refused_by_name(kw, message):
    with pytest.raises(ValueError, match=f"^layout bad: {message}"):
        Layout("bad", ("a", "b", "c", "d"), (), **kw)
    Layout("good", ("a", "b", "c", "d"), (), references={"io": ((0,), (3,))}, template=((0.0, 1.0),) * 4)


def test_reference_points_average_each_side_on_any_leading_shape():
    points = np.array([[[2.0, 0.0], [-2.0, 0.0], [4.0, 2.0], [-6.0, 2.0]]])  # (1, 4, 2)
    np.testing.assert_array_equal(FOUR.reference_points(points, "io"), [[[2.0, 0.0], [-2.0, 0.0]]])
    np.testing.assert_array_equal(FOUR.reference_points(points, "ip"), [[[3.0, 1.0], [-4.0, 1.0]]])
    np.testing.assert_array_equal(FOUR.reference_points(points[0].tolist(), "ip"), [[3.0, 1.0], [-4.0, 1.0]])
    stack = np.stack([points[0], 2 * points[0]])[None]  # (1, 2, 4, 2)
    assert FOUR.reference_points(stack, "io").shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(FOUR.reference_points(stack, "io")[0, 1], [[4.0, 0.0], [-4.0, 0.0]])
    assert FOUR.reference_points(points, "nope") is None
    assert Layout("plain", ("a", "b"), ()).reference_points(points[:, :2], "io") is None


def test_converter_weights_identity_and_what_a_layout_cannot_give():
    np.testing.assert_array_equal(FOUR.converter(get_layout_like(FOUR)), np.eye(4))
    two = Layout("two", ("eyes", "lower"), ())
    np.testing.assert_array_equal(FOUR.converter(two), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    with pytest.raises(KplabError, match=r"^layout four cannot give three points \(it gives: four, two, eyes2\)$"):
        FOUR.converter(Layout("three", ("a", "b", "c"), ()))
    with pytest.raises(KplabError, match=r"^layout eyes2 cannot give two points \(it gives: eyes2\)$"):
        Layout("eyes2", ("a", "b"), ()).converter(Layout("two", ("a", "c"), ()))
    with pytest.raises(KplabError, match=r"^layout  cannot give t points \(it gives: none\)$"):  # a nameless layout
        Layout("", ("a",), ()).converter(Layout("t", ("b",), ()))
    with pytest.raises(KplabError, match=r"^layout four cannot give eyes2 points"):  # a derivation of 2, asked for 3
        FOUR.converter(Layout("eyes2", ("a", "b", "c"), ()))


def get_layout_like(layout):
    """Another layout object with the same point names under another name."""
    return Layout("copy", layout.names, ())


def test_convert_points_averages_groups_and_leaves_a_point_missing_when_a_source_is():
    two = Layout("two", ("eyes", "lower"), ())
    points = np.array([[[2.0, 0.0], [-2.0, 4.0], [0.0, 1.0], [0.0, 3.0]],
                       [[1.0, 1.0], [np.nan, np.nan], [0.0, 2.0], [2.0, 2.0]]])
    out = convert_points(points, FOUR, two)
    assert out.dtype == np.float64 and out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out[0], [[0.0, 2.0], [0.0, 2.0]])
    assert np.isnan(out[1, 0]).all()
    np.testing.assert_array_equal(out[1, 1], [1.0, 2.0])
    # a JSON-style nested list with null for a missing point, and float32 input
    listed = [[[2, 0], [None, None], [0, 1], [0, 3]]]
    got = convert_points(listed, FOUR, two)
    assert np.isnan(got[0, 0]).all() and got[0, 1].tolist() == [0.0, 2.0]
    np.testing.assert_array_equal(convert_points(points[:1].astype(np.float32), FOUR, two), out[:1])
    np.testing.assert_array_equal(convert_points(points[0], FOUR, FOUR), points[0])  # no leading axis, identity


def test_stacked_layout_appends_prefixed_names_and_shifted_pairs():
    small = Layout("small", ("l", "r", "c"), ((0, 1),))
    both = layout_module.stacked(small, FOUR)
    assert both.name == "small+four"
    assert both.names == ("l", "r", "c", "dense:l_eye", "dense:r_eye", "dense:nose", "dense:chin")
    assert both.flip_pairs == ((0, 1), (3, 4))
    np.testing.assert_array_equal(both.flip_permutation, [1, 0, 2, 4, 3, 5, 6])
    assert layout_module.stacked(FOUR, small, prefix="x.").names[4:] == ("x.l", "x.r", "x.c")
    assert layout_module.stacked(FOUR, small, prefix="x.").flip_pairs == ((0, 1), (4, 5))


def test_lookup_errors_name_what_is_known(tmp_path):
    with pytest.raises(KplabError, match=r"^crops: its 2 keypoint names match no known layout \(kaggle15, ibug68\); "
                                         r"pass --layout$"):
        layout_for_names(["a", "b"], where="crops")
    assert layout_for_names(KAGGLE15.names) is KAGGLE15
    assert layout_for_count(68) is IBUG68
    with pytest.raises(KplabError, match=r"^x.pts: 5 points per face match no known layout "
                                         r"\(kaggle15: 15, ibug68: 68\); pass --layout$"):
        layout_for_count(5, where="x.pts")
    with pytest.raises(KplabError, match=r"^data: 5 points per face"):
        layout_for_count(5)
    with pytest.raises(KplabError, match=r"^data: its 1 keypoint names"):
        layout_for_names(["a"])
    with pytest.raises(KplabError, match=r"^unknown layout 'nope': use one of kaggle15, ibug68 or a layout \.json file$"):
        get_layout("nope")
    missing = tmp_path / "missing.json"
    with pytest.raises(KplabError, match=r"^unknown layout '.*missing\.json'"):
        get_layout(missing)
    text = tmp_path / "four.txt"
    text.write_text(json.dumps(FOUR.to_dict()))
    with pytest.raises(KplabError, match=r"^unknown layout"):
        get_layout(text)  # a layout file must end in .json
    upper = tmp_path / "four.JSON"
    upper.write_text(json.dumps(FOUR.to_dict()))
    assert get_layout(upper) == FOUR and get_layout(str(upper)).regions == FOUR.regions
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(KplabError, match=r"broken\.json: not a layout file \(.+\)$"):
        get_layout(broken)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "names": ["a", "a"], "flip_pairs": []}))
    with pytest.raises(KplabError, match=r"bad\.json: not a layout file \(layout bad: keypoint names repeat\)$"):
        get_layout(bad)
