import math

import numpy as np
import pytest

from cohesiv.eval.metrics import (
    HOSMeter,
    image_stats,
    instance_scores,
    mask_stats,
    reduce_stats,
    resolve_side,
    summarize,
)


def test_mask_stats_hand_values():
    pred = np.array([[1, 1], [0, 0]])
    gt = np.array([[1, 0], [1, 0]])
    assert mask_stats(pred, gt).tolist() == [1, 1, 1]


def test_mask_stats_batched_shape():
    pred = np.zeros((3, 4, 5), np.uint8)
    gt = np.ones((3, 4, 5), np.uint8)
    s = mask_stats(pred, gt)
    assert s.shape == (3, 3)
    assert s[:, 2].tolist() == [20, 20, 20]


def test_mask_stats_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        mask_stats(np.zeros((2, 2)), np.zeros((2, 3)))


def test_instance_scores_empty_cases():
    s = instance_scores(np.array([[0, 0, 0], [0, 3, 0], [0, 0, 4], [2, 2, 0]]))
    assert s["IoU"].tolist() == [1.0, 0.0, 0.0, 0.5]
    assert s["precision"].tolist() == [1.0, 0.0, 0.0, 0.5]
    assert s["recall"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert s["F1"].tolist() == pytest.approx([1.0, 0.0, 0.0, 4 / 6])


def test_reduce_stats_mean_vs_pooled():
    # instance 1: tp=1, fp=1, fn=0 -> IoU 1/2; instance 2: tp=9, fp=0, fn=1 -> IoU 9/10
    r = reduce_stats(np.array([[1, 1, 0], [9, 0, 1]]))
    assert r["mIoU"] == pytest.approx(100 * (0.5 + 0.9) / 2)
    assert r["IoU"] == pytest.approx(100 * 10 / 12)
    assert r["precision"] == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert r["recall"] == pytest.approx(100 * (1.0 + 0.9) / 2)
    assert r["F1"] == pytest.approx(100 * (2 / 3 + 18 / 19) / 2)
    assert r["n"] == 2


def test_reduce_stats_no_instance_is_nan():
    r = reduce_stats(np.zeros((0, 3)))
    assert r["n"] == 0 and math.isnan(r["mIoU"])


def _scene():
    # 4x6 label: left hand (1) cols 0-1, its object (3) col 2, right hand (2) col 4, 8 = background
    lab = np.zeros((4, 6), np.uint8)
    lab[:, 0:2] = 1
    lab[:, 2] = 3
    lab[:, 4] = 2
    lab[0, 5] = 8
    return lab


def test_image_stats_hand_computed():
    lab = _scene()
    hand = np.zeros((2, 4, 6), np.uint8)
    obj = np.zeros((2, 4, 6), np.uint8)
    hand[0, :, 0] = 1  # left: half of the hand (4 of 8 pixels)
    obj[0, :, 2:4] = 1  # left object: 4 right + 4 wrong
    hand[1, :, 4] = 1  # right hand perfect
    obj[1, 0, 5] = 1  # right hand holds nothing but predicts an object pixel (on a label-8 pixel)
    s = image_stats(lab, ["left", "right"], [None, None], hand, obj)
    assert s.hand.tolist() == [[4, 0, 4], [4, 0, 0]]
    assert s.obj.tolist() == [[4, 4, 0]]  # only the left hand holds an object
    assert s.false_objects.tolist() == [True]
    assert s.pair.tolist() == [[8, 4, 4], [4, 1, 0]]
    # All: GT = labels 1-5 = 16 px; pred = union = 4 + 8 + 4 + 1 = 17 px, of which 12 right
    assert s.all.tolist() == [12, 5, 4]
    m = summarize([s])
    assert m["Hand"]["mIoU"] == pytest.approx(100 * (0.5 + 1.0) / 2)
    assert m["Obj"]["mIoU"] == pytest.approx(50.0)
    assert m["Obj"]["false_object_rate"] == pytest.approx(100.0)
    assert m["Pair"]["mIoU"] == pytest.approx(100 * (0.5 + 0.8) / 2)
    assert m["All"]["mIoU"] == pytest.approx(100 * 12 / 21)
    assert m["n_images"] == 1 and m["n_hands"] == 2


def test_both_object_label_counts_for_each_hand():
    lab = np.zeros((2, 4), np.uint8)
    lab[:, 0] = 1
    lab[:, 3] = 2
    lab[:, 1:3] = 5
    obj = np.zeros((2, 2, 4), np.uint8)
    obj[:, :, 1:3] = 1
    s = image_stats(lab, ["left", "right"], [None, None], np.zeros((2, 2, 4)), obj)
    assert s.obj.tolist() == [[4, 0, 0], [4, 0, 0]]
    assert len(s.false_objects) == 0


def test_all_mask_overrides_union():
    lab = _scene()
    all_mask = (lab >= 1) & (lab <= 5)
    s = image_stats(lab, ["left"], [None], np.zeros((1, 4, 6)), np.zeros((1, 4, 6)), all_mask=all_mask)
    assert s.all.tolist() == [16, 0, 0]


def test_resolve_side_under_query_and_nearest():
    lab = _scene()
    assert resolve_side(lab, None, (4.2, 1.0)) == "right"
    assert resolve_side(lab, None, (0.4, 3.0)) == "left"
    assert resolve_side(lab, None, (5.0, 2.0)) == "right"  # background; nearest hand pixel is col 4
    assert resolve_side(lab, "left", (4.0, 1.0)) == "left"  # a given side wins
    assert resolve_side(np.zeros((3, 3), np.uint8), None, (1.0, 1.0)) is None


def test_sideless_hand_scored_against_matched_gt():
    lab = _scene()
    hand = np.zeros((1, 4, 6), np.uint8)
    hand[0, :, 4] = 1
    s = image_stats(lab, [None], [(4.0, 2.0)], hand, np.zeros((1, 4, 6)))
    assert s.hand.tolist() == [[4, 0, 0]]


def test_meter_accumulates_images():
    lab = _scene()
    perfect_h = np.stack([lab == 1, lab == 2]).astype(np.uint8)
    perfect_o = np.stack([lab == 3, np.zeros_like(lab, bool)]).astype(np.uint8)
    meter = HOSMeter()
    meter.add(lab, ["left", "right"], [None, None], perfect_h, perfect_o)
    meter.add(lab, ["left", "right"], [None, None], np.zeros_like(perfect_h), np.zeros_like(perfect_o))
    r = meter.result()
    assert len(meter) == 2
    for task in ("All", "Pair", "Hand", "Obj"):
        assert r[task]["mIoU"] == pytest.approx(50.0)
        assert r[task]["IoU"] == pytest.approx(50.0)
    assert r["Obj"]["false_object_rate"] == 0.0
    assert r["n_hands"] == 4 and r["n_images"] == 2


def test_image_stats_bad_counts():
    lab = _scene()
    with pytest.raises(ValueError, match="hand_masks"):
        image_stats(lab, ["left", "right"], [None, None], np.zeros((1, 4, 6)), np.zeros((2, 4, 6)))


def test_image_stats_transposed_masks_are_refused():
    lab = _scene()  # 4x6
    with pytest.raises(ValueError, match="hand_masks must have shape"):
        image_stats(lab, ["left", "right"], [None, None], np.zeros((2, 6, 4)), np.zeros((2, 4, 6)))


def test_object_found_rate_is_hand_level_object_recall():
    from cohesiv.eval.metrics import HOSMeter

    label = np.zeros((4, 8), np.uint8)
    label[:, :2] = 1  # left hand holding an object
    label[:, 2:4] = 3
    label[:, 6:] = 2  # right hand, empty
    meter = HOSMeter()
    hands = np.stack([label == 1, label == 2]).astype(np.uint8)
    none = np.zeros_like(hands)
    meter.add(label, ["left", "right"], [None, None], hands, none)  # no object predicted
    obj = none.copy()
    obj[0, 0, 2] = obj[1, 0, 5] = 1  # one object pixel each
    meter.add(label, ["left", "right"], [None, None], hands, obj)
    m = meter.result()["Obj"]
    assert m["object_found_rate"] == 50.0 and m["false_object_rate"] == 50.0 and m["n"] == 2
