import argparse

import numpy as np
import pytest

from cohesiv.commands import hands as cmd
from cohesiv.errors import CohesivError
from cohesiv.hands.model_setup import hand_model_path, is_valid_bundle

EGO = "ego4d-lavila-clips/3c0dffd0-e38e-4643-bc48-d513943dc20b_012_014.mp4"


def _args(*argv):
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    return p.parse_args([str(a) for a in argv])


def _clip(tmp_path, n=3):
    from cohesiv.io import write_image

    for t in range(n):
        write_image(tmp_path / "clip" / f"{t:03d}.png", np.full((48, 64, 3), 30 * t, np.uint8))
    return tmp_path / "clip"


def test_missing_model_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COHESIV_HAND_MODEL", str(tmp_path / "none.task"))
    with pytest.raises(CohesivError, match="hand model not found"):
        cmd.run(_args(_clip(tmp_path), "--out", tmp_path / "h.json"))
    assert not (tmp_path / "h.json").exists()


def test_bad_arguments_and_clip(tmp_path):
    with pytest.raises(CohesivError, match="--every"):
        cmd.run(_args(_clip(tmp_path), "--out", tmp_path / "h.json", "--every", 0))
    with pytest.raises(CohesivError, match="no such video"):
        cmd.run(_args(tmp_path / "missing.mp4", "--out", tmp_path / "h.json"))


def test_cli_main_reports_one_line(tmp_path, monkeypatch, capsys):
    from cohesiv.cli import main

    monkeypatch.setenv("COHESIV_HAND_MODEL", str(tmp_path / "none.task"))
    assert main(["hands", str(_clip(tmp_path)), "--out", str(tmp_path / "h.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cohesiv hands: error:" in err[0] and "model_setup" in err[0]


def test_hands_command_writes_tracks_and_viz(tmp_path, shared_data, capsys):
    pytest.importorskip("mediapipe")
    if not is_valid_bundle(hand_model_path()):
        pytest.skip("hand model not built; run python -m cohesiv.hands.model_setup")
    from cohesiv.io import FrameReader, read_hands, write_image

    for t, f in enumerate(FrameReader(shared_data / EGO)):
        if 38 <= t < 44:
            write_image(tmp_path / "clip" / f"{t:03d}.png", f)
    out = tmp_path / "hands.json"
    rc = cmd.run(
        _args(tmp_path / "clip", "--out", out, "--viz", tmp_path / "viz", "--every", 2, "--no-progress")
    )
    assert rc == 0
    tracks = read_hands(out)
    assert tracks.image_size == (384, 288) and sorted(tracks.frames) == [0, 2, 4]
    assert sorted(p.name for p in (tmp_path / "viz").iterdir()) == ["000000.png", "000002.png", "000004.png"]
    text = capsys.readouterr().out
    assert "3 frames processed" in text and "ms per frame" in text
    counts = [int(v) for v in text.split("frames with 0/1/2+ hands: ")[1].split("\n")[0].split(" / ")]
    assert counts == [sum(len(h) == k for h in tracks.frames.values()) for k in (0, 1)] + [
        sum(len(h) >= 2 for h in tracks.frames.values())
    ]


def test_draw_hands_marks_the_points():
    from cohesiv.hands.draw import draw_hands
    from cohesiv.io import Hand

    img = np.zeros((60, 80, 3), np.uint8)
    pts = np.array([[10, 10], [30, 10], [10, 30], [30, 30]], np.float32)
    out = draw_hands(img, [Hand("right", "right", pts, box=(10, 10, 30, 30))])
    assert out.shape == img.shape and img.max() == 0  # input untouched
    assert out[10, 10].any() and out[30, 30].any()
    assert not out[55, 75].any()  # far from the hand
