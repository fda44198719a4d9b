import re

import numpy as np
import pytest
import torch
from flow_util import textured, translate
from torchvision.models.optical_flow import raft_large, raft_small

from cohesiv.errors import CohesivError, InputError
from cohesiv.flow import FlowEstimator, convert_raft_state_dict, load_raft
from cohesiv.flow.raft import pad_to_multiple, unpad


def to_princeton(state: dict, model: str) -> dict:
    """torchvision RAFT keys -> princeton-vl keys, written from princeton-vl's core/extractor.py and
    core/update.py (fnet/cnet, convN/normN, shortcut norm stored twice, update_block.encoder/gru/mask),
    saved from DataParallel ("module." prefix)."""
    shortcut_norm = "norm3" if model == "large" else "norm4"  # ResidualBlock / BottleneckBlock
    out = {}
    for k, v in state.items():
        names = [k]
        k = re.sub(r"^feature_encoder\.", "fnet.", k)
        k = re.sub(r"^context_encoder\.", "cnet.", k)
        k = re.sub(r"^(fnet|cnet)\.convnormrelu\.0\.", r"\1.conv1.", k)
        k = re.sub(r"^(fnet|cnet)\.convnormrelu\.1\.", r"\1.norm1.", k)
        k = re.sub(r"^(fnet|cnet)\.conv\.", r"\1.conv2.", k)
        k = re.sub(r"\.convnormrelu(\d)\.0\.", r".conv\1.", k)
        k = re.sub(r"\.convnormrelu(\d)\.1\.", r".norm\1.", k)
        k = re.sub(r"motion_encoder\.convcorr(\d)\.0\.", r"encoder.convc\1.", k)
        k = re.sub(r"motion_encoder\.convflow(\d)\.0\.", r"encoder.convf\1.", k)
        k = re.sub(r"motion_encoder\.conv\.0\.", "encoder.conv.", k)
        if model == "large":
            k = re.sub(r"recurrent_block\.convgru(\d)\.conv([zrq])\.", r"gru.conv\2\1.", k)
        else:
            k = re.sub(r"recurrent_block\.convgru1\.conv([zrq])\.", r"gru.conv\1.", k)
        k = re.sub(r"^mask_predictor\.convrelu\.0\.", "update_block.mask.0.", k)
        k = re.sub(r"^mask_predictor\.conv\.", "update_block.mask.2.", k)
        names = [k]
        if ".downsample.1." in k:
            names.append(k.replace("downsample.1.", shortcut_norm + "."))
        for name in names:
            out["module." + name] = v.clone()
    return out


def save(state, path):
    torch.save(state, path)
    return path


def frames(h=50, w=70):
    a = textured(h, w, seed=5)
    return a, translate(a, 2, 1)


@pytest.fixture(scope="module")
def small_state():
    torch.manual_seed(0)
    return raft_small(weights=None).state_dict()


def test_pad_unpad_round_trip():
    x = torch.arange(2 * 3 * 50 * 70, dtype=torch.float32).reshape(2, 3, 50, 70)
    padded, pad = pad_to_multiple(x)
    assert padded.shape[-2:] == (128, 128)  # RAFT's correlation pyramid needs >= 128
    torch.testing.assert_close(unpad(padded, pad), x)
    x = torch.zeros(1, 3, 130, 131)
    assert pad_to_multiple(x)[0].shape[-2:] == (136, 136)
    torch.testing.assert_close(unpad(*pad_to_multiple(x)), x)
    y = torch.zeros(1, 3, 128, 136)
    assert pad_to_multiple(y)[0] is y  # already fine: untouched


def test_raft_runs_from_torchvision_layout_file(tmp_path, small_state):
    path = save(small_state, tmp_path / "raft_small_tv.pth")
    est = FlowEstimator(method="raft", raft_weights=path, raft_iters=1, device="cpu")
    a, b = frames()
    flow = est(a, b)
    assert flow.shape == (2, 50, 70) and flow.dtype == np.float32 and np.isfinite(flow).all()
    # the same as torchvision's model called directly on [-1, 1] input (128x128: no padding needed)
    a128, b128 = textured(128, 128, seed=7), textured(128, 128, seed=8)
    net = raft_small(weights=None)
    net.load_state_dict(small_state)
    net.eval()
    with torch.no_grad():
        ta, tb = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1 for x in (a128, b128))
        ref = net(ta, tb, num_flow_updates=1)[-1][0].numpy()
    np.testing.assert_allclose(est(a128, b128), ref, atol=1e-4)
    # batched form agrees with single calls
    batch = est.batch([a, b], [b, a])
    assert batch.shape == (2, 2, 50, 70)
    np.testing.assert_allclose(batch[0], flow, atol=1e-4)


