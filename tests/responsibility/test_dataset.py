import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _resp_scene import make_clip, region_mask

from cohesiv.errors import InputError
from cohesiv.io import read_hands, read_image
from cohesiv.responsibility.dataset import (
    ClipSource,
    PseudoLabelConfig,
    parse_frame_spec,
    parse_shard,
    read_manifest,
    write_dataset,
)

HERE = Path(__file__).resolve().parent


def _clip(tmp_path, **kw):
    folder, flow_fn, square = make_clip(tmp_path / "clip", **kw)
    return ClipSource(path=folder, hands=read_hands(folder / "hands.json")), flow_fn, square


def _write(src, flow_fn, out, **kw):
    kw.setdefault("progress", False)
    return write_dataset([src], out, kw.pop("config", PseudoLabelConfig()), flow_fn=lambda c: flow_fn, **kw)


def _contents(root: Path) -> dict:
    """Everything a dataset holds, as comparable values (npz bytes differ by zip timestamps)."""
    out = {"manifest": (root / "manifest.jsonl").read_text(), "dataset": (root / "dataset.json").read_text()}
    for p in sorted((root / "samples").glob("*.npz")):
        with np.load(p) as z:
            out[p.name] = {k: z[k].copy() for k in z.files}
    for p in sorted((root / "samples").glob("*.json")):
        out[p.name] = p.read_text()
    for p in sorted((root / "images").glob("*.png")):
        out[p.name] = read_image(p)
    assert not list(root.rglob(".tmp-*")), "temporary files left behind"
    return out


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            assert a[k].keys() == b[k].keys()
            for kk in a[k]:
                np.testing.assert_array_equal(a[k][kk], b[k][kk], err_msg=f"{k}/{kk}")
        elif isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k], k


def test_dataset_layout_and_sample_contents(tmp_path):
    src, flow_fn, square = _clip(tmp_path, skip_hands=(5,))
    out = tmp_path / "ds"
    s = _write(src, flow_fn, out)
    assert s.samples_written == 7 and s.frames_without_hands == 1
    assert s.hands_dropped == {} and s.hands_removed == 0
    assert {"flow", "consistency", "responsibility", "masks", "write", "decode"} <= set(s.times)
    entries = read_manifest(out)
    assert [e["frame"] for e in entries] == [0, 1, 2, 3, 4, 6, 7]
    cfg = json.loads((out / "dataset.json").read_text())["config"]
    assert cfg["offsets"] == [-3, -2, -1, 1, 2, 3] and cfg["temperature"] == 2.0
    e = entries[3]
    assert e["id"] == "clip_000003" and e["size"] == [64, 48]
    assert e["image"] == "images/clip_000003.png" and e["sample"] == "samples/clip_000003.npz"
    assert e["hands"][0]["id"] == "right" and e["hands"][0]["side"] == "right"
    assert len(e["hands"][0]["points"]) == 25
    np.testing.assert_allclose(e["hands"][0]["query"], np.mean(e["hands"][0]["points"], 0), atol=1e-3)
    np.testing.assert_array_equal(
        read_image(out / e["image"]), read_image(src.path / "frames" / "000003.png")
    )
    with np.load(out / e["sample"]) as z:
        r, person, valid = z["responsibility"], z["person"], z["valid"]
    assert r.dtype == np.float16 and r.shape == (2, 48, 64)
    assert person.dtype == np.uint8 and valid.dtype == np.uint8 and set(np.unique(person)) <= {0, 1}
    np.testing.assert_allclose(r.astype(np.float32).sum(0), 1.0, atol=2e-3)
    hand = region_mask(square(3), 64, 48)
    # on the square d_hand = 0 and d_BG = |k| * |step|: R_hand = mean_k sigmoid(|k| |step| / t)
    expected = np.mean([1 / (1 + np.exp(-abs(k) * np.hypot(3, 1) / 2)) for k in (-3, -2, -1, 1, 2, 3)])
    np.testing.assert_allclose(r[1][hand].astype(np.float32), expected, atol=2e-3)
    # off the square d_BG = 0 and d_hand = |k| |step|: the complement (a subset of offsets where
    # fwd-bwd flags a pixel occluded at some offset: still no more than the worst single offset)
    off = r[1][~hand].astype(np.float32)
    assert abs(np.median(off) - (1 - expected)) < 2e-3
    assert off.max() <= 1 / (1 + np.exp(np.hypot(3, 1) / 2)) + 2e-3
    assert person[hand].all() and person.sum() < 2.5 * hand.sum()


