import numpy as np
import pytest
from safetensors.torch import load_file
from train_fixtures import TinyNetGN, run_ddp, write_dataset

from cohesiv.model import ModelConfig
from cohesiv.train import make_config, read_log, train


@pytest.mark.slow  # 20-45 s on the shared 2-core machine (two process start-ups)
def test_two_processes_follow_the_one_process_loss_curve(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=8, size=64)
    kw = dict(size=32, batch=4, steps=6, log_every=1, seed=1, image_every=0, warmup_steps=0, save_every=3)
    model = ModelConfig(embed_dim=8, head_dim=8)
    train(
        make_config(data=[ds], out=tmp_path / "one", model=model, **kw), progress=False, build_model=TinyNetGN
    )
    run_ddp(make_config(data=[ds], out=tmp_path / "two", model=model, **kw), world=2, tiny="group")
    one = np.array([r["loss"] for r in read_log(tmp_path / "one")])
    two = np.array([r["loss"] for r in read_log(tmp_path / "two")])
    assert len(one) == len(two) == 6
    # same global batches, averaged gradients: the curves agree up to how the loss is pooled over
    # pixels (one mean over the batch vs the mean of two half-batch means)
    assert np.abs(one - two).max() < 0.05 * one.max()
    # and differ from a run on other batches (another seed) by much more than that
    other = make_config(data=[ds], out=tmp_path / "other", model=model, **dict(kw, seed=2))
    train(other, progress=False, build_model=TinyNetGN)
    three = np.array([r["loss"] for r in read_log(tmp_path / "other")])
    assert np.abs(one - three).max() > 3 * np.abs(one - two).max()
    # rank 0 alone wrote the run folder; the weights are the unwrapped module's
    assert len(list((tmp_path / "two" / "tb").glob("events.*"))) == 1
    w1, w2 = (
        load_file(tmp_path / "one/checkpoints/last.safetensors"),
        load_file(tmp_path / "two/checkpoints/last.safetensors"),
    )
    assert w1.keys() == w2.keys() and not any(k.startswith("module.") for k in w2)
