import json

import numpy as np
import pytest
from train_fixtures import HAND_RGB, OBJECT_RGB, write_dataset, write_labeled_clip

from cohesiv.errors import CohesivError
from cohesiv.eval.calibrate import (
    ValFrame,
    frame_metrics,
    iou_of_counts,
    miou_grid,
    readout_counts,
    sample_prototypes,
    search_thresholds,
    union_counts,
)
from cohesiv.io.labels import LEFT_HAND, LEFT_OBJECT, RIGHT_HAND
from cohesiv.train.data import PseudoLabelDataset


def test_union_counts_matches_brute_force():
    rng = np.random.default_rng(0)
    a, b, c = rng.uniform(-1, 1, (3, 12, 10))
    c = (c + 1) / 2
    gt = rng.random((12, 10)) < 0.4
    ga, gb, gc = [-0.5, 0.0, 0.3], [-0.2, 0.4], [0.1, 0.5, 0.7, 0.9]
    got = union_counts(a, b, c, gt, ga, gb, gc)
    assert got.shape == (3, 2, 4, 3)
    for i, ta in enumerate(ga):
        for j, tb in enumerate(gb):
            for r, tc in enumerate(gc):
                pred = (c > tc) & ((a > ta) | (b > tb))
                want = [(pred & gt).sum(), (pred & ~gt).sum(), (~pred & gt).sum()]
                assert got[i, j, r].tolist() == want


def test_hand_and_object_counts_match_brute_force():
    rng = np.random.default_rng(1)
    a, b, c = rng.uniform(-1, 1, (3, 9, 11))
    gh, go = rng.random((2, 9, 11)) < 0.3
    ga, gb, gc = [-0.3, 0.2], [-0.5, 0.1, 0.6], [-0.1, 0.4]
    got = readout_counts(a, b, c, {"hand": gh, "object": go}, ga, gb, gc)
    for i, ta in enumerate(ga):
        for j, tb in enumerate(gb):
            for r, tc in enumerate(gc):
                hand = (c > tc) & (a > ta)
                obj = (c > tc) & (b > tb) & ~hand
                for pred, gt, kind in ((hand, gh, "hand"), (obj, go, "object")):
                    want = [(pred & gt).sum(), (pred & ~gt).sum(), (~pred & gt).sum()]
                    assert got[kind][i, j, r].tolist() == want


def test_union_counts_at_threshold_equal_to_value_is_strict():
    a = np.array([[0.5]])
    got = union_counts(a, a - 10, np.ones((1, 1)), np.ones((1, 1), bool), [0.4, 0.5], [0.0], [0.5])
    assert got[0, 0, 0].tolist() == [1, 0, 0]
    assert got[1, 0, 0].tolist() == [0, 0, 1]  # 0.5 > 0.5 is false
    with pytest.raises(ValueError, match="increasing"):
        union_counts(a, a, a, a > 0, [0.5, 0.4], [0.0], [0.5])


def test_iou_of_counts_empty_is_perfect():
    assert iou_of_counts(np.array([[0, 0, 0], [1, 1, 2], [0, 3, 0]])).tolist() == [1.0, 0.25, 0.0]


def _frame(seed=0, size=24, noise=0.0):
    """A frame with a left hand (left half of a square) holding an object, maps that separate them."""
    rng = np.random.default_rng(seed)
    label = np.zeros((size, size), np.uint8)
    label[6:14, 4:10] = LEFT_HAND
    label[6:14, 10:16] = LEFT_OBJECT
    label[18:22, 18:22] = RIGHT_HAND  # an unqueried hand elsewhere (counts in All)
    person = np.where(label == LEFT_HAND, 0.8, -0.2) + noise * rng.normal(size=label.shape)
    obj = np.where(label == LEFT_OBJECT, 0.6, -0.3) + noise * rng.normal(size=label.shape)
    s = np.where((label == LEFT_HAND) | (label == LEFT_OBJECT), 0.9, 0.1)[None]
    s = np.clip(s + noise * rng.normal(size=s.shape), 0, 1)
    return ValFrame(
        label, s.astype(np.float32), person.astype(np.float32), obj.astype(np.float32), ["left"], [(6.0, 9.0)]
    )


def test_search_recovers_separating_thresholds():
    frames = [_frame()]
    th, best = search_thresholds(frames, "Pair")
    assert best == pytest.approx(100.0)
    # Pair alone does not constrain tau_h: the tie-break by the other tasks does (tau_o only needs
    # to keep the object, as the read-out's object excludes the hand and S covers only the pair)
    assert -0.2 <= th["tau_h"] < 0.8 and th["tau_o"] < 0.6 and 0.1 <= th["tau_r"] < 0.9
    m = frame_metrics(frames, th)
    assert m["Pair"]["mIoU"] == pytest.approx(100.0) and m["Hand"]["mIoU"] == pytest.approx(100.0)
    assert m["Obj"]["mIoU"] == pytest.approx(100.0)
    # All also counts the unqueried right hand, which no query predicts: IoU = 96 / 112
    th_all, best_all = search_thresholds(frames, "All")
    assert best_all == pytest.approx(100.0 * 96 / 112)


