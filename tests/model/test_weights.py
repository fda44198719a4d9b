from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cohesiv.errors import CohesivError, InputError
from cohesiv.model import CohesivNet, load_encoder_weights, read_state_dict
from cohesiv.model.net import IMAGENET_MEAN, IMAGENET_STD, ModelConfig, build_model
from cohesiv.model.weights import bundled_weights_path, efficientnet_stage_sizes, efficientnet_to_timm


@pytest.fixture(scope="module")
def donor():
    torch.manual_seed(1)
    return CohesivNet("resnet18", embed_dim=8, head_dim=8)


def _perturbed(sd):
    g = torch.Generator().manual_seed(3)
    return {k: (v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v) for k, v in sd.items()}


def _same_encoder(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pth_with_module_prefix_and_classifier(tmp_path, donor):
    sd = _perturbed(donor.encoder.state_dict())
    ckpt = {f"module.{k}": v for k, v in sd.items()}
    ckpt["module.fc.weight"] = torch.randn(1000, 512)  # torchvision classifier: ignored
    ckpt["module.fc.bias"] = torch.randn(1000)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": ckpt, "epoch": 3}, path)
    m = CohesivNet("resnet18", embed_dim=8, head_dim=8)
    assert not torch.equal(m.encoder.conv1.weight, sd["conv1.weight"])
    load_encoder_weights(m, path)
    torch.testing.assert_close(m.encoder.conv1.weight, sd["conv1.weight"])
    torch.testing.assert_close(m.encoder.layer4[1].bn2.running_var, sd["layer4.1.bn2.running_var"])


def test_safetensors_with_encoder_prefix_and_whole_model(tmp_path, donor):
    path = tmp_path / "enc.safetensors"
    save_file({f"encoder.{k}": v.contiguous() for k, v in donor.encoder.state_dict().items()}, path)
    m = CohesivNet("resnet18", embed_dim=8, head_dim=8)
    load_encoder_weights(m.encoder, path)  # the encoder itself
    assert _same_encoder(m.encoder, donor.encoder)
    # A whole CohesivNet checkpoint: only its encoder part is used.
    whole = tmp_path / "whole.safetensors"
    save_file({k: v.contiguous() for k, v in _perturbed(donor.state_dict()).items()}, whole)
    m2 = CohesivNet("resnet18", encoder_weights=str(whole), embed_dim=8, head_dim=8)
    torch.testing.assert_close(m2.encoder.conv1.weight, read_state_dict(whole)["unet.encoder.conv1.weight"])


def test_torchvision_resnet18_layout(tmp_path):
    import torchvision

    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), path)
    m = CohesivNet("resnet18", embed_dim=8, head_dim=8).eval()
    load_encoder_weights(m, path)
    tv.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
        torch.testing.assert_close(m.encoder(x)[-1], ref)


