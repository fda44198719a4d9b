"""Benchmark of the model stage: overhead of the COHESIV heads/losses/predictor over a bare smp U-Net.

Prints, all measured in the same run (interleaved repeats, median), on the CPU:

1. train step (forward + loss + backward + AdamW step), 256x256, batch 8, 2 hands per image:
   CohesivNet + total_loss (as the training loop runs them: scores at the head stride) vs a bare
   ``smp.Unet(<same encoder>, classes=<embed dim>)`` with an MSE loss (ratio);
2. predict latency, one 384x288 image with 2 hands: ``Predictor.predict`` (incl. pre/post-processing
   and read-out) vs a bare U-Net forward under no_grad (ratio);
3. the FLOPs of each (torch FlopCounterMode: does not depend on the machine's load);
4. peak memory of each (resident set high-water mark above the state before the measured work, each
   case in a fresh subprocess).

Usage: .venv/bin/python bench/model.py [--repeats 5] [--threads N] [--encoder NAME] [--head-stride S]
    [--embed-dim F] [--head-dim A] [--size 256] [--batch 8]

Both models of a pair use the same encoder, random initialisation, batch and size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CASES = ("train_cohesiv", "train_bare", "predict_cohesiv", "predict_bare")
#: The model measured (set from the command line; the memory subprocesses get the same flags).
SETUP = {"encoder": None, "head_stride": None, "embed_dim": 64, "head_dim": 64, "size": 256, "batch": 8}


def _cohesiv_net():
    from cohesiv.model import CohesivNet, ModelConfig

    default = ModelConfig()
    return CohesivNet(
        SETUP["encoder"] or default.encoder_name,
        embed_dim=SETUP["embed_dim"],
        head_dim=SETUP["head_dim"],
        head_stride=SETUP["head_stride"] or default.head_stride,
    )


def _bare_net():
    import segmentation_models_pytorch as smp

    from cohesiv.model import ModelConfig

    enc = SETUP["encoder"] or ModelConfig().encoder_name
    return smp.Unet(enc, encoder_weights=None, classes=SETUP["embed_dim"])


def _image_384x288() -> tuple[np.ndarray, str]:
    """A real 384x288 egocentric frame from the shared data, else random noise.

    Read with OpenCV, not cohesiv.io.FrameReader: abandoning FrameReader's threaded PyAV decode
    after the first frame deadlocks now and then (reported to the lead).
    """
    import cv2

    data = Path(os.environ.get("COHESIV_DATA", REPO.parent / "shared" / "data")) / "ego4d-lavila-clips"
    for clip in sorted(data.glob("*.mp4")):
        cap = cv2.VideoCapture(str(clip))
        ok, frame = cap.read()
        cap.release()
        if ok and frame.shape[:2] == (288, 384):
            return np.ascontiguousarray(frame[..., ::-1]), clip.name
    return np.random.default_rng(0).integers(0, 256, (288, 384, 3), dtype=np.uint8), "random"


def _train_batch(b: int | None = None, size: int | None = None, k: int = 2) -> dict[str, torch.Tensor]:
    b, size = b or SETUP["batch"], size or SETUP["size"]
    g = torch.Generator().manual_seed(0)
    resp = torch.softmax(3 * torch.randn(b, k + 1, size, size, generator=g), 1)
    person = (torch.rand(b, 1, size, size, generator=g) > 0.8).float()
    return {
        "images": torch.randn(b, 3, size, size, generator=g),
        "points": torch.rand(b, k, 2, generator=g) * (size - 1),
        "point_valid": torch.ones(b, k, dtype=torch.bool),
        "responsibility": resp[:, 1:],
        "person": person,
        "object": ((resp[:, 1:].amax(1, keepdim=True) > 0.5) & (person < 0.5)).float(),
        "valid": torch.ones(b, 1, size, size),
        "target": torch.randn(b, SETUP["embed_dim"], size, size, generator=g),
    }


def make_case(name: str):
    """Return a zero-argument callable doing one unit of the named work (models built here)."""
    from cohesiv.model import Predictor, total_loss

    torch.manual_seed(0)
    if name.startswith("train"):
        batch = _train_batch()
        if name == "train_cohesiv":
            net = _cohesiv_net().train()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
            kw = {"full_resolution": False} if net.head_stride > 1 else {}  # as cohesiv.train runs it

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                out = net(batch["images"], batch["points"], batch["point_valid"], **kw)
                loss, _ = total_loss(out, batch)
                loss.backward()
                opt.step()

        else:
            net = _bare_net().train()
            opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.mse_loss(net(batch["images"]), batch["target"])
                loss.backward()
                opt.step()

        return step
    image, _ = _image_384x288()
    if name == "predict_cohesiv":
        pred = Predictor(_cohesiv_net().eval(), size=384)
        queries, sides = [(120.0, 200.0), (270.0, 210.0)], ["left", "right"]
        return lambda: pred.predict(image, queries, sides)
    net = _bare_net().eval()
    x = torch.randn(1, 3, 288, 384)

    def fwd() -> None:
        with torch.no_grad():
            net(x)

    return fwd


def flops() -> dict[str, float]:
    """GFLOPs (torch FlopCounterMode; independent of machine load) of each case at batch 1.

    Train cases count forward + backward (the optimizer step is not counted); FLOPs grow linearly
    with the batch, so the train ratios hold for batch 8.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from cohesiv.model import Predictor, total_loss

    batch = {k: v[:1] for k, v in _train_batch(b=1).items()}
    res = {}
    net = _cohesiv_net().train()
    bare = _bare_net().train()
    kw = {"full_resolution": False} if net.head_stride > 1 else {}
    with FlopCounterMode(display=False) as fc:
        out = net(batch["images"], batch["points"], batch["point_valid"], **kw)
        total_loss(out, batch)[0].backward()
    res["train_cohesiv"] = fc.get_total_flops() / 1e9
    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.mse_loss(bare(batch["images"]), batch["target"]).backward()
    res["train_bare"] = fc.get_total_flops() / 1e9
    image, _ = _image_384x288()
    pred = Predictor(net.eval(), size=384)
    with FlopCounterMode(display=False) as fc:
        pred.predict(image, [(120.0, 200.0), (270.0, 210.0)], ["left", "right"])
    res["predict_cohesiv"] = fc.get_total_flops() / 1e9
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        bare.eval()(torch.randn(1, 3, 288, 384))
    res["predict_bare"] = fc.get_total_flops() / 1e9
    return res


