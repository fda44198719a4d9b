import numpy as np
import pytest

from cohesiv.errors import CohesivError
from cohesiv.hands.detector import landmarks_to_detection
from cohesiv.hands.model_setup import hand_model_path, is_valid_bundle

EGO = "ego4d-lavila-clips/3c0dffd0-e38e-4643-bc48-d513943dc20b_012_014.mp4"
TEDDY = "cotracker-handheld-videos/teddy.mp4"


def test_landmarks_to_pixels_origin_at_pixel_centre():
    lm = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.25], [0.25, 0.75]])
    d = landmarks_to_detection(lm, (100, 40), "left", 0.8)
    np.testing.assert_allclose(d.points, [[-0.5, -0.5], [99.5, 39.5], [49.5, 9.5], [24.5, 29.5]])
    assert d.box == (-0.5, -0.5, 99.5, 39.5)
    assert (d.side, d.score) == ("left", 0.8)


def test_landmarks_outside_are_clipped_or_dropped():
    lm = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.9, 0.9], [1.01, 0.5], [1.5, 0.5], [np.nan, 0.2]])
    d = landmarks_to_detection(lm, (100, 100), tolerance=2.0)
    assert len(d.points) == 5  # 1.01 -> 1 px outside: clipped; 1.5 and NaN: dropped
    assert d.points[:, 0].max() == pytest.approx(99.5)
    assert d.box[2] == pytest.approx(99.5)


def test_too_few_or_collinear_points_give_no_detection():
    assert (
        landmarks_to_detection(np.array([[0.1, 0.1], [0.2, 0.2], [2.0, 2.0], [3.0, 3.0]]), (50, 50)) is None
    )
    line = np.stack([np.linspace(0.1, 0.9, 21), np.full(21, 0.5)], 1)
    assert landmarks_to_detection(line, (50, 50)) is None


def test_missing_model_says_how_to_build_it(tmp_path, monkeypatch):
    from cohesiv.hands.detector import HandDetector

    monkeypatch.setenv("COHESIV_HAND_MODEL", str(tmp_path / "nope.task"))
    with pytest.raises(
        CohesivError, match=r"nope.task: hand model not found.*python -m cohesiv.hands.model_setup"
    ):
        HandDetector()
    bad = tmp_path / "bad.task"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CohesivError, match="bad.task: not a hand landmarker model"):
        HandDetector(bad)


# --- with the real model (skipped when the model file or MediaPipe is absent) ---------------


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("mediapipe")
    path = hand_model_path()
    if not is_valid_bundle(path):
        pytest.skip(f"hand model not built ({path}); run python -m cohesiv.hands.model_setup")
    return path


def _frame(path, index):
    from cohesiv.io import FrameReader

    for t, f in enumerate(FrameReader(path)):
        if t == index:
            return f
    raise IndexError(index)


def _sides(model, image, mirrored=False):
    from cohesiv.hands.detector import HandDetector

    with HandDetector(model, video=False, mirrored=mirrored) as det:
        hands = det.detect(image)
    return sorted((h.side, float(h.query[0])) for h in hands)


def test_side_convention_egocentric(model, shared_data):
    # Frame 40 (looked at): the right hand stirs with the red spatula from the image's right edge,
    # the left hand holds the pan handle at the bottom centre.
    img = _frame(shared_data / EGO, 40)
    w = img.shape[1]
    (s0, x0), (s1, x1) = _sides(model, img)
    assert (s0, s1) == ("left", "right")
    assert x0 < x1 and x1 > 0.6 * w
    # the horizontally flipped image shows two mirrored hands: the sides swap ...
    flipped = _sides(model, img[:, ::-1])
    assert [s for s, _ in flipped] == ["left", "right"]
    right_x = dict(flipped)["right"]
    assert abs(right_x - (w - 1 - x0)) < 10  # ... the pan hand is now called right
    # ... and mirrored=True undoes it: each hand keeps its true side
    back = dict(_sides(model, img[:, ::-1], mirrored=True))
    assert abs(back["left"] - (w - 1 - x0)) < 10 and abs(back["right"] - (w - 1 - x1)) < 10


def test_side_convention_third_person(model, shared_data):
    # teddy.mp4 frame 40 (looked at): the seated person faces the camera, so their right hand is
    # on the image's left.
    img = _frame(shared_data / TEDDY, 40)
    hands = dict(_sides(model, img))
    assert set(hands) == {"left", "right"}
    assert hands["right"] < img.shape[1] / 3 < hands["left"]


def test_blank_image_has_no_hands_and_points_are_valid(model, shared_data):
    from cohesiv.hands.detector import HandDetector

    with HandDetector(model, video=False) as det:
        assert det.detect(np.full((120, 160, 3), 128, np.uint8)) == []
        assert det.calls == 5  # the image, then its 2x2 crops (nothing found on the whole image)
        img = _frame(shared_data / EGO, 40)
        hands = det.detect(img, crops=False)
        assert det.calls == 6 and det.seconds > 0
    h, w = img.shape[:2]
    for hand in hands:
        assert 4 <= len(hand.points) <= 21
        assert (hand.points >= -0.5).all() and (hand.points[:, 0] <= w - 0.5).all()
        assert (hand.points[:, 1] <= h - 0.5).all()
        x1, y1, x2, y2 = hand.box
        assert x1 == hand.points[:, 0].min() and y2 == hand.points[:, 1].max()


def test_detect_hands_on_a_clip_folder_gives_stable_ids(model, shared_data, tmp_path):
    from cohesiv.hands.detector import detect_hands
    from cohesiv.io import FrameReader, parse_hands, write_image

    for t, f in enumerate(FrameReader(shared_data / EGO)):
        if 36 <= t < 46:
            write_image(tmp_path / "clip" / f"{t:03d}.png", f)
    tracks = detect_hands(tmp_path / "clip", model_path=model, every=2, progress=False)
    assert tracks.image_size == (384, 288)
    assert sorted(tracks.frames) == [0, 2, 4, 6, 8]
    ids = {h.id for hs in tracks.frames.values() for h in hs}
    assert ids <= {"left", "right"} and "right" in ids
    for hs in tracks.frames.values():
        for h in hs:
            assert h.side == h.id
            assert (h.query[0] > 192) == (h.id == "right")
    parse_hands(tracks.to_json())  # valid hands.json
