"""The bad-input cases of every ``cohesiv`` subcommand (owned by the tests; ``bench/bad_inputs.py`` imports them).

Each :class:`Case` builds one bad input in a temporary folder (from a tiny synthetic clip,
pseudo-label dataset and one-step training run, :func:`make_base`), and :func:`run_case` runs the
real command line on it and checks the outcome: exit status 2, no traceback, the error on one line
naming the expected file; a malicious pickle must not have created its marker file.

``tests/test_robustness.py`` runs them (a fast subset by default); ``bench/bad_inputs.py`` prints the
whole table.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------- fixtures


@dataclass
class Base:
    """Good inputs every case starts from."""

    root: Path
    clips: Path  # cohesiv synth output: clips/clip_0000, clips/clip_0001 (64x64, 6 frames)
    dataset: Path  # cohesiv pseudolabel output of both clips
    run: Path  # cohesiv train --steps 1 --size 64 run folder

    @property
    def clip(self) -> Path:
        return self.clips / "clip_0000"

    @property
    def image(self) -> Path:
        return self.clip / "frames" / "000000.png"


def run_cli(argv: list[str], *, inprocess: bool) -> tuple[int | None, str, str]:
    """Run ``cohesiv argv``; return (exit status or None on an uncaught exception, stdout, stderr)."""
    if not inprocess:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        p = subprocess.run(
            [sys.executable, "-m", "cohesiv", *argv], capture_output=True, text=True, env=env, timeout=600
        )
        return p.returncode, p.stdout, p.stderr
    from cohesiv.cli import main

    out, err = io.StringIO(), io.StringIO()
    status: int | None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as e:  # argparse
            status = e.code if isinstance(e.code, int) else 2
        except Exception:  # noqa: BLE001 - what the user would see as a traceback
            traceback.print_exc()
            status = None
    return status, out.getvalue(), err.getvalue()


def make_base(root: Path, *, inprocess: bool = True) -> Base:
    """Write the good clip, dataset and run into ``root`` (about 10-20 s)."""
    root.mkdir(parents=True, exist_ok=True)
    base = Base(root=root, clips=root / "clips", dataset=root / "pl", run=root / "run")
    steps = [
        ["synth", str(base.clips), "--clips", "2", "--frames", "6", "--size", "64x64", "--seed", "1"],
        [
            "pseudolabel",
            str(base.clips / "clip_0000"),
            str(base.clips / "clip_0001"),
            "--out",
            str(base.dataset),
        ],
        ["train", "--data", str(base.dataset), "--out", str(base.run), "--steps", "1", "--size", "64"]
        + ["--batch", "2", "--no-progress", "--image-every", "0"],
    ]
    for argv in steps:
        status, _, err = run_cli(
            argv + (["--quiet"] if argv[0] == "pseudolabel" else []), inprocess=inprocess
        )
        if status != 0:
            raise RuntimeError(f"fixture step {argv[0]} failed ({status}):\n{err}")
    return base


# ------------------------------------------------------------------------------- bad-input makers


def copy_clip(base: Base, dst: Path) -> Path:
    """A private copy of the good clip folder."""
    shutil.copytree(base.clip, dst)
    return dst


def copy_run(base: Base, dst: Path) -> Path:
    """A private copy of the good run folder."""
    shutil.copytree(base.run, dst)
    return dst


def edit_hands(path: Path, fn: Callable[[dict], None]) -> None:
    """Load hands.json, apply ``fn`` in place, write it back."""
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def write_bomb_png(path: Path, width: int = 30000, height: int = 30000) -> None:
    """A real 8x8 PNG whose IHDR claims ``width x height`` (CRC fixed): a decompression bomb header."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    # signature (8) | length (4) | "IHDR" (4) | width (4) | height (4) | ...13 bytes... | crc (4)
    assert data[12:16] == b"IHDR"
    data[16:20] = struct.pack(">I", width)
    data[20:24] = struct.pack(">I", height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))


