import numpy as np
import pytest
import torch
from flow_util import textured, translate
from torchvision.utils import flow_to_image

from cohesiv.cli import main
from cohesiv.flow import FlowEstimator, flow_to_color
from cohesiv.io import read_flo, read_image, write_image


@pytest.fixture
def clip(tmp_path):
    """6 frames 96x128 of a texture moving 2 px right per frame."""
    folder = tmp_path / "clip"
    base = textured(96, 128, seed=9)
    frames = [translate(base, 2.0 * t, 0) for t in range(6)]
    for t, f in enumerate(frames):
        write_image(folder / f"{t:06d}.png", f)
    return folder, frames


def test_cli_writes_flo_color_and_valid(tmp_path, clip, capsys):
    folder, frames = clip
    out = tmp_path / "out"
    assert (
        main(["flow", str(folder), "--out", str(out), "--offsets", "1,2", "--backward", "--preset", "medium"])
        == 0
    )
    for name, count in [("fw1", 5), ("bw1", 5), ("fw2", 4), ("bw2", 4)]:
        assert len(list((out / "flow" / name).glob("*.flo"))) == count
        assert len(list((out / "color" / name).glob("*.png"))) == count
        assert len(list((out / "valid" / name).glob("*.png"))) == count
    # .flo round trip: the file holds exactly what the estimator returns
    f = read_flo(out / "flow" / "fw2" / "000001.flo")
    np.testing.assert_array_equal(f, FlowEstimator(preset="medium")(frames[1], frames[3]))
    assert abs(float(np.median(f[0])) - 4.0) < 0.1 and abs(float(np.median(f[1]))) < 0.1
    b = read_flo(out / "flow" / "bw1" / "000003.flo")  # 3 -> 2
    assert abs(float(np.median(b[0])) + 2.0) < 0.1
    color = read_image(out / "color" / "fw1" / "000000.png")
    assert color.shape == (96, 128, 3)
    valid = read_image(out / "valid" / "fw1" / "000000.png")[..., 0]
    assert set(np.unique(valid)) <= {0, 255} and (valid[10:-10, 10:-10] == 255).mean() > 0.9
    assert "18 flows computed" in capsys.readouterr().out  # 5 + 5 + 4 + 4
    # a re-run computes nothing
    assert (
        main(["flow", str(folder), "--out", str(out), "--offsets", "1,2", "--backward", "--preset", "medium"])
        == 0
    )
    assert "0 flows computed" in (o := capsys.readouterr().out) and "18 flows already done" in o
    # another preset into the same folder is refused
    assert main(["flow", str(folder), "--out", str(out), "--preset", "ultrafast"]) == 2
    assert "use another output folder" in capsys.readouterr().err


def test_cli_raft_without_weights_is_one_line_error(tmp_path, clip, capsys):
    assert main(["flow", str(clip[0]), "--out", str(tmp_path / "o"), "--method", "raft"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--raft-weights" in err


def test_cli_bad_input(tmp_path, capsys):
    assert main(["flow", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "no such video file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["flow", str(tmp_path), "--out", str(tmp_path / "o"), "--offsets", "0"])
    assert e.value.code == 2
    assert "offsets must be positive" in capsys.readouterr().err


def test_flow_to_color_matches_torchvision_and_handles_unknown():
    flow = np.zeros((2, 4, 5), np.float32)
    flow[0, :, 2:] = 3.0
    img = flow_to_color(flow)
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, flow_to_image(torch.from_numpy(flow)).permute(1, 2, 0).numpy())
    assert (img[:, :2] == 255).all()  # zero flow is white
    unknown = flow.copy()
    unknown[:, 0, 0] = 1e10
    np.testing.assert_array_equal(flow_to_color(unknown)[1:], img[1:])
    assert flow_to_color(np.stack([flow, flow])).shape == (2, 4, 5, 3)
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        flow_to_color(np.zeros((3, 4, 5)))


def test_cli_preset_choices_match_the_library():
    from cohesiv.cli import build_parser
    from cohesiv.commands import flow as command
    from cohesiv.flow.defaults import DEFAULT_DIS_PRESET, DEFAULT_RAFT_ITERS, DIS_PRESET_NAMES

    parser = build_parser()
    flow_parser = parser._subparsers._group_actions[0].choices["flow"]
    preset = next(a for a in flow_parser._actions if a.dest == "preset")
    assert tuple(preset.choices) == DIS_PRESET_NAMES and f"(default: {DEFAULT_DIS_PRESET})" in preset.help
    iters = next(a for a in flow_parser._actions if a.dest == "raft_iters")
    assert f"(default: {DEFAULT_RAFT_ITERS})" in iters.help
    # flags default to None: the estimator and the folder options take their own (cohesiv.config) values
    args = parser.parse_args(["flow", "clip.mp4", "--out", "o"])
    assert args.raft_iters is None and args.offsets is None and args.method is None
    assert command._given(args, "method", "preset", "raft_iters", "offsets") == {}