def test_raft_model_is_in_eval_mode_and_on_cpu(tmp_path, small_state):
    est = FlowEstimator(method="raft", raft_weights=save(small_state, tmp_path / "w.pth"), raft_iters=1)
    net = est._impl.net
    assert not net.training
    assert next(net.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("model", ["small", "large"])
def test_princeton_layout_loads_to_the_same_weights(tmp_path, model):
    torch.manual_seed(1)
    net = (raft_small if model == "small" else raft_large)(weights=None)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a wrong mapping shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    ref = net.state_dict()
    ckpt = to_princeton(ref, model)
    assert all(k.startswith("module.") for k in ckpt)
    assert not any(k[len("module.") :] in ref for k in ckpt if "flow_head" not in k)  # really renamed
    loaded = load_raft(save(ckpt, tmp_path / f"raft-{model}.pth"), model).state_dict()
    assert loaded.keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(loaded[k], ref[k], msg=k)


def test_princeton_checkpoint_without_num_batches_tracked(tmp_path):
    ref = raft_large(weights=None).state_dict()
    ckpt = {k: v for k, v in to_princeton(ref, "large").items() if "num_batches_tracked" not in k}
    load_raft(save(ckpt, tmp_path / "old.pth"), "large")


def test_state_dict_wrapped_in_a_training_checkpoint(tmp_path, small_state):
    path = save({"model": small_state, "epoch": 3}, tmp_path / "ckpt.pth")
    load_raft(path, "small")


def test_unmatched_keys_are_listed(tmp_path, small_state):
    ckpt = dict(small_state)
    ckpt["module.extra_head.weight"] = torch.zeros(3)
    del ckpt["update_block.flow_head.conv2.bias"]
    with pytest.raises(
        InputError,
        match=r"1 unmatched checkpoint keys \[extra_head.weight\].*"
        r"1 model keys missing \[update_block.flow_head.conv2.bias\]",
    ):
        load_raft(save(ckpt, tmp_path / "bad.pth"), "small")


def test_wrong_model_size_gives_a_hint(tmp_path, small_state):
    ckpt = to_princeton(raft_large(weights=None).state_dict(), "large")
    with pytest.raises(
        InputError, match=r"\(princeton-vl layout\).*looks like a raft_large.*--raft-model large"
    ):
        load_raft(save(ckpt, tmp_path / "raft-things.pth"), "small")
    with pytest.raises(
        InputError, match=r"\(torchvision layout\).*looks like a raft_small.*--raft-model small"
    ):
        load_raft(save(small_state, tmp_path / "raft_small.pth"), "large")


def test_shape_mismatch_is_reported(tmp_path, small_state):
    ckpt = dict(small_state)
    ckpt["update_block.flow_head.conv2.bias"] = torch.zeros(3)
    with pytest.raises(
        InputError, match=r"shape mismatch in \[update_block.flow_head.conv2.bias \(3,\) vs \(2,\)"
    ):
        load_raft(save(ckpt, tmp_path / "bad.pth"), "small")


def test_raft_without_weights_says_where_weights_come_from():
    with pytest.raises(CohesivError, match="needs weights.*download.pytorch.org.*princeton-vl"):
        FlowEstimator(method="raft")


def test_missing_or_corrupt_weights_file(tmp_path):
    with pytest.raises(InputError, match="no such RAFT weights file"):
        FlowEstimator(method="raft", raft_weights=tmp_path / "nope.pth")
    bad = tmp_path / "junk.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read RAFT weights"):
        FlowEstimator(method="raft", raft_weights=bad)


def test_convert_keeps_torchvision_layout_and_strips_module(small_state):
    state, layout = convert_raft_state_dict(
        {"module." + k: v for k, v in small_state.items()}, list(small_state)
    )
    assert layout == "torchvision" and state.keys() == small_state.keys()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_raft_runs_on_gpu_by_default(tmp_path, small_state):
    est = FlowEstimator(method="raft", raft_weights=save(small_state, tmp_path / "w.pth"), raft_iters=2)
    assert next(est._impl.net.parameters()).is_cuda
    a, b = frames()
    cpu = FlowEstimator(method="raft", raft_weights=tmp_path / "w.pth", raft_iters=2, device="cpu")
    np.testing.assert_allclose(est(a, b), cpu(a, b), atol=1e-2)
