"""cohesiv.config: the stage configs and defaults, light to import, each default written once."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from cohesiv import config
from cohesiv.config import FlowConfig, FlowFolderOptions, PseudoLabelConfig, default_of, help_default


def test_import_loads_neither_torch_nor_opencv():
    code = (
        "import json, sys; import cohesiv.config; "
        "print(json.dumps([m for m in ('torch', 'cv2', 'numpy') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_old_paths_are_the_same_objects():
    from cohesiv import defaults
    from cohesiv.flow import defaults as flow_defaults
    from cohesiv.flow.estimator import FlowConfig as OldFlowConfig
    from cohesiv.flow.folder import FlowFolderOptions as OldOptions
    from cohesiv.responsibility import PseudoLabelConfig as Exported
    from cohesiv.responsibility.labeler import FLOW_SOURCES, SMOOTHINGS
    from cohesiv.responsibility.labeler import PseudoLabelConfig as OldPseudoLabelConfig
    from cohesiv.responsibility.masks import HULL_DILATION

    assert OldFlowConfig is FlowConfig and OldOptions is FlowFolderOptions
    assert OldPseudoLabelConfig is PseudoLabelConfig and Exported is PseudoLabelConfig
    assert defaults.RESPONSIBILITY_TEMPERATURE == config.RESPONSIBILITY_TEMPERATURE == 2.0
    assert defaults.DEFAULT_DIS_PRESET == flow_defaults.DEFAULT_DIS_PRESET == config.DEFAULT_DIS_PRESET
    assert FLOW_SOURCES == config.FLOW_SOURCES and SMOOTHINGS == config.SMOOTHINGS
    assert HULL_DILATION == config.HULL_DILATION
    from cohesiv.train import AugmentConfig, TrainConfig
    from cohesiv.train.config import PRESETS, SCHEDULES
    from cohesiv.train.data import AugmentConfig as DataAugmentConfig

    assert TrainConfig is config.TrainConfig and AugmentConfig is DataAugmentConfig is config.AugmentConfig
    assert PRESETS is config.PRESETS and SCHEDULES is config.SCHEDULES
    from cohesiv.demo import DemoConfig
    from cohesiv.synth.scene import CAMERA_MODES

    assert DemoConfig is config.DemoConfig and CAMERA_MODES is config.CAMERA_MODES


def test_default_of_reads_the_dataclass():
    assert default_of(PseudoLabelConfig, "temperature") == config.RESPONSIBILITY_TEMPERATURE
    assert default_of(FlowFolderOptions, "offsets") == (1,)
    with pytest.raises(KeyError, match="no field 'nope'"):
        default_of(FlowConfig, "nope")


def test_help_default_spells_tuples_and_escapes_percent():
    assert help_default("offsets", (1, 2)) == "offsets (default: 1,2)"
    assert help_default("share", "5%") == "share (default: 5%%)"


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"background": "moving"}, "background"),
        ({"flow": "farneback"}, "flow"),
        ({"raft_model": "huge"}, "raft_model"),
        ({"smoothing": "bilateral"}, "smoothing"),
        ({"flow_preset": "turbo"}, "DIS preset"),
    ],
)
def test_pseudolabel_config_names_a_bad_choice(kw, field):
    with pytest.raises(ValueError, match=field):
        PseudoLabelConfig(**kw)


def test_cli_flags_take_the_dataclass_defaults():
    """Flags left unset give the config's defaults: the CLI writes no default of its own."""
    from cohesiv.cli import build_parser
    from cohesiv.commands.pseudolabel import label_config

    args = build_parser().parse_args(["pseudolabel", "clip", "--out", "o"])
    assert label_config(args) == PseudoLabelConfig()
    args = build_parser().parse_args(
        ["pseudolabel", "clip", "--out", "o", "--temperature", "3", "--offsets", "2"]
    )
    assert label_config(args) == dataclasses.replace(PseudoLabelConfig(), temperature=3.0, offsets=(-2, 2))


def test_train_flags_left_unset_take_the_config_defaults():
    from cohesiv.cli import build_parser
    from cohesiv.commands.train import build_config

    args = build_parser().parse_args(["train", "--data", "d", "--out", "r"])
    cfg = build_config(args)
    assert (cfg.size, cfg.lr, cfg.schedule) == tuple(
        default_of(config.TrainConfig, k) for k in ("size", "lr", "schedule")
    )
    assert cfg.steps == config.DEFAULT_STEPS


def test_calibration_options_are_checked_in_one_place():
    from cohesiv.errors import CohesivError
    from cohesiv.eval.calibrate import OBJECTIVES, TOLERANCE, calibrate_run

    assert OBJECTIVES == config.CALIBRATION_OBJECTIVES and TOLERANCE == config.CALIBRATION_TOLERANCE
    for kw, message in (
        ({"samples": 0}, "--samples"),
        ({"objective": "Hand"}, "objective"),
        ({"tolerance": -1}, "--tolerance"),
    ):
        with pytest.raises(CohesivError, match=message):
            config.CalibrationOptions(**kw)
        with pytest.raises(CohesivError, match=message):  # before the run is even read
            calibrate_run("no-such-run", [], **kw)


def test_help_shows_the_defaults_from_the_config():
    out = subprocess.run(
        [sys.executable, "-m", "cohesiv", "pseudolabel", "--help"], capture_output=True, text=True, check=True
    ).stdout
    text = " ".join(out.split())
    assert f"softmax temperature, pixels (default: {config.RESPONSIBILITY_TEMPERATURE})" in text
    assert "(default: 1,2,3)" in text
    out = subprocess.run(
        [sys.executable, "-m", "cohesiv", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert f"square crop side, a multiple of 32 (default: {default_of(config.TrainConfig, 'size')})" in out


def test_the_flow_config_sits_inside_the_pseudolabel_config():
    cfg = PseudoLabelConfig(
        flow_config=FlowConfig(method="raft", preset=None, raft_model="large", raft_weights="w.pth")
    )
    assert (cfg.flow, cfg.flow_preset, cfg.raft_model, cfg.raft_weights) == ("raft", None, "large", "w.pth")
    # the old flat keywords build the same nested config, and replace() keeps working with them
    old = PseudoLabelConfig(flow="raft", raft_model="large", raft_weights="w.pth")
    assert old == cfg and dataclasses.replace(old, flow="gt").flow_config.method == "gt"
    assert dataclasses.replace(cfg, temperature=3.0).flow_config == cfg.flow_config
    # a FlowConfig made for DIS (raft_model None) reads as the pseudo-labels' default RAFT size
    assert PseudoLabelConfig(flow_config=FlowConfig(method="dis")).raft_model == config.DEFAULT_RAFT_MODEL
    with pytest.raises(ValueError, match="raft_iters"):
        PseudoLabelConfig(flow_config=FlowConfig(raft_iters=20))


def test_dataset_json_keeps_its_flat_keys_in_their_order():
    keys = list(PseudoLabelConfig().to_dict())
    assert keys == [
        "offsets", "temperature", "background", "homography", "inlier_threshold",
        "flow", "flow_preset", "raft_model", "raft_weights",
        "fb_check", "hull_dilation", "forearm", "object_threshold", "smoothing", "smoothing_radius", "separate_hands",
        "person_rule",  # added later: older dataset.json files read without it as "hull"
        "stop_at_wrist",  # added later: read as False
    ]  # fmt: skip
    d = PseudoLabelConfig(flow="gt", flow_preset="fast").to_dict()
    assert (d["flow"], d["flow_preset"], d["raft_model"], d["raft_weights"]) == ("gt", "fast", "small", None)
    assert json.loads(json.dumps(d)) == d
