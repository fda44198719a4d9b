"""FrameReader: folders, synth clip folders, mp4 (PyAV), animated GIF, and every error names the file."""

import numpy as np
import pytest
from PIL import Image

from cohesiv.errors import InputError
from cohesiv.io import FrameReader, iter_frames, write_image

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (128, 128, 128)]


def _frames(w=64, h=48):
    return [np.full((h, w, 3), c, np.uint8) for c in COLOURS]


def _folder(path, frames, names=None):
    path.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        write_image(path / (names[i] if names else f"{i:04d}.png"), f)
    return path


def _mp4(path, frames, fps=10):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_folder_sorted_by_name(tmp_path):
    frames = _frames()
    d = _folder(tmp_path / "clip", frames[:3], ["b.png", "a.png", "c.jpg"])
    (d / "notes.txt").write_text("ignored")
    (d / ".tmp-x.png").write_bytes(b"partial write, ignored")
    r = FrameReader(d)
    assert r.is_folder and len(r) == 3 and r.size == (64, 48)
    got = list(r)
    assert [f.shape for f in got] == [(48, 64, 3)] * 3
    assert np.array_equal(got[0], frames[1]) and np.array_equal(got[1], frames[0])  # a.png, b.png
    assert np.abs(got[2].astype(int) - frames[2]).max() < 8  # JPEG
    assert np.array_equal(r.frame(1), frames[0])
    with pytest.raises(IndexError):
        r.frame(3)


def test_synth_clip_folder_reads_its_frames_subfolder(tmp_path):
    clip = tmp_path / "clip_0000"
    _folder(clip / "frames", _frames()[:2])
    _folder(clip / "labels", [np.zeros((48, 64), np.uint8)] * 2)
    r = FrameReader(clip)
    assert len(r) == 2 and np.array_equal(next(iter(r)), _frames()[0])


def test_mp4(tmp_path):
    frames = _frames()
    p = _mp4(tmp_path / "v.mp4", frames)
    r = FrameReader(p)
    assert not r.is_folder and r.files == []
    assert r.size == (64, 48) and len(r) == 5
    got = list(iter_frames(p))
    assert len(got) == 5 and got[0].dtype == np.uint8 and got[0].shape == (48, 64, 3)
    for g, f in zip(got, frames):
        assert np.abs(g.astype(int) - f).mean() < 12  # lossy codec, but the right colours in order
    assert np.abs(r.frame(3).astype(int) - frames[3]).mean() < 12


def test_animated_gif(tmp_path):
    frames = _frames()[:3]
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(tmp_path / "a.gif", save_all=True, append_images=imgs[1:], duration=100, loop=0)
    r = FrameReader(tmp_path / "a.gif")
    got = list(r)
    assert r.size == (64, 48) and len(got) == 3 and len(r) == 3
    for g, f in zip(got, frames):
        assert np.abs(g.astype(int) - f).max() < 10  # GIF palette


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="no such video file or frame folder") as e:
        FrameReader(tmp_path / "nothing.mp4")
    assert "nothing.mp4" in str(e.value)


def test_corrupt_video(tmp_path):
    p = tmp_path / "corrupt.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError) as e:
        FrameReader(p)
    assert str(e.value).startswith(str(p))


def test_truncated_video(tmp_path):
    p = _mp4(tmp_path / "t.mp4", _frames())
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(InputError) as e:
        list(FrameReader(p))
    assert str(e.value).startswith(str(p))


def test_unsupported_file_type(tmp_path):
    p = tmp_path / "clip.txt"
    p.write_text("hello")
    with pytest.raises(InputError, match="unsupported clip type '.txt'"):
        FrameReader(p)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="folder holds no images") as e:
        FrameReader(tmp_path / "empty")
    assert "empty" in str(e.value)


def test_folder_frames_that_change_size(tmp_path):
    d = _folder(tmp_path / "c", [np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64, 3), np.uint8)])
    write_image(d / "0002.png", np.zeros((40, 64, 3), np.uint8))
    r = FrameReader(d)
    it = iter(r)
    next(it), next(it)
    with pytest.raises(InputError, match="frame 2 is 64x40 but the clip's first frame is 64x48") as e:
        next(it)
    assert "0002.png" in str(e.value)


def _ts(path, w, h, n):
    import av

    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("mpeg2video", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for _ in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), 90, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path.read_bytes()


def test_video_frames_that_change_size(tmp_path):
    # two MPEG-TS streams of different sizes, joined: a valid stream whose resolution changes midway
    p = tmp_path / "joined.mp4"
    p.write_bytes(_ts(tmp_path / "a.ts", 64, 48, 3) + _ts(tmp_path / "b.ts", 32, 24, 3))
    r = FrameReader(p)
    assert r.size == (64, 48)
    with pytest.raises(InputError, match="but earlier frames are 64x48: frames must not change size") as e:
        list(r)
    assert str(e.value).startswith(str(p))


def test_corrupt_image_in_folder_names_the_file(tmp_path):
    d = _folder(tmp_path / "c", _frames()[:1])
    (d / "0001.png").write_bytes(b"\x89PNG broken")
    r = FrameReader(d)
    with pytest.raises(InputError, match="cannot read image") as e:
        list(r)
    assert "0001.png" in str(e.value)


def test_audio_only_file(tmp_path):
    import av

    p = tmp_path / "audio.mp4"
    with av.open(str(p), "w") as c:
        s = c.add_stream("aac", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate = 8000
        for pk in s.encode(f):
            c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    with pytest.raises(InputError, match="file has no video stream") as e:
        FrameReader(p)
    assert "audio.mp4" in str(e.value)
