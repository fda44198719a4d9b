import os

import yaml

from cohesiv.cli import build_parser, main
from cohesiv.commands.train import build_config
from cohesiv.model import ModelConfig
from cohesiv.train import make_config
from cohesiv.train.loop import config_document


def _args(argv):
    return build_parser().parse_args(argv)


def test_options_override_the_preset_and_the_defaults(tmp_path):
    cfg = build_config(
        _args(
            [
                "train",
                "--data",
                "d1",
                "d2",
                "--out",
                str(tmp_path / "r"),
                "--preset",
                "paper",
                "--lr",
                "0.002",
            ]
        )
    )
    assert (
        cfg.data == (os.path.abspath("d1"), os.path.abspath("d2"))
        and cfg.batch == 10
        and cfg.lr == 0.002
        and cfg.schedule == "plateau"
    )
    cfg = build_config(
        _args(
            [
                "train",
                "--data",
                "d",
                "--out",
                "r",
                "--encoder",
                "resnet34",
                "--embed-dim",
                "16",
                "--epochs",
                "3",
            ]
        )
    )
    assert (
        cfg.model.encoder_name == "resnet34"
        and cfg.model.embed_dim == 16
        and cfg.epochs == 3
        and cfg.steps is None
    )
    assert cfg.lr == 1e-3 and cfg.schedule == "cosine"


def test_resume_takes_the_saved_config(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    saved = make_config(data=["ds"], out=run, size=64, batch=4, steps=10, model=ModelConfig(embed_dim=8))
    (run / "config.yaml").write_text(yaml.safe_dump(config_document(saved)))
    cfg = build_config(_args(["train", "--out", str(run), "--resume", "--steps", "20"]))
    assert (
        cfg.data == (os.path.abspath("ds"),)
        and cfg.size == 64
        and cfg.batch == 4
        and cfg.model.embed_dim == 8
    )
    assert cfg.steps == 20
    # --data given again, relative as on the first run: the same absolute folders, so the resume matches
    again = build_config(_args(["train", "--data", "ds", "--out", str(run), "--resume"]))
    assert again.data == cfg.data


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r")]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert (
        main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
    )
    assert "no such pseudo-label dataset" in capsys.readouterr().err
    assert main(["train", "--data", "d", "--out", str(tmp_path / "r"), "--size", "100"]) == 2
    assert main(["calibrate", "--run", str(tmp_path / "nope"), "--val", "v"]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_train_threads_option_is_honoured(tmp_path):
    import torch
    from train_fixtures import write_dataset

    ds = write_dataset(tmp_path / "ds", n=4, size=64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        argv = ["train", "--data", str(ds), "--out", str(tmp_path / "r"), "--threads", "1", "--steps", "1"]
        argv += ["--size", "32", "--batch", "2", "--encoder", "resnet18", "--encoder-weights", "none"]
        argv += ["--embed-dim", "8", "--head-dim", "8", "--no-progress"]
        assert main(argv) == 0
        assert torch.get_num_threads() == 1
        assert "threads 1" in (tmp_path / "r" / "train.log").read_text()
    finally:
        torch.set_num_threads(before)
    assert _args(["train", "--out", "r"]).threads == "auto"  # the default


def test_paper_preset_keeps_full_resolution_heads(tmp_path):
    cfg = build_config(_args(["train", "--data", "d", "--out", str(tmp_path / "r"), "--preset", "paper"]))
    assert cfg.model.head_stride == 1
    cfg = build_config(
        _args(["train", "--data", "d", "--out", "r", "--preset", "paper", "--head-stride", "2"])
    )
    assert cfg.model.head_stride == 2


def test_query_locality_flag(tmp_path):
    assert build_config(_args(["train", "--data", "d", "--out", "r"])).model.query_locality is True
    cfg = build_config(_args(["train", "--data", "d", "--out", "r", "--no-query-locality"]))
    assert cfg.model.query_locality is False


def test_paper_preset_has_no_query_locality():
    cfg = build_config(_args(["train", "--data", "d", "--out", "r", "--preset", "paper"]))
    assert cfg.model.query_locality is False


def test_resuming_a_finished_run_says_so(tmp_path, capsys, monkeypatch):
    import math

    import cohesiv.train
    from cohesiv.train.loop import TrainResult

    run = tmp_path / "r"
    run.mkdir()
    saved = make_config(data=["ds"], out=run, size=64, batch=4, steps=10, model=ModelConfig(embed_dim=8))
    (run / "config.yaml").write_text(yaml.safe_dump(config_document(saved)))
    monkeypatch.setattr(cohesiv.train, "train", lambda cfg, **kw: TrainResult(run, 10, math.nan))
    assert main(["train", "--out", str(run), "--resume", "--threads", "1"]) == 0
    assert capsys.readouterr().err.strip().endswith("step 10, already finished")
