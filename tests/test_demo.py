"""``cohesiv demo --quick``: the whole pipeline end to end on tiny inputs, its report, and resuming."""

import json

import pytest

from cohesiv.cli import main

METHODS = {
    "COHESIV (ours, trained on pseudo-labels)",
    "Thresholded Responsibility (DIS)",
    "Flow baseline (DIS)",
}
SECTIONS = (
    "What ran",
    "Metrics on held-out synthetic clips",
    "Pseudo-labels",
    "Predictions on held-out",
    "Timings",
)


def _check_outputs(out, video=False):
    html = (out / "report.html").read_text()
    for s in SECTIONS:
        assert s in html
    metrics = json.loads((out / "metrics.json").read_text())
    assert METHODS <= set(metrics)
    for m in METHODS:
        assert all(0.0 <= metrics[m][t]["mIoU"] <= 100.0 for t in ("All", "Pair", "Hand"))
    times = json.loads((out / "timings.json").read_text())
    stages = ["synth", "hands", "pseudolabel", "train", "calibrate", "eval", "predict", "real images"]
    assert list(times) == (stages if video else [s for s in stages if s != "hands"])
    assert (out / "run" / "calibration.json").is_file() and (out / "figures" / "overview.png").is_file()
    # every picture the report links exists
    for src in html.split('src="')[1:]:
        assert (out / src.split('"')[0]).is_file()
    assert not list(out.rglob("*.tmp*"))  # nothing half-written
    return metrics


def test_quick_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--no-video", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Summary (mIoU %" in printed and str((out / "report.html").resolve()) in printed
    # 4 training steps cannot beat the pseudo-labels, and the demo says so instead of leaving it unexplained
    assert "too few for it to beat its pseudo-labels" in printed
    first = _check_outputs(out)
    # a second run reuses the finished work (same model, same numbers)
    assert main(["demo", "--quick", "--no-video", "--out", str(out)]) == 0
    assert _check_outputs(out) == first


def test_quick_demo_with_the_embedded_video(tmp_path, capsys):
    from cohesiv.hands.model_setup import hand_model_path

    if not hand_model_path().is_file():
        pytest.skip("hand model not built (python -m cohesiv.hands.model_setup)")
    import numpy as np

    from cohesiv.demo import default_video
    from cohesiv.io import FrameReader, write_image

    # a one-photo real image set: a frame of the cup clip with a made-up binary hand mask
    photos = tmp_path / "photos"
    frame = FrameReader(default_video()).frame(30)
    write_image(photos / "images" / "cup30.png", frame)
    mask = np.zeros_like(frame)
    mask[100:200, 100:220] = 255
    write_image(photos / "masks" / "cup30.png", mask)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--real-images", str(photos)]) == 0
    _check_outputs(out, video=True)
    html = (out / "report.html").read_text()
    assert "cup.mp4" in html and list((out / "figures").glob("pred_video_*.png"))
    assert "Real photos with hand masks" in html and "photos: 1 images" in html
    assert (out / "figures" / "real_photos" / "cup30.png").is_file()
    assert "Real images, photos" in capsys.readouterr().out
