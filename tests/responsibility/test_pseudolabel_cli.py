import json

import numpy as np
import pytest
from _resp_scene import make_clip

from cohesiv.cli import main
from cohesiv.io.labels import LEFT_HAND, RIGHT_HAND
from cohesiv.responsibility.dataset import read_manifest

HAND_CLASSES = (LEFT_HAND, RIGHT_HAND)


def test_pseudolabel_command_with_dis_writes_a_dataset(tmp_path, capsys):
    clip, _, square = make_clip(tmp_path / "clip", step=(4, 1))
    out = tmp_path / "ds"
    # fast: at 64x48 the default's half-resolution finest scale leaves too few patches
    args = ["pseudolabel", str(clip), "--out", str(out), "--offsets", "1,2", "--dis-preset", "fast"]
    rc = main([*args, "--viz"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "samples written: 8" in err and "time per stage" in err
    entries = read_manifest(out)
    assert len(entries) == 8 and len(list((out / "viz").glob("*.png"))) == 8
    cfg = json.loads((out / "dataset.json").read_text())["config"]
    assert cfg["offsets"] == [-2, -1, 1, 2] and cfg["flow"] == "dis"
    with np.load(out / entries[3]["sample"]) as z:
        r = z["responsibility"].astype(np.float32)
    from _resp_scene import region_mask

    hand = region_mask(square(3), 64, 48)
    assert r[1][hand].mean() > 0.6 and r[1][~hand].mean() < 0.2  # DIS on a 64x48 texture: rough
    # a second run has nothing to do
    assert main([*args, "--quiet"]) == 0


def test_pseudolabel_command_errors_are_one_line_exit_2(tmp_path, capsys):
    clip, _, _ = make_clip(tmp_path / "clip", n=4)
    (clip / "hands.json").rename(tmp_path / "elsewhere.json")
    cases = [
        ([str(clip)], "hands.json"),
        ([str(clip), "--hands", str(tmp_path / "elsewhere.json"), "--frames", "0,9"], "outside the clip"),
        ([str(clip), "--hands", str(tmp_path / "elsewhere.json"), "--shard", "2/2"], "shard"),
        ([str(clip), "--hands", str(tmp_path / "elsewhere.json"), "--flow", "gt"], "scene.json"),
        ([str(clip), "--hands", str(tmp_path / "elsewhere.json"), "--offsets", "0"], "offsets"),
        ([str(tmp_path / "nope.mp4"), "--hands", str(tmp_path / "elsewhere.json")], "nope.mp4"),
        ([str(clip), str(clip), "--hands", str(tmp_path / "elsewhere.json")], "one clip"),
    ]
    import cohesiv.hands

    if not hasattr(cohesiv.hands, "detect_hands"):  # the MediaPipe detector is not there yet
        cases.append(([str(clip), "--detect-hands"], "detect_hands"))
    for argv, msg in cases:
        rc = main(["pseudolabel", *argv, "--out", str(tmp_path / "ds"), "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2, argv
        assert msg in err and err.count("\n") == 1, err


def test_pseudolabel_gt_flow_on_a_synth_clip(tmp_path, capsys):
    synth = pytest.importorskip("cohesiv.synth")
    from cohesiv.io import read_label

    synth.generate_dataset(tmp_path / "synth", clips=1, frames=5, size=(96, 72), seed=3, progress=False)
    clip = tmp_path / "synth" / "clip_0000"
    out = tmp_path / "ds"
    rc = main(["pseudolabel", str(clip), "--out", str(out), "--flow", "gt", "--no-fb-check", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    entries = read_manifest(out)
    assert entries
    e = entries[len(entries) // 2]
    with np.load(out / e["sample"]) as z:
        r = z["responsibility"].astype(np.float32)
        assert z["valid"].all()  # --no-fb-check
    np.testing.assert_allclose(r.sum(0), 1, atol=2e-3)
    lab = read_label(clip / "labels" / f"{e['frame']:06d}.png")
    assert r.shape == (len(e["hands"]) + 1, *lab.shape)


def test_pseudolabel_person_rule_grabcut_on_a_synth_clip(tmp_path, capsys):
    """--person-rule grabcut is recorded and its person masks fit the synthetic hands better than hulls."""
    synth = pytest.importorskip("cohesiv.synth")
    from cohesiv.io import read_label

    synth.generate_dataset(tmp_path / "synth", clips=1, frames=5, size=(128, 96), seed=4, progress=False)
    clip = tmp_path / "synth" / "clip_0000"
    ious = {}
    for rule in ("hull", "grabcut"):
        out = tmp_path / rule
        args = ["pseudolabel", str(clip), "--out", str(out), "--flow", "gt", "--person-rule", rule]
        assert main([*args, "--quiet"]) == 0, capsys.readouterr().err
        assert json.loads((out / "dataset.json").read_text())["config"]["person_rule"] == rule
        inter = union = 0
        for e in read_manifest(out):
            with np.load(out / e["sample"]) as z:
                person = z["person"] > 0
            hand = np.isin(read_label(clip / "labels" / f"{e['frame']:06d}.png"), HAND_CLASSES)
            inter, union = inter + (person & hand).sum(), union + (person | hand).sum()
        ious[rule] = inter / union
    assert ious["grabcut"] > ious["hull"] + 0.05, ious


def test_pseudolabel_stop_at_wrist_marks_the_hands_and_training_cuts_their_forearms(tmp_path, capsys):
    """--stop-at-wrist stores the same maps, marks the 21-keypoint hands, and loading cuts at the wrist."""
    synth = pytest.importorskip("cohesiv.synth")
    from cohesiv.io.dataset import wrist_points
    from cohesiv.responsibility.masks import forearm_cut
    from cohesiv.train.data import PseudoLabelDataset

    synth.generate_dataset(tmp_path / "synth", clips=1, frames=5, size=(128, 96), seed=4, progress=False)
    clip = tmp_path / "synth" / "clip_0000"
    outs = {}
    for flag in ([], ["--stop-at-wrist"]):
        out = outs[bool(flag)] = tmp_path / f"ds{len(flag)}"
        args = ["pseudolabel", str(clip), "--out", str(out), "--flow", "gt", "--forearm", *flag, "--quiet"]
        assert main(args) == 0, capsys.readouterr().err
        assert json.loads((out / "dataset.json").read_text())["config"]["stop_at_wrist"] is bool(flag)
    plain, marked = (read_manifest(outs[k]) for k in (False, True))
    assert [e["id"] for e in plain] == [e["id"] for e in marked]
    assert all(h.get("stop_at_wrist") for e in marked for h in e["hands"])  # synthetic hands: 21 keypoints
    assert not any("stop_at_wrist" in h for e in plain for h in e["hands"])
    for e in marked:  # the stored maps do not change
        with np.load(outs[False] / e["sample"]) as a, np.load(outs[True] / e["sample"]) as b:
            for k in a.files:
                np.testing.assert_array_equal(a[k], b[k])
    loaded = {k: PseudoLabelDataset([outs[k]]) for k in outs}
    cut_pixels = 0
    for i, e in enumerate(marked):
        a, b = loaded[False].load(i), loaded[True].load(i)
        h, w = a.person.shape
        cut = np.zeros((h, w), bool)
        for pts in wrist_points(e["hands"]):
            cut |= forearm_cut(pts, (w, h))
        np.testing.assert_array_equal(b.person[~cut], a.person[~cut])
        assert not b.person[cut].any() and not b.responsibility[1:, cut].any()
        np.testing.assert_allclose(b.responsibility.sum(0), 1, atol=2e-3)
        cut_pixels += int(a.person[cut].sum())
    assert cut_pixels > 0  # the forearm band was person, and is no longer
