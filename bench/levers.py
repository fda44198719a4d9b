"""Speed levers of a training step, measured as ratios to a reference step in the same run.

Each variant is one training step (forward, ``total_loss``, backward, AdamW) of a CohesivNet on a
random batch with 2 hands per image, built like ``cohesiv train`` builds it; the variants are timed
interleaved (round-robin, median of ``--repeats``), so load changes hit all alike. Also times the
data pipeline: one batch of the real pseudo-label dataset (read, augment, collate) at the same size.

  OMP_NUM_THREADS=1 .venv/bin/python bench/levers.py --threads 1 --data /tmp/exp/pseudo-forearm

Variants: ``ref`` (the defaults given by --encoder/--size/--batch/--head-stride), ``stride1``/
``stride2`` (heads at full / half resolution), ``narrow`` (F = A = 32), ``channels_last``, ``bf16``
(``torch.autocast("cpu", torch.bfloat16)`` around forward and loss), ``compile`` (``torch.compile``
of the network; its compile time is printed apart).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def make_step(variant: str, a: argparse.Namespace):
    from cohesiv.model import CohesivNet, total_loss

    torch.manual_seed(0)
    stride = {"stride1": 1, "stride2": 2}.get(variant, a.head_stride)
    width = 32 if variant == "narrow" else 64
    net = CohesivNet(a.encoder, embed_dim=width, head_dim=width, head_stride=stride).train()
    b, s, k = a.batch, a.size, 2
    g = torch.Generator().manual_seed(0)
    resp = torch.softmax(3 * torch.randn(b, k + 1, s, s, generator=g), 1)
    batch = {
        "responsibility": resp,
        "person": (torch.rand(b, 1, s, s, generator=g) > 0.8).float(),
        "valid": torch.ones(b, 1, s, s),
        "point_valid": torch.ones(b, k, dtype=torch.bool),
    }
    images = torch.randn(b, 3, s, s, generator=g)
    points = torch.rand(b, k, 2, generator=g) * (s - 1)
    if variant == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    kw = {"full_resolution": False} if stride > 1 else {}
    fwd = net
    if variant == "compile":
        fwd = torch.compile(net)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            out = fwd(images, points, batch["point_valid"], **kw)
            loss, _ = total_loss(out, batch)
        loss.backward()
        opt.step()

    return step


def data_seconds(root: str, size: int, batch: int, n: int = 5) -> float:
    """Median seconds to read, augment and collate one batch of a pseudo-label dataset."""
    from cohesiv.train.data import PseudoLabelDataset, TrainDataset, collate

    ds = TrainDataset(PseudoLabelDataset([root]), size=size, seed=0, augment=True)
    times = []
    for i in range(n):
        t = time.perf_counter()
        collate([ds[(i * batch + j) % len(ds)] for j in range(batch)])
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    from cohesiv.model import ModelConfig

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default=ModelConfig().encoder_name)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--head-stride", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--variants", default="ref,stride1,stride2,narrow,channels_last,bf16,compile")
    ap.add_argument("--data", help="a pseudo-label dataset folder, to time the data pipeline")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load avg {os.getloadavg()[0]:.1f}; "
        f"{a.encoder}, {a.size}x{a.size}, batch {a.batch}, head stride {a.head_stride}; "
        f"oneDNN bf16 supported: {bf16}",
        flush=True,
    )
    steps, warm = {}, {}
    for v in a.variants.split(","):
        try:
            fn = make_step(v, a)
            t = time.perf_counter()
            fn()  # warm-up (and compilation)
            warm[v] = time.perf_counter() - t
            steps[v] = fn
        except Exception as e:  # noqa: BLE001 - report the lever as unavailable
            print(f"{v}: unavailable ({type(e).__name__}: {str(e).splitlines()[0][:200]})", flush=True)
    times: dict[str, list[float]] = {v: [] for v in steps}
    for _ in range(a.repeats):
        for v, fn in steps.items():
            t = time.perf_counter()
            fn()
            times[v].append(time.perf_counter() - t)
    ref = statistics.median(times["ref"]) if "ref" in times else None
    for v, ts in times.items():
        med = statistics.median(ts)
        ratio = f", {med / ref:.2f}x ref" if ref else ""
        print(f"{v:14s} {med * 1000:7.0f} ms/step (median of {len(ts)}{ratio}); first step {warm[v]:.1f} s")
    if a.data:
        d = data_seconds(a.data, a.size, a.batch)
        print(f"data: {d * 1000:.0f} ms per batch of {a.batch} (read + augment + collate, one process)")
    print(f"load avg at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
