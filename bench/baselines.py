"""Benchmark the COHESIV baselines on synthetic clips: Thresholded Responsibility and Flow.

Generates (once, cached in --work) synthetic labeled clips with ``cohesiv synth``, separately for
a static and a moving camera, each with a validation split (thresholds are fitted there, by grid
search maximising All mIoU) and a test split (scored). Prints, per camera, one row per
configuration with All / Pair / Hand / Obj mIoU beside the paper's 100DOH figures, plus:

* the responsibility maps from GT flow vs from DIS flow (what flow error costs), with DIS's
  end-point error against the exact flow;
* ablations on the same clips: offsets {±1} vs {±1, ±2, ±3}; temperature 1 / 2 / 4; background
  static vs homography (moving camera); forward-backward consistency weighting (as ``cohesiv
  pseudolabel`` does by default) vs none ([C]).

Every configuration sees the same frames; flows are computed once per frame and shared.

    .venv/bin/python bench/baselines.py                  # 10 val + 30 test clips per camera
    .venv/bin/python bench/baselines.py --quick          # 3 + 6 clips, a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cohesiv.eval.baselines import EstimatedFlow, ExactFlow, FlowBaseline, ResponsibilityBaseline
from cohesiv.eval.driver import iter_scored_frames, score_frame
from cohesiv.eval.metrics import HOSMeter, all_gt, mask_stats, reduce_stats

#: 100DOH mIoU (%) of [C] Table 1, All / Pair / Hand / Obj (None: not reported).
PAPER = {
    "responsibility": (44.5, 37.0, None, None),
    "flow": (29.3, 21.5, 12.9, 12.1),
}


class MemoFlow:
    """Share a flow source between configurations: each (clip, t, s) computed once per frame."""

    def __init__(self, source):
        self.source = source
        self.name = source.name
        self._key = None
        self._flows: dict[int, np.ndarray] = {}
        self.seconds = 0.0
        self.computed = 0

    def __call__(self, context, s, src=None):
        key = (context.clip.path, context.t)
        if key != self._key:
            self._key, self._flows = key, {}
        pair = (context.t if src is None else src, s)
        if pair not in self._flows:
            t0 = time.perf_counter()
            self._flows[pair] = self.source(context, s, src)
            self.seconds += time.perf_counter() - t0
            self.computed += 1
        return self._flows[pair]


@dataclass
class Config:
    name: str
    group: str
    baseline: object
    kind: str


def configs(camera: str, gt: MemoFlow, dis: MemoFlow) -> list[Config]:
    """The configurations: main rows, then ablations, each with GT and DIS flow.

    On moving-camera clips the ablations (offsets, temperature, consistency) use the homography
    background, the better model there; the main rows show both backgrounds.
    """
    out = []
    bgs = ("static", "homography") if camera == "moving" else ("static",)
    for bg in bgs:
        sfx = "" if bg == "static" else " bg-H"
        for src in (gt, dis):
            out.append(
                Config(
                    f"resp {src.name} ±1..3 T2{sfx}",
                    "main",
                    ResponsibilityBaseline(src, background=bg),
                    "responsibility",
                )
            )
        for src in (gt, dis):
            out.append(Config(f"flow {src.name}{sfx}", "main", FlowBaseline(src, background=bg), "flow"))
    bg = bgs[-1]
    sfx = "" if bg == "static" else " bg-H"
    ablations = [("offsets", "±1 T2", {"offsets": (-1, 1)})]
    ablations += [("temperature", f"±1..3 T{temp:g}", {"temperature": temp}) for temp in (1.0, 4.0)]
    # the main rows use cohesiv pseudolabel's defaults, forward-backward weighting included: the
    # ablation is the paper's plain mean over offsets
    ablations += [("consistency", "±1..3 T2 no-fb", {"fb_check": False})]
    for group, label, kw in ablations:
        for src in (gt, dis):
            base = ResponsibilityBaseline(src, background=bg, **kw)
            out.append(Config(f"resp {src.name} {label}{sfx}", group, base, "responsibility"))
    return out


def synth(out: Path, n: int, frames: int, size: str, seed: int, camera: str, every: int) -> list[Path]:
    """Generate (once) ``n`` clips in ``out/full``; return sparsely labeled views of them.

    ``out/sparse/<clip>`` links to the clip's frames and hands.json and to the labels of frames
    3, 3 + every, ... (at least 3 from the ends, so every scored frame has offsets ±1..±3): as in a
    sparsely annotated video, the other frames are motion context only. The exact flow still
    comes from the full clip (``source`` link), which needs every label.
    """
    full, sparse = out / "full", out / "sparse"
    if not (out / ".done").exists():
        from cohesiv.cli import main

        args = ["synth", str(full), "--clips", str(n), "--frames", str(frames), "--size", size]
        args += ["--seed", str(seed), "--camera", camera]
        print(f"$ cohesiv {' '.join(args)}", file=sys.stderr)
        rc = main(args)
        if rc:
            raise SystemExit(f"cohesiv synth failed ({rc})")
        keep = set(range(3, frames - 3, every))
        for clip in sorted(full.iterdir()):
            if not (clip / "labels").is_dir():
                continue
            view = sparse / clip.name
            (view / "labels").mkdir(parents=True, exist_ok=True)
            for name in ("frames", "hands.json"):
                (view / name).symlink_to(clip.resolve() / name)
            (view / "source").symlink_to(clip.resolve())
            for p in sorted((clip / "labels").glob("*.png")):
                if int(p.stem) in keep:
                    (view / "labels" / p.name).symlink_to(p.resolve())
        (out / ".done").write_text("ok\n")
    clips = sorted(p for p in sparse.iterdir() if (p / "labels").is_dir())
    if len(clips) != n:
        raise SystemExit(f"{out}: expected {n} clips, found {len(clips)} (delete the folder to regenerate)")
    return clips


class SparseExactFlow(ExactFlow):
    """Exact flow of the full clip behind a sparse view."""

    def __call__(self, context, s, src=None):
        from cohesiv.synth import exact_flow

        src = context.t if src is None else src
        return np.asarray(exact_flow(context.clip.path / "source", src, s), np.float32)


def fit_all(cfgs: list[Config], val: list[Path]) -> dict[str, tuple[float, float]]:
    """One pass over the validation frames; returns config -> (threshold, val All mIoU)."""
    stats = {c.name: [[] for _ in c.baseline.grid] for c in cfgs}
    for fr in iter_scored_frames(val, desc="val"):
        gt = all_gt(fr.label)
        for c in cfgs:
            maps = c.baseline.maps(fr.image, fr.hands, fr.context)
            for i, tau in enumerate(c.baseline.grid):
                p = c.baseline.masks(maps, tau)
                am = p.all_mask if p.all_mask is not None else (p.hand_masks | p.object_masks).any(0)
                stats[c.name][i].append(mask_stats(am, gt))
    out = {}
    for c in cfgs:
        miou = [reduce_stats(np.stack(s))["mIoU"] for s in stats[c.name]]
        best = int(np.argmax(miou))
        out[c.name] = (float(c.baseline.grid[best]), miou[best])
    return out


def test_all(
    cfgs: list[Config], test: list[Path], taus: dict[str, tuple[float, float]], flows: list[MemoFlow]
):
    """One pass over the test frames; returns config -> metrics, config -> seconds (flow excluded)."""
    meters = {c.name: HOSMeter() for c in cfgs}
    seconds = dict.fromkeys(meters, 0.0)
    for fr in iter_scored_frames(test, desc="test"):
        for c in cfgs:
            f0 = sum(f.seconds for f in flows)
            t0 = time.perf_counter()
            maps = c.baseline.maps(fr.image, fr.hands, fr.context)
            pred = c.baseline.masks(maps, taus[c.name][0])
            seconds[c.name] += time.perf_counter() - t0 - (sum(f.seconds for f in flows) - f0)
            score_frame(meters[c.name], fr, pred)
    return {k: m.result() for k, m in meters.items()}, seconds


def dis_epe(test: list[Path], dis_source, gt_source) -> dict:
    """End-point error of DIS against the exact flow, offset +1, over the test frames."""
    errs, moving_errs = [], []
    for fr in iter_scored_frames(test, progress=False):
        t, n = fr.context.t, fr.context.n_frames
        s = t + 1 if t + 1 < n else t - 1
        g, d = gt_source(fr.context, s), dis_source(fr.context, s)
        e = np.linalg.norm(g - d, axis=0)
        errs.append(e.mean())
        moving_errs.append(e[all_gt(fr.label)].mean() if all_gt(fr.label).any() else np.nan)
    return {"epe": float(np.mean(errs)), "epe_on_hands_objects": float(np.nanmean(moving_errs))}


def fmt(v) -> str:
    return "   -" if v is None or not np.isfinite(v) else f"{v:5.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/cohesiv-bench-baselines", help="where the synthetic clips go")
    ap.add_argument("--val", type=int, default=10, help="validation clips per camera")
    ap.add_argument("--test", type=int, default=30, help="test clips per camera")
    ap.add_argument("--frames", type=int, default=13)
    ap.add_argument(
        "--label-every", type=int, default=3, help="score frames 3, 3+K, ... (>= 3 from the ends)"
    )
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--cameras", default="static,moving")
    ap.add_argument(
        "--groups", default="main,offsets,temperature,consistency", help="which configuration groups to run"
    )
    ap.add_argument("--quick", action="store_true", help="3 val + 6 test clips")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    if a.quick:
        a.val, a.test = 3, 6
    import torch

    torch.set_num_threads(1)  # on a shared 2-core machine, 2 torch threads run ~10x slower
    work = Path(a.work)
    results: dict = {"args": vars(a), "cameras": {}}
    print("$ " + " ".join([".venv/bin/python", "bench/baselines.py", *sys.argv[1:]]))
    from cohesiv.flow import FlowEstimator

    for camera in a.cameras.split(","):
        tag = f"{a.size}_f{a.frames}_e{a.label_every}"
        val = synth(work / f"{camera}_{tag}_val{a.val}", a.val, a.frames, a.size, 1000, camera, a.label_every)
        test = synth(
            work / f"{camera}_{tag}_test{a.test}", a.test, a.frames, a.size, 2000, camera, a.label_every
        )
        gt, dis = MemoFlow(SparseExactFlow()), MemoFlow(EstimatedFlow(FlowEstimator("dis"), name="dis"))
        cfgs = [c for c in configs(camera, gt, dis) if c.group in a.groups.split(",")]
        t0 = time.perf_counter()
        taus = fit_all(cfgs, val)
        metrics, seconds = test_all(cfgs, test, taus, [gt, dis])
        wall = time.perf_counter() - t0
        epe = dis_epe(test, dis, gt)
        n_img = next(iter(metrics.values()))["n_images"]
        n_hands = next(iter(metrics.values()))["n_hands"]
        print(
            f"\n== {camera} camera: {a.test} test clips ({n_img} labeled frames, {n_hands} hands), "
            f"thresholds fitted on {a.val} val clips; {a.size}, {a.frames} frames; mIoU %"
        )
        print(
            f"DIS end-point error vs exact flow (offset +1): {epe['epe']:.2f} px over the image, "
            f"{epe['epe_on_hands_objects']:.2f} px on hands + objects"
        )
        head = f"{'configuration':<34}{'tau':>7} {'All':>5} {'Pair':>5} {'Hand':>5} {'Obj':>5}  {'FOR':>5}  {'ms/img':>6}"
        print(head)
        group = None
        for c in cfgs:
            if c.group != group:
                group = c.group
                print(f"-- {group}")
            m = metrics[c.name]
            fo = m["Obj"]["false_object_rate"]
            print(
                f"{c.name:<34}{taus[c.name][0]:>7.3g} {fmt(m['All']['mIoU'])} {fmt(m['Pair']['mIoU'])} "
                f"{fmt(m['Hand']['mIoU'])} {fmt(m['Obj']['mIoU'])}  {fmt(fo)}  {1000 * seconds[c.name] / max(n_img, 1):6.1f}"
            )
        for k, (al, pa, ha, ob) in PAPER.items():
            print(f"{'paper 100DOH ' + k:<34}{'':>7} {fmt(al)} {fmt(pa)} {fmt(ha)} {fmt(ob)}")
        print(
            f"(bg-H = background homography; FOR = false-object rate, % of hands holding nothing; ms/img excludes flow: "
            f"GT {1000 * gt.seconds / max(gt.computed, 1):.1f} ms, DIS {1000 * dis.seconds / max(dis.computed, 1):.1f} ms "
            f"per flow; wall {wall:.0f} s)"
        )
        results["cameras"][camera] = {
            "taus": taus,
            "metrics": metrics,
            "dis_epe": epe,
            "seconds": seconds,
        }
    if a.json:
        from cohesiv.eval.driver import write_metrics

        write_metrics(a.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
