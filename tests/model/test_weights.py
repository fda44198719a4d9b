import pytest
import torch
from safetensors.torch import save_file

from cohesiv.errors import CohesivError, InputError
from cohesiv.model import CohesivNet, load_encoder_weights, read_state_dict


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