@pytest.mark.parametrize("objective", ["All", "Pair", "Hand", "Obj"])
def test_grid_matches_the_eval_metrics_at_every_tested_point(objective):
    frames = [_frame(s, noise=0.3) for s in range(3)]
    gh, go, gr = [-0.2, 0.2, 0.5], [0.0, 0.3], [0.3, 0.6]
    grid = miou_grid(frames, objective, gh, go, gr)
    for i, th_h in enumerate(gh):
        for j, th_o in enumerate(go):
            for r, th_r in enumerate(gr):
                m = frame_metrics(frames, {"tau_h": th_h, "tau_o": th_o, "tau_r": th_r})
                assert grid[i, j, r] == pytest.approx(m[objective]["mIoU"], abs=1e-9)


def test_search_lets_the_four_tasks_decide_within_the_tolerance(monkeypatch):
    # All/Pair barely move with the hand/object split; Hand and Obj do. Triple 0 is best on All by 0.2
    # but calls the objects hand; triple 1 is within the tolerance and much better on Hand and Obj.
    import cohesiv.eval.calibrate as cal

    grids = {
        "All": np.array([70.0, 69.8]).reshape(2, 1, 1),
        "Pair": np.array([70.0, 69.9]).reshape(2, 1, 1),
        "Hand": np.array([70.0, 75.0]).reshape(2, 1, 1),
        "Obj": np.array([1.0, 23.0]).reshape(2, 1, 1),
    }
    monkeypatch.setattr(cal, "miou_grids", lambda *a, **k: grids)
    kw = {"grid_h": [0.1, 0.2], "grid_o": [0.0], "grid_r": [0.5]}
    th, best = search_thresholds([], "All", **kw)
    assert th["tau_h"] == 0.2 and best == pytest.approx(69.8)
    th, best = search_thresholds([], "All", tolerance=0.0, **kw)
    assert th["tau_h"] == 0.1 and best == pytest.approx(70.0)
    th, _ = search_thresholds([], "All", tolerance=0.1, **kw)  # 0.2 apart: outside
    assert th["tau_h"] == 0.1


def _two_hands_frame():
    """Two queried hands; at a low tau_r each hand's mask covers both hands (the union stays right).

    Hand 0 scores 0.9 on its hand A (8x6), 0.4 on a strip C of that hand (8x1) and 0.4 on the other
    hand B (8x6); hand 1 scores 0.9 on B and 0.4 on A and C. tau_r in [0.1, 0.4)
    gives each hand A + C + B: All 100, Pair about 50. tau_r in [0.4, 0.9) gives hand 0 A and hand 1
    B: All 96/104, Pair about 93.
    """
    label = np.zeros((16, 24), np.uint8)
    label[4:12, 2:9] = LEFT_HAND  # A (columns 2-7) and C (column 8)
    label[4:12, 14:20] = RIGHT_HAND  # B
    a, b = np.zeros(label.shape, bool), label == RIGHT_HAND
    a[4:12, 2:8] = True
    c = (label == LEFT_HAND) & ~a
    s = np.full((2, *label.shape), 0.05, np.float32)
    s[0][a], s[0][c], s[0][b] = 0.9, 0.4, 0.4
    s[1][b], s[1][a | c] = 0.9, 0.4
    person = np.where(label > 0, 0.8, -0.2).astype(np.float32)
    obj = np.full(label.shape, -0.5, np.float32)
    return ValFrame(label, s, person, obj, ["left", "right"], [(4.0, 8.0), (16.0, 8.0)])


def test_default_objective_keeps_each_hand_its_own_pixels():
    # All cannot see a hand mask that takes the other hand's pixels; the default objective (Pair) can
    from cohesiv.config import CalibrationOptions

    frames = [_two_hands_frame()]
    th_all, best_all = search_thresholds(frames, "All")
    assert best_all == pytest.approx(100.0) and th_all["tau_r"] < 0.4
    assert frame_metrics(frames, th_all)["Pair"]["mIoU"] < 55
    th, _ = search_thresholds(frames, CalibrationOptions().objective)
    assert 0.4 <= th["tau_r"] < 0.9
    m = frame_metrics(frames, th)
    assert m["Pair"]["mIoU"] == pytest.approx(100 * (48 / 56 + 1) / 2)
    assert m["All"]["mIoU"] == pytest.approx(100 * 96 / 104)


