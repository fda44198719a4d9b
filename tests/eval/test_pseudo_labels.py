"""``cohesiv eval --pseudo-labels``: a written dataset scores as the baseline with the same options."""

import json

import pytest

from cohesiv.cli import main


@pytest.fixture(scope="module")
def synth_clips(tmp_path_factory):
    from cohesiv.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, clips=2, frames=6, size=(96, 72), seed=5, camera="static", progress=False)
    return out


def test_eval_pseudo_labels_matches_the_baseline_with_the_same_options(tmp_path, synth_clips):
    clips = [str(p) for p in sorted(synth_clips.glob("clip_*"))]
    ds = tmp_path / "ds"
    assert main(["pseudolabel", *clips, "--out", str(ds), "--flow", "gt", "--forearm", "--quiet"]) == 0
    a, b = tmp_path / "pl.json", tmp_path / "base.json"
    assert main(["eval", "--pseudo-labels", str(ds), "--data", *clips, "--out", str(a), "--quiet"]) == 0
    common = ["--data", *clips, "--threshold", "0.5", "--flow", "gt", "--forearm", "--quiet"]
    assert main(["eval", "--baseline", "responsibility", *common, "--out", str(b)]) == 0
    ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ma["n_images"] == mb["n_images"] == 12
    for task in ("All", "Pair", "Hand", "Obj"):
        assert ma[task]["mIoU"] == pytest.approx(mb[task]["mIoU"], abs=0.2), task
    assert ma["config"]["pseudo_labels"] == str(ds) and mb["config"]["pseudolabel"]["forearm"] is True


def test_eval_pseudo_labels_names_a_frame_that_has_no_sample(tmp_path, synth_clips, capsys):
    clips = [str(p) for p in sorted(synth_clips.glob("clip_*"))]
    ds = tmp_path / "ds"
    assert main(["pseudolabel", clips[0], "--out", str(ds), "--flow", "gt", "--quiet"]) == 0
    rc = main(
        ["eval", "--pseudo-labels", str(ds), "--data", clips[1], "--out", str(tmp_path / "m.json"), "--quiet"]
    )
    assert rc != 0
    assert "no pseudo-label sample" in capsys.readouterr().err
