"""Scoring on single labeled images (binary hand masks and EgoHOS labels), with known IoUs."""

import json

import numpy as np
import pytest

from cohesiv.cli import main
from cohesiv.errors import InputError
from cohesiv.eval.driver import HOSPrediction
from cohesiv.eval.images import (
    evaluate_image_set,
    hand_regions,
    hull_prediction,
    match_detections,
    open_image_set,
)
from cohesiv.io import Hand, HandTracks, write_hands, write_image, write_label
from cohesiv.responsibility.masks import hull_mask

SIZE = 32


def _square(x0, y0, x1, y1):
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _hand(x0, y0, x1, y1, side="right"):
    pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    return Hand(id=side, side=side, points=pts)


def _image():
    return np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture
def binary_set(tmp_path):
    root = tmp_path / "binary"
    for name in ("a", "b"):
        write_image(root / "images" / f"{name}.png", _image())
        write_image(root / "masks" / f"{name}.png", np.repeat(_square(5, 5, 15, 15)[..., None] * 255, 3, -1))
    return root


@pytest.fixture
def egohos_set(tmp_path):
    root = tmp_path / "egohos"
    label = _square(2, 2, 12, 12) * 1  # left hand, 100 px
    label[20:30, 2:12] = 3  # its object, 100 px
    write_image(root / "images" / "x.jpg", _image())
    write_label(root / "labels" / "x.png", label)
    return root


def test_binary_set_known_iou(binary_set):
    half = _square(5, 5, 10, 15)  # 50 of the 100 mask pixels, nothing else

    def fixed(image, hands):
        return HOSPrediction(half[None].repeat(len(hands), 0), np.zeros((len(hands), SIZE, SIZE), np.uint8))

    hands = {0: [_hand(6, 6, 13, 13)], 1: [_hand(6, 6, 13, 13), _hand(25, 25, 30, 30)]}
    res = evaluate_image_set(binary_set, {"fixed": fixed}, lambda i, image: hands[i], progress=False)
    assert res["kind"] == "binary" and res["n_images"] == 2
    assert res["methods"]["fixed"]["All-hands"]["mIoU"] == pytest.approx(50.0)
    # the hull floor: union of each hand's dilated hull, scored against the mask
    mask = _square(5, 5, 15, 15).astype(bool)
    ious = []
    for hs in hands.values():
        pred = hull_mask([h.points for h in hs], (SIZE, SIZE)).astype(bool)
        ious.append((pred & mask).sum() / (pred | mask).sum())
    assert res["methods"]["hull"]["All-hands"]["mIoU"] == pytest.approx(100 * np.mean(ious))
    # 2 GT hands (one per image), both found; the far hand of image b is false
    assert res["detection"] == {"gt_hands": 2, "detected": 3, "found": 2, "missed": 0, "false": 1}
    assert [r["image"] for r in res["per_image"]] == ["a", "b"]


def test_egohos_set_known_iou(egohos_set):
    label_hand = _square(2, 2, 12, 12)
    obj_half = np.zeros((SIZE, SIZE), np.uint8)
    obj_half[20:25, 2:12] = 1  # 50 of the 100 object pixels

    def fixed(image, hands):
        return HOSPrediction(label_hand[None], obj_half[None])

    # the detector says "right": scoring takes the GT hand under the query (left), not the side
    hands = [_hand(4, 4, 10, 10, side="right")]
    res = evaluate_image_set(egohos_set, {"fixed": fixed}, lambda i, image: hands, progress=False)
    m = res["methods"]["fixed"]
    assert m["Hand"]["mIoU"] == pytest.approx(100.0)
    assert m["Obj"]["mIoU"] == pytest.approx(50.0)
    assert m["Pair"]["mIoU"] == pytest.approx(75.0)
    assert m["All"]["mIoU"] == pytest.approx(75.0)
    assert res["methods"]["hull"]["Obj"]["mIoU"] == pytest.approx(0.0)  # the floor has no object
    assert res["detection"]["found"] == 1 and res["detection"]["missed"] == 0


def test_no_hands_scores_zero_and_counts_missed(binary_set):
    res = evaluate_image_set(binary_set, {}, lambda i, image: [], progress=False)
    assert res["methods"]["hull"]["All-hands"]["mIoU"] == pytest.approx(0.0)
    assert res["detection"]["missed"] == 2 and res["detection"]["detected"] == 0


def test_regions_and_matching():
    truth = _square(0, 0, 5, 5) + _square(20, 20, 30, 30)
    regions = hand_regions(truth, "binary")
    assert len(regions) == 2
    hulls = hull_prediction([_hand(1, 1, 3, 3), _hand(1, 2, 3, 3)], (SIZE, SIZE)).hand_masks
    assert match_detections(hulls, regions) == {
        "gt_hands": 2,
        "detected": 2,
        "found": 1,
        "missed": 1,
        "false": 0,
    }
    label = np.zeros((SIZE, SIZE), np.uint8)
    label[0:5, 0:5], label[0:5, 5:10] = 1, 2  # touching left and right hands: two regions
    assert len(hand_regions(label, "egohos")) == 2


