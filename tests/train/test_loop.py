import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from train_fixtures import TinyNet, write_dataset

from cohesiv.errors import CohesivError
from cohesiv.model import ModelConfig
from cohesiv.train import make_config, read_log, train
from cohesiv.train.checkpoint import checkpoint_step
from cohesiv.train.loop import PlateauState, lr_at

TINY = ModelConfig(embed_dim=8, head_dim=8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("ds") / "d", n=8, size=64)


def _cfg(dataset, out, **kw):
    args = dict(size=32, batch=2, steps=4, save_every=2, log_every=1, image_every=2, model=TINY, seed=5)
    args.update(kw)
    return make_config(data=[dataset], out=out, **args)


def _weights(run):
    return load_file(str(Path(run) / "checkpoints" / "last.safetensors"))


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(dataset, tmp_path):
    # a small stand-in network keeps this fast; the kill -9 test below uses the real one
    full = train(_cfg(dataset, tmp_path / "full"), progress=False, build_model=TinyNet)
    assert full.step == 4 and math.isfinite(full.loss)
    part = train(_cfg(dataset, tmp_path / "cut"), progress=False, stop_after=2, build_model=TinyNet)
    assert part.step == 2 and checkpoint_step(tmp_path / "cut" / "checkpoints") == 2
    rest = train(_cfg(dataset, tmp_path / "cut"), resume=True, progress=False, build_model=TinyNet)
    assert rest.step == 4
    assert [s for s, _ in rest.history] == [3, 4]
    assert [loss for _, loss in rest.history] == [loss for _, loss in full.history[2:]]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the log holds each step once, as the uninterrupted run's
    assert [r["step"] for r in read_log(tmp_path / "cut")] == [1, 2, 3, 4]
    assert [r["loss"] for r in read_log(tmp_path / "cut")] == [r["loss"] for r in read_log(tmp_path / "full")]


def _dropout_net(cfg):
    """TinyNet behind a dropout: training draws from the global torch RNG (as the encoder's drop-path)."""

    class _Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = TinyNet(cfg)

        def forward(self, images, points=None, point_valid=None):
            return self.inner(torch.nn.functional.dropout(images, 0.3, self.training), points, point_valid)

    return _Net()