def test_missing_num_batches_tracked_is_fine(tmp_path, donor):
    sd = {k: v for k, v in donor.encoder.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(sd, path)
    load_encoder_weights(CohesivNet("resnet18", embed_dim=8, head_dim=8), path)


def test_mismatch_lists_keys(tmp_path, donor):
    sd = dict(donor.encoder.state_dict())
    del sd["layer1.0.conv1.weight"]
    sd["layer9.extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CohesivError) as e:
        load_encoder_weights(CohesivNet("resnet18", embed_dim=8, head_dim=8), path)
    msg = str(e.value)
    assert "bad.pth" in msg and "1 missing" in msg and "layer1.0.conv1.weight" in msg
    assert "1 unexpected" in msg and "layer9.extra.weight" in msg


def test_wrong_architecture_shapes(tmp_path):
    sd = CohesivNet("resnet34", embed_dim=8, head_dim=8).encoder.state_dict()
    path = tmp_path / "r34.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, path)
    with pytest.raises(CohesivError, match="unexpected"):
        load_encoder_weights(CohesivNet("resnet18", embed_dim=8, head_dim=8), path)
    sd18 = dict(CohesivNet("resnet18", embed_dim=8, head_dim=8).encoder.state_dict())
    sd18["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(sd18, tmp_path / "shape.pth")
    with pytest.raises(CohesivError, match=r"another shape.*conv1.weight \(64, 3, 3, 3\) vs \(64, 3, 7, 7\)"):
        load_encoder_weights(CohesivNet("resnet18", embed_dim=8, head_dim=8), tmp_path / "shape.pth")


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such weights file"):
        read_state_dict(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pth: cannot read weights"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(InputError, match="no tensors"):
        read_state_dict(tmp_path / "empty.pth")


def test_pickled_objects_refused(tmp_path):
    torch.save({"w": torch.zeros(1), "obj": object()}, tmp_path / "pickle.pth")
    with pytest.raises(
        InputError, match="pickle.pth: weights: refused: the file holds pickled Python objects"
    ):
        read_state_dict(tmp_path / "pickle.pth")


@pytest.mark.slow
def test_timm_seresnext_layout_matches_features(tmp_path):
    timm = pytest.importorskip("timm")
    ref = timm.create_model("seresnext50_32x4d", pretrained=False).eval()
    path = tmp_path / "timm_seresnext.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    m = CohesivNet("se_resnext50_32x4d", embed_dim=8, head_dim=8).eval()
    load_encoder_weights(m, path)
    enc = m.encoder
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        # the stem (smp's layer0 = pretrainedmodels' conv1/bn1/relu; its max-pool has ceil_mode and
        # no padding, timm's has padding 1, so the pooled maps differ by design and are not compared)
        torch.testing.assert_close(enc.layer0(x), ref.act1(ref.bn1(ref.conv1(x))), rtol=1e-4, atol=1e-4)
        y = torch.randn(1, 64, 16, 16)
        a, b = y, y
        for name in ("layer1", "layer2", "layer3", "layer4"):
            a, b = getattr(enc, name)(a), getattr(ref, name)(b)
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


# --- bundled ImageNet weights (EfficientNet-Lite0, lukemelas key layout) ---------------------------

LITE0 = "timm-tf_efficientnet_lite0"


def test_efficientnet_mapping_is_complete():
    """Every key of the bundled checkpoint maps onto the encoder (classifier aside), none is missing."""
    m = CohesivNet(LITE0, embed_dim=8, head_dim=8)
    target = m.encoder.state_dict()
    sd = read_state_dict(bundled_weights_path(LITE0))
    assert len(sd) == 296
    stages = efficientnet_stage_sizes(target)
    assert stages == (1, 2, 2, 3, 3, 4, 1)
    mapped = efficientnet_to_timm(sd, stages)
    assert len(mapped) == len(sd)  # one name each
    assert set(mapped) - set(target) == {"classifier.weight", "classifier.bias"}
    assert set(target) - set(mapped) == set()
    assert all(mapped[k].shape == target[k].shape for k in target)


def test_efficientnet_mapping_hand_cases():
    t = torch.zeros(1)
    sd = {
        "_conv_stem.weight": t,
        "_bn0.bias": t,
        "_blocks.0._depthwise_conv.weight": t,
        "_blocks.0._project_conv.weight": t,
        "_blocks.1._expand_conv.weight": t,
        "_blocks.2._project_conv.weight": t,
        "_blocks.3._bn2.running_mean": t,
        "_conv_head.weight": t,
        "_bn1.weight": t,
        "_fc.bias": t,
    }
    out = efficientnet_to_timm(sd, (1, 2, 1))
    assert set(out) == {
        "conv_stem.weight",
        "bn1.bias",
        "blocks.0.0.conv_dw.weight",
        "blocks.0.0.conv_pw.weight",
        "blocks.1.0.conv_pw.weight",
        "blocks.1.1.conv_pwl.weight",
        "blocks.2.0.bn3.running_mean",
        "conv_head.weight",
        "bn2.weight",
        "classifier.bias",
    }


def test_imagenet_weights_load_into_default_model():
    cfg = ModelConfig()
    assert cfg.encoder_name == LITE0 and cfg.encoder_weights == "imagenet" and cfg.input_norm == "inception"
    m = build_model(cfg)
    sd = efficientnet_to_timm(read_state_dict(bundled_weights_path(LITE0)), (1, 2, 2, 3, 3, 4, 1))
    torch.testing.assert_close(m.encoder.blocks[5][3].conv_pwl.weight, sd["blocks.5.3.conv_pwl.weight"])
    torch.testing.assert_close(m.encoder.conv_stem.weight, sd["conv_stem.weight"])


def test_encoder_weights_values():
    assert ModelConfig(encoder_name="resnet18").encoder_weights is None  # auto: nothing bundled
    assert ModelConfig(encoder_name="resnet18").input_norm == "imagenet"
    assert ModelConfig(encoder_weights="none").encoder_weights is None
    assert ModelConfig(encoder_weights="ImageNet").encoder_weights == "imagenet"
    with pytest.raises(CohesivError, match="no ImageNet weights are bundled for encoder 'resnet18'"):
        ModelConfig(encoder_name="resnet18", encoder_weights="imagenet")
    with pytest.raises(CohesivError, match="no ImageNet weights are bundled for encoder 'resnet18'"):
        CohesivNet("resnet18", encoder_weights="imagenet")
    with pytest.raises(CohesivError, match="unknown input_norm"):
        ModelConfig(input_norm="tf")


def test_input_norm_conversion():
    """The network's ImageNet-normalised input reaches the encoder as (x - 0.5) / 0.5 for Lite0."""
    m = CohesivNet(LITE0, embed_dim=8, head_dim=8).eval()
    rgb = torch.rand(1, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    seen = {}
    m.unet.encoder.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        m.embed((rgb - mean) / std)
    torch.testing.assert_close(seen["x"], (rgb - 0.5) / 0.5, rtol=1e-5, atol=1e-5)
    assert "_norm_scale" not in m.state_dict()  # derived, not saved


def test_bundled_loader_refuses_code_pickle(tmp_path, monkeypatch):
    """The bundled-weights path goes through the same safe reader: a pickle that runs code is refused."""
    import cohesiv.model.weights as W

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    pkg = tmp_path / "evil_weights_pkg"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    torch.save({"w": torch.zeros(1), "x": Evil()}, pkg / "models" / "w.pth")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(W.BUNDLED_WEIGHTS, "resnet18", ("evil_weights_pkg", "models/w.pth"))
    with pytest.raises(InputError, match="refused: the file holds pickled Python objects"):
        CohesivNet("resnet18", encoder_weights="imagenet")


OPENCV_PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")


@pytest.mark.slow
@pytest.mark.skipif(not (OPENCV_PHOTOS / "baboon.jpg").is_file(), reason="Debian opencv-doc photos absent")
def test_bundled_weights_classify_photos():
    """ImageNet sanity: the mapped weights in timm's classifier name OpenCV's sample photos right."""
    timm = pytest.importorskip("timm")
    from cohesiv.io import read_image

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    sd = read_state_dict(bundled_weights_path(LITE0))
    net.load_state_dict(efficientnet_to_timm(sd, efficientnet_stage_sizes(net.state_dict())))
    expected = {
        "baboon.jpg": 372,
        "orange.jpg": 950,
        "apple.jpg": 948,
        "butterfly.jpg": 323,
        "fruits.jpg": 951,
    }
    for name, cls in expected.items():
        img = read_image(OPENCV_PHOTOS / name)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            p = net((x - 127.5) / 127.5).softmax(1)[0]
        assert int(p.argmax()) == cls, (name, int(p.argmax()), float(p.max()))