def test_bad_image_sets(tmp_path, binary_set):
    with pytest.raises(InputError, match="not an image set"):
        open_image_set(tmp_path / "none")
    (binary_set / "labels").mkdir()
    with pytest.raises(InputError, match="both labels/ and masks/"):
        open_image_set(binary_set)
    (binary_set / "labels").rmdir()
    (binary_set / "masks" / "a.png").unlink()
    with pytest.raises(InputError, match=r"no ground truth for 1 image\(s\)"):
        open_image_set(binary_set)


def test_eval_command_on_images(binary_set, tmp_path, capsys):
    hands = tmp_path / "hands.json"
    write_hands(hands, HandTracks(image_size=(SIZE, SIZE), frames={0: [_hand(6, 6, 13, 13)], 1: []}))
    out, viz = tmp_path / "m.json", tmp_path / "viz"
    assert (
        main(
            ["eval", "--images", str(binary_set), "--hands", str(hands), "--out", str(out), "--viz", str(viz)]
        )
        == 0
    )
    m = json.loads(out.read_text())
    assert set(m["methods"]) == {"hull", "grabcut"} and m["config"]["hands"] == str(hands)
    assert m["detection"]["missed"] == 1 and m["detection"]["found"] == 1
    assert sorted(p.name for p in viz.iterdir()) == ["a.png", "b.png"]
    assert "All-hands" in capsys.readouterr().out
    # a hands file with more frames than images is a one-line error
    write_hands(hands, HandTracks(image_size=(SIZE, SIZE), frames={5: [_hand(6, 6, 13, 13)]}))
    assert main(["eval", "--images", str(binary_set), "--hands", str(hands), "--out", str(out)]) == 2
    assert "has 2 images" in capsys.readouterr().err


def test_model_and_support_runs_the_network_once_per_image(binary_set):
    from cohesiv.eval.images import _model_and_support

    calls = []

    def everything(image, hands):  # a "network" that calls the whole image hand
        calls.append(1)
        hm = np.ones((len(hands), SIZE, SIZE), np.uint8)
        return HOSPrediction(hm, np.zeros_like(hm))

    plain, supported, refined = _model_and_support(everything)
    hand = _hand(5, 5, 15, 15)
    methods = {"model": plain, "model+support": supported, "model+grabcut": refined}
    res = evaluate_image_set(binary_set, methods, lambda i, im: [hand], progress=False)
    assert len(calls) == 2  # two images, one network pass each, for the three rows
    assert res["methods"]["model"]["All-hands"]["mIoU"] == pytest.approx(100 * 100 / SIZE**2)
    # kept inside the hand's dilated hull (a box of 4 points: no wrist), which is the hull floor
    assert res["methods"]["model+support"]["All-hands"]["mIoU"] == pytest.approx(
        res["methods"]["hull"]["All-hands"]["mIoU"]
    )


def test_find_image_sets(tmp_path, monkeypatch):
    from cohesiv.eval.images import KNOWN_IMAGE_SETS, find_image_sets

    (tmp_path / KNOWN_IMAGE_SETS[0] / "images").mkdir(parents=True)
    (tmp_path / "other" / "images").mkdir(parents=True)
    assert find_image_sets(tmp_path) == [tmp_path / KNOWN_IMAGE_SETS[0]]
    monkeypatch.setenv("COHESIV_DATA", str(tmp_path))
    assert find_image_sets() == [tmp_path / KNOWN_IMAGE_SETS[0]]


def test_grabcut_baseline_follows_a_hand_the_hull_overshoots(tmp_path):
    """A skin-coloured cross ("spread fingers") on a blue background, queried with points along its
    arms: the hull of the points fills the gaps between the arms, GrabCut seeded by them does not."""
    n = 96
    mask = np.zeros((n, n), np.uint8)
    mask[44:53, 18:79] = 1
    mask[18:79, 44:53] = 1
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal((60, 80, 140), 6, (n, n, 3)), 0, 255).astype(np.uint8)
    img[mask > 0] = np.clip(rng.normal((210, 160, 130), 6, (int(mask.sum()), 3)), 0, 255).astype(np.uint8)
    root = tmp_path / "cross"
    write_image(root / "images" / "a.png", img)
    write_image(root / "masks" / "a.png", np.repeat(mask[..., None] * 255, 3, -1))
    arm = np.array([22.0, 34.0, 62.0, 74.0])
    pts = np.concatenate(
        [[[48, 48]], np.stack([arm, np.full(4, 48.0)], 1), np.stack([np.full(4, 48.0), arm], 1)]
    )
    hand = Hand(id="right", side="right", points=pts.astype(np.float32))
    res = evaluate_image_set(root, {}, lambda i, im: [hand], progress=False)
    grabcut, hull = (res["methods"][k]["All-hands"]["mIoU"] for k in ("grabcut", "hull"))
    assert grabcut > 80 and grabcut > hull + 30, (grabcut, hull)
