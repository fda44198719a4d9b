"""``cohesiv predict CLIP``: labels, COCO JSON, overlay video; resume; bad inputs."""

import contextlib
import io
import json

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from cohesiv.cli import main
from cohesiv.io import HandTracks, read_label, write_hands, write_image
from cohesiv.io.hands import Hand
from cohesiv.model import Predictor
from cohesiv.predict_video import predict_clip

W, H, N = 48, 32, 7


def frames(n=N):
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture
def clip(tmp_path):
    d = tmp_path / "clip"
    for i, f in enumerate(frames()):
        write_image(d / f"{i:06d}.png", f)
    return d


@pytest.fixture
def hands_file(tmp_path):
    tracks = HandTracks(
        (W, H),
        {
            t: [
                Hand("left", "left", np.zeros((4, 2)), query=(8.0 + t, 16.0)),
                Hand("right", "right", np.zeros((4, 2)), query=(36.0, 10.0 + t)),
            ]
            for t in range(N)
        },
    )
    write_hands(tmp_path / "hands.json", tracks)
    return tmp_path / "hands.json"


def write_video(path, imgs, codec="libx264", options=None):
    c = av.open(str(path), "w", options=options or {})
    s = c.add_stream(codec, rate=10)
    s.width, s.height = W, H
    s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    for img in imgs:
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def decoded_frames(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


def load_coco(path):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def predict(run_dir, clip, out, *extra):
    return main(["predict", "--run", str(run_dir), str(clip), "--out", str(out), "--no-progress", *extra])


def test_clip_outputs_decode_back_to_the_labels(run_dir, clip, hands_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict(run_dir, clip, out, "--hands", str(hands_file)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        summary["frames_predicted"] == N and summary["overlay_frames"] == N and summary["frames_skipped"] == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["labels", "overlay.mp4", "predictions.json"]
    assert decoded_frames(out / "overlay.mp4") == N
    coco = load_coco(out / "predictions.json")
    assert len(coco.imgs) == N and {c["name"] for c in coco.cats.values()} == {
        "left_hand",
        "right_hand",
        "object",
    }
    for img_id, img in coco.imgs.items():
        label = read_label(out / img["file_name"])
        anns = coco.imgToAnns[img_id]
        assert sum(a["category_id"] in (1, 2) for a in anns) == 2
        dec = {a["id"]: mask_utils.decode(a["segmentation"]).astype(bool) for a in anns}
        for side, hand_value, obj_values in (("left", 1, (3, 5)), ("right", 2, (4, 5))):
            hands = [dec[a["id"]] for a in anns if a["side"] == side and a["category_id"] in (1, 2)]
            objs = [dec[a["id"]] for a in anns if a["side"] == side and a["category_id"] == 3]
            np.testing.assert_array_equal(np.any(hands, 0), label == hand_value)
            np.testing.assert_array_equal(
                np.any(objs, 0) if objs else np.zeros_like(label, bool), np.isin(label, obj_values)
            )
        for a in anns:  # numbers are numbers
            assert isinstance(a["area"], float) and all(isinstance(v, float) for v in a["bbox"] + a["query"])
            assert a["score"] is None or isinstance(a["score"], float)
            assert isinstance(a["holds_object"], bool) and a["image_id"] == img_id
            if a["category_id"] == 3:
                assert coco.anns[a["hand_annotation_id"]]["hand_id"] == a["hand_id"]
    info = json.loads((out / "predictions.json").read_text())["info"]
    assert info["frames_expected"] == N and info["frames_skipped"] == [] and info["ended_early"] == 0


def test_resume_after_interruption_gives_the_same_outputs(run_dir, clip, hands_file, tmp_path, capsys):
    ref = tmp_path / "ref"
    assert predict(run_dir, clip, ref, "--hands", str(hands_file), "--chunk", "3") == 0
    predictor = Predictor.from_run(run_dir)
    calls = []

    def dying(t, image):
        calls.append(t)
        if t == 4:
            raise KeyboardInterrupt  # like a kill during frame 4: chunk [0, 3) is finished
        return [(8.0 + t, 16.0), (36.0, 10.0 + t)], ["left", "right"], ["left", "right"]

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        predict_clip(predictor, clip, out, dying, state={"x": 1}, chunk=3, progress=False)
    assert (out / ".parts" / "000000.jsonl").is_file() and not (out / "predictions.json").exists()
    # another setting is refused instead of mixing two jobs
    with pytest.raises(Exception, match="unfinished prediction with other settings"):
        predict_clip(predictor, clip, out, dying, state={"x": 2}, chunk=3, progress=False)
    with pytest.raises(Exception, match=r"other settings \(chunk\)"):
        predict_clip(predictor, clip, out, dying, state={"x": 1}, chunk=2, progress=False)
    calls.clear()
    summary = predict_clip(
        predictor,
        clip,
        out,
        lambda t, im: dying(t, im) if t != 4 else dying(5, im),
        state={"x": 1},
        chunk=3,
        progress=False,
    )
    assert calls[0] == 3 and summary["frames_predicted_now"] == N - 3 and summary["frames_predicted"] == N
    assert not (out / ".parts").exists() and decoded_frames(out / "overlay.mp4") == N


@pytest.mark.slow
def test_kill9_then_resume_matches_a_clean_run(run_dir, hands_file, tmp_path, capsys):
    """A real ``kill -9`` mid-clip: the rerun predicts only the unfinished frames; outputs equal a clean run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    clip = tmp_path / "long"
    for i, f in enumerate(frames(60)):
        write_image(clip / f"{i:06d}.png", f)
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert predict(run_dir, clip, ref, "--hand", "10,10,left", "--chunk", "2", "--no-overlay") == 0
    argv = [sys.executable, "-m", "cohesiv", "predict", "--run", str(run_dir), str(clip), "--out", str(out)]
    argv += ["--hand", "10,10,left", "--chunk", "2", "--no-overlay", "--no-progress"]
    proc = subprocess.Popen(argv, env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / ".parts").glob("0*.jsonl"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "predictions.json").exists()
    capsys.readouterr()
    assert predict(run_dir, clip, out, "--hand", "10,10,left", "--chunk", "2", "--no-overlay") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < summary["frames_predicted_now"] < 60 and summary["frames_predicted"] == 60
    a = json.loads((ref / "predictions.json").read_text())
    b = json.loads((out / "predictions.json").read_text())
    assert a["annotations"] == b["annotations"] and a["images"] == b["images"]
    for t in range(60):
        np.testing.assert_array_equal(
            read_label(ref / "labels" / f"{t:06d}.png"), read_label(out / "labels" / f"{t:06d}.png")
        )


def test_bad_frame_in_a_folder_is_skipped_and_counted(run_dir, clip, hands_file, tmp_path, capsys):
    (clip / "000003.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert predict(run_dir, clip, out, "--hands", str(hands_file)) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert (
        summary["frames_skipped"] == 1
        and summary["frames_predicted"] == N - 1
        and "1 frame(s) skipped" in cap.err
    )
    info = json.loads((out / "predictions.json").read_text())["info"]
    assert info["frames_skipped"][0]["frame"] == 3 and "000003.png" in info["frames_skipped"][0]["reason"]
    assert not (out / "labels" / "000003.png").exists() and decoded_frames(out / "overlay.mp4") == N - 1


def test_video_with_a_corrupt_frame_and_a_truncated_video(run_dir, tmp_path, capsys):
    path = write_video(tmp_path / "v.avi", frames(), codec="mjpeg")
    data = bytearray(path.read_bytes())
    soi = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[soi[2] : soi[3] - 8] = bytes(soi[3] - 8 - soi[2])  # frame 2's JPEG zeroed: it cannot decode
    path.write_bytes(bytes(data))
    assert predict(run_dir, path, tmp_path / "o1", "--hand", "10,10,left") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames_skipped"] == 1 and summary["frames_predicted"] == N - 1
    assert decoded_frames(tmp_path / "o1" / "overlay.mp4") == N - 1

    fast = write_video(tmp_path / "fast.mp4", frames(30), options={"movflags": "faststart"})
    (tmp_path / "short.mp4").write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.6)])
    assert predict(run_dir, tmp_path / "short.mp4", tmp_path / "o3", "--hand", "10,10") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ended_early"] > 0 and summary["frames_read"] < 30 and summary["frames_expected"] == 30
    info = json.loads((tmp_path / "o3" / "predictions.json").read_text())["info"]
    assert info["ended_early"] == summary["ended_early"]

    full = write_video(tmp_path / "long.mp4", frames(30))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.5)])  # moov at the end: unreadable
    assert predict(run_dir, cut, tmp_path / "o2", "--hand", "10,10") == 2
    assert "cut.mp4: cannot open video" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_hands_file_of_another_video_is_refused_before_writing(run_dir, clip, tmp_path, capsys):
    write_hands(tmp_path / "other.json", HandTracks((64, 48), {0: []}))
    assert predict(run_dir, clip, tmp_path / "o", "--hands", str(tmp_path / "other.json")) == 2
    assert "hands file is for 64x48 images but the clip's frames are 48x32" in capsys.readouterr().err
    write_hands(tmp_path / "long.json", HandTracks((W, H), {N + 5: []}))
    assert predict(run_dir, clip, tmp_path / "o", "--hands", str(tmp_path / "long.json")) == 2
    assert f"hands file has frame {N + 5} but the clip has {N} frames" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_detect_hands_on_a_real_clip(run_dir, shared_data, tmp_path, capsys):
    """MediaPipe over fpha_raw_1 (41 frames): tracked hands.json, one overlay frame per input frame."""
    from cohesiv.hands.model_setup import hand_model_path, is_valid_bundle
    from cohesiv.io import read_hands

    pytest.importorskip("mediapipe")
    if not is_valid_bundle(hand_model_path()):
        pytest.skip("hand model not built; run python -m cohesiv.hands.model_setup")
    clip = shared_data / "fpha-egocentric-clips" / "fpha_raw_1.mp4"
    out = tmp_path / "out"
    assert predict(run_dir, clip, out, "--detect-hands") == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames_predicted"] == 41 and decoded_frames(out / "overlay.mp4") == 41
    tracks = read_hands(out / "hands.json")
    doc = json.loads((out / "predictions.json").read_text())
    n_hands = sum(len(tracks.hands_at(t)) for t in range(41))
    assert n_hands > 0 and sum(a["category_id"] < 3 for a in doc["annotations"]) == n_hands
    ids = {a["hand_id"] for a in doc["annotations"]}
    assert ids <= {h.id for t in range(41) for h in tracks.hands_at(t)}


def test_clip_support_keeps_hand_masks_inside_each_frames_hull(run_dir, clip, tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from cohesiv.io.labels import compose_label
    from cohesiv.responsibility.masks import hull_mask

    plain = Predictor.predict

    def everywhere(self, image, queries, sides=None):  # the untrained model finds no hand: say all is hand
        p = plain(self, image, queries, sides)
        hand, obj = np.ones_like(p.hand_masks), np.zeros_like(p.object_masks)
        return replace(p, hand_masks=hand, object_masks=obj, label=compose_label(hand, obj, p.sides))

    monkeypatch.setattr(Predictor, "predict", everywhere)

    def box(t):  # a small square that moves one pixel right per frame
        return np.array([[10 + t, 10], [16 + t, 10], [16 + t, 16], [10 + t, 16]], np.float32)

    tracks = HandTracks(
        (W, H), {t: [Hand("right", "right", box(t), query=(13.0 + t, 13.0))] for t in range(N)}
    )
    write_hands(tmp_path / "hands.json", tracks)
    outs = {}
    for support in ("none", "points"):
        outs[support] = tmp_path / support
        assert (
            predict(
                run_dir, clip, outs[support], "--hands", str(tmp_path / "hands.json"), "--support", support
            )
            == 0
        )
    info = json.loads((outs["points"] / "predictions.json").read_text())["info"]
    assert (
        info["support"] == "points"
        and "support" not in json.loads((outs["none"] / "predictions.json").read_text())["info"]
    )
    for t in range(N):
        hull = hull_mask([box(t)], (W, H)).astype(bool)
        plain_label = read_label(outs["none"] / "labels" / f"{t:06d}.png")
        kept = read_label(outs["points"] / "labels" / f"{t:06d}.png")
        assert (plain_label == 2).all()  # everywhere is the right hand without the support
        np.testing.assert_array_equal(kept == 2, hull)  # with it, exactly that frame's hull
