"""The one labelling function: the dataset writer and the baseline give the same maps."""

import json

import numpy as np
import pytest

from cohesiv.eval.baselines import ExactFlow, ResponsibilityBaseline
from cohesiv.eval.driver import iter_scored_frames
from cohesiv.io import read_hands
from cohesiv.responsibility import ClipSource, PseudoLabelConfig, write_dataset
from cohesiv.responsibility.dataset import make_flow_fn
from cohesiv.responsibility.labeler import guided_smoothing, label_frame, usable_offsets


@pytest.fixture(scope="module")
def synth_clip(tmp_path_factory):
    from cohesiv.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, clips=1, frames=6, size=(96, 72), seed=3, camera="moving", progress=False)
    return out / "clip_0000"


@pytest.mark.parametrize(
    "config",
    [
        PseudoLabelConfig(flow="gt", background="homography", forearm=True),
        PseudoLabelConfig(flow="gt", offsets=(-1, 2), fb_check=False, temperature=3.0, smoothing="guided"),
    ],
)
def test_baseline_and_dataset_writer_give_the_same_maps(tmp_path, synth_clip, config):
    src = ClipSource(path=synth_clip, hands=read_hands(synth_clip / "hands.json"))
    write_dataset([src], tmp_path / "ds", config, progress=False)
    base = ResponsibilityBaseline(ExactFlow(), config)
    n = 0
    for fr in iter_scored_frames([synth_clip], progress=False):
        side = json.loads((tmp_path / "ds" / "samples" / f"clip_0000_{fr.context.t:06d}.json").read_text())
        if "entry" not in side:
            continue
        maps = base.maps(fr.image, fr.hands, fr.context)
        z = np.load(tmp_path / "ds" / side["entry"]["sample"])
        ids = [h["id"] for h in side["entry"]["hands"]]
        keep = [0] + [1 + [h.id for h in fr.hands].index(i) for i in ids]
        np.testing.assert_allclose(
            z["responsibility"].astype(np.float32), maps["responsibility"][keep], atol=1e-3
        )
        np.testing.assert_array_equal(z["person"], maps["person"])
        n += 1
    assert n >= 4


def test_label_frame_sums_to_one_and_reports_offsets(synth_clip):
    cfg = PseudoLabelConfig(flow="gt")
    hands = read_hands(synth_clip / "hands.json").hands_at(0)
    flow = make_flow_fn(ClipSource(synth_clip, read_hands(synth_clip / "hands.json")), cfg)
    calls = []

    def pair(a, b):
        calls.append((a, b))
        return flow(None, None, a, b)

    ks = usable_offsets(cfg.offsets, 0, 6)
    assert ks == [1, 2, 3]
    out = label_frame(pair, 0, ks, [h.points for h in hands], (96, 72), cfg)
    assert out.responsibility.shape == (len(hands) + 1, 72, 96)
    assert np.allclose(out.responsibility.sum(0), 1, atol=1e-5)
    assert out.info["offsets"] == [1, 2, 3] and sorted(calls) == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (2, 0),
        (3, 0),
    ]
    assert label_frame(pair, 0, [], [h.points for h in hands], (96, 72), cfg) is None
    with pytest.raises(ValueError, match="needs the frame"):
        label_frame(pair, 0, ks, [h.points for h in hands], (96, 72), PseudoLabelConfig(smoothing="guided"))


def test_guided_smoothing_spreads_into_a_flat_region_more_than_across_its_edge():
    img = np.zeros((40, 40, 3), np.uint8)
    img[10:30, 10:30] = 200  # a flat bright object on a dark background
    r = np.zeros((2, 40, 40), np.float32)
    r[0] = 1
    r[1, 10:30, 10:13] = 1  # only its textured left rim was explained by the hand
    r[0] -= r[1]
    out = guided_smoothing(r, img, radius=8)
    assert np.allclose(out.sum(0), 1, atol=1e-5)
    assert out[1, 10:30, 20].mean() > r[1, 10:30, 20].mean() + 0.03  # spread inside the object
    box = __import__("cv2").blur(r[1], (17, 17))  # a plain blur of the same reach, for comparison
    assert out[1, 10:30, 22].mean() > box[10:30, 22].mean() + 0.03  # reaches farther into the object
    assert out[1, 10:30, 3].max() < box[10:30, 3].max()  # and less into the background


def test_config_refuses_unknown_preset_and_smoothing():
    with pytest.raises(ValueError, match="DIS preset"):
        PseudoLabelConfig(flow_preset="turbo")
    with pytest.raises(ValueError, match="smoothing"):
        PseudoLabelConfig(smoothing="bilateral")
    assert PseudoLabelConfig(flow_preset="ultrafast-fs1").to_dict()["flow_preset"] == "ultrafast-fs1"


def test_superpixel_pooling_is_constant_on_flat_regions_and_sums_to_one():
    from cohesiv.responsibility.labeler import superpixel_pooling

    img = np.zeros((40, 40, 3), np.uint8)
    img[10:30, 10:30] = 200
    r = np.zeros((2, 40, 40), np.float32)
    r[1, 10:30, 10:13] = 1
    r[0] = 1 - r[1]
    out = superpixel_pooling(r, img, size=10)
    assert np.allclose(out.sum(0), 1, atol=1e-5)
    assert out[1, 10:30, 20].mean() > 0 and out[1, :, :8].max() == 0  # spread inside, not outside


def test_flow_pairs_are_the_pairs_label_frame_asks_for_in_order(synth_clip):
    from cohesiv.responsibility.labeler import flow_pairs

    hands = read_hands(synth_clip / "hands.json").hands_at(2)
    for cfg in (PseudoLabelConfig(flow="gt"), PseudoLabelConfig(flow="gt", fb_check=False)):
        flow = make_flow_fn(ClipSource(synth_clip, read_hands(synth_clip / "hands.json")), cfg)
        calls = []

        def pair(a, b, calls=calls, flow=flow):
            calls.append((a, b))
            return flow(None, None, a, b)

        ks = usable_offsets(cfg.offsets, 2, 6)
        label_frame(
            pair,
            2,
            ks,
            [h.points for h in hands],
            (96, 72),
            cfg,
        )
        assert calls == flow_pairs(2, ks, cfg.fb_check)
        assert len(calls) == (2 if cfg.fb_check else 1) * len(ks)


def test_label_frame_same_maps_from_channel_first_views_and_contiguous_flows(synth_clip):
    # DIS returns (2, H, W) views of OpenCV's (H, W, 2) output; the cache now stores contiguous copies
    cfg = PseudoLabelConfig(flow="gt", background="homography", forearm=True)
    hands = read_hands(synth_clip / "hands.json").hands_at(3)
    flow = make_flow_fn(ClipSource(synth_clip, read_hands(synth_clip / "hands.json")), cfg)

    def view(a, b):
        return np.ascontiguousarray(flow(None, None, a, b).transpose(1, 2, 0)).transpose(2, 0, 1)

    def contiguous(a, b):
        return np.ascontiguousarray(flow(None, None, a, b))

    ks = usable_offsets(cfg.offsets, 3, 6)
    out = [label_frame(f, 3, ks, [h.points for h in hands], (96, 72), cfg) for f in (view, contiguous)]
    np.testing.assert_array_equal(out[0].responsibility, out[1].responsibility)
    np.testing.assert_array_equal(out[0].valid, out[1].valid)
    np.testing.assert_array_equal(out[0].person, out[1].person)
