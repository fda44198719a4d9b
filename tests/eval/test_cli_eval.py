import json
import sys
import types

import numpy as np
import pytest
from eval_scene import SceneFlow, scene_label

import cohesiv.eval.runner as runner
from cohesiv.cli import main


@pytest.fixture
def scene_flow_source(monkeypatch):
    monkeypatch.setattr(runner, "make_flow_source", lambda *a, **k: SceneFlow())


def test_eval_baseline_fit_on_val(make_clip, tmp_path, scene_flow_source, capsys):
    data, val = make_clip(n_frames=6, labeled=(2, 3)), make_clip(n_frames=6, labeled=(1, 4))
    out = tmp_path / "m.json"
    rc = main(
        ["eval", "--baseline", "responsibility", "--data", str(data), "--val", str(val), "--out", str(out)]
    )
    assert rc == 0
    m = json.loads(out.read_text())
    assert m["All"]["mIoU"] == pytest.approx(100.0) and m["n_images"] == 2
    assert m["config"]["baseline"] == "responsibility"
    assert m["config"]["offsets"] == [-3, -2, -1, 1, 2, 3]
    assert len(m["config"]["threshold_fit"]["grid"]) == len(m["config"]["threshold_fit"]["val_all_mIoU"])
    assert "Pair" in capsys.readouterr().out


def test_eval_flow_baseline_given_threshold(make_clip, tmp_path, scene_flow_source):
    data = make_clip()
    out = tmp_path / "m.json"
    argv = [
        "eval",
        "--baseline",
        "flow",
        "--data",
        str(data),
        "--threshold",
        "1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    m = json.loads(out.read_text())
    assert m["config"]["threshold"] == 1.0 and m["config"]["offsets"] == [1]
    assert m["Pair"]["mIoU"] == pytest.approx(100.0)


def test_eval_baseline_needs_val_or_threshold(make_clip, tmp_path, capsys):
    rc = main(["eval", "--baseline", "flow", "--data", str(make_clip()), "--out", str(tmp_path / "m.json")])
    assert rc == 2
    assert "give --val CLIPS to fit the threshold, or --threshold VALUE" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_eval_bad_clip_is_one_line_error(tmp_path, capsys, scene_flow_source):
    rc = main(
        [
            "eval",
            "--baseline",
            "flow",
            "--data",
            str(tmp_path),
            "--threshold",
            "1",
            "--out",
            str(tmp_path / "m.json"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no labels/ folder" in err


def test_eval_run_uses_predictor_on_queries(make_clip, tmp_path, monkeypatch):
    calls = []

    class FakePredictor:
        @classmethod
        def from_run(cls, run_dir, device=None):
            calls.append(("from_run", str(run_dir), device))
            return cls()

        def predict(self, image, queries, sides):
            calls.append(("predict", image.shape, [tuple(q) for q in queries], list(sides)))
            lab = scene_label(2)  # the only scored frame
            return types.SimpleNamespace(
                hand_masks=(lab == 1)[None].astype(np.uint8), object_masks=np.zeros((1, *lab.shape), np.uint8)
            )

    fake = types.ModuleType("cohesiv.model")
    fake.Predictor = FakePredictor
    monkeypatch.setitem(sys.modules, "cohesiv.model", fake)
    run = tmp_path / "run"
    run.mkdir()
    data = make_clip(labeled=(2,))
    out = tmp_path / "m.json"
    assert main(["eval", "--run", str(run), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    assert calls[0] == ("from_run", str(run), None)
    assert calls[1][0] == "predict" and calls[1][1] == (32, 40, 3) and calls[1][3] == ["left"]
    assert calls[1][2] == [pytest.approx((13.5, 15.5))]  # the mean of the hand points of frame 2
    m = json.loads(out.read_text())
    assert m["Hand"]["mIoU"] == pytest.approx(100.0) and m["Obj"]["mIoU"] == 0.0
    assert m["config"]["run"] == str(run)


def test_eval_run_missing_folder(tmp_path, make_clip, capsys):
    rc = main(
        [
            "eval",
            "--run",
            str(tmp_path / "nope"),
            "--data",
            str(make_clip()),
            "--out",
            str(tmp_path / "m.json"),
        ]
    )
    assert rc == 2 and "no such run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_run_with_a_real_untrained_model(make_clip, tmp_path):
    """End to end through cohesiv.model: a random-init resnet18 run folder (no calibration)."""
    model_mod = pytest.importorskip("cohesiv.model")
    import torch

    torch.manual_seed(0)
    cfg = model_mod.ModelConfig(encoder_name="resnet18", embed_dim=8, head_dim=8)
    run = tmp_path / "run"
    model_mod.save_run_model(run, model_mod.build_model(cfg), cfg)
    out = tmp_path / "m.json"
    data = make_clip(labeled=(2, 3))
    assert main(["eval", "--run", str(run), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    m = json.loads(out.read_text())
    assert m["n_images"] == 2 and m["n_hands"] == 2
    for task in ("All", "Pair", "Hand"):
        assert 0.0 <= m[task]["mIoU"] <= 100.0


def test_offsets_option_is_symmetric(make_clip, tmp_path, scene_flow_source):
    out = tmp_path / "m.json"
    argv = ["eval", "--baseline", "responsibility", "--data", str(make_clip()), "--threshold", "0.5"]
    assert main([*argv, "--offsets", "1,2", "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["config"]["offsets"] == [-2, -1, 1, 2]
    assert main([*argv, "--offsets", "0,1", "--out", str(out)]) == 2
