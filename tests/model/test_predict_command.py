import json

import numpy as np
import pytest

from cohesiv.cli import main
from cohesiv.io import HandTracks, read_label, write_hands, write_image
from cohesiv.io.hands import Hand


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"img{i}.png"
        write_image(p, rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
        paths.append(str(p))
    return paths


def test_predict_with_hand_points(run_dir, images, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "predict",
            "--run",
            str(run_dir),
            *images,
            "--hand",
            "10,20,left",
            "--hand",
            "50,10",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["images"] == 2 and summary["mode"] == "query-prototype"
    for stem in ("img0", "img1"):
        lab = read_label(out / f"{stem}_label.png")
        assert lab.shape == (40, 60)
        with np.load(out / f"{stem}_scores.npz") as z:
            assert z["scores"].shape == (2, 40, 60) and z["person_sim"].shape == (40, 60)
            assert list(z["sides"]) == ["left", "right"]
            assert z["queries"].tolist() == [[10.0, 20.0], [50.0, 10.0]]
        assert (out / f"{stem}_overlay.png").is_file()
    doc = json.loads((out / "predictions.json").read_text())
    assert [im["file_name"] for im in doc["images"]] == ["img0_label.png", "img1_label.png"]
    assert [a["hand_id"] for a in doc["annotations"] if a["category_id"] < 3] == ["left", "hand1"] * 2


def test_predict_with_hands_file(run_dir, images, tmp_path):
    tracks = HandTracks(
        (60, 40),
        {
            0: [Hand("right", "right", np.array([[40, 10], [50, 10], [50, 20], [40, 20]]))],
            1: [
                Hand("a", None, np.zeros((4, 2)), query=(3.0, 4.0)),
                Hand("b", "left", np.zeros((4, 2)), query=(30, 30)),
            ],
        },
    )
    write_hands(tmp_path / "hands.json", tracks)
    out = tmp_path / "out"
    rc = main(
        [
            "predict",
            "--run",
            str(run_dir),
            *images,
            "--hands",
            str(tmp_path / "hands.json"),
            "--out",
            str(out),
            "--no-overlay",
        ]
    )
    assert rc == 0
    with np.load(out / "img0_scores.npz") as z:
        assert z["queries"].tolist() == [[45.0, 15.0]] and list(z["sides"]) == ["right"]
    with np.load(out / "img1_scores.npz") as z:
        assert z["scores"].shape == (2, 40, 60) and list(z["sides"]) == ["left", "left"]
    assert not (out / "img0_overlay.png").exists()


def test_predict_user_errors(run_dir, images, tmp_path, capsys):
    rc = main(
        ["predict", "--run", str(tmp_path / "norun"), *images, "--hand", "1,1", "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and "no such run folder" in capsys.readouterr().err
    rc = main(["predict", "--run", str(run_dir), *images, "--hand", "100,1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "query point (100, 1) is outside the 60x40 image" in err
    write_hands(tmp_path / "h.json", HandTracks((64, 64), {}))
    rc = main(
        [
            "predict",
            "--run",
            str(run_dir),
            *images,
            "--hands",
            str(tmp_path / "h.json"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2 and "does not match image img0 (60x40)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "--run", str(run_dir), *images, "--hand", "1;2", "--out", str(tmp_path / "o")])
    assert "expected x,y or x,y,side" in capsys.readouterr().err


def test_predict_clip_folder_uses_frame_indices(run_dir, tmp_path):
    clip = tmp_path / "clip"
    rng = np.random.default_rng(1)
    for i in range(2):
        write_image(clip / f"{i:06d}.png", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    tracks = HandTracks((48, 32), {1: [Hand("r", "right", np.zeros((4, 2)), query=(40.0, 20.0))]})
    write_hands(tmp_path / "hands.json", tracks)
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--run",
                str(run_dir),
                str(clip),
                "--hands",
                str(tmp_path / "hands.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads((out / "predictions.json").read_text())
    assert [a["image_id"] for a in doc["annotations"]] == [1]  # no hands in frame 0, one in frame 1
    assert doc["annotations"][0]["side"] == "right" and doc["annotations"][0]["query"] == [40.0, 20.0]
    assert read_label(out / "labels" / "000000.png").max() == 0


def test_predict_support_keeps_hand_masks_inside_the_hull(run_dir, images, tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from cohesiv.model import Predictor
    from cohesiv.responsibility.masks import GRABCUT_REACH, hull_mask

    plain = Predictor.predict

    def everywhere(self, image, queries, sides=None):  # the untrained model finds no hand: say all is hand
        p = plain(self, image, queries, sides)
        return replace(p, hand_masks=np.ones_like(p.hand_masks), object_masks=np.zeros_like(p.object_masks))

    monkeypatch.setattr(Predictor, "predict", everywhere)

    box = np.array([[44, 14], [47, 14], [47, 17], [44, 17]], np.float32)  # a small hull
    tracks = HandTracks((60, 40), {0: [Hand("right", "right", box)], 1: [Hand("right", "right", box)]})
    write_hands(tmp_path / "hands.json", tracks)
    outs = {}
    for support in ("none", "points", "grabcut"):
        out = outs[support] = tmp_path / support
        args = ["predict", "--run", str(run_dir), *images, "--hands", str(tmp_path / "hands.json")]
        assert main(args + ["--out", str(out), "--no-overlay", "--support", support]) == 0
    hull = hull_mask([box], (60, 40))
    spill = 0
    for stem in ("img0", "img1"):
        with (
            np.load(outs["none"] / f"{stem}_scores.npz") as a,
            np.load(outs["points"] / f"{stem}_scores.npz") as b,
        ):
            assert (b["hand_masks"] == (a["hand_masks"] & hull[None])).all()
            spill += int((a["hand_masks"] & (1 - hull)[None]).sum())
            assert (b["object_masks"] == a["object_masks"]).all()
        lab = read_label(outs["points"] / f"{stem}_label.png")
        assert not np.isin(lab[hull == 0], [1, 2]).any()  # no hand label outside the support
    assert spill > 0  # the plain masks did reach beyond the hull: the test removes something
    # --support grabcut: the supported masks refined by GrabCut, never past its reach around the points
    reach = hull_mask([box], (60, 40), dilation=GRABCUT_REACH)
    for stem in ("img0", "img1"):
        with np.load(outs["grabcut"] / f"{stem}_scores.npz") as c:
            assert c["hand_masks"].any() and not (c["hand_masks"] & (1 - reach)[None]).any()
            assert not (c["hand_masks"] & c["object_masks"]).any()
    # --hand gives no points to support
    rc = main(
        ["predict", "--run", str(run_dir), *images, "--hand", "10,20", "--out", str(tmp_path / "x")]
        + ["--support", "points"]
    )
    assert rc == 2 and "--support points needs hand points" in capsys.readouterr().err