def test_resume_after_exception_gives_the_same_dataset(tmp_path):
    src, flow_fn, _ = _clip(tmp_path)
    full = tmp_path / "full"
    _write(src, flow_fn, full)

    part = tmp_path / "part"
    done = []

    def boom(sid):
        done.append(sid)
        if len(done) == 3:
            raise RuntimeError("injected crash")

    with pytest.raises(RuntimeError, match="injected"):
        _write(src, flow_fn, part, after_sample=boom)
    assert len(read_manifest(part)) == 3  # the manifest holds what was finished
    (part / "samples" / ".tmp-clip_000004-x1y2z3.npz").write_bytes(b"")  # as left by kill -9 mid-write
    s = _write(src, flow_fn, part)
    assert s.samples_done_before == 3 and s.samples_written == 5
    _assert_same(_contents(full), _contents(part))


_KILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {here!r})
from _resp_scene import make_clip
from cohesiv.io import read_hands
from cohesiv.responsibility.dataset import ClipSource, PseudoLabelConfig, write_dataset
folder, flow_fn, _ = make_clip({clip!r})
n = [0]
def after(sid):
    n[0] += 1
    if n[0] == {k}:
        os.kill(os.getpid(), signal.SIGKILL)
write_dataset([ClipSource(folder, read_hands(folder / "hands.json"))], {out!r}, PseudoLabelConfig(),
              flow_fn=lambda c: flow_fn, progress=False, after_sample=after)