def test_resume_restores_the_rng_after_the_loader_draws_its_seed(dataset, tmp_path):
    """Iterating the DataLoader draws its base seed from the global RNG: the checkpoint's RNG state
    is restored after that draw, so the resumed steps' dropout masks are the uninterrupted run's."""
    kw = dict(steps=6, save_every=2)
    full = train(_cfg(dataset, tmp_path / "full", **kw), progress=False, build_model=_dropout_net)
    train(_cfg(dataset, tmp_path / "cut", **kw), progress=False, stop_after=4, build_model=_dropout_net)
    rest = train(_cfg(dataset, tmp_path / "cut", **kw), resume=True, progress=False, build_model=_dropout_net)
    assert [loss for _, loss in rest.history] == [loss for _, loss in full.history[4:]]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def short_run(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "r"
    train(_cfg(dataset, run, steps=2), progress=False)
    return run


def test_run_folder_contents(short_run):
    run = short_run
    doc = yaml.safe_load((run / "config.yaml").read_text())
    assert doc["model"]["embed_dim"] == 8 and doc["train"]["batch"] == 2 and doc["cohesiv_version"]
    state = json.loads((run / "checkpoints" / "last.json").read_text())
    assert state["step"] == 2 and "rng" in state and "param_groups" in state["optimizer"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    rec = read_log(run)[-1]
    assert {"step", "loss", "resp", "emb", "lr", "images_per_s"} <= set(rec)
    # the weights fit the model of the saved config
    from cohesiv.model import ModelConfig, build_model

    model = build_model(ModelConfig.from_dict(doc["model"]))
    model.load_state_dict(_weights(run), strict=True)


def test_existing_run_is_refused_without_resume(dataset, short_run, tmp_path):
    with pytest.raises(CohesivError, match="--resume"):
        train(_cfg(dataset, short_run, steps=2), progress=False)
    with pytest.raises(CohesivError, match="batch"):
        train(_cfg(dataset, short_run, steps=2, batch=4), resume=True, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(CohesivError, match="not a cohesiv training run"):
        train(_cfg(dataset, tmp_path / "other", steps=1), progress=False)


def test_resume_of_a_finished_run_does_nothing(dataset, short_run):
    before = _weights(short_run)
    r = train(_cfg(dataset, short_run, steps=2), resume=True, progress=False)
    assert r.step == 2 and r.history == []
    after = _weights(short_run)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_too_few_samples_is_a_clear_error(dataset, tmp_path):
    with pytest.raises(CohesivError, match="fewer than one batch"):
        train(_cfg(dataset, tmp_path / "r", batch=16), progress=False)


def test_lr_schedules():
    cfg = make_config(data=["d"], out="o", lr=1.0, steps=10, warmup_steps=2, schedule="cosine")
    lrs = [lr_at(s, 10, cfg) for s in range(10)]
    assert lrs[0] == pytest.approx(1 / 3) and lrs[1] == pytest.approx(2 / 3) and lrs[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] > 0
    assert lr_at(5, 10, make_config(data=["d"], out="o", lr=0.5, schedule="constant", warmup_steps=0)) == 0.5


def test_plateau_halves_after_patience_and_counts_stalls():
    p = PlateauState()
    for v in [1.0, 0.9, 0.95, 0.95, 0.95]:
        p.update(v, patience=2, factor=0.5)
    assert p.scale == 0.5 and p.stall_epochs == 3 and p.best == 0.9
    p.update(0.5, patience=2, factor=0.5)
    assert p.stall_epochs == 0 and p.scale == 0.5


def test_paper_preset():
    cfg = make_config(data=["d"], out="o", preset="paper")
    assert (cfg.batch, cfg.lr, cfg.schedule, cfg.plateau_patience, cfg.early_stop_patience) == (
        10,
        1e-2,
        "plateau",
        5,
        10,
    )
    assert cfg.steps is None and cfg.epochs == 100
    assert make_config(data=["d"], out="o", preset="paper", steps=7, batch=4).steps == 7
    with pytest.raises(CohesivError, match="unknown preset"):
        make_config(data=["d"], out="o", preset="nope")
    with pytest.raises(CohesivError, match="multiple of 32"):
        make_config(data=["d"], out="o", size=100)


def test_plateau_schedule_with_held_out_split_runs(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path / "p", steps=None, epochs=1, schedule="plateau", val_fraction=0.3, batch=2)
    r = train(cfg, progress=False, build_model=TinyNet)
    assert r.step > 0
    assert "validation loss" in (tmp_path / "p" / "train.log").read_text()


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(dataset, tmp_path):
    args = [
        sys.executable, "-m", "cohesiv", "train", "--data", str(dataset), "--size", "64", "--batch", "4",
        "--steps", "8", "--save-every", "2", "--seed", "3", "--embed-dim", "8",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run(args + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "cut")], env=env, stderr=subprocess.DEVNULL)
    ck = tmp_path / "cut" / "checkpoints"
    deadline = time.time() + 300
    while (checkpoint_step(ck) or 0) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 4 <= (checkpoint_step(ck) or 0) < 8
    subprocess.run(
        args + ["--out", str(tmp_path / "cut"), "--resume"], check=True, env=env, capture_output=True
    )
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_is_bit_exact_with_reduced_resolution_heads(dataset, tmp_path):
    """The real network with heads at 1/2 resolution: interrupted + resumed == uninterrupted."""
    model = ModelConfig(encoder_name="resnet18", encoder_weights=None, embed_dim=8, head_dim=8, head_stride=2)
    kw = dict(size=64, model=model, keep_every=2)
    full = train(_cfg(dataset, tmp_path / "full", **kw), progress=False)
    train(_cfg(dataset, tmp_path / "cut", **kw), progress=False, stop_after=2)
    rest = train(_cfg(dataset, tmp_path / "cut", **kw), resume=True, progress=False)
    assert [loss for _, loss in rest.history] == [loss for _, loss in full.history[2:]]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    kept = sorted(p.name for p in (tmp_path / "full" / "checkpoints").glob("step-*.safetensors"))
    assert kept == ["step-000002.safetensors", "step-000004.safetensors"]
    assert all(
        torch.equal(v, a[k])
        for k, v in load_file(str(tmp_path / "full/checkpoints/step-000004.safetensors")).items()
    )


def _encoder_net(cfg):
    """TinyNet whose first layers are its ``encoder``, as CohesivNet's smp encoder."""
    net = TinyNet(cfg)
    type(net).encoder = property(lambda self: self.body)  # a class made for this network alone
    return net


def test_encoder_lr_zero_freezes_the_encoder_and_trains_the_rest(dataset, tmp_path):
    torch.manual_seed(5)  # the seed _cfg gives, so these are the run's initial weights
    init = {k: v.clone() for k, v in _encoder_net(TINY).state_dict().items()}
    train(_cfg(dataset, tmp_path / "r", encoder_lr=0.0), progress=False, build_model=_encoder_net)
    w = _weights(tmp_path / "r")
    for k in ("body.0.weight", "body.0.bias", "body.1.weight", "body.3.weight"):
        assert torch.equal(w[k], init[k]), k
    assert not torch.equal(w["q.weight"], init["q.weight"])


def test_encoder_lr_scales_the_encoder_step_and_resumes_exactly(dataset, tmp_path):
    def run(name, **kw):
        train(_cfg(dataset, tmp_path / name, **kw), progress=False, build_model=_encoder_net)
        return _weights(tmp_path / name)

    torch.manual_seed(5)
    init = _encoder_net(TINY).state_dict()["body.0.weight"].clone()
    full, slow = run("full"), run("slow", encoder_lr=0.1)
    moved = lambda w: float((w["body.0.weight"] - init).abs().sum())  # noqa: E731
    assert 0 < moved(slow) < 0.5 * moved(full)
    train(
        _cfg(dataset, tmp_path / "cut", encoder_lr=0.1),
        progress=False,
        stop_after=2,
        build_model=_encoder_net,
    )
    rest = train(
        _cfg(dataset, tmp_path / "cut", encoder_lr=0.1), resume=True, progress=False, build_model=_encoder_net
    )
    assert rest.step == 4
    cut = _weights(tmp_path / "cut")
    for k in slow:
        assert torch.equal(slow[k], cut[k]), k


def test_encoder_lr_is_checked(dataset, tmp_path):
    with pytest.raises(CohesivError, match="encoder-lr"):
        _cfg(dataset, tmp_path / "a", encoder_lr=1.5)
    with pytest.raises(CohesivError, match="no encoder"):
        train(_cfg(dataset, tmp_path / "b", encoder_lr=0.5), progress=False, build_model=TinyNet)