def _status_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MB (Linux /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(name: str) -> None:
    """Run in a subprocess: print the peak RSS of one case above the RSS before the measured work.

    Uses VmHWM after resetting it (``echo 5 > /proc/self/clear_refs``); ``ru_maxrss`` would
    include the parent's RSS at fork time.
    """
    fn = make_case(name)
    fn()  # warm-up: allocator caches and lazy init are part of the steady state
    before = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    fn()
    peak = _status_mb("VmHWM")
    print(json.dumps({"case": name, "peak_mb": peak - before, "rss_before_mb": before, "hwm_mb": peak}))


def _memory(name: str, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", name]
    if threads:
        cmd += ["--threads", str(threads)]
    for k, v in SETUP.items():
        if v is not None:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed train steps per case (after one warm-up)")
    ap.add_argument("--predict-repeats", type=int, default=10, help="timed predictions per case")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--flops-only", action="store_true", help="print the FLOP counts and stop")
    ap.add_argument("--encoder", help="smp encoder of both models (default: cohesiv's default)")
    ap.add_argument("--head-stride", type=int, help="cohesiv head stride (default: cohesiv's default)")
    ap.add_argument("--embed-dim", type=int, default=64, help="F of both models (64)")
    ap.add_argument("--head-dim", type=int, default=64, help="A of the cohesiv heads (64)")
    ap.add_argument("--size", type=int, default=256, help="train crop side (256)")
    ap.add_argument("--batch", type=int, default=8, help="train batch (8)")
    ap.add_argument("--memory-child", choices=CASES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    SETUP.update({k: getattr(args, k) for k in SETUP})
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return

    fl = flops()
    print(
        f"GFLOPs (batch 1; fwd+bwd for train): train cohesiv {fl['train_cohesiv']:.1f} vs bare "
        f"{fl['train_bare']:.1f} (ratio {fl['train_cohesiv'] / fl['train_bare']:.2f}); predict cohesiv "
        f"{fl['predict_cohesiv']:.1f} vs bare {fl['predict_bare']:.1f} "
        f"(ratio {fl['predict_cohesiv'] / fl['predict_bare']:.2f})",
        flush=True,
    )
    if args.flops_only:
        return
    _, source = _image_384x288()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu count {os.cpu_count()}, "
        f"load avg {os.getloadavg()[0]:.1f}; predict image: {source}"
    )
    results: dict[str, list[float]] = {}
    for pair in (("train_cohesiv", "train_bare"), ("predict_cohesiv", "predict_bare")):
        fns = {name: make_case(name) for name in pair}
        for fn in fns.values():
            fn()  # warm-up
        reps = args.repeats if pair[0].startswith("train") else args.predict_repeats
        for _ in range(reps):  # interleaved, so that load changes hit both alike
            for name, fn in fns.items():
                t = time.perf_counter()
                fn()
                results.setdefault(name, []).append(time.perf_counter() - t)
        del fns
    med = {k: statistics.median(v) for k, v in results.items()}
    low = {k: min(v) for k, v in results.items()}
    net = _cohesiv_net()
    what = (
        f"{net.encoder_name}, F {net.embed_dim}, A {net.head_dim}, head stride {net.head_stride}, "
        f"{SETUP['size']}x{SETUP['size']} batch {SETUP['batch']}"
    )
    print(f"model: {what}; bare = smp.Unet({net.encoder_name}, classes={net.embed_dim}) + MSE")
    ratio_pairs = [
        (
            f"train step  {SETUP['size']}x{SETUP['size']} batch {SETUP['batch']}, 2 hands",
            "train_cohesiv",
            "train_bare",
        ),
        ("predict     384x288, 2 hands (Predictor vs bare forward)", "predict_cohesiv", "predict_bare"),
    ]
    for title, a, b in ratio_pairs:
        print(
            f"{title}: cohesiv {med[a] * 1000:.0f} ms, bare U-Net {med[b] * 1000:.0f} ms (medians), "
            f"ratio {med[a] / med[b]:.2f}; fastest {low[a] * 1000:.0f} vs {low[b] * 1000:.0f} ms, "
            f"ratio {low[a] / low[b]:.2f}  (all ms: {[round(v * 1000) for v in results[a]]} vs "
            f"{[round(v * 1000) for v in results[b]]})"
        )
    if not args.no_memory:
        mem = {name: _memory(name, args.threads) for name in CASES}
        for a, b in (("train_cohesiv", "train_bare"), ("predict_cohesiv", "predict_bare")):
            print(
                f"peak memory {a[: a.index('_')]:7s}: cohesiv +{mem[a]['peak_mb']:.0f} MB "
                f"(peak RSS {mem[a]['hwm_mb']:.0f} MB), bare +{mem[b]['peak_mb']:.0f} MB "
                f"(peak RSS {mem[b]['hwm_mb']:.0f} MB), ratio {mem[a]['peak_mb'] / max(mem[b]['peak_mb'], 1):.2f}"
            )


if __name__ == "__main__":
    main()
