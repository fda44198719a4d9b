"""Synthetic clip folders: layout, agreement with the in-memory clip, exact_flow, re-runs, CLI."""

import json

import numpy as np
import pytest

from cohesiv.cli import main
from cohesiv.errors import CohesivError, InputError
from cohesiv.io import FrameReader, read_flo, read_hands, read_image, read_label
from cohesiv.synth import exact_flow, generate_clip, generate_dataset

KW = {"clips": 2, "frames": 4, "size": (96, 72), "seed": 5, "progress": False}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "data"
    report = generate_dataset(out, **KW)
    return out, report


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout(dataset):
    out, report = dataset
    assert report.written == 2 and report.skipped == 0
    assert [p.name for p in report.clips] == ["clip_0000", "clip_0001"]
    for clip in report.clips:
        assert sorted(p.name for p in (clip / "frames").iterdir()) == [f"{t:06d}.png" for t in range(4)]
        assert sorted(p.name for p in (clip / "labels").iterdir()) == [f"{t:06d}.png" for t in range(4)]
        assert sorted(p.name for p in (clip / "flow").iterdir()) == [f"{t:06d}.flo" for t in range(3)]
        tracks = read_hands(clip / "hands.json")  # validates the schema (points inside the image, ...)
        assert tracks.image_size == (96, 72) and sorted(tracks.frames) == [0, 1, 2, 3]
        reader = FrameReader(clip)
        assert len(reader) == 4 and reader.size == (96, 72)
        scene = json.loads((clip / "scene.json").read_text())
        assert scene["size"] == [96, 72] and scene["frames"] == 4
        assert len(scene["motions"]["camera"]["matrices"]) == 4
        assert not list(clip.rglob(".tmp-*"))


def test_files_equal_the_in_memory_clip(dataset):
    out, report = dataset
    for i, clip in enumerate(report.clips):
        mem = generate_clip([5, i], frames=4, size=(96, 72), camera="mixed")
        for t in range(4):
            assert np.array_equal(read_image(clip / "frames" / f"{t:06d}.png"), mem.frames[t])
            assert np.array_equal(read_label(clip / "labels" / f"{t:06d}.png"), mem.labels[t])
        for t in range(3):
            assert np.array_equal(read_flo(clip / "flow" / f"{t:06d}.flo"), mem.flows[t])
        tracks = read_hands(clip / "hands.json")
        for t in range(4):
            for a, b in zip(tracks.hands_at(t), mem.hands.hands_at(t)):
                assert a.id == b.id and a.side == b.side
                np.testing.assert_allclose(a.points, b.points, atol=1e-3)  # JSON keeps 3 decimals


def test_exact_flow_matches_flo_files_and_is_zero_on_the_same_frame(dataset):
    out, report = dataset
    clip = report.clips[0]
    for t in range(3):
        assert np.array_equal(exact_flow(clip, t, t + 1), read_flo(clip / "flow" / f"{t:06d}.flo"))
    assert np.abs(exact_flow(clip, 2, 2)).max() < 1e-4
    f = exact_flow(clip, 3, 0)
    assert f.shape == (2, 72, 96) and f.dtype == np.float32


def test_exact_flow_errors(dataset, tmp_path):
    out, report = dataset
    with pytest.raises(InputError, match=r"frame s=4 out of range 0\.\.3"):
        exact_flow(report.clips[0], 0, 4)
    with pytest.raises(InputError, match="scene.json"):
        exact_flow(tmp_path, 0, 1)


def test_same_seed_gives_identical_files(dataset, tmp_path):
    out, _ = dataset
    generate_dataset(tmp_path / "again", **KW)
    assert _files(out) == _files(tmp_path / "again")


def test_rerun_skips_complete_clips_and_redoes_incomplete_ones(tmp_path):
    out = tmp_path / "d"
    kw = KW | {"clips": 1, "frames": 3, "size": (64, 48)}
    generate_dataset(out, **kw)
    before = _files(out)
    report = generate_dataset(out, **kw)
    assert (report.written, report.skipped) == (0, 1)
    (out / "clip_0000" / "frames" / "000001.png").unlink()
    report = generate_dataset(out, **kw)
    assert (report.written, report.skipped) == (1, 0)
    assert _files(out) == before
    report = generate_dataset(out, **(kw | {"clips": 2}))  # more clips: the first is kept
    assert (report.written, report.skipped) == (1, 1)


def test_other_recipe_needs_overwrite_and_removes_stale_frames(tmp_path):
    out = tmp_path / "d"
    kw = KW | {"clips": 1, "frames": 4, "size": (64, 48)}
    generate_dataset(out, **kw)
    with pytest.raises(InputError, match="other settings.*--overwrite"):
        generate_dataset(out, **(kw | {"frames": 3}))
    generate_dataset(out, **(kw | {"frames": 3}), overwrite=True)
    assert len(list((out / "clip_0000" / "frames").iterdir())) == 3
    assert len(list((out / "clip_0000" / "flow").iterdir())) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clips": 0}, "--clips must be at least 1"),
        ({"frames": 1}, "--frames must be at least 2"),
        ({"size": (16, 16)}, "--size must be between"),
        ({"camera": "handheld"}, "--camera must be one of"),
    ],
)
def test_dataset_argument_errors(tmp_path, kwargs, match):
    with pytest.raises(CohesivError, match=match):
        generate_dataset(tmp_path, **(KW | kwargs))


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(["synth", str(out), "--clips", "1", "--frames", "2", "--size", "64x48", "--camera", "moving"])
        == 0
    )
    assert "1 clips of 2 frames at 64x48" in capsys.readouterr().out
    assert json.loads((out / "clip_0000" / "scene.json").read_text())["camera"] == "moving"
    assert main(["synth", str(out), "--frames", "1"]) == 2
    assert "--frames must be at least 2" in capsys.readouterr().err
    assert main(["synth", str(out), "--size", "abc"]) == 2
    assert "--size" in capsys.readouterr().err
    assert main(["synth", str(out), "--clips", "0"]) == 2
    (tmp_path / "file").write_text("x")
    assert main(["synth", str(tmp_path / "file"), "--clips", "1", "--size", "64x48"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_exact_flow_malformed_scene_json(tmp_path):
    generate_dataset(tmp_path / "d", **(KW | {"clips": 1, "frames": 2, "size": (64, 48)}))
    clip = tmp_path / "d" / "clip_0000"
    (clip / "scene.json").write_text('{"frames": 2}')
    with pytest.raises(InputError, match="malformed scene.json"):
        exact_flow(clip, 0, 1)
    (clip / "scene.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read scene.json"):
        exact_flow(clip, 0, 1)