class _Evil:
    """Unpickling this runs ``touch <marker>`` (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_evil_pickle(path: Path, marker: Path) -> None:
    """A ``torch.save`` file whose full unpickling would create ``marker``."""
    import torch

    torch.save({"conv1.weight": torch.zeros(1), "payload": _Evil(marker)}, str(path))


def write_flo_nan(path: Path, w: int = 64, h: int = 64) -> None:
    """A ``.flo`` file with NaN values."""
    flow = np.zeros((h, w, 2), np.float32)
    flow[3, 4] = np.nan
    flow[5, 6, 1] = np.inf
    path.write_bytes(struct.pack("<f", 202021.25) + struct.pack("<ii", w, h) + flow.tobytes())


def truncate(path: Path, fraction: float = 0.5) -> None:
    """Cut a file to ``fraction`` of its size."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def write_size_changing_folder(folder: Path) -> Path:
    """A frame folder whose second frame is smaller than the first."""
    from PIL import Image

    folder.mkdir(parents=True)
    Image.new("RGB", (64, 64), (100, 0, 0)).save(folder / "000000.png")
    Image.new("RGB", (48, 64), (0, 100, 0)).save(folder / "000001.png")
    Image.new("RGB", (64, 64), (0, 0, 100)).save(folder / "000002.png")
    return folder


def write_size_changing_video(path: Path) -> Path:
    """An ``.mp4``-named MPEG-TS video whose frames change size after frame 3 (two streams concatenated)."""
    import av

    def part(w: int, h: int, k: int) -> bytes:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mpegts") as c:
            s = c.add_stream("mpeg4", rate=10)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for i in range(3):
                img = np.full((h, w, 3), 40 * i + k, np.uint8)
                for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        return buf.getvalue()

    path.write_bytes(part(64, 64, 0) + part(32, 48, 1))
    return path


def write_video(path: Path, frames: int = 6, size: tuple[int, int] = (64, 64)) -> Path:
    """A small valid mp4."""
    import av

    w, h = size
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, (4 * i) % w :] = 200
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def set_run_version(run: Path, version: str | None) -> None:
    """Rewrite ``cohesiv_version`` in RUN/config.yaml (a run folder from another version)."""
    import yaml

    path = run / "config.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["cohesiv_version"] = version
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def write_foreign_label(path: Path) -> None:
    """An L-mode label PNG with values outside 0..8."""
    from PIL import Image

    lab = np.zeros((64, 64), np.uint8)
    lab[10:20, 10:20] = 200
    lab[30:32, 30:32] = 17
    Image.fromarray(lab).save(path)


# ------------------------------------------------------------------------------------- the cases


@dataclass
class Case:
    """One bad input: ``build(base, tmp) -> (argv, name the error must contain)``."""

    name: str
    command: str
    build: Callable[[Base, Path], tuple[list[str], str]]
    fast: bool = True  # part of the default test subset
    marker: bool = False  # a malicious pickle: tmp/marker must not exist afterwards


CASES: list[Case] = []


def case(name: str, command: str, *, fast: bool = True, marker: bool = False):
    """Register the decorated builder as a :class:`Case`."""

    def deco(fn):
        CASES.append(Case(name, command, fn, fast, marker))
        return fn

    return deco


# synth ---------------------------------------------------------------------------------------------
@case("output folder is a file", "synth")
def _(b, t):
    f = t / "taken"
    f.write_text("x")
    return ["synth", str(f), "--clips", "1", "--frames", "3", "--size", "64x64"], "taken"


@case("malformed --size", "synth")
def _(b, t):
    return ["synth", str(t / "o"), "--size", "64by64"], "64by64"


# flow ----------------------------------------------------------------------------------------------
@case("missing video", "flow")
def _(b, t):
    return ["flow", str(t / "nope.mp4"), "--out", str(t / "f")], "nope.mp4"


