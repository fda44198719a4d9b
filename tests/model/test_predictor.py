import json

import numpy as np
import pytest
import torch
import yaml

from cohesiv.errors import InputError
from cohesiv.model import (
    CohesivNet,
    ModelConfig,
    Predictor,
    build_model,
    compose_label,
    load_run_model,
    normalize_images,
    read_calibration,
    readout,
    save_run_model,
    write_calibration,
)
from cohesiv.model.predictor import resolve_sides

CFG = ModelConfig(encoder_name="resnet18", embed_dim=8, head_dim=8, head_stride=1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(CFG).eval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model):
    run = tmp_path_factory.mktemp("run")
    save_run_model(run, model, CFG, state={"step": 3})
    (run / "config.yaml").write_text(yaml.safe_dump({"model": CFG.to_dict(), "train": {"size": 64}}))
    rng = np.random.default_rng(0)
    write_calibration(
        run,
        {"person": rng.normal(size=8), "object": rng.normal(size=8)},
        {"tau_h": 0.1, "tau_o": 0.1, "tau_r": 0.05},
        n_samples=500,
    )
    return run


def _image(h=48, w=80, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------- pure parts


def test_compose_label_sides_and_both():
    hand = np.zeros((2, 3, 4), np.uint8)
    obj = np.zeros((2, 3, 4), np.uint8)
    hand[0, 0, 0] = 1  # left hand
    hand[1, 0, 3] = 1  # right hand
    obj[0, 1, :3] = 1  # left object: columns 0..2 of row 1
    obj[1, 1, 1:] = 1  # right object: columns 1..3 of row 1
    obj[1, 0, 0] = 1  # right object under the left hand: the hand wins
    lab = compose_label(hand, obj, ["left", "right"])
    assert lab.tolist() == [[1, 0, 0, 2], [3, 5, 5, 4], [0, 0, 0, 0]]
    assert lab.dtype == np.uint8


def test_resolve_sides_from_image_half():
    q = np.array([[10.0, 5.0], [90.0, 5.0], [30.0, 0.0]])
    assert resolve_sides(q, None, 100) == ["left", "right", "left"]
    assert resolve_sides(q, ["right", None, None], 100) == ["right", "right", "left"]
    with pytest.raises(ValueError, match="2 sides for 3 queries"):
        resolve_sides(q, ["left", "right"], 100)
    with pytest.raises(ValueError, match="side must be"):
        resolve_sides(q[:1], ["up"], 100)


def test_readout_modes_hand_values():
    s = torch.tensor([[[0.9, 0.9, 0.9, 0.1]]])  # (K=1, 1, 4)
    ps = torch.tensor([[0.8, 0.2, 0.8, 0.9]])
    os_ = torch.tensor([[0.9, 0.7, 0.1, 0.1]])
    t = {"tau_h": 0.5, "tau_o": 0.5, "tau_r": 0.5}
    hand, obj = readout(s, ps, os_, t, "calibrated")
    assert hand[0, 0].tolist() == [True, False, True, False]
    assert obj[0, 0].tolist() == [False, True, False, False]  # pixel 0 is hand first
    hand, obj = readout(s, ps, os_, None, "nearest-prototype")
    assert hand[0, 0].tolist() == [False, False, True, False]
    assert obj[0, 0].tolist() == [True, True, False, False]
    hand, obj = readout(s, ps, -ps, None, "query-prototype")
    assert hand[0, 0].tolist() == [True, False, True, False]
    assert obj[0, 0].tolist() == [False, True, False, False]


# ------------------------------------------------------------------------------- run folder


def test_run_roundtrip(run_dir, model):
    m2, cfg = load_run_model(run_dir)
    assert cfg == CFG and not m2.training
    for (k, a), b in zip(model.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert json.loads((run_dir / "checkpoints" / "last.json").read_text()) == {"step": 3}
    cal = read_calibration(run_dir)
    assert cal.thresholds == {"tau_h": 0.1, "tau_o": 0.1, "tau_r": 0.05}
    assert cal.prototypes["person"].shape == (8,)


def test_config_from_weights_metadata_when_yaml_absent(tmp_path, model):
    save_run_model(tmp_path, model, CFG)
    _, cfg = load_run_model(tmp_path)
    assert cfg == CFG


def test_run_errors(tmp_path, model):
    with pytest.raises(InputError, match="no such run folder"):
        load_run_model(tmp_path / "none")
    with pytest.raises(InputError, match="last.safetensors is missing"):
        load_run_model(tmp_path)
    # weights of another architecture
    save_run_model(tmp_path, model, CFG)
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"model": {"encoder_name": "resnet18", "embed_dim": 16}})
    )
    with pytest.raises(InputError, match="weights do not fit the model config"):
        load_run_model(tmp_path)
    (tmp_path / "calibration.json").write_text('{"prototypes": {"person": [1, 2]}}')
    with pytest.raises(InputError, match="calibration.json: 'prototypes' must have keys"):
        read_calibration(tmp_path)
    (tmp_path / "calibration.json").write_text('{"thresholds": {"tau_h": "x", "tau_o": 1, "tau_r": 1}}')
    with pytest.raises(InputError, match="thresholds' must be numbers"):
        read_calibration(tmp_path)
    (tmp_path / "calibration.json").write_text('{"size": -3}')
    with pytest.raises(InputError, match="'size' must be a positive integer, got -3"):
        read_calibration(tmp_path)


