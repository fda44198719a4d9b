"""hands.json: round trip, defaults (query, box grid) and every validation error names the file."""

import json

import numpy as np
import pytest

from cohesiv.errors import InputError
from cohesiv.io import Hand, HandTracks, check_tracks_match_clip, parse_hands, read_hands, write_hands

SQUARE = [[10, 10], [20, 10], [20, 20], [10, 20]]


def _doc(**hand):
    h = {"id": "right", "side": "right", "points": SQUARE} | hand
    return {"version": 1, "image_size": [64, 48], "frames": {"0": [h]}}


def _write(tmp_path, doc, name="hands.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def test_round_trip(tmp_path):
    tracks = HandTracks(
        (64, 48),
        {
            0: [Hand("right", "right", np.array(SQUARE, np.float32)), Hand("h2", None, np.array(SQUARE) + 5)],
            3: [
                Hand(
                    "right", "right", np.array(SQUARE) + 0.25, box=(9.0, 9.0, 21.0, 21.0), query=(12.0, 13.0)
                )
            ],
        },
    )
    write_hands(tmp_path / "h.json", tracks)
    back = read_hands(tmp_path / "h.json")
    assert back.image_size == (64, 48) and sorted(back.frames) == [0, 3]
    assert [h.id for h in back.hands_at(0)] == ["right", "h2"]
    assert back.hands_at(0)[1].side is None
    np.testing.assert_allclose(back.hands_at(3)[0].points, np.array(SQUARE) + 0.25)
    assert back.hands_at(3)[0].box == (9.0, 9.0, 21.0, 21.0)
    assert back.hands_at(3)[0].query == (12.0, 13.0)
    assert back.hands_at(1) == []


def test_query_defaults_to_mean_of_points(tmp_path):
    t = read_hands(_write(tmp_path, _doc(points=[[0, 0], [4, 0], [4, 2], [0, 2], [2, 6]])))
    assert t.hands_at(0)[0].query == pytest.approx((2.0, 2.0))
    t = read_hands(_write(tmp_path, _doc(query=[11, 12])))
    assert t.hands_at(0)[0].query == (11.0, 12.0)


def test_box_only_gives_grid_points_inside_the_box(tmp_path):
    t = read_hands(_write(tmp_path, _doc(points=None, box=[10, 20, 30, 40])))
    pts = t.hands_at(0)[0].points
    assert pts.shape == (25, 2)
    assert pts[:, 0].min() > 10 and pts[:, 0].max() < 30 and pts[:, 1].min() > 20 and pts[:, 1].max() < 40
    np.testing.assert_allclose(t.hands_at(0)[0].query, (20.0, 30.0), atol=1e-5)
    # an empty points list with a box also means "use the box"
    assert (
        len(read_hands(_write(tmp_path, _doc(points=[], box=[10, 20, 30, 40]))).hands_at(0)[0].points) == 25
    )


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such hands file") as e:
        read_hands(tmp_path / "missing.json")
    assert "missing.json" in str(e.value)


def test_invalid_json(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"version": 1,\n "frames": {,}}')
    with pytest.raises(InputError, match="invalid JSON at line 2, column") as e:
        read_hands(p)
    assert "bad.json" in str(e.value)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (_doc(points=SQUARE[:3]), "frame 0, hand 0: 3 points; a homography needs at least 4"),
        (_doc(points=[*SQUARE[:3], [70, 10]]), r"point 3 \[70.0, 10.0\] lies outside the 64x48 image"),
        (_doc(points=[*SQUARE[:3], [10, -5]]), "lies outside the 64x48 image"),
        (_doc(side="middle"), "side must be 'left', 'right' or null, got 'middle'"),
        (_doc(points=None), r"needs 'points' \(>= 4\) or a 'box'"),
        (_doc(points=[[1, 2, 3], *SQUARE]), r"expected \[x, y\]"),
        (_doc(points=[["a", 2], *SQUARE]), "expected a finite number"),
        (_doc(box=[10, 10, 5, 20]), "x2 <= x1"),
        (_doc(query=[1]), r"query: expected \[x, y\]"),
        ({"version": 2, "image_size": [64, 48], "frames": {}}, "unsupported hands file version 2"),
        ({"image_size": [64, 0], "frames": {}}, "image_size must be"),
        ({"image_size": [64, 48]}, "'frames' must be an object"),
        ({"image_size": [64, 48], "frames": {"x": []}}, "frame key 'x' is not an integer"),
        ({"image_size": [64, 48], "frames": {"-1": []}}, "frame index -1 is negative"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_schema_errors_name_the_file_and_the_problem(tmp_path, doc, match):
    p = _write(tmp_path, doc, "tracks.json")
    with pytest.raises(InputError, match=match) as e:
        read_hands(p)
    assert str(e.value).startswith(str(p))


def test_duplicate_id_in_one_frame():
    doc = _doc()
    doc["frames"]["0"].append(dict(doc["frames"]["0"][0]))
    with pytest.raises(InputError, match="duplicate id 'right'"):
        parse_hands(doc, "x.json")


def test_points_slightly_outside_are_tolerated():
    t = parse_hands(_doc(points=[[-2.0, 0], [65.0, 0], [65.0, 47], [-2.0, 47]]))
    assert t.hands_at(0)[0].points.shape == (4, 2)


def test_check_tracks_match_clip():
    t = parse_hands(_doc())
    check_tracks_match_clip(t, (64, 48), 1, "h.json")
    with pytest.raises(InputError, match="hands file is for 64x48 images but the clip's frames are 32x24"):
        check_tracks_match_clip(t, (32, 24), 1, "h.json")
    t.frames[5] = t.frames[0]
    with pytest.raises(InputError, match="hands file has frame 5 but the clip has 3 frames"):
        check_tracks_match_clip(t, (64, 48), 3, "h.json")


def test_collinear_points_are_read_and_left_to_the_fit():
    # A detector can give one degenerate frame in hours of video: the reader keeps it and the
    # responsibility stage drops that hand for that frame with a count (cohesiv.responsibility).
    t = parse_hands(_doc(points=[[1, 1], [2, 2], [3, 3], [4, 4]]), "h.json")
    (hand,) = t.hands_at(0)
    assert hand.points.shape == (4, 2)
