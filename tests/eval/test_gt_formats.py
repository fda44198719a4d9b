"""COCO-RLE and VISOR ground truth: converted to EgoHOS labels, scored by ``cohesiv eval --gt`` with known IoU."""

import json
import shutil

import numpy as np
import pytest
from eval_scene import H, W, scene_label

import cohesiv.eval.runner as runner
from cohesiv.cli import main
from cohesiv.errors import InputError
from cohesiv.io import read_label
from cohesiv.io.coco import encode_mask
from cohesiv.io.groundtruth import GTHand, label_from_hands, labeled_clip_from_gt


@pytest.fixture
def scene_flow_source(monkeypatch):
    from eval_scene import SceneFlow

    monkeypatch.setattr(runner, "make_flow_source", lambda *a, **k: SceneFlow())


def rect(x0, x1, y0=10, y1=22):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def coco_gt(path, frames, object_cols=6):
    """COCO file: per frame t a left hand and the first ``object_cols`` columns of its object."""
    images, anns = [], []
    for t in frames:
        x0 = 6 + 2 * t
        images.append({"id": 10 + t, "file_name": f"{t:06d}.jpg", "width": W, "height": H})
        anns.append(
            {
                "id": 100 + 2 * t,
                "image_id": 10 + t,
                "category_id": 7,
                "segmentation": encode_mask(rect(x0, x0 + 8)),
            }
        )
        anns.append(
            {
                "id": 101 + 2 * t,
                "image_id": 10 + t,
                "category_id": 9,
                "hand_annotation_id": 100 + 2 * t,
                "segmentation": encode_mask(rect(x0 + 8, x0 + 8 + object_cols)),
            }
        )
    cats = [{"id": 7, "name": "left_hand"}, {"id": 9, "name": "object"}, {"id": 3, "name": "spoon"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def visor_gt(path, frames, contact=True):
    entries = []
    for t in frames:
        x0 = 6 + 2 * t
        hand = {
            "id": f"h{t}",
            "name": "left hand",
            "class_id": 300,
            "segments": [[[x0, 10], [x0 + 8, 10], [x0 + 8, 22], [x0, 22]]],
            "in_contact_object": f"o{t}" if contact else "hand-not-in-contact",
        }
        obj = {
            "id": f"o{t}",
            "name": "cup",
            "class_id": 12,
            "segments": [[[x0 + 8, 10], [x0 + 14, 10], [x0 + 14, 22], [x0 + 8, 22]]],
        }
        entries.append({"image": {"name": f"P01_{t:06d}.jpg"}, "annotations": [hand, obj]})
    path.write_text(json.dumps({"video_annotations": entries}))
    return path


def test_label_from_hands_sides_and_shared_object():
    obj = rect(10, 20)
    hands = [GTHand("left", rect(0, 5), obj, "a"), GTHand("right", rect(30, 35), obj, "b")]
    lab = label_from_hands(hands, (H, W))
    assert set(np.unique(lab[10:22, 10:20])) == {5}
    assert (lab == 1).sum() == 60 and (lab == 2).sum() == 60
    assert label_from_hands([GTHand("right", rect(0, 5))], (H, W)).max() == 2
    with pytest.raises(ValueError, match="side must be left or right"):
        label_from_hands([GTHand("up", rect(0, 5))], (H, W))


def test_coco_and_visor_convert_to_the_scene_labels(make_clip, tmp_path):
    clip = make_clip(n_frames=6, labeled=(2, 4))
    for gt in (coco_gt(tmp_path / "c.json", (2, 4)), visor_gt(tmp_path / "v.json", (2, 4))):
        # VISOR names (P01_000002.jpg) match no frame file: their trailing number is the frame index
        out, n = labeled_clip_from_gt(gt, clip, tmp_path / gt.stem)
        assert n == 2
        for t in (2, 4):
            np.testing.assert_array_equal(read_label(out / "labels" / f"{t:06d}.png"), scene_label(t))
        assert (out / "hands.json").is_file() and (out / "frames" / "000000.png").is_file()


def test_visor_hand_not_in_contact_has_no_object(make_clip, tmp_path):
    clip = make_clip(n_frames=3, labeled=(1,))
    out, _ = labeled_clip_from_gt(visor_gt(tmp_path / "v.json", (1,), contact=False), clip, tmp_path / "o")
    lab = read_label(out / "labels" / "000001.png")
    assert set(np.unique(lab)) == {0, 1}


def test_eval_cli_scores_coco_and_visor_gt_with_known_iou(make_clip, tmp_path, scene_flow_source):
    """The flow baseline on the exact flow predicts the whole moving pair (hand 8 + object 6 columns)."""
    clip = make_clip(n_frames=6, labeled=(2, 4))
    frames = tmp_path / "frames_only"
    shutil.copytree(clip / "frames", frames / "frames")
    shutil.copy(clip / "hands.json", frames / "hands.json")
    base = ["eval", "--baseline", "flow", "--threshold", "1", "--quiet", "--data", str(frames)]
    # GT object = 3 of its 6 columns: Pair and All IoU = 11 / 14 columns of the predicted pair
    assert (
        main(
            [
                *base,
                "--gt",
                str(coco_gt(tmp_path / "c.json", (2, 4), object_cols=3)),
                "--out",
                str(tmp_path / "c.m"),
            ]
        )
        == 0
    )
    m = json.loads((tmp_path / "c.m").read_text())
    assert m["n_images"] == 2
    assert m["Pair"]["mIoU"] == pytest.approx(100 * 11 / 14) and m["All"]["mIoU"] == pytest.approx(
        100 * 11 / 14
    )
    assert (
        main([*base, "--gt", str(visor_gt(tmp_path / "v.json", (2, 4))), "--out", str(tmp_path / "v.m")]) == 0
    )
    m = json.loads((tmp_path / "v.m").read_text())
    assert m["Pair"]["mIoU"] == pytest.approx(100.0) and m["n_images"] == 2
    assert m["config"]["data"] == [str(frames)] and m["config"]["gt"] == [str(tmp_path / "v.json")]


def test_gt_errors_name_the_file(make_clip, tmp_path, capsys):
    clip = make_clip(n_frames=3, labeled=(1,))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"something": 1}))
    with pytest.raises(InputError, match="unknown ground-truth format"):
        labeled_clip_from_gt(bad, clip, tmp_path / "o1")
    orphan = coco_gt(tmp_path / "orphan.json", (1,))
    doc = json.loads(orphan.read_text())
    doc["annotations"][1]["hand_annotation_id"] = 999
    orphan.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="names no hand"):
        labeled_clip_from_gt(orphan, clip, tmp_path / "o2")
    far = coco_gt(tmp_path / "far.json", (7,))  # frame 7 of a 3-frame clip
    with pytest.raises(InputError, match="matches no frame"):
        labeled_clip_from_gt(far, clip, tmp_path / "o3")
    rc = main(
        ["eval", "--baseline", "flow", "--threshold", "1", "--data", str(clip), "--gt", str(far), str(far)]
    )
    assert rc == 2 and "--gt gives 2 files for 1 --data clips" in capsys.readouterr().err