# ------------------------------------------------------------------------------- predictor


def test_predict_from_run_shapes_and_consistency(run_dir):
    pred = Predictor.from_run(run_dir)
    assert pred.size == 64 and pred.readout_mode == "calibrated"
    img = _image(48, 80)
    out = pred.predict(img, [(10.0, 20.0), (70.0, 30.0)], [None, "right"])
    assert out.hand_masks.shape == out.object_masks.shape == out.scores.shape == (2, 48, 80)
    assert out.person_sim.shape == out.object_sim.shape == out.label.shape == (48, 80)
    assert out.hand_masks.dtype == np.uint8 and out.label.dtype == np.uint8 and out.scores.dtype == np.float32
    assert out.sides == ["left", "right"] and out.mode == "calibrated"
    assert set(np.unique(out.label)) <= {0, 1, 2, 3, 4, 5}
    assert 0 <= out.scores.min() and out.scores.max() <= 1
    # masks are exactly the thresholds of the returned maps
    moving = out.scores > 0.05
    np.testing.assert_array_equal(out.hand_masks, moving & (out.person_sim > 0.1))
    np.testing.assert_array_equal(
        out.object_masks, moving & (out.object_sim > 0.1) & ~out.hand_masks.astype(bool)
    )
    np.testing.assert_array_equal(out.label, compose_label(out.hand_masks, out.object_masks, out.sides))
    assert pred.features(img).shape == (8, 48, 80)
    assert pred.features(img, resize_back=False).shape == (8, 38, 64)


def test_predict_equals_network_when_no_resize(model):
    img = _image(64, 96, seed=2)
    pred = Predictor(model)  # no calibration, no resize
    q = [(10.0, 20.0), (50.5, 33.0)]
    out = pred.predict(img, q)
    x = normalize_images(torch.from_numpy(img).permute(2, 0, 1)[None])
    with torch.no_grad():
        ref = model(x, torch.tensor([q]))
    np.testing.assert_allclose(out.scores, ref.scores[0].numpy(), atol=1e-5)
    z = torch.nn.functional.normalize(ref.z[0], dim=0)
    np.testing.assert_allclose(pred.features(img), ref.z[0].numpy(), atol=1e-5)
    # no calibration: the person prototype is the mean embedding at the queries
    zq = torch.nn.functional.normalize(z[:, [20, 33], [10, 50]].T, dim=1).mean(0)
    assert out.mode == "query-prototype"
    assert out.person_sim[20, 10] > 0.5  # queries look like the person prototype
    assert abs(out.person_sim[0, 0] - float(torch.nn.functional.normalize(zq, dim=0) @ z[:, 0, 0])) < 0.05


