"""The GrabCut person mask: seeded by the hand points, it follows the hand's outline, not the hull's."""

import json

import numpy as np
import pytest

from cohesiv.responsibility.labeler import PseudoLabelConfig, label_frame
from cohesiv.responsibility.masks import GRABCUT_REACH, grabcut_hand_mask, hull_mask, person_mask

W, H = 160, 120


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return (a & b).sum() / (a | b).sum()


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A skin-coloured "hand" (palm disc and three fingers) on a textured blue-grey background,
    and 21 points on its skeleton (not on its edge): ``(image, truth mask, points)``."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.empty((H, W, 3), np.uint8)
    img[:] = (70, 90, 120)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((H, W), np.uint8)
    cv2.circle(truth, (80, 75), 22, 1, -1)
    for x in (66, 80, 94):
        cv2.rectangle(truth, (x - 4, 25), (x + 4, 70), 1, -1)
    skin = np.clip(np.array([205, 150, 120]) + rng.normal(0, 6, (H, W, 3)), 0, 255).astype(np.uint8)
    img[truth > 0] = skin[truth > 0]
    pts = [(80, 88)]  # wrist, then 5 rays of 4 points (MediaPipe order: thumb, index, ..., pinky)
    for x0 in (62, 66, 80, 94, 98):
        pts += [(x0 + (80 - x0) * 0.3, 80), (x0, 62), (x0, 48), (x0, 34)]
    return img, truth, np.array(pts, np.float32)


def test_grabcut_follows_the_hand_not_the_hull():
    img, truth, pts = _scene()
    cut = grabcut_hand_mask(img, pts)
    hull = hull_mask([pts], (W, H))  # the pseudo-labels' [C] person mask (dilation 0.2)
    assert cut.shape == (H, W) and cut.dtype == np.uint8 and set(np.unique(cut)) <= {0, 1}
    assert _iou(cut, truth) > 0.85
    assert _iou(cut, truth) > _iou(hull, truth) + 0.15
    # the background between the fingers, inside the hull, is dropped
    gap = (hull > 0) & (truth == 0)
    assert cut[gap].mean() < 0.2


def test_grabcut_without_colour_cues_keeps_the_points_hull():
    img = np.full((H, W, 3), 128, np.uint8)  # nothing to cut on
    _, _, pts = _scene()
    cut = grabcut_hand_mask(img, pts)
    assert _iou(cut, hull_mask([pts], (W, H), dilation=0.0, min_radius=0)) > 0.9
    assert grabcut_hand_mask(img, np.zeros((0, 2))).sum() == 0


@pytest.mark.parametrize("failure", ["error", "keeps nothing"])
def test_grabcut_falls_back_to_the_dilated_hull(monkeypatch, failure):
    import cv2

    from cohesiv.responsibility import masks

    def broken(image, seeds, *args):
        if failure == "error":
            raise cv2.error("model estimation failed")
        seeds[:] = cv2.GC_BGD  # the colours put the whole hand into the background

    monkeypatch.setattr(masks.cv2, "grabCut", broken)
    img, _, pts = _scene()
    assert (grabcut_hand_mask(img, pts) == hull_mask([pts], (W, H))).all()
    assert (grabcut_hand_mask(img, pts, fallback_dilation=0.1) == hull_mask([pts], (W, H), 0.1)).all()


def test_person_mask_rules_and_errors():
    img, truth, pts = _scene()
    cut = person_mask([pts], (W, H), rule="grabcut", image=img)
    assert (cut == grabcut_hand_mask(img, pts)).all()
    assert (person_mask([pts], (W, H)) == hull_mask([pts], (W, H))).all()  # "hull" is the default
    given = truth * 3
    assert (person_mask([pts], (W, H), given=given, rule="grabcut", image=img) == truth).all()
    with pytest.raises(ValueError, match="needs the frame"):
        person_mask([pts], (W, H), rule="grabcut")
    with pytest.raises(ValueError, match="rule"):
        person_mask([pts], (W, H), rule="box")
    with pytest.raises(ValueError, match="image"):
        person_mask([pts], (W, H), rule="grabcut", image=img[:10])
    with pytest.raises(ValueError, match="uint8"):
        grabcut_hand_mask(img.astype(np.float32), pts)


def test_label_frame_uses_the_configured_rule():
    img, truth, pts = _scene()
    flow = np.zeros((2, H, W), np.float32)
    flow[0][truth > 0] = 3.0  # the hand moves right, the background stays

    def flows(a: int, b: int) -> np.ndarray:
        return flow * (b - a)

    cfg = PseudoLabelConfig(offsets=(1,), fb_check=False, person_rule="grabcut")
    labels = label_frame(flows, 0, [1], [pts], (W, H), cfg, image=img)
    assert (labels.person == grabcut_hand_mask(img, pts)).all()
    with pytest.raises(ValueError, match="needs the frame"):
        label_frame(flows, 0, [1], [pts], (W, H), cfg)
    with pytest.raises(ValueError, match="person_rule"):
        PseudoLabelConfig(person_rule="box")
    d = cfg.to_dict()
    assert d["person_rule"] == "grabcut" and json.loads(json.dumps(d))["person_rule"] == "grabcut"


def test_a_prior_adds_what_the_points_miss_and_stays_within_reach():
    # a part of the hand in a colour the points never touch (a ring, a glove's cuff): GrabCut of the
    # points leaves it out; given as a prior (a network's hand mask) it is kept
    img, truth, pts = _scene()
    extra = np.zeros((H, W), np.uint8)
    extra[66:84, 100:110] = 1  # beside the palm, inside the reach
    rng = np.random.default_rng(1)
    green = np.array([60, 160, 80]) + rng.normal(0, 6, (int(extra.sum()), 3))
    img[extra > 0] = np.clip(green, 0, 255).astype(np.uint8)
    assert grabcut_hand_mask(img, pts)[extra > 0].mean() < 0.1
    with_prior = grabcut_hand_mask(img, pts, prior=truth | extra)
    assert with_prior[extra > 0].mean() > 0.9 and _iou(with_prior, truth | extra) > 0.9
    # a prior that says "everywhere" cannot reach past the probably-background ring
    everywhere = grabcut_hand_mask(img, pts, prior=np.ones((H, W), np.uint8))
    assert not (everywhere & (1 - hull_mask([pts], (W, H), dilation=GRABCUT_REACH))).any()
    with pytest.raises(ValueError, match="prior"):
        grabcut_hand_mask(img, pts, prior=truth[:10])