"""


def test_resume_after_kill_9_gives_the_same_dataset(tmp_path):
    src, flow_fn, _ = _clip(tmp_path)
    full = tmp_path / "full"
    _write(src, flow_fn, full)
    part = tmp_path / "part"
    code = _KILL_SCRIPT.format(here=str(HERE), clip=str(src.path), out=str(part), k=4)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert p.returncode == -9, p.stderr.decode()[-2000:]
    assert len(list((part / "samples").glob("*.json"))) == 4
    s = _write(src, flow_fn, part)
    assert s.samples_done_before == 4 and s.samples_written == 4
    _assert_same(_contents(full), _contents(part))


def test_shards_split_disjointly_and_together_equal_the_full_run(tmp_path):
    src, flow_fn, _ = _clip(tmp_path, skip_hands=(2,))
    full = tmp_path / "full"
    _write(src, flow_fn, full)
    sh = tmp_path / "sharded"
    s0 = _write(src, flow_fn, sh, shard=(0, 2))
    m0 = [e["frame"] for e in read_manifest(sh)]
    s1 = _write(src, flow_fn, sh, shard=(1, 2))
    assert s0.samples_written == 4 and s1.samples_written == 3
    assert s0.frames_other_shards == 3 and s1.frames_other_shards == 4
    assert m0 == [0, 3, 5, 7]  # frames with hands are numbered 0..6; shard 0 takes even numbers
    _assert_same(_contents(full), _contents(sh))


def test_degenerate_hand_is_dropped_with_a_count(tmp_path):
    line = np.stack([np.linspace(40, 60, 6), np.linspace(5, 10, 6)], 1)  # collinear points
    src, flow_fn, _ = _clip(tmp_path, extra_hand=line)
    out = tmp_path / "ds"
    s = _write(src, flow_fn, out)
    assert s.samples_written == 8
    assert s.hands_removed == 8 and s.hands_dropped["collinear"] == sum(
        len(json.loads(p.read_text())["stats"]["offsets"]) for p in (out / "samples").glob("*.json")
    )
    e = read_manifest(out)[0]
    assert [h["id"] for h in e["hands"]] == ["right"]
    with np.load(out / e["sample"]) as z:
        assert z["responsibility"].shape == (2, 48, 64)
    assert "collinear" in s.to_text()


def test_frame_whose_only_hand_is_degenerate_is_skipped_and_remembered(tmp_path):
    from cohesiv.io import Hand, HandTracks

    src, flow_fn, _ = _clip(tmp_path)
    line = np.stack([np.linspace(40, 60, 6), np.linspace(5, 10, 6)], 1)
    frames = dict(src.hands.frames)
    frames[2] = [Hand("right", "right", line)]
    src = ClipSource(src.path, HandTracks(src.hands.image_size, frames))
    out = tmp_path / "ds"
    s = _write(src, flow_fn, out)
    assert s.samples_written == 7 and s.frames_no_fitted_hand == 1
    assert 2 not in [e["frame"] for e in read_manifest(out)]
    assert json.loads((out / "samples" / "clip_000002.json").read_text())["skipped"]
    s2 = _write(src, flow_fn, out)  # nothing left to do
    assert s2.samples_written == 0 and s2.samples_done_before == 8


def test_frames_selection_and_clip_end_offsets(tmp_path):
    src, flow_fn, _ = _clip(tmp_path)
    src = ClipSource(src.path, src.hands, frames=[0, 7])
    out = tmp_path / "ds"
    _write(src, flow_fn, out)
    stats = {p.stem: json.loads(p.read_text())["stats"] for p in (out / "samples").glob("*.json")}
    assert stats["clip_000000"]["offsets"] == [1, 2, 3]
    assert stats["clip_000007"]["offsets"] == [-3, -2, -1]


def test_rerun_with_another_config_is_refused(tmp_path):
    src, flow_fn, _ = _clip(tmp_path, n=4)
    out = tmp_path / "ds"
    _write(src, flow_fn, out)
    with pytest.raises(InputError, match="temperature"):
        _write(src, flow_fn, out, config=PseudoLabelConfig(temperature=1.0))


def test_viz_writes_overlays(tmp_path):
    src, flow_fn, _ = _clip(tmp_path, n=4)
    out = tmp_path / "ds"
    s = _write(src, flow_fn, out, viz=True)
    pics = sorted((out / "viz").glob("*.png"))
    assert len(pics) == 4 and "viz" in s.times
    img = read_image(pics[0])
    assert img.shape[0] >= 48 and img.shape[1] >= 3 * 64


def test_parse_frame_spec_and_shard():
    assert parse_frame_spec("0:10:5", 100) == [0, 5]
    assert parse_frame_spec("::40", 100) == [0, 40, 80]
    assert parse_frame_spec("90:", 93) == [90, 91, 92]
    assert parse_frame_spec("20,0,10,10", 30) == [0, 10, 20]
    with pytest.raises(ValueError, match="outside the clip"):
        parse_frame_spec("5,50", 30)
    with pytest.raises(ValueError, match="0:100:5"):
        parse_frame_spec("a:b", 30)
    with pytest.raises(ValueError, match="step"):
        parse_frame_spec("0:10:0", 30)
    assert parse_shard(None) == (0, 1) and parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_config_validation():
    assert PseudoLabelConfig(offsets=(2, -1, 1, 1)).offsets == (-1, 1, 2)
    for kw, msg in (
        ({"offsets": (0, 1)}, "offsets"),
        ({"temperature": 0}, "temperature"),
        ({"background": "x"}, "background"),
        ({"flow": "farneback"}, "flow"),
    ):
        with pytest.raises(ValueError, match=msg):
            PseudoLabelConfig(**kw)


def test_person_masks_folder_is_used_and_a_missing_mask_is_named(tmp_path):
    from cohesiv.io import write_image

    src, flow_fn, _ = _clip(tmp_path, n=4)
    masks = tmp_path / "masks"
    given = np.zeros((48, 64), np.uint8)
    given[10:20, 5:50] = 255
    for t in range(3):
        write_image(masks / f"{t:06d}.png", given)
    src = ClipSource(src.path, src.hands, frames=[0, 1, 2], person_masks=masks)
    out = tmp_path / "ds"
    _write(src, flow_fn, out)
    with np.load(out / read_manifest(out)[1]["sample"]) as z:
        np.testing.assert_array_equal(z["person"], given // 255)
    src = ClipSource(src.path, src.hands, frames=[3], person_masks=masks)
    with pytest.raises(InputError, match="no person mask for frame 3"):
        _write(src, flow_fn, out)


def test_one_frame_clip_is_skipped_not_a_crash(tmp_path):
    src, flow_fn, _ = _clip(tmp_path, n=1)
    s = _write(src, flow_fn, tmp_path / "ds")
    assert s.samples_written == 0 and s.frames_no_offsets == 1
    assert (tmp_path / "ds" / "manifest.jsonl").read_text() == ""


def test_quantize_fast_path_is_bitwise_astype_float16():
    from cohesiv.responsibility.dataset import quantize

    def reference(x):
        r = np.round(np.asarray(x, np.float32) * np.float32(2048)) * np.float32(1 / 2048)
        return r.astype(np.float16)

    rng = np.random.default_rng(0)
    cases = [
        rng.random((3, 17, 23)).astype(np.float32),
        np.arange(4097, dtype=np.float32) / 4096,  # every step and every half step (ties)
        np.array([0, 1, 1 + 1e-7, 1 - 1e-7, 1e-30, 2.44e-4, 2.45e-4], np.float32),
        np.array([np.nan, 0.5, -0.1, 3.0], np.float32),  # outside [0, 1]: the plain cast
    ]
    for x in cases:
        got, want = quantize(x), reference(x)
        assert got.dtype == np.float16 and got.shape == x.shape
        np.testing.assert_array_equal(got, want)


def test_save_npz_stores_named_arrays_uncompressed_and_np_load_reads_all(tmp_path):
    import zipfile

    from cohesiv.responsibility.dataset import save_npz

    r = np.linspace(0, 1, 2 * 8 * 9, dtype=np.float16).reshape(2, 8, 9)
    m = np.eye(8, 9, dtype=np.uint8)
    save_npz(tmp_path / "s.npz", stored=("responsibility",), responsibility=r, person=m)
    with zipfile.ZipFile(tmp_path / "s.npz") as z:
        kinds = {i.filename: i.compress_type for i in z.infolist()}
    assert kinds == {"responsibility.npy": zipfile.ZIP_STORED, "person.npy": zipfile.ZIP_DEFLATED}
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["responsibility"], r)
        np.testing.assert_array_equal(z["person"], m)


def test_flow_prefetch_thread_gives_the_same_dataset(tmp_path, monkeypatch):
    """The writer can compute the next frame's flows in a second thread: the samples are unchanged."""
    import cohesiv.flow.cache as cache_mod

    src, flow_fn, _ = _clip(tmp_path)
    cfg = PseudoLabelConfig(background="homography", forearm=True)
    made = []

    class Recording(cache_mod.FlowCache):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self._executor is not None)

    monkeypatch.setattr(cache_mod, "FlowCache", Recording)
    _write(src, flow_fn, tmp_path / "threaded", config=cfg, flow_thread=True)
    _write(src, flow_fn, tmp_path / "plain", config=cfg, flow_thread=False)
    assert made == [True, False]
    _assert_same(_contents(tmp_path / "threaded"), _contents(tmp_path / "plain"))
    # by default: the thread only when a core is free at the start of the run
    import cohesiv.threads

    for free, want in ((2, True), (1, False)):
        monkeypatch.setattr(cohesiv.threads, "auto_threads", lambda free=free: free)
        _write(src, flow_fn, tmp_path / f"auto{free}", config=cfg)
        assert made[-1] is want


@pytest.mark.parametrize("frames", [None, [0, 6, 11]])
def test_prefetch_decodes_a_video_once_in_order(tmp_path, monkeypatch, frames):
    """Reading the next frame's window ahead (for the flow thread) never restarts a video's decoder."""
    import av

    import cohesiv.flow.cache as cache_mod
    from cohesiv.io import FrameReader

    folder, _, _ = make_clip(tmp_path / "clip", n=12, step=(2, 1))
    hands = read_hands(folder / "hands.json")
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for t in range(12):
            img = read_image(folder / "frames" / f"{t:06d}.png")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert len(FrameReader(video)) == 12
    made = []

    class Recording(cache_mod.StreamingFrames):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(cache_mod, "StreamingFrames", Recording)
    summary = write_dataset(
        [ClipSource(path=video, hands=hands, frames=frames)],
        tmp_path / "ds",
        PseudoLabelConfig(),
        progress=False,
        flow_thread=True,
    )
    assert summary.samples_written == (12 if frames is None else 3)
    assert len(made) == 1 and made[0].restarts == 0