def test_predict_pads_odd_sizes_and_rescales_queries(model):
    # A 2x nearest-upscaled image at size=half gives the same network input as the original
    # (bilinear 2x downscale of 2x2 blocks without antialias is exact); queries map by (x+0.5)s-0.5.
    img = _image(32, 64, seed=3)
    big = np.repeat(np.repeat(img, 2, 0), 2, 1)
    small_pred = Predictor(model).predict(img, [(12.0, 9.0)])
    p = Predictor(model, size=64)
    p._antialias = False
    big_pred = p.predict(big, [(12.0 * 2 + 0.5, 9.0 * 2 + 0.5)])
    up = torch.nn.functional.interpolate(
        torch.from_numpy(small_pred.scores)[None], size=(64, 128), mode="bilinear"
    )
    np.testing.assert_allclose(big_pred.scores, up[0].numpy(), atol=1e-4)
    # sizes that are not multiples of 32 are padded and cropped back
    odd = Predictor(model).predict(_image(37, 50), [(5.0, 5.0)])
    assert odd.scores.shape == (1, 37, 50)


def test_flip_averages_the_mirrored_pass_and_is_mirror_symmetric(model, tmp_path):
    img = _image(64, 96, seed=5)
    q = [(10.0, 20.0), (70.25, 41.0)]
    qm = [(95 - x, y) for x, y in q]  # mirrored queries: x -> W - 1 - x
    plain = Predictor(model)
    a, b = plain.predict(img, q), plain.predict(img[:, ::-1], qm)
    flip = Predictor(model, flip=True)
    out = flip.predict(img, q)
    # scores: the mean of the plain pass and the mirrored pass mirrored back
    np.testing.assert_allclose(out.scores, 0.5 * (a.scores + b.scores[:, :, ::-1]), atol=1e-5)
    # embeddings: the normalised mean of the unit embeddings of both passes
    za, zb = plain.features(img), plain.features(np.ascontiguousarray(img[:, ::-1]))[:, :, ::-1]
    unit = lambda z: z / np.linalg.norm(z, axis=0, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(flip.features(img), unit(unit(za) + unit(zb)), atol=1e-5)
    # so the flipped predictor is exactly mirror-symmetric (no padding at 64x96), the plain one is not
    m = flip.predict(np.ascontiguousarray(img[:, ::-1]), qm)
    np.testing.assert_allclose(m.scores[:, :, ::-1], out.scores, atol=1e-5)
    assert np.abs(b.scores[:, :, ::-1] - a.scores).max() > 1e-3
    # a padded, resized input keeps the output shape
    assert Predictor(model, size=40, flip=True).predict(_image(37, 50), [(5.0, 5.0)]).scores.shape == (
        1,
        37,
        50,
    )
    # the calibration's choice reaches predict/eval through from_run; a bad value is a clear error
    save_run_model(tmp_path, model, CFG, state={"step": 1})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": CFG.to_dict(), "train": {"size": 64}}))
    rng = np.random.default_rng(0)
    protos = {"person": rng.normal(size=8), "object": rng.normal(size=8)}
    write_calibration(tmp_path, protos, {"tau_h": 0.1, "tau_o": 0.1, "tau_r": 0.05}, flip=True)
    assert read_calibration(tmp_path).flip and Predictor.from_run(tmp_path).flip
    write_calibration(tmp_path, protos, None)
    assert not read_calibration(tmp_path).flip and not Predictor.from_run(tmp_path).flip
    write_calibration(tmp_path, protos, None, flip="yes")
    with pytest.raises(InputError, match="'flip' must be true or false"):
        read_calibration(tmp_path)


def test_predict_keeps_callers_mode_and_no_grad(model):
    pred = Predictor(model)
    model.train()
    try:
        out = pred.predict(_image(32, 32), [(5.0, 5.0)])
        assert model.training
        before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
        pred.predict(_image(32, 32, seed=1), [(5.0, 5.0)])
        after = model.state_dict()
        assert all(torch.equal(v, after[k]) for k, v in before.items())  # BN stats untouched (eval inside)
    finally:
        model.eval()
    pred.predict(_image(32, 32), [(5.0, 5.0)])
    assert not model.training
    assert isinstance(out.scores, np.ndarray)


def test_predict_fallback_with_prototypes_only(model):
    rng = np.random.default_rng(1)
    pred = Predictor(model, prototypes={"person": rng.normal(size=8), "object": rng.normal(size=8)})
    out = pred.predict(_image(32, 32), [(5.0, 5.0)], ["left"])
    assert out.mode == "nearest-prototype"
    moving = out.scores[0] > 0.5
    np.testing.assert_array_equal(out.hand_masks[0], moving & (out.person_sim >= out.object_sim))
    np.testing.assert_array_equal(out.object_masks[0], moving & (out.person_sim < out.object_sim))


def test_predict_without_queries_and_bad_input(model):
    pred = Predictor(model)
    out = pred.predict(_image(32, 40), [])
    assert out.scores.shape == (0, 32, 40) and not out.label.any()
    with pytest.raises(ValueError, match="image must have shape"):
        pred.predict(np.zeros((32, 32), np.uint8), [(1, 1)])
    with pytest.raises(ValueError, match="uint8"):
        pred.predict(np.zeros((32, 32, 3), np.float32), [(1, 1)])
    with pytest.raises(ValueError, match="prototypes have 4 channels"):
        Predictor(model, prototypes={"person": np.zeros(4), "object": np.zeros(4)})


def test_unwraps_dataparallel_on_save(tmp_path, model):
    wrapped = torch.nn.DataParallel(model)
    save_run_model(tmp_path, wrapped, CFG)
    m2, _ = load_run_model(tmp_path)
    assert isinstance(m2, CohesivNet)


def test_run_format_and_version_checked(tmp_path, model):
    from cohesiv import __version__
    from cohesiv.model.io import RUN_FORMAT, read_run_config

    save_run_model(tmp_path, model, CFG)
    doc = {"model": CFG.to_dict(), "run_format": RUN_FORMAT, "cohesiv_version": __version__}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc))
    assert read_run_config(tmp_path)["run_format"] == RUN_FORMAT
    load_run_model(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(dict(doc, run_format=RUN_FORMAT + 1)))
    with pytest.raises(InputError, match=f"config.yaml: run format {RUN_FORMAT + 1} is not readable"):
        load_run_model(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(dict(doc, cohesiv_version="7.2.0")))
    with pytest.raises(InputError, match="config.yaml: run written by cohesiv 7.2.0, incompatible"):
        Predictor.from_run(tmp_path)


