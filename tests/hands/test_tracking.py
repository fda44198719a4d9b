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


def _hand21(cx, cy, size=40.0, spread=1.0):
    """21 keypoints of a fake hand: a wrist and five fingers of four points (``spread`` opens them)."""
    pts = [(0.0, 0.5)]
    for f in range(5):
        ang = np.deg2rad(-60 + 30 * f) * spread
        for j in range(1, 5):
            pts.append((0.12 * j * np.sin(ang), 0.5 - 0.12 * j * np.cos(ang)))
    p = np.array(pts, np.float32) * size + (cx, cy)
    x1, y1 = p.min(0)
    x2, y2 = p.max(0)
    return p, (float(x1), float(y1), float(x2), float(y2))


def test_a_false_hand_that_never_moves_like_a_hand_is_rejected():
    frames = {}
    for t in range(8):
        moving, box = _hand21(60 + 6 * t, 80 + 3 * np.sin(t), spread=1.0 + 0.1 * np.sin(t))  # a real hand
        still, sbox = _hand21(220, 60)  # a lid: the same rigid "hand" at the same place in every frame
        frames[t] = [
            Detection(moving, box, "left", 0.95),
            Detection(still + 0.05 * (t % 2), sbox, "right", 0.9),
        ]
    kept = track_hands(frames, reject_still=True)
    assert all([h.id for h in kept[t]] == ["left"] for t in frames)
    assert all(len(track_hands(frames)[t]) == 2 for t in frames)  # without rejection both stay
    # a hand that holds still but articulates (fingers close) is kept
    for t in frames:
        p, b = _hand21(220, 60, spread=1.0 - 0.08 * t)
        frames[t][1] = Detection(p, b, "right", 0.9)
    assert all(len(track_hands(frames, reject_still=True)[t]) == 2 for t in frames)


def test_one_frame_hand_is_rejected_with_min_frames():
    frames = {t: [_det(40 + 3 * t, 40, "left")] for t in range(5)}
    frames[2] = frames[2] + [_det(200, 100, "right")]
    assert [len(track_hands(frames, min_frames=2)[t]) for t in range(5)] == [1] * 5
    assert len(track_hands(frames)[2]) == 2


def test_unsure_side_in_conflict_takes_the_free_side():
    # FPHA-like: the left hand reported as "right" at 0.55 beside the true right hand at 0.95
    frames = {
        t: [_det(40 + t, 150, "right", 0.55)] + ([_det(200 - t, 60, "right", 0.95)] if t >= 3 else [])
        for t in range(10)
    }
    out = track_hands(frames)
    assert [(h.id, h.side) for h in out[5]] == [("left", "left"), ("right", "right")]
    assert out[0][0].id == "left"


def test_crop_boxes_cover_the_image_and_merge_drops_the_same_hand():
    from cohesiv.hands.detector import crop_boxes, merge_detections

    boxes = crop_boxes((640, 480), grid=2, overlap=0.3)
    assert len(boxes) == 4 and boxes[0][:2] == (0, 0) and boxes[-1][2:] == (640, 480)
    cover = np.zeros((480, 640), bool)
    for x0, y0, x1, y1 in boxes:
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    a, b, far = _det(100, 100, "left"), _det(106, 104, "left", 0.8), _det(300, 100, "right")
    assert merge_detections([b, far], keep=[a]) == [a, far]  # b is a, seen again
