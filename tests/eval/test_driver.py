import json

import numpy as np
import pytest
from eval_scene import H, W, scene_label

from cohesiv.errors import InputError
from cohesiv.eval.driver import (
    HOSPrediction,
    evaluate_clips,
    format_table,
    hands_from_label,
    open_labeled_clip,
    write_metrics,
)


def perfect(image, hands, context):
    lab = scene_label(context.t)
    k = len(hands)
    return HOSPrediction(np.repeat((lab == 1)[None], k, 0), np.repeat((lab == 3)[None], k, 0))


def test_only_labeled_frames_are_scored_others_are_context(make_clip):
    clip = make_clip(n_frames=6, labeled=(2, 4))
    seen = []

    def predict(image, hands, context):
        seen.append(context.t)
        assert image.shape == (H, W, 3)
        # the unlabeled neighbours are readable motion context
        assert context.frame(context.t + 1).shape == (H, W, 3)
        assert context.n_frames == 6
        return perfect(image, hands, context)

    m = evaluate_clips([clip], predict, progress=False)
    assert seen == [2, 4]
    assert m["n_images"] == 2 and m["n_hands"] == 2
    for task in ("All", "Pair", "Hand", "Obj"):
        assert m[task]["mIoU"] == pytest.approx(100.0)
    assert np.isnan(m["Obj"]["false_object_rate"])  # every hand holds an object


def test_empty_prediction_scores_zero(make_clip):
    clip = make_clip()

    def nothing(image, hands, context):
        z = np.zeros((len(hands), H, W), np.uint8)
        return HOSPrediction(z, z)

    m = evaluate_clips([clip], nothing, progress=False)
    assert m["All"]["mIoU"] == 0.0 and m["Hand"]["recall"] == 0.0


def test_sideless_hands_use_label_under_query(make_clip):
    clip = make_clip(side=None)
    m = evaluate_clips([clip], perfect, progress=False)
    assert m["Hand"]["mIoU"] == pytest.approx(100.0)


def test_hands_from_label_centroid_when_no_hands_file(make_clip):
    clip = make_clip(with_hands=False)
    c = open_labeled_clip(clip)
    hands = c.hands_at(2, scene_label(2))
    assert [h.side for h in hands] == ["left"]
    assert hands[0].query == pytest.approx((6 + 4 + 3.5, 15.5))
    assert hands_from_label(np.zeros((3, 3), np.uint8)) == []


def test_metrics_file_shape_and_table(make_clip, tmp_path):
    clip = make_clip()
    m = evaluate_clips([clip], perfect, progress=False)
    out = tmp_path / "sub" / "metrics.json"
    write_metrics(out, m)
    data = json.loads(out.read_text())
    assert set(data) >= {"All", "Pair", "Hand", "Obj", "n_images", "n_hands"}
    for task in ("All", "Pair", "Hand", "Obj"):
        assert set(data[task]) >= {"mIoU", "IoU", "precision", "recall", "F1"}
    assert "false_object_rate" in data["Obj"] and data["Obj"]["false_object_rate"] is None  # NaN -> null
    assert out.read_text().startswith('{\n  "All"')  # indent=2
    table = format_table(m, "perfect")
    assert "Pair" in table and "100.0" in table


def test_wrong_number_of_masks_is_an_error(make_clip):
    clip = make_clip()

    def bad(image, hands, context):
        return HOSPrediction(np.zeros((2, H, W)), np.zeros((2, H, W)))

    with pytest.raises(ValueError, match="2 hand / 2 object masks for 1 hands"):
        evaluate_clips([clip], bad, progress=False)


def test_bad_clip_folders(tmp_path, make_clip):
    with pytest.raises(InputError, match="not a labeled clip folder"):
        open_labeled_clip(tmp_path / "nope")
    clip = make_clip()
    for p in (clip / "labels").iterdir():
        p.unlink()
    with pytest.raises(InputError, match="no label files"):
        open_labeled_clip(clip)
    clip2 = make_clip()
    (clip2 / "labels" / "000099.png").write_bytes((clip2 / "labels" / "000002.png").read_bytes())
    with pytest.raises(InputError, match="label for frame 99 but the clip has 6 frames"):
        open_labeled_clip(clip2)


def test_folder_of_clips_expands(tmp_path):
    from eval_scene import write_clip

    write_clip(tmp_path / "set" / "b", labeled=(1,))
    write_clip(tmp_path / "set" / "a", labeled=(2, 3))
    (tmp_path / "set" / "notes").mkdir()
    seen = []

    def predict(image, hands, context):
        seen.append((context.clip.path.name, context.t))
        return perfect(image, hands, context)

    m = evaluate_clips([tmp_path / "set"], predict, progress=False)
    assert seen == [("a", 2), ("a", 3), ("b", 1)]
    assert m["n_images"] == 3
    with pytest.raises(InputError, match="no labels/ folder"):
        evaluate_clips([tmp_path / "set" / "notes"], predict, progress=False)