# ------------------------------------------------------------------------------- hand growing


def test_grow_hands_adds_the_connected_forearm_only():
    from cohesiv.model.predictor import grow_hands

    h, w = 20, 30
    hand = np.zeros((1, h, w), bool)
    hand[0, 2:6, 4:10] = True  # the hand, where S is high
    obj = np.zeros((1, h, w), bool)
    obj[0, 2:6, 10:14] = True  # its object
    person = np.full((h, w), -0.5, np.float32)
    person[2:6, 4:10] = 0.9
    person[6:20, 5:9] = 0.8  # forearm below the hand, connected
    person[10:14, 20:25] = 0.8  # person-like blob elsewhere, not connected
    person[3, 10] = 0.8  # one object pixel that looks like person, connected through the hand
    scores = np.where(hand, 0.9, 0.1).astype(np.float32)
    g, o = grow_hands(hand, obj, scores, person, tau_g=0.5)
    expect = hand[0] | (person > 0.5)
    expect[10:14, 20:25] = False
    assert np.array_equal(g[0], expect)
    assert not (g & o).any() and o[0, 2:6, 10:14].sum() == 16 - 1
    # a higher threshold than the forearm keeps the hand as it was
    g2, o2 = grow_hands(hand, obj, scores, person, tau_g=0.85)
    assert np.array_equal(g2, hand) and np.array_equal(o2, obj)


