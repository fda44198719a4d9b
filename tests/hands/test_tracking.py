import numpy as np

from cohesiv.hands.tracking import Detection, link_detections, track_hands
from cohesiv.io import parse_hands
from cohesiv.io.hands import HandTracks


def _det(cx, cy, side=None, score=0.9, size=20.0):
    g = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.3]], np.float32) * size
    pts = g + (cx - size / 2, cy - size / 2)
    return Detection(pts, (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), side, score)


def test_two_hands_get_side_ids_even_when_order_swaps():
    frames = {}
    for t in range(6):
        a, b = _det(30 + 2 * t, 50, "left"), _det(150 - 2 * t, 50, "right")
        frames[t] = [a, b] if t % 2 else [b, a]
    out = track_hands(frames)
    for t in range(6):
        assert [h.id for h in out[t]] == ["left", "right"]
        left = out[t][0]
        assert np.allclose(left.query, (30 + 2 * t, 50 - 0.8), atol=1e-4)  # mean of its own points
        assert left.box[0] < 100 < out[t][1].box[0]


def test_side_flicker_is_smoothed():
    frames = {t: [_det(40 + t, 40, "right" if t != 3 else "left", 0.9 if t != 3 else 0.6)] for t in range(6)}
    out = track_hands(frames)
    assert {h.id for t in out for h in out[t]} == {"right"}
    assert out[3][0].side == "right"


def test_same_side_overlapping_tracks_longest_keeps_the_side_name():
    frames = {t: [_det(30, 40, "right")] + ([_det(200, 40, "right")] if t >= 1 else []) for t in range(4)}
    frames[4] = [_det(200, 40, "right")]
    out = track_hands(frames)
    assert [(h.id, h.box[0]) for h in out[0]] == [("right", 20.0)]
    assert [(h.id, h.box[0]) for h in out[2]] == [("hand0", 190.0), ("right", 20.0)]  # ids follow positions
    assert [(h.id, h.box[0]) for h in out[4]] == [("hand0", 190.0)]
    frames = {t: [_det(30, 40, "right"), _det(200, 40, "right")] for t in range(3)}
    assert [h.id for h in track_hands(frames)[0]] == ["hand0", "right"]  # tie: first appearance wins


def test_gap_and_jump():
    frames = {0: [_det(50, 50, "left")], 1: [], 2: [], 3: [_det(54, 50, "left")], 4: [_det(300, 300, "left")]}
    links = link_detections(frames)
    assert links[0] == links[3] == [0]
    assert links[4] == [1]  # jumped too far: a new track
    assert link_detections(frames, max_gap=1)[3] == [1]  # gap longer than allowed
    out = track_hands(frames)
    assert out[1] == [] and out[2] == []
    assert out[0][0].id == out[3][0].id == "left" == out[4][0].id  # disjoint in time: both may be "left"


def test_unknown_side_and_schema_round_trip():
    frames = {0: [_det(50, 50, None)], 1: [_det(52, 50, None)]}
    out = track_hands(frames)
    assert out[0][0].id == out[1][0].id == "hand0" and out[0][0].side is None
    tracks = HandTracks((320, 240), out)
    back = parse_hands(tracks.to_json())
    assert sorted(back.frames) == [0, 1]
    np.testing.assert_allclose(back.frames[1][0].points, out[1][0].points, atol=1e-3)
