"""Hand support: a hand mask is kept inside its hand's dilated hull, on the fingers' side of the wrist."""

import sys
from pathlib import Path

import numpy as np
import pytest

from cohesiv.io import Hand
from cohesiv.io.predictions import HOSPrediction
from cohesiv.model.support import restrict_to_support, support_masks, wrist_side
from cohesiv.responsibility.masks import GRABCUT_REACH, hull_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hand_shapes import hand_up as _hand_up  # noqa: E402

W, H = 120, 100


def _hand(points, query=None):
    pts = np.asarray(points, np.float64)
    q = tuple(pts.mean(0)) if query is None and len(pts) else query
    return Hand(id="h", side="right", points=pts, query=q)


def test_the_wrist_cut_removes_the_forearm_and_keeps_the_fingers():
    kp = _hand_up()
    side = wrist_side(kp, (W, H), margin=0.0)
    assert side[int(kp[0, 1]) + 2, 60] == 0  # just below the wrist: forearm side
    assert side[int(kp[0, 1]) - 2, 60] == 1 and side[5, 60] == 1  # palm and above the fingertips
    assert side[H - 1, 0] == 0 and side[0, W - 1] == 1  # a half-plane, not a band
    # the margin reaches past the wrist by that many hand lengths
    length = float(np.hypot(*(kp - kp[0]).T).max())
    wide = wrist_side(kp, (W, H), margin=0.2)
    assert wide[int(kp[0, 1] + 0.15 * length), 60] == 1 and wide[int(kp[0, 1] + 0.25 * length) + 1, 60] == 0
    assert wrist_side(kp[:20], (W, H)) is None  # only 21 keypoints have a wrist


def test_support_is_the_dilated_hull_on_the_fingers_side():
    kp = _hand_up()
    sup = support_masks([_hand(kp)], (W, H), dilation=0.2, wrist_margin=0.0)[0]
    hull = hull_mask([kp], (W, H), dilation=0.2)
    assert (sup <= hull).all()  # never beyond the hull
    below = np.arange(H)[:, None] > kp[0, 1] + 0.5
    assert sup[below.repeat(W, 1)].sum() == 0 and hull[below.repeat(W, 1)].sum() > 0
    # a box grid (not 21 keypoints): the hull alone
    box = np.array([[40, 20], [80, 20], [80, 60], [40, 60]], float)
    assert (support_masks([_hand(box)], (W, H))[0] == hull_mask([box], (W, H))).all()


def test_restrict_keeps_the_hand_drops_the_face_and_arm_and_leaves_objects():
    kp = _hand_up()
    hands = [_hand(kp), _hand(np.zeros((0, 2)), query=(10.0, 10.0))]
    hm = np.zeros((2, H, W), np.uint8)
    hm[0, :, 30:90] = 1  # the hand, the forearm below it and a "face" above it
    hm[1, 0:20, 0:20] = 1  # a hand without points keeps its mask
    om = np.zeros_like(hm)
    om[0, 0:10, 0:W] = 1  # objects are not restricted
    out = restrict_to_support(HOSPrediction(hm, om), hands, dilation=0.2, wrist_margin=0.0)
    sup = support_masks(hands[:1], (W, H), dilation=0.2, wrist_margin=0.0)[0]
    assert (out.hand_masks[0] == (hm[0] & sup)).all() and out.hand_masks[0].sum() > 0
    assert out.hand_masks[0][H - 1].sum() == 0 and out.hand_masks[0][0].sum() == 0
    assert (out.hand_masks[1] == hm[1]).all()
    assert (out.object_masks == om).all()
    with pytest.raises(ValueError, match="2 hand masks for 1 hands"):
        restrict_to_support(HOSPrediction(hm, om), hands[:1])


def _photo(kp, seed=0):
    """A skin-coloured hand drawn along its bones on a textured blue-grey background, with a skin-coloured
    forearm below the wrist: ``(image, hand truth, forearm)``."""
    import cv2

    from cohesiv.responsibility.masks import HAND_BONES

    rng = np.random.default_rng(seed)
    img = np.clip(np.array([70, 90, 120]) + rng.normal(0, 8, (H, W, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros((H, W), np.uint8)
    p = np.round(kp).astype(np.int32)
    cv2.fillConvexPoly(truth, cv2.convexHull(p[[0, 1, 5, 9, 13, 17]]), 1)
    for a, b in HAND_BONES:
        cv2.line(truth, tuple(map(int, p[a])), tuple(map(int, p[b])), 1, 5)
    arm = np.zeros_like(truth)
    cv2.rectangle(arm, (int(p[0, 0]) - 7, int(p[0, 1]) + 5), (int(p[0, 0]) + 7, H - 1), 1, -1)
    arm &= 1 - truth
    skin = np.clip(np.array([205, 150, 120]) + rng.normal(0, 6, (H, W, 3)), 0, 255).astype(np.uint8)
    img[(truth | arm) > 0] = skin[(truth | arm) > 0]
    return img, truth, arm


def test_refine_with_grabcut_follows_the_hand_and_keeps_objects_apart():
    from cohesiv.model.support import apply_support, refine_with_grabcut

    kp = _hand_up()
    img, truth, arm = _photo(kp)
    hands = [_hand(kp), _hand(np.zeros((0, 2)), query=(5.0, 5.0))]
    hm = np.zeros((2, H, W), np.uint8)
    hm[0, 10:H, 30:90] = 1  # a network mask: the hand, the forearm and the background around them
    hm[1, 0:8, 0:8] = 1  # a hand without points keeps its mask
    om = np.zeros_like(hm)
    om[0, 30:40, 50:70] = 1  # an "object" over the fingers: the refined hand takes those pixels
    om[0, 0:5, 100:110] = 1  # and elsewhere it stays
    out = refine_with_grabcut(HOSPrediction(hm, om), img, hands)
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    supported = restrict_to_support(HOSPrediction(hm, om), hands).hand_masks[0]
    assert iou(out.hand_masks[0], truth) > max(0.8, iou(supported, truth) + 0.15)
    # the forearm: only the part within GrabCut's reach around the points can join the hand
    reach = hull_mask([kp], (W, H), dilation=GRABCUT_REACH)
    assert not (out.hand_masks[0] & arm & (1 - reach)).any() and (arm & (1 - reach)).any()
    assert (out.hand_masks[1] == hm[1]).all()
    assert not (out.hand_masks[0] & out.object_masks[0]).any()
    assert out.object_masks[0][0:5, 100:110].all()
    assert (apply_support(HOSPrediction(hm, om), hands, "grabcut", img).hand_masks == out.hand_masks).all()
    assert (apply_support(HOSPrediction(hm, om), hands, "points").hand_masks[0] == supported).all()
    with pytest.raises(ValueError, match="needs the image"):
        apply_support(HOSPrediction(hm, om), hands, "grabcut")
    with pytest.raises(ValueError, match="unknown support"):
        apply_support(HOSPrediction(hm, om), hands, "box")
    with pytest.raises(ValueError, match="image of shape"):
        refine_with_grabcut(HOSPrediction(hm, om), img[:50], hands)
