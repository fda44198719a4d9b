"""Composited samples: a pasted cut-out lands where the affine map puts it, with exact labels."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cohesiv.cli import main
from cohesiv.errors import CohesivError
from cohesiv.synth.composite import CompositeConfig, composite, cutout, skin_patch, write_composites
from cohesiv.train.data import PseudoLabelDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fixtures import write_dataset  # noqa: E402

H, W = 24, 32


def _square(x0, y0, x1, y1, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_paste_with_a_translation_is_exact():
    region = _square(2, 2, 8, 6)
    person = _square(2, 2, 5, 6)
    fg = np.zeros((H, W, 3), np.uint8)
    fg[region] = 200
    bg = np.full((H, W, 3), 50, np.uint8)
    bg_r = np.zeros((2, H, W), np.float32)
    bg_r[1] = _square(10, 10, 30, 20)  # a background hand, partly under the paste
    bg_r[0] = 1 - bg_r[1]
    bg_person = _square(10, 10, 14, 20).astype(np.uint8)
    affine = np.array([[1.0, 0, 12], [0, 1.0, 10]])  # move by (12, 10)
    pts = np.array([[3, 3], [4, 3], [4, 5], [3, 5]], np.float64)
    out = composite(
        fg,
        region,
        person,
        pts,
        np.array([4.0, 4.0]),
        bg,
        bg_r,
        bg_person,
        np.ones((H, W), np.uint8),
        affine,
        feather=0,
    )
    moved = _square(14, 12, 20, 16)
    r = out["responsibility"]
    assert r.shape == (3, H, W)
    np.testing.assert_array_equal(r[2], moved.astype(np.float32))
    np.testing.assert_allclose(r.sum(0), 1.0, atol=1e-6)
    assert (r[1][moved] == 0).all() and (r[1][_square(20, 16, 30, 20)] == 1).all()  # occluded only under it
    np.testing.assert_array_equal(
        out["person"].astype(bool), (bg_person.astype(bool) & ~moved) | _square(14, 12, 17, 16)
    )
    assert (out["image"][moved] == 200).all() and (out["image"][~moved] == 50).all()
    np.testing.assert_allclose(out["query"], [16, 14])
    np.testing.assert_allclose(out["points"], pts + [12, 10])


def test_query_outside_the_paste_is_refused():
    region = _square(2, 2, 8, 6)
    z = np.zeros((1, H, W), np.float32)
    args = (np.zeros((H, W, 3), np.uint8), region, region, np.zeros((1, 2)), np.array([20.0, 20.0]))
    bg = (np.zeros((H, W, 3), np.uint8), np.concatenate([1 - z, z])[:1], np.zeros((H, W)), np.ones((H, W)))
    assert composite(*args, *bg, np.array([[1.0, 0, 0], [0, 1.0, 0]])) is None


def test_cutout_keeps_the_parts_touching_the_hand():
    r = np.zeros((2, H, W), np.float32)
    r[1][_square(2, 2, 10, 8)] = 0.9  # hand and object
    r[1][_square(25, 18, 28, 21)] = 0.9  # a speck far away
    person = _square(2, 2, 6, 8).astype(np.uint8)
    pts = np.array([[3, 3], [5, 3], [5, 7], [3, 7]], np.float64)
    region, per = cutout(r, person, pts, 0, CompositeConfig())
    assert region[_square(2, 2, 10, 8)].all() and not region[_square(25, 18, 28, 21)].any()
    np.testing.assert_array_equal(per, region & person.astype(bool))


def test_write_composites_is_a_trainable_dataset_and_resumes(tmp_path):
    srcs = [write_dataset(tmp_path / f"d{i}", n=6, size=64, seed=i) for i in range(2)]
    out = tmp_path / "comp"
    cfg = CompositeConfig(max_area=0.6)
    n = write_composites(srcs, out, 8, seed=3, config=cfg, progress=False)
    assert 0 < n <= 8
    ds = PseudoLabelDataset([out])
    ds.check_files()
    for i in range(len(ds)):
        s = ds.load(i)
        np.testing.assert_allclose(s.responsibility.sum(0), 1.0, atol=2e-3)
        x, y = np.round(s.queries[-1]).astype(int)
        assert s.responsibility[-1, y, x] == 1.0  # the pasted hand's query lies on its paste

    def arrays():
        out_ = {}
        for p in sorted((out / "samples").glob("*.npz")):
            with np.load(p) as z:
                out_[p.name] = {k: z[k].copy() for k in z.files}
        return out_

    first = arrays()
    for p in sorted((out / "samples").glob("*.json"))[:3]:  # unfinished samples, as after a kill
        p.unlink()
    assert write_composites(srcs, out, 8, seed=3, config=cfg, progress=False) == n
    again = arrays()
    assert again.keys() == first.keys()
    for name in first:
        for k in first[name]:
            np.testing.assert_array_equal(again[name][k], first[name][k])
    with pytest.raises(CohesivError, match="another config or seed"):
        write_composites(srcs, out, 8, seed=4, config=cfg, progress=False)


def test_composite_command(tmp_path, capsys):
    src = write_dataset(tmp_path / "d", n=6, size=64)
    assert main(["composite", str(src), "--out", str(tmp_path / "c"), "--samples", "4", "--no-progress"]) == 0
    assert "composited samples" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "dataset.json").read_text())["seed"] == 0
    assert main(["composite", str(tmp_path / "none"), "--out", str(tmp_path / "c2")]) == 2


def _hand_image(colour=(200, 150, 120)):
    img = np.zeros((H, W, 3), np.uint8)
    person = _square(4, 4, 14, 16)
    img[person] = colour
    return img, person


def test_skin_patch_has_the_hands_colour_and_overlaps_the_paste():
    img, person = _hand_image()
    box = (10.0, 6.0, 20.0, 18.0)
    rgb, alpha = skin_patch(np.random.default_rng(0), img, person, box, (W, H), (0.8, 1.2))
    assert rgb.shape == (H, W, 3) and alpha.shape == (H, W)
    inside = alpha > 0.5
    assert 20 < inside.sum() < H * W
    ys, xs = np.nonzero(inside)
    assert box[0] - 1 <= np.median(xs) <= box[2] + 1 and box[1] - 1 <= np.median(ys) <= box[3] + 1
    mean = rgb[inside].mean(0)
    np.testing.assert_allclose(mean / mean.sum(), np.array([200, 150, 120]) / 470, atol=0.02)  # its hue
    assert skin_patch(np.random.default_rng(0), img, np.zeros((H, W), bool), box, (W, H)) is None


def test_paste_over_a_skin_patch_labels_the_patch_background():
    img, person = _hand_image()
    bg_r = np.zeros((2, H, W), np.float32)
    bg_r[1] = _square(0, 0, W, H)  # a background hand everywhere
    bg_r[0] = 1 - bg_r[1]
    bg_person = np.ones((H, W), np.uint8)
    valid = np.zeros((H, W), np.uint8)
    patch_alpha = _square(16, 4, 30, 20).astype(np.float32)
    patch_rgb = np.full((H, W, 3), 180.0, np.float32)
    affine = np.array([[1.0, 0, 10], [0, 1.0, 0]])  # the hand moves onto x 14..24, over the patch's left
    pts = np.array([[6, 6], [10, 6], [10, 12]], np.float64)
    args = (img, person, person, pts, np.array([8.0, 8.0]), np.zeros((H, W, 3), np.uint8), bg_r, bg_person)
    out = composite(*args, valid, affine, feather=0, skin=(patch_rgb, patch_alpha))
    hand = _square(14, 4, 24, 16)
    patch_only = patch_alpha.astype(bool) & ~hand
    assert (out["image"][patch_only] == 180).all() and (out["image"][hand] == [200, 150, 120]).all()
    assert out["valid"][patch_only].all() and not out["person"][patch_only].any()
    assert (out["responsibility"][0][patch_only] == 1).all()  # moves with no hand
    assert out["person"][hand].all() and (out["responsibility"][2][hand] == 1).all()
    outside = ~patch_alpha.astype(bool) & ~hand
    assert out["person"][outside].all() and not out["valid"][outside].any()  # the rest as it was


def test_skin_off_reproduces_the_composites_and_old_folders_are_read_as_skin_off(tmp_path):
    srcs = [write_dataset(tmp_path / f"d{i}", n=6, size=64, seed=i) for i in range(2)]
    cfg = CompositeConfig(max_area=0.6)
    write_composites(srcs, tmp_path / "a", 6, seed=1, config=cfg, progress=False)
    meta = tmp_path / "a" / "dataset.json"
    old = json.loads(meta.read_text())
    for k in ("skin", "skin_size"):
        del old["composite"][k]  # a folder from before the option
    meta.write_text(json.dumps(old))
    assert write_composites(srcs, tmp_path / "a", 6, seed=1, config=cfg, progress=False) > 0
    with pytest.raises(CohesivError, match="another config"):
        write_composites(srcs, tmp_path / "a", 6, seed=1, config=replace(cfg, skin=0.5), progress=False)
    n = write_composites(srcs, tmp_path / "b", 6, seed=1, config=replace(cfg, skin=1.0), progress=False)
    assert n > 0
    a = sorted((tmp_path / "a" / "images").glob("*.png"))
    b = sorted((tmp_path / "b" / "images").glob("*.png"))
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in b]  # the patches are drawn
    assert main(["composite", str(srcs[0]), "--out", str(tmp_path / "c"), "--skin", "1.5"]) == 2


def test_composites_keep_the_stop_at_wrist_mark_of_their_hands(tmp_path):
    """A pasted hand is marked when its source hand is, and the background's hands keep their marks."""
    srcs = [write_dataset(tmp_path / f"d{i}", n=6, size=64, seed=i) for i in range(2)]
    manifest = srcs[0] / "manifest.jsonl"  # mark every hand of the first source
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    for e in lines:
        e["id"] = "marked-" + e["id"]  # the two sources' ids differ, so each composite names its sources
        for h in e["hands"]:
            h["stop_at_wrist"] = True
    manifest.write_text("".join(json.dumps(e) + "\n" for e in lines))
    out = tmp_path / "comp"
    n = write_composites(srcs, out, 12, seed=1, config=CompositeConfig(max_area=0.6), progress=False)
    assert n > 0
    kinds = set()
    for line in (out / "manifest.jsonl").read_text().splitlines():
        e = json.loads(line)
        fg, bg = e["clip"].removeprefix("composite of ").split(" onto ")
        fg_marked = any(fg == x["id"] for x in lines)
        bg_marked = any(bg == x["id"] for x in lines)
        *bg_hands, pasted = e["hands"]
        assert bool(pasted.get("stop_at_wrist")) == fg_marked
        assert all(bool(h.get("stop_at_wrist")) == bg_marked for h in bg_hands)
        kinds.add((fg_marked, bg_marked))
    assert len(kinds) > 1  # both kinds of source were drawn
