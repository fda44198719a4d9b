"""Bad input to every subcommand: exit status 2, one line naming the file, never a traceback.

The cases are in ``tests/bad_input_cases.py`` (``bench/bad_inputs.py`` imports them and prints the full table); here they run
in-process through ``cohesiv.cli.main`` on a shared tiny clip / dataset / one-step run, plus two
through a real subprocess. Malicious pickles must be refused without running their code.
"""

import os
import subprocess
import sys
from pathlib import Path

import bad_input_cases as bad
import numpy as np
import pytest

from cohesiv.errors import InputError

REPO = Path(__file__).resolve().parents[1]


#: Cases left out of the default run (slower; run with -m slow).
SLOW = {
    ("flow", "frames change size (video)"),
    ("flow", "truncated .flo file"),
    ("hands", "frames change size"),
    ("eval", "--out is a folder"),
    ("predict", "hands file of another image size"),
    ("predict", "run of an incompatible version"),
    ("calibrate", "run of an incompatible version"),
    ("predict", "truncated weights"),
    ("predict", "--size 0"),
    ("flow", "negative consistency tolerance"),
    ("hands", "model file missing"),
    ("eval", "--threshold nan"),
    ("flow", "RAFT weights: truncated file"),
    ("train", "encoder weights: truncated"),
    ("train", "--resume: truncated checkpoints"),
    ("calibrate", "label PNG with foreign values"),
    ("calibrate", "truncated weights"),
    ("predict", "corrupt image"),
    ("predict", "garbled calibration.json"),
    ("predict", "query point outside the image"),
    ("eval", "RGB label PNG"),
    ("eval", "label of another size"),
    ("eval", "clip without labels"),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return bad.make_base(tmp_path_factory.mktemp("base"))


def _params():
    out = []
    for c in bad.CASES:
        marks = [pytest.mark.slow] if (c.command, c.name) in SLOW else []
        out.append(pytest.param(c, id=f"{c.command}: {c.name}", marks=marks))
    return out


@pytest.mark.parametrize("case", _params())
def test_bad_input_gives_one_line_and_exit_2(case, base, tmp_path):
    outcome = bad.run_case(case, base, tmp_path, inprocess=True)
    assert not outcome.problems, f"{outcome.problems}: {outcome.error_line}"
    assert outcome.error_line.startswith(f"cohesiv {case.command}: error: ")


def _case(command, name):
    return next(c for c in bad.CASES if c.command == command and c.name == name)


@pytest.mark.parametrize(
    "command,name",
    [
        pytest.param("predict", "weights file is a malicious pickle", marks=pytest.mark.slow),
        pytest.param("flow", "corrupt video (random bytes)", marks=pytest.mark.slow),
        pytest.param("train", "encoder weights: malicious pickle", marks=pytest.mark.slow),
    ],
)
def test_bad_input_in_a_real_subprocess(command, name, base, tmp_path):
    outcome = bad.run_case(_case(command, name), base, tmp_path, inprocess=False)
    assert not outcome.problems, f"{outcome.problems}: {outcome.error_line}"


def test_checker_flags_a_traceback_and_a_wrong_status(tmp_path):
    c = bad.Case("x", "flow", lambda b, t: ([], "f.mp4"))
    tb = "Traceback (most recent call last):\n  File ...\nValueError: boom\n"
    assert {"exit 1", "traceback"} <= set(bad.check(c, 1, tb, "f.mp4", tmp_path).problems)
    ok = bad.check(c, 2, "cohesiv flow: error: /a/f.mp4: cannot open video\n", "f.mp4", tmp_path)
    assert ok.problems == []
    c.marker = True
    (tmp_path / "marker").write_text("")
    assert "PICKLE CODE RAN" in bad.check(c, 2, "cohesiv flow: error: f.mp4: x\n", "f.mp4", tmp_path).problems


# ------------------------------------------------------------------- library level: no code on load


def test_malicious_pickle_is_refused_by_every_torch_loader(tmp_path):
    from cohesiv.flow.raft import read_raft_checkpoint
    from cohesiv.model.weights import read_state_dict

    evil = tmp_path / "evil.pth"
    marker = tmp_path / "marker"
    bad.write_evil_pickle(evil, marker)
    # the file really is malicious: a full unpickle runs the payload
    import torch

    torch.load(str(evil), weights_only=False)
    assert marker.exists()
    marker.unlink()
    for loader in (read_state_dict, read_raft_checkpoint):
        with pytest.raises(InputError, match=r"evil.pth.*refused: the file holds pickled Python objects"):
            loader(evil)
        assert not marker.exists()


def test_safetensors_readers_refuse_a_pickle_named_safetensors(tmp_path):
    from cohesiv.model.weights import read_state_dict
    from cohesiv.train.checkpoint import load_checkpoint

    marker = tmp_path / "marker"
    bad.write_evil_pickle(tmp_path / "w.safetensors", marker)
    with pytest.raises(InputError, match="w.safetensors"):
        read_state_dict(tmp_path / "w.safetensors")
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for kind in ("safetensors", "optim.safetensors"):
        bad.write_evil_pickle(ck / f"last.{kind}", marker)
    (ck / "last.json").write_text('{"step": 3}')
    with pytest.raises(Exception, match="checkpoints"):
        load_checkpoint(ck)
    assert not marker.exists()


# ------------------------------------------------------------------------------ fixed io/CLI bugs


def test_frame_reader_random_access_checks_the_frame_size(tmp_path):
    from cohesiv.io import FrameReader

    folder = bad.write_size_changing_folder(tmp_path / "frames")
    reader = FrameReader(folder)
    assert reader.frame(0).shape == (64, 64, 3)
    with pytest.raises(InputError, match="000001.png.*48x64.*64x64"):
        reader.frame(1)


def test_size_changing_video_is_refused_at_the_changing_frame(tmp_path):
    from cohesiv.io import FrameReader

    frames = []
    with pytest.raises(InputError, match="frame 3 is 32x48"):
        for f in FrameReader(bad.write_size_changing_video(tmp_path / "two.mp4")):
            frames.append(f)
    assert len(frames) == 3


def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    from cohesiv.io import read_image

    bad.write_bomb_png(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(tmp_path / "bomb.png") as im:  # the header claims 30000x30000
        assert im.size == (30000, 30000)
    loads = []
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(1))
    with pytest.raises(InputError, match="bomb.png.*too large"):
        read_image(tmp_path / "bomb.png")
    assert loads == []  # refused from the header, nothing decoded


def test_foreign_label_values_are_named(tmp_path):
    from cohesiv.io import read_label

    bad.write_foreign_label(tmp_path / "l.png")
    with pytest.raises(InputError, match=r"l.png: label values \[17, 200\]"):
        read_label(tmp_path / "l.png")


def test_nan_flo_is_refused_and_unknown_flow_is_not(tmp_path):
    from cohesiv.io import read_flo

    bad.write_flo_nan(tmp_path / "n.flo", 8, 6)
    with pytest.raises(InputError, match="n.flo: flow has NaN or infinite values at 2 pixels"):
        read_flo(tmp_path / "n.flo")
    assert np.isnan(read_flo(tmp_path / "n.flo", allow_nonfinite=True)).sum() == 2


def test_cli_module_entry_point_exits_2_on_argparse_errors():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run(
        [sys.executable, "-m", "cohesiv", "synth", "o", "--size", "64by64"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "64by64" in p.stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------------- run-folder versions


def test_run_folder_records_its_format_and_other_formats_are_refused(base, tmp_path):
    import shutil

    import yaml

    from cohesiv.model.io import RUN_FORMAT, load_run_model, read_run_config
    from cohesiv.train import read_run_config as old_read_train_config
    from cohesiv.train import read_train_config

    assert old_read_train_config is read_train_config  # the old name, kept for one release

    doc = yaml.safe_load((base.run / "config.yaml").read_text())
    assert doc["run_format"] == RUN_FORMAT and doc["cohesiv_version"]
    run = shutil.copytree(base.run, tmp_path / "run")
    # a run written before run_format existed (no key) still loads
    del doc["run_format"]
    (run / "config.yaml").write_text(yaml.safe_dump(doc))
    load_run_model(run)
    assert read_train_config(run).size == 64
    for key, value, match in [
        ("run_format", RUN_FORMAT + 1, f"run format {RUN_FORMAT + 1}"),
        ("cohesiv_version", "7.2.0", "cohesiv 7.2.0, incompatible"),
    ]:
        bad_doc = dict(doc, **{key: value})
        (run / "config.yaml").write_text(yaml.safe_dump(bad_doc))
        for reader in (read_run_config, load_run_model, read_train_config):
            with pytest.raises(InputError, match=f"config.yaml: .*{match}"):
                reader(run)


def test_no_loader_in_the_package_can_unpickle():
    # every torch.load passes weights_only=True; no pickle / yaml.load / np.load(allow_pickle=True)
    import ast

    bad_calls = []
    for path in sorted((REPO / "cohesiv").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
            where = f"{path.relative_to(REPO)}:{node.lineno} {name}"
            if name == "torch.load" and kw.get("weights_only") != "True":
                bad_calls.append(where)
            elif name in ("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load", "joblib.load"):
                bad_calls.append(where)
            elif name == "np.load" and kw.get("allow_pickle", "False") != "False":
                bad_calls.append(where)
    assert bad_calls == []