def test_grow_hands_splits_a_shared_region_by_score():
    from cohesiv.model.predictor import grow_hands

    h, w = 10, 20
    hand = np.zeros((2, h, w), bool)
    hand[0, 4:6, 1:3] = True
    hand[1, 4:6, 17:19] = True
    person = np.full((h, w), 0.9, np.float32)  # one region joins both hands
    scores = np.zeros((2, h, w), np.float32)
    scores[0, :, :10] = 0.6
    scores[1, :, 10:] = 0.6
    g, _ = grow_hands(hand, np.zeros_like(hand), scores, person, tau_g=0.5)
    assert not (g[0] & g[1]).any()
    assert g[0, :, :10].all() and g[1, :, 10:].all()
    # no hand: nothing to grow
    e, _ = grow_hands(np.zeros((0, h, w), bool), np.zeros((0, h, w), bool), scores[:0], person, 0.5)
    assert e.shape == (0, h, w)


def test_predictor_applies_tau_g_from_the_calibration(tmp_path):
    torch.manual_seed(0)
    net = build_model(CFG).eval()
    with torch.no_grad():  # S = 1 everywhere: the read-out is decided by the prototypes
        for head in (net.query_head, net.key_head):
            head[-1].weight.zero_()
            head[-1].bias.fill_(1.0)
    rng = np.random.default_rng(1)
    protos = {"person": rng.normal(size=8), "object": rng.normal(size=8)}
    ths = {"tau_h": 0.3, "tau_o": 0.1, "tau_r": 0.5}
    write_calibration(tmp_path, protos, dict(ths, tau_g=-1.0))
    assert read_calibration(tmp_path).thresholds == dict(ths, tau_g=-1.0)
    image = _image()
    plain = Predictor(net, prototypes=protos, thresholds=ths).predict(image, [(20, 20)], ["left"])
    grown = Predictor(net, prototypes=protos, thresholds=dict(ths, tau_g=-1.0)).predict(
        image, [(20, 20)], ["left"]
    )
    assert 0 < plain.hand_masks.mean() < 1
    # tau_g = -1: every pixel is person-like, so the hand grows to the whole image
    assert grown.hand_masks.all() and not grown.object_masks.any()


def test_predictor_applies_open_o_from_the_calibration(tmp_path):
    from cohesiv.model.predictor import open_objects, opening_radius

    torch.manual_seed(0)
    net = build_model(CFG).eval()
    with torch.no_grad():  # S = 1 everywhere: objects are the pixels that are not person-like
        for head in (net.query_head, net.key_head):
            head[-1].weight.zero_()
            head[-1].bias.fill_(1.0)
    rng = np.random.default_rng(1)
    protos = {"person": rng.normal(size=8), "object": rng.normal(size=8)}
    ths = {"tau_h": 0.3, "tau_o": -1.0, "tau_r": 0.5}
    write_calibration(tmp_path, protos, dict(ths, open_o=0.05))
    assert read_calibration(tmp_path).thresholds == dict(ths, open_o=0.05)
    image = _image()
    plain = Predictor(net, prototypes=protos, thresholds=ths).predict(image, [(20, 20)], ["left"])
    opened = Predictor(net, prototypes=protos, thresholds=dict(ths, open_o=0.05)).predict(
        image, [(20, 20)], ["left"]
    )
    assert plain.object_masks.any()
    expected = open_objects(plain.object_masks, opening_radius(0.05, image.shape[:2]))
    assert (opened.object_masks == expected).all() and (opened.hand_masks == plain.hand_masks).all()
    assert opened.object_masks.sum() < plain.object_masks.sum()


