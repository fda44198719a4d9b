import json

import numpy as np
import pytest
import torch
from train_fixtures import write_dataset

from cohesiv.errors import InputError
from cohesiv.train.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentConfig,
    PseudoLabelDataset,
    Sample,
    StepBatchSampler,
    TrainDataset,
    collate,
    crop_box,
    crop_resize,
    epoch_order,
)


@pytest.fixture
def ds(tmp_path):
    return PseudoLabelDataset([write_dataset(tmp_path / "d", n=6, size=64)])


def _sample_with_point(x, y, w=40, h=30):
    """A sample whose responsibility and masks are a single pixel at (x, y)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[y, x] = 255
    resp = np.zeros((2, h, w), np.float32)
    resp[1, y, x] = 1
    resp[0] = 1 - resp[1]
    m = np.zeros((h, w), np.uint8)
    m[y, x] = 1
    return Sample(img, resp, m, m.copy(), np.array([[x, y]], np.float32), np.ones(1, bool), ["left"], "s")


def test_load_reads_manifest_and_sample(ds):
    assert len(ds) == 6
    s = ds.load(0)
    assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
    assert s.responsibility.shape == (3, 64, 64)  # sample 0 has two hands
    np.testing.assert_allclose(s.responsibility.sum(0), 1, atol=1e-3)
    assert s.sides == ["left", "right"]
    # the query lies on its hand's responsibility
    x, y = s.queries[0].round().astype(int)
    assert s.responsibility[1, y, x] == 1 and s.person[y, x] == 1


def test_missing_manifest_names_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty.*manifest.jsonl"):
        PseudoLabelDataset([tmp_path / "empty"])


def test_malformed_manifest_line_is_named(tmp_path):
    root = write_dataset(tmp_path / "d", n=2)
    with open(root / "manifest.jsonl", "a") as f:
        f.write(json.dumps({"id": "x"}) + "\n")
    with pytest.raises(InputError, match="line 3"):
        PseudoLabelDataset([root])


def test_sample_shape_mismatch_is_an_input_error(tmp_path):
    root = write_dataset(tmp_path / "d", n=2, two_hands_every=0)
    np.savez(root / "samples" / "clip_000000.npz", responsibility=np.zeros((3, 64, 64), np.float16),
             person=np.zeros((64, 64), np.uint8), valid=np.zeros((64, 64), np.uint8))  # fmt: skip
    with pytest.raises(InputError, match="clip_000000.npz"):
        PseudoLabelDataset([root]).load(0)


@pytest.mark.parametrize("flip", [False, True])
def test_crop_resize_moves_points_with_the_maps(flip):
    # a 2x upscale of a crop: pixel (x, y) -> centre 2 (x - x0) + 0.5
    s = _sample_with_point(13, 9)
    out = crop_resize(s, (10, 5, 16, 16), 32, flip=flip)
    qx, qy = out.queries[0]
    ex = 2 * (13 - 10) + 0.5
    if flip:
        ex = 31 - ex
    assert (qx, qy) == pytest.approx((ex, 2 * (9 - 5) + 0.5))
    # the mass centre of the resized responsibility is at the point, and the masks cover it
    r = out.responsibility[1]
    yy, xx = np.mgrid[0:32, 0:32]
    assert (r * xx).sum() / r.sum() == pytest.approx(qx, abs=1e-4)
    assert (r * yy).sum() / r.sum() == pytest.approx(qy, abs=1e-4)
    ys, xs = np.nonzero(out.person)
    assert xs.min() <= qx <= xs.max() and ys.min() <= qy <= ys.max()
    assert out.sides == (["right"] if flip else ["left"])
    np.testing.assert_allclose(out.responsibility.sum(0), 1, atol=1e-5)


def test_crop_marks_queries_outside_invalid():
    s = _sample_with_point(2, 2)
    out = crop_resize(s, (10, 10, 20, 20), 32)
    assert not out.query_valid[0]


def test_crop_box_inside_image_and_deterministic():
    cfg = AugmentConfig()
    for seed in range(50):
        x0, y0, w, h = crop_box(96, 64, np.random.default_rng(seed), cfg)
        assert 0 <= x0 and 0 <= y0 and x0 + w <= 96 and y0 + h <= 64 and w > 0 and h > 0
        assert (x0, y0, w, h) == crop_box(96, 64, np.random.default_rng(seed), cfg)


def test_train_dataset_is_a_function_of_the_key(ds):
    td = TrainDataset(ds, size=32, seed=3)
    a, b = td[(1, 2)], td[(1, 2)]
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.responsibility, b.responsibility)
    c = td[(2, 2)]
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (32, 32, 3)


def test_collate_pads_hands_and_builds_object(ds):
    td = TrainDataset(ds, size=64, seed=0, augment=False)
    batch = collate([td[0], td[1]], object_threshold=0.5)  # 2 hands + 1 hand
    assert batch.images.shape == (2, 3, 64, 64)
    assert batch.points.shape == (2, 2, 2) and batch.responsibility.shape == (2, 3, 64, 64)
    assert batch.point_valid.tolist() == [[True, True], [True, False]]
    assert batch.sides[1] == ["left", None]
    assert batch.responsibility[1, 2].abs().sum() == 0
    torch.testing.assert_close(batch.responsibility.sum(1), torch.ones(2, 64, 64), atol=1e-3, rtol=0)
    # object = hand responsibility minus person; disjoint from person
    assert (batch.object * batch.person).sum() == 0
    expect = ((batch.responsibility[:, 1:].amax(1, keepdim=True) > 0.5) & (batch.person == 0)).float()
    assert torch.equal(batch.object, expect) and batch.object.sum() > 0
    # ImageNet normalisation: a pixel of value v maps to (v/255 - mean) / std
    raw = ds.load(0).image[0, 0, 0] / 255.0
    assert batch.images[0, 0, 0, 0].item() == pytest.approx(
        (raw - IMAGENET_MEAN[0]) / IMAGENET_STD[0], abs=1e-5
    )


def test_step_sampler_shards_the_global_batch():
    one = StepBatchSampler(10, 4, seed=1, start_step=0, stop_step=6)
    r0 = StepBatchSampler(10, 4, seed=1, start_step=0, stop_step=6, rank=0, world=2)
    r1 = StepBatchSampler(10, 4, seed=1, start_step=0, stop_step=6, rank=1, world=2)
    for a, b, c in zip(one, r0, r1):
        assert a == b + c
    steps = list(one)
    # epoch e uses the permutation of (seed, e); 2 steps per epoch, remainder dropped
    assert [i for _, i in steps[0] + steps[1]] == list(epoch_order(10, 1, 0)[:8])
    assert steps[2][0][0] == 1
    # resuming at step 3 yields the same keys as the tail of an uninterrupted run
    assert list(StepBatchSampler(10, 4, seed=1, start_step=3, stop_step=6)) == steps[3:]


def test_step_sampler_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple"):
        StepBatchSampler(10, 3, 0, 0, 1, world=2)
    with pytest.raises(ValueError, match="fewer than one batch"):
        StepBatchSampler(3, 4, 0, 0, 1)


def test_check_files_finds_a_truncated_or_missing_sample_before_training(tmp_path):
    root = write_dataset(tmp_path / "d", n=4)
    ds = PseudoLabelDataset([root])
    ds.check_files()  # a whole dataset passes
    last = root / ds.entries[-1].sample
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # cut in half, as by a copy interrupted midway
    with pytest.raises(InputError, match=f"{last.name}: cannot read pseudo-label sample"):
        ds.check_files()
    last.unlink()
    with pytest.raises(InputError, match=f"{last.name}: pseudo-label sample is missing"):
        ds.check_files()


def test_blur_smooths_the_image_only():
    import dataclasses

    from cohesiv.train.data import AugmentConfig, augment, sample_rng

    s = _sample_with_point(20, 15)
    s.image = np.random.default_rng(0).integers(0, 255, s.image.shape, dtype=np.uint8)
    sharp_cfg = dataclasses.replace(AugmentConfig(), blur=0.0)
    blur_cfg = dataclasses.replace(AugmentConfig(), blur=1.0, blur_sigma=(2.0, 2.0))
    sharp = augment(s, sample_rng(0, 0, 0), 32, sharp_cfg)
    blurred = augment(s, sample_rng(0, 0, 0), 32, blur_cfg)
    np.testing.assert_array_equal(sharp.responsibility, blurred.responsibility)  # same crop and labels

    def roughness(img):
        return float(np.abs(np.diff(img.astype(np.float32), axis=1)).mean())

    assert roughness(blurred.image) < 0.5 * roughness(sharp.image)


def test_grayscale_turns_the_crop_grey_and_old_runs_read_as_colour():
    import dataclasses

    from cohesiv.config import TrainConfig
    from cohesiv.train.data import AugmentConfig, augment, sample_rng

    s = _sample_with_point(20, 15)
    s.image = np.random.default_rng(0).integers(0, 255, s.image.shape, dtype=np.uint8)
    grey_cfg = dataclasses.replace(AugmentConfig(), grayscale=1.0, blur=0.0)
    colour_cfg = dataclasses.replace(AugmentConfig(), grayscale=0.0, blur=0.0)
    grey = augment(s, sample_rng(0, 0, 0), 32, grey_cfg)
    colour = augment(s, sample_rng(0, 0, 0), 32, colour_cfg)
    assert (grey.image[..., 0] == grey.image[..., 1]).all() and (
        grey.image[..., 1] == grey.image[..., 2]
    ).all()
    assert not (colour.image[..., 0] == colour.image[..., 1]).all()
    np.testing.assert_array_equal(grey.responsibility, colour.responsibility)  # same crop and labels
    d = TrainConfig(data=("d",), out="r").to_dict()
    del d["augment"]["grayscale"]  # a run written before the field
    assert TrainConfig.from_dict(d).augment.grayscale == 0.0
    assert TrainConfig(data=("d",), out="r").augment.grayscale > 0