@case("empty video (0 bytes)", "flow")
def _(b, t):
    (t / "empty.mp4").write_bytes(b"")
    return ["flow", str(t / "empty.mp4"), "--out", str(t / "f")], "empty.mp4"


@case("corrupt video (random bytes)", "flow")
def _(b, t):
    (t / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    return ["flow", str(t / "junk.mp4"), "--out", str(t / "f")], "junk.mp4"


@case("truncated video", "flow")
def _(b, t):
    v = write_video(t / "cut.mp4", frames=10)
    truncate(v, 0.4)
    return ["flow", str(v), "--out", str(t / "f")], "cut.mp4"


@case("frames change size (folder)", "flow")
def _(b, t):
    folder = write_size_changing_folder(t / "frames")
    return ["flow", str(folder), "--out", str(t / "f")], "000001.png"


@case("frames change size (video)", "flow")
def _(b, t):
    v = write_size_changing_video(t / "two.mp4")
    return ["flow", str(v), "--out", str(t / "f")], "two.mp4"


@case("unsupported clip type", "flow")
def _(b, t):
    (t / "notes.txt").write_text("hello")
    return ["flow", str(t / "notes.txt"), "--out", str(t / "f")], "notes.txt"


@case("NaN/inf in an existing .flo file", "flow")
def _(b, t):
    out = t / "f"
    status, _, err = run_cli(["flow", str(b.clip), "--out", str(out), "--no-color"], inprocess=True)
    if status != 0:
        raise RuntimeError(err)
    write_flo_nan(out / "flow" / "fw1" / "000002.flo")
    return ["flow", str(b.clip), "--out", str(out), "--no-color", "--backward"], "000002.flo"


@case("truncated .flo file", "flow")
def _(b, t):
    out = t / "f"
    status, _, err = run_cli(["flow", str(b.clip), "--out", str(out), "--no-color"], inprocess=True)
    if status != 0:
        raise RuntimeError(err)
    truncate(out / "flow" / "fw1" / "000001.flo", 0.5)
    return ["flow", str(b.clip), "--out", str(out), "--no-color", "--backward"], "000001.flo"


@case("RAFT weights: malicious pickle", "flow", marker=True)
def _(b, t):
    write_evil_pickle(t / "raft.pth", t / "marker")
    return [
        "flow",
        str(b.clip),
        "--out",
        str(t / "f"),
        "--method",
        "raft",
        "--raft-weights",
        str(t / "raft.pth"),
    ], ("raft.pth")


@case("RAFT weights: truncated file", "flow")
def _(b, t):
    import torch

    torch.save({"fnet.conv1.weight": torch.zeros(64, 3, 7, 7)}, str(t / "raft.pth"))
    truncate(t / "raft.pth", 0.5)
    return [
        "flow",
        str(b.clip),
        "--out",
        str(t / "f"),
        "--method",
        "raft",
        "--raft-weights",
        str(t / "raft.pth"),
    ], ("raft.pth")


@case("negative consistency tolerance", "flow")
def _(b, t):
    return ["flow", str(b.clip), "--out", str(t / "f"), "--backward", "--alpha", "-1"], "--alpha"


# hands ---------------------------------------------------------------------------------------------
@case("corrupt video", "hands")
def _(b, t):
    (t / "junk.mp4").write_bytes(np.random.default_rng(3).bytes(3000))
    return ["hands", str(t / "junk.mp4"), "--out", str(t / "h.json")], "junk.mp4"


@case("frames change size", "hands")
def _(b, t):
    folder = write_size_changing_folder(t / "frames")
    return ["hands", str(folder), "--out", str(t / "h.json")], "000001.png"


@case("model file is not a hand model", "hands")
def _(b, t):
    (t / "junk.task").write_bytes(b"not a zip")
    return ["hands", str(b.clip), "--out", str(t / "h.json"), "--model", str(t / "junk.task")], "junk.task"


@case("model file missing", "hands")
def _(b, t):
    return ["hands", str(b.clip), "--out", str(t / "h.json"), "--model", str(t / "nope.task")], "nope.task"


# pseudolabel ---------------------------------------------------------------------------------------
@case("hands file: more frames than the clip", "pseudolabel")
def _(b, t):
    c = copy_clip(b, t / "clip")
    edit_hands(c / "hands.json", lambda d: d["frames"].__setitem__("99", d["frames"]["0"]))
    return ["pseudolabel", str(c), "--out", str(t / "pl"), "--quiet"], "hands.json"


@case("hands file: other image size", "pseudolabel")
def _(b, t):
    c = copy_clip(b, t / "clip")
    edit_hands(c / "hands.json", lambda d: d.__setitem__("image_size", [128, 96]))
    return ["pseudolabel", str(c), "--out", str(t / "pl"), "--quiet"], "hands.json"


@case("hands file: invalid JSON", "pseudolabel")
def _(b, t):
    c = copy_clip(b, t / "clip")
    (c / "hands.json").write_text('{"version": 1, "image_size": [64, 64], "frames": {')
    return ["pseudolabel", str(c), "--out", str(t / "pl"), "--quiet"], "hands.json"


@case("hands file: NaN point", "pseudolabel")
def _(b, t):
    c = copy_clip(b, t / "clip")
    edit_hands(c / "hands.json", lambda d: d["frames"]["0"][0]["points"][0].__setitem__(0, float("nan")))
    return ["pseudolabel", str(c), "--out", str(t / "pl"), "--quiet"], "hands.json"


@case("--hands file for another video", "pseudolabel")
def _(b, t):
    v = write_video(t / "v.mp4", frames=4, size=(48, 32))
    return [
        "pseudolabel",
        str(v),
        "--hands",
        str(b.clip / "hands.json"),
        "--out",
        str(t / "pl"),
        "--quiet",
    ], ("hands.json")


@case("NaN motion matrix in scene.json (--flow gt)", "pseudolabel")
def _(b, t):
    c = copy_clip(b, t / "clip")
    doc = json.loads((c / "scene.json").read_text())
    doc["motions"]["camera"]["matrices"][1][0][0] = float("nan")
    (c / "scene.json").write_text(json.dumps(doc))
    return ["pseudolabel", str(c), "--flow", "gt", "--out", str(t / "pl"), "--quiet"], "scene.json"


@case("corrupt video", "pseudolabel")
def _(b, t):
    (t / "junk.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
    shutil.copy(b.clip / "hands.json", t / "junk.hands.json")
    return ["pseudolabel", str(t / "junk.mp4"), "--out", str(t / "pl"), "--quiet"], "junk.mp4"


@case("frames change size", "pseudolabel")
def _(b, t):
    c = copy_clip(b, t / "clip")
    from PIL import Image

    Image.new("RGB", (48, 64)).save(c / "frames" / "000003.png")
    return ["pseudolabel", str(c), "--out", str(t / "pl"), "--quiet"], "000003.png"


@case("person mask: foreign values / wrong size", "pseudolabel")
def _(b, t):
    from PIL import Image

    m = t / "masks"
    m.mkdir()
    for i in range(6):
        Image.new("L", (32, 32), 1).save(m / f"{i:06d}.png")
    return [
        "pseudolabel",
        str(b.clip),
        "--out",
        str(t / "pl"),
        "--person-masks",
        str(m),
        "--quiet",
    ], "000000.png"


# train ---------------------------------------------------------------------------------------------
@case("truncated .npz sample", "train")
def _(b, t):
    ds = t / "pl"
    shutil.copytree(b.dataset, ds)
    for victim in sorted((ds / "samples").glob("*.npz")):  # all of them: any drawn sample is bad
        truncate(victim, 0.5)
    argv = [
        "train",
        "--data",
        str(ds),
        "--out",
        str(t / "run"),
        "--steps",
        "2",
        "--size",
        "64",
        "--batch",
        "2",
    ]
    return argv + ["--no-progress", "--image-every", "0"], ".npz"


@case("garbled manifest line", "train")
def _(b, t):
    ds = t / "pl"
    shutil.copytree(b.dataset, ds)
    with open(ds / "manifest.jsonl", "a") as f:
        f.write('{"id": "x", "clip": \n')
    argv = [
        "train",
        "--data",
        str(ds),
        "--out",
        str(t / "run"),
        "--steps",
        "2",
        "--size",
        "64",
        "--batch",
        "2",
    ]
    return argv + ["--no-progress", "--image-every", "0"], "manifest.jsonl"


@case("dataset folder is not a dataset", "train")
def _(b, t):
    (t / "empty").mkdir()
    argv = ["train", "--data", str(t / "empty"), "--out", str(t / "run"), "--steps", "2", "--size", "64"]
    return argv + ["--no-progress"], "empty"


@case("encoder weights: malicious pickle", "train", marker=True)
def _(b, t):
    write_evil_pickle(t / "enc.pth", t / "marker")
    argv = ["train", "--data", str(b.dataset), "--out", str(t / "run"), "--steps", "1", "--size", "64"]
    return argv + ["--batch", "2", "--no-progress", "--encoder-weights", str(t / "enc.pth")], "enc.pth"


@case("encoder weights: truncated", "train")
def _(b, t):
    import torch

    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(t / "enc.pth"))
    truncate(t / "enc.pth", 0.5)
    argv = ["train", "--data", str(b.dataset), "--out", str(t / "run"), "--steps", "1", "--size", "64"]
    return argv + ["--batch", "2", "--no-progress", "--encoder-weights", str(t / "enc.pth")], "enc.pth"


@case("--resume: truncated checkpoints", "train")
def _(b, t):
    r = copy_run(b, t / "run")
    for p in (r / "checkpoints").glob("*.safetensors"):
        truncate(p, 0.3)
    return ["train", "--out", str(r), "--resume", "--steps", "2", "--no-progress"], "checkpoints"


@case("--resume: run of an incompatible version", "train")
def _(b, t):
    r = copy_run(b, t / "run")
    set_run_version(r, "9.0.0")
    return ["train", "--out", str(r), "--resume", "--steps", "2", "--no-progress"], "config.yaml"


@case("--resume: checkpoint is a malicious pickle", "train", marker=True)
def _(b, t):
    r = copy_run(b, t / "run")
    for p in (r / "checkpoints").glob("*.safetensors"):
        write_evil_pickle(p, t / "marker")
    return ["train", "--out", str(r), "--resume", "--steps", "2", "--no-progress"], "checkpoints"


# calibrate -----------------------------------------------------------------------------------------
@case("label PNG with foreign values", "calibrate")
def _(b, t):
    c = copy_clip(b, t / "val")
    write_foreign_label(c / "labels" / "000002.png")
    return ["calibrate", "--run", str(b.run), "--val", str(c), "--no-progress"], "000002.png"


@case("run of an incompatible version", "calibrate")
def _(b, t):
    r = copy_run(b, t / "run")
    set_run_version(r, "9.0.0")
    return ["calibrate", "--run", str(r), "--val", str(b.clip), "--no-progress"], "config.yaml"


@case("truncated weights", "calibrate")
def _(b, t):
    r = copy_run(b, t / "run")
    truncate(r / "checkpoints" / "last.safetensors", 0.5)
    return ["calibrate", "--run", str(r), "--val", str(b.clip), "--no-progress"], "last.safetensors"


# predict -------------------------------------------------------------------------------------------
@case("decompression bomb PNG (30000x30000 header)", "predict")
def _(b, t):
    write_bomb_png(t / "bomb.png")
    return ["predict", str(t / "bomb.png"), "--run", str(b.run), "--hand", "10,10", "--out", str(t / "o")], (
        "bomb.png"
    )


@case("corrupt image", "predict")
def _(b, t):
    (t / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return ["predict", str(t / "bad.png"), "--run", str(b.run), "--hand", "10,10", "--out", str(t / "o")], (
        "bad.png"
    )


@case("truncated weights", "predict")
def _(b, t):
    r = copy_run(b, t / "run")
    truncate(r / "checkpoints" / "last.safetensors", 0.5)
    return [
        "predict",
        str(b.image),
        "--run",
        str(r),
        "--hand",
        "10,10",
        "--out",
        str(t / "o"),
    ], "last.safetensors"


@case("weights file is a malicious pickle", "predict", marker=True)
def _(b, t):
    r = copy_run(b, t / "run")
    write_evil_pickle(r / "checkpoints" / "last.safetensors", t / "marker")
    return [
        "predict",
        str(b.image),
        "--run",
        str(r),
        "--hand",
        "10,10",
        "--out",
        str(t / "o"),
    ], "last.safetensors"


@case("run of an incompatible version", "predict")
def _(b, t):
    r = copy_run(b, t / "run")
    set_run_version(r, "9.0.0")
    return ["predict", str(b.image), "--run", str(r), "--hand", "10,10", "--out", str(t / "o")], "config.yaml"


@case("hands file of another image size", "predict")
def _(b, t):
    h = t / "hands.json"
    shutil.copy(b.clip / "hands.json", h)
    edit_hands(h, lambda d: d.__setitem__("image_size", [128, 96]))
    return [
        "predict",
        str(b.image),
        "--run",
        str(b.run),
        "--hands",
        str(h),
        "--out",
        str(t / "o"),
    ], "hands.json"


@case("query point outside the image", "predict")
def _(b, t):
    return ["predict", str(b.image), "--run", str(b.run), "--hand", "500,10", "--out", str(t / "o")], "000000"


@case("garbled calibration.json", "predict")
def _(b, t):
    r = copy_run(b, t / "run")
    (r / "calibration.json").write_text('{"prototypes": {"person": [1, 2], "object": [1]}')
    return [
        "predict",
        str(b.image),
        "--run",
        str(r),
        "--hand",
        "10,10",
        "--out",
        str(t / "o"),
    ], "calibration.json"


@case("--size 0", "predict")
def _(b, t):
    return [
        "predict",
        str(b.image),
        "--run",
        str(b.run),
        "--hand",
        "10,10",
        "--out",
        str(t / "o"),
        "--size",
        "0",
    ], ("--size")


# eval ----------------------------------------------------------------------------------------------
@case("label PNG with foreign values", "eval")
def _(b, t):
    c = copy_clip(b, t / "clip")
    write_foreign_label(c / "labels" / "000001.png")
    return [
        "eval",
        "--run",
        str(b.run),
        "--data",
        str(c),
        "--out",
        str(t / "m.json"),
        "--quiet",
    ], "000001.png"


@case("RGB label PNG", "eval")
def _(b, t):
    from PIL import Image

    c = copy_clip(b, t / "clip")
    Image.new("RGB", (64, 64)).save(c / "labels" / "000001.png")
    return [
        "eval",
        "--run",
        str(b.run),
        "--data",
        str(c),
        "--out",
        str(t / "m.json"),
        "--quiet",
    ], "000001.png"


@case("label of another size", "eval")
def _(b, t):
    from PIL import Image

    c = copy_clip(b, t / "clip")
    Image.new("L", (32, 32)).save(c / "labels" / "000001.png")
    return [
        "eval",
        "--run",
        str(b.run),
        "--data",
        str(c),
        "--out",
        str(t / "m.json"),
        "--quiet",
    ], "000001.png"


@case("baseline: hands file of another size", "eval")
def _(b, t):
    c = copy_clip(b, t / "clip")
    edit_hands(c / "hands.json", lambda d: d.__setitem__("image_size", [128, 96]))
    return [
        "eval",
        "--baseline",
        "flow",
        "--threshold",
        "1",
        "--data",
        str(c),
        "--out",
        str(t / "m.json"),
    ] + ["--quiet"], "hands.json"


@case("run of an incompatible version", "eval")
def _(b, t):
    r = copy_run(b, t / "run")
    set_run_version(r, "9.0.0")
    return [
        "eval",
        "--run",
        str(r),
        "--data",
        str(b.clip),
        "--out",
        str(t / "m.json"),
        "--quiet",
    ], "config.yaml"


@case("clip without labels", "eval")
def _(b, t):
    c = copy_clip(b, t / "clip")
    shutil.rmtree(c / "labels")
    return ["eval", "--run", str(b.run), "--data", str(c), "--out", str(t / "m.json"), "--quiet"], "clip"


@case("--out is a folder", "eval")
def _(b, t):
    return ["eval", "--run", str(b.run), "--data", str(b.clip), "--out", str(t), "--quiet"], str(t)


@case("--out inside a file (file-system error)", "eval")
def _(b, t):
    (t / "plain.txt").write_text("x")
    argv = ["eval", "--baseline", "flow", "--threshold", "1", "--data", str(b.clip), "--quiet"]
    return argv + ["--out", str(t / "plain.txt" / "m.json")], "plain.txt"


@case("--threshold nan", "eval")
def _(b, t):
    argv = ["eval", "--baseline", "flow", "--threshold", "nan", "--data", str(b.clip), "--quiet"]
    return argv + ["--out", str(t / "m.json")], "--threshold"


# demo ----------------------------------------------------------------------------------------------
@case("missing --video", "demo")
def _(b, t):
    return ["demo", "--video", str(t / "nope.mp4"), "--quick", "--out", str(t / "d")], "nope.mp4"


@case("corrupt --video", "demo")
def _(b, t):
    (t / "junk.mp4").write_bytes(np.random.default_rng(2).bytes(4000))
    return ["demo", "--video", str(t / "junk.mp4"), "--quick", "--out", str(t / "d")], "junk.mp4"


@case("--out is a file", "demo")
def _(b, t):
    (t / "d").write_text("x")
    return ["demo", "--no-video", "--quick", "--out", str(t / "d")], "d"


# ------------------------------------------------------------------------------------------- checks


@dataclass
class Outcome:
    """What one case printed and whether it is acceptable."""

    case: Case
    status: int | None
    error_line: str
    problems: list[str]
    seconds: float


_PROGRESS = re.compile(r"\d+%\|")  # a tqdm progress bar


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not argparse usage, tqdm progress bars or [demo] chatter."""
    out = []
    for line in stderr.splitlines():
        s = line.strip()
        if not s or s.startswith(("usage:", "[demo]")) or line.startswith(" ") or _PROGRESS.search(s):
            continue
        out.append(s)
    return out


def check(c: Case, status: int | None, stderr: str, expect: str, tmp: Path, seconds: float = 0.0) -> Outcome:
    """Judge one run: exit 2, no traceback, one error line naming ``expect``, no marker."""
    problems = []
    lines = error_lines(stderr)
    if status != 2:
        problems.append(f"exit {status}")
    if "Traceback" in stderr:
        problems.append("traceback")
    if len(lines) != 1:
        problems.append(f"{len(lines)} error lines")
    first = lines[0] if lines else ""
    if expect not in first:
        problems.append(f"does not name {expect!r}")
    if c.marker and (tmp / "marker").exists():
        problems.append("PICKLE CODE RAN")
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return Outcome(c, status, first if first else tail, problems, seconds)


def run_case(c: Case, base: Base, tmp: Path, *, inprocess: bool) -> Outcome:
    """Build and run one case in ``tmp``."""
    tmp.mkdir(parents=True, exist_ok=True)
    argv, expect = c.build(base, tmp)
    t0 = time.perf_counter()
    status, _, err = run_cli(argv, inprocess=inprocess)
    return check(c, status, err, expect, tmp, time.perf_counter() - t0)