def test_relative_scores_divide_by_the_score_at_the_query(model, tmp_path):
    from cohesiv.model.predictor import RELATIVE_SCORE_FLOOR

    img = _image(64, 96, seed=2)
    q = [(10.0, 20.0), (50.0, 33.0)]  # integer pixels: the score there is the map's value
    plain = Predictor(model).predict(img, q).scores.astype(np.float64)
    rel = Predictor(model, relative_scores=True).predict(img, q).scores.astype(np.float64)
    for k, (x, y) in enumerate(q):
        at = max(plain[k, int(y), int(x)], RELATIVE_SCORE_FLOOR)
        np.testing.assert_allclose(rel[k], np.clip(plain[k] / at, 0, 1), atol=1e-5)
        if plain[k, int(y), int(x)] >= RELATIVE_SCORE_FLOOR:
            assert rel[k, int(y), int(x)] == pytest.approx(1.0, abs=1e-5)
    # recorded by the calibration, read back by from_run (older files: off)
    run = tmp_path / "run"
    save_run_model(run, model, CFG, state={"step": 1})
    (run / "config.yaml").write_text(yaml.safe_dump({"model": CFG.to_dict(), "train": {"size": 64}}))
    protos = {"person": np.ones(8), "object": -np.ones(8)}
    write_calibration(run, protos, {"tau_h": 0.1, "tau_o": 0.1, "tau_r": 0.5})
    assert not Predictor.from_run(run).relative_scores
    write_calibration(run, protos, {"tau_h": 0.1, "tau_o": 0.1, "tau_r": 0.5}, relative_scores=True)
    assert Predictor.from_run(run).relative_scores


def test_query_person_takes_the_person_prototype_from_the_image(model, tmp_path):
    # --query-person: the person prototype is the mean unit embedding at the queries (as without
    # calibration), the calibrated object prototype and thresholds stay; from_run reads the choice.
    img = _image(64, 96, seed=7)
    q = [(10.0, 20.0), (50.0, 33.0)]
    rng = np.random.default_rng(3)
    protos = {"person": rng.normal(size=8), "object": rng.normal(size=8)}
    ths = {"tau_h": 0.1, "tau_o": 0.1, "tau_r": 0.05}
    fixed = Predictor(model, prototypes=protos, thresholds=ths).predict(img, q)
    own = Predictor(model, prototypes=protos, thresholds=ths, query_person=True).predict(img, q)
    bare = Predictor(model).predict(img, q)  # query-prototype read-out: the same person prototype
    assert own.mode == "calibrated"
    np.testing.assert_allclose(own.person_sim, bare.person_sim, atol=1e-5)
    np.testing.assert_allclose(own.object_sim, fixed.object_sim, atol=1e-6)
    assert np.abs(own.person_sim - fixed.person_sim).max() > 0.1
    np.testing.assert_array_equal(own.hand_masks, (own.scores > 0.05) & (own.person_sim > 0.1))
    # the choice is recorded in calibration.json and read back; a bad value is a clear error
    save_run_model(tmp_path, model, CFG, state={"step": 1})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": CFG.to_dict(), "train": {"size": 64}}))
    write_calibration(tmp_path, protos, ths, query_person=True)
    assert read_calibration(tmp_path).query_person and Predictor.from_run(tmp_path).query_person
    write_calibration(tmp_path, protos, ths)
    assert not Predictor.from_run(tmp_path).query_person  # older files: the calibrated prototype
    write_calibration(tmp_path, protos, ths, query_person=1)
    with pytest.raises(InputError, match="'query_person' must be true or false"):
        read_calibration(tmp_path)