def test_unknown_objective():
    with pytest.raises(CohesivError, match="objective"):
        search_thresholds([_frame()], "Hand")
    with pytest.raises(CohesivError, match="objective"):
        miou_grid([_frame()], "Both")


class _ColourFeatures:
    """Z = one-hot of the pixel colour class (hand, object, other): the prototypes are known exactly."""

    def features(self, image):
        hand = np.all(image == HAND_RGB, -1)
        obj = np.all(image == OBJECT_RGB, -1)
        z = np.stack([hand, obj, ~(hand | obj), np.zeros_like(hand)]).astype(np.float32)
        return 3.0 * z  # not unit length: the prototypes normalise


def test_prototypes_are_the_mean_embedding_of_the_masks(tmp_path):
    ds = PseudoLabelDataset([write_dataset(tmp_path / "d", n=5, size=48)])
    protos, used = sample_prototypes(_ColourFeatures(), ds, samples=50, progress=False)
    np.testing.assert_allclose(protos["person"], [1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(protos["object"], [0, 1, 0, 0], atol=1e-6)
    assert used == {"person": 50, "object": 50}
    # fewer pixels than asked: all of them
    _, used = sample_prototypes(_ColourFeatures(), ds, samples=10**6, progress=False)
    assert 0 < used["person"] < 10**6


def test_calibrate_command_end_to_end(tmp_path):
    from cohesiv.cli import main
    from cohesiv.model import ModelConfig, Predictor
    from cohesiv.train import make_config, train

    ds = write_dataset(tmp_path / "ds", n=4, size=64)
    clip = write_labeled_clip(tmp_path / "clip", n=2, size=64)
    cfg = make_config(
        data=[ds], out=tmp_path / "run", size=32, batch=2, steps=1, model=ModelConfig(embed_dim=8, head_dim=8)
    )
    train(cfg, progress=False)
    rc = main(
        ["calibrate", "--run", str(tmp_path / "run"), "--val", str(clip), "--samples", "40", "--no-progress"]
    )
    assert rc == 0
    doc = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert (
        {"tau_h", "tau_o", "tau_r"}
        <= set(doc["thresholds"])
        <= {"tau_h", "tau_o", "tau_r", "tau_g", "open_o"}
    )
    assert len(doc["prototypes"]["person"]) == 8 and "off" in doc["growth"]
    assert doc["val_metrics"]["n_images"] == 2 and doc["samples"] == {"person": 40, "object": 40}
    assert doc["objective"] == "Pair"  # the default
    assert doc["objective_mIoU"] == pytest.approx(doc["val_metrics"]["Pair"]["mIoU"])
    pred = Predictor.from_run(tmp_path / "run")
    assert pred.readout_mode == "calibrated"
    # a missing validation clip is a one-line error
    assert main(["calibrate", "--run", str(tmp_path / "run"), "--val", str(tmp_path / "nope")]) == 2
    # no labeled clips at all: prototypes only, and the predictor splits by the closer prototype
    assert main(["calibrate", "--run", str(tmp_path / "run"), "--samples", "40", "--no-progress"]) == 0
    doc = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert doc["thresholds"] is None and len(doc["prototypes"]["object"]) == 8
    assert Predictor.from_run(tmp_path / "run").readout_mode == "nearest-prototype"
    # several network sizes: each is calibrated, the best on the validation clip is kept and predict uses it
    argv = [
        "calibrate",
        "--run",
        str(tmp_path / "run"),
        "--val",
        str(clip),
        "--samples",
        "40",
        "--no-progress",
    ]
    assert main([*argv, "--size", "32,64"]) == 0
    doc = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert set(doc["sizes"]) == {"32", "64"} and doc["size"] in (32, 64)
    assert doc["sizes"][str(doc["size"])] == max(doc["sizes"].values())
    assert Predictor.from_run(tmp_path / "run").size == doc["size"]
    assert Predictor.from_run(tmp_path / "run", size=96).size == 96  # the caller's size wins
    # the test-time flip is calibrated beside the plain read-out and kept only when it helps
    assert main([*argv, "--flip"]) == 0
    doc = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert set(doc["flip_sizes"]) == set(doc["sizes"]) == {"32"}
    assert doc["flip"] == (doc["flip_sizes"]["32"] >= doc["sizes"]["32"] + 0.5)
    assert Predictor.from_run(tmp_path / "run").flip == doc["flip"]
    # --query-person: recorded, and prediction takes the person prototype from each image
    assert not doc["query_person"] and not Predictor.from_run(tmp_path / "run").query_person
    assert main([*argv, "--query-person"]) == 0
    doc = json.loads((tmp_path / "run" / "calibration.json").read_text())
    assert doc["query_person"] and Predictor.from_run(tmp_path / "run").query_person
    # choosing a size needs labels; a bad size list is a usage error
    assert main(["calibrate", "--run", str(tmp_path / "run"), "--size", "32,64"]) == 2
    with pytest.raises(SystemExit):
        main([*argv, "--size", "32,x"])
    assert main([*argv, "--tolerance", "-1"]) == 2


def _forearm_frame():
    """A hand whose forearm has a low score but looks like person: growing recovers it."""
    label = np.zeros((24, 24), np.uint8)
    label[4:10, 6:12] = LEFT_HAND
    label[10:24, 7:11] = LEFT_HAND  # forearm to the border
    person = np.where(label == LEFT_HAND, 0.8, -0.2).astype(np.float32)
    obj = np.full(label.shape, -0.3, np.float32)
    s = np.zeros((1, 24, 24), np.float32)
    s[0, 4:10, 6:12] = 0.9  # S only on the hand
    return ValFrame(label, s, person, obj, ["left"], [(8.0, 6.0)])


def test_search_growth_switches_on_only_when_it_helps():
    from cohesiv.eval.calibrate import search_growth

    frames = [_forearm_frame()]
    th, best = search_thresholds(frames, "Pair")
    assert best == pytest.approx(100.0 * 36 / 92)
    tau_g, scores = search_growth(frames, th, "Pair", grid_g=[0.5, 0.9])
    assert tau_g == 0.5 and scores["0.5"] == pytest.approx(100.0) and scores["0.9"] == scores["off"]
    assert frame_metrics(frames, dict(th, tau_g=0.5))["Hand"]["mIoU"] == pytest.approx(100.0)
    # on the frame of the other tests growing changes nothing: it stays off
    plain = [_frame()]
    th2, _ = search_thresholds(plain, "Pair")
    assert search_growth(plain, th2, "Pair", grid_g=[0.5])[0] is None


def _rim_frame() -> ValFrame:
    """An empty hand with a 1-pixel rim of high S around it: the rim reads out as a false object."""
    label = np.zeros((32, 32), np.uint8)
    label[10:20, 10:20] = LEFT_HAND
    person = np.where(label == LEFT_HAND, 0.8, -0.2).astype(np.float32)
    obj = np.where(label == LEFT_HAND, -0.8, 0.6).astype(np.float32)
    s = np.zeros((1, 32, 32), np.float32)
    s[0, 9:21, 9:21] = 0.9  # the hand and a rim one pixel wide
    return ValFrame(label, s, person, obj, ["left"], [(14.0, 14.0)])


def test_open_objects_removes_thin_rims_and_keeps_blobs():
    from cohesiv.model.predictor import open_objects, opening_radius

    obj = np.zeros((2, 40, 40), bool)
    obj[0, 5:7, 5:35] = True  # a band 2 pixels wide
    obj[1, 10:30, 10:30] = True  # a 20x20 object
    out = open_objects(obj, 2.0)
    assert not out[0].any()
    assert not (out[1] & ~obj[1]).any()  # an opening never adds pixels
    lost = obj[1] & ~out[1]
    assert lost.sum() <= 4 * 3 and not lost[11:29, 11:29].any()  # only the square's corner pixels go
    assert (open_objects(obj, 0.4) == obj).all()  # below half a pixel: unchanged
    assert opening_radius(0.01, (3, 100, 300)) == pytest.approx(3.0)


def test_search_opening_switches_on_only_when_it_helps():
    from cohesiv.eval.calibrate import search_opening

    frames = [_rim_frame()]
    th = {"tau_h": 0.5, "tau_o": 0.5, "tau_r": 0.5}
    before = frame_metrics(frames, th)
    assert before["Obj"]["false_object_rate"] == pytest.approx(100.0)
    assert before["Pair"]["mIoU"] == pytest.approx(100.0 * 100 / 144)
    open_o, scores = search_opening(frames, th, "Pair", grid=[0.01, 0.05])
    assert open_o == 0.05 and scores["0.05"] == pytest.approx(100.0)  # radius 1.6 -> 2 pixels
    assert scores["0.01"] == scores["off"]  # radius 0.32: below half a pixel, nothing changes
    after = frame_metrics(frames, dict(th, open_o=0.05))
    assert after["Obj"]["false_object_rate"] == pytest.approx(0.0)
    # a frame without rims: opening does not help, it stays off
    assert search_opening([_frame()], {"tau_h": 0.5, "tau_o": 0.5, "tau_r": 0.5}, "Pair")[0] is None


def test_old_import_path_is_the_moved_module():
    import cohesiv.eval.calibrate as new
    import cohesiv.train.calibrate as old
    from cohesiv.train.calibrate import calibrate_run

    assert old is new and calibrate_run is new.calibrate_run
