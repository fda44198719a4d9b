"""The whole pipeline end to end, on synthetic clips and on a real video, with an HTML report.

Stages (each one is the library call behind a ``cohesiv`` subcommand):

1. ``synth``: synthetic egocentric clips with exact labels (train / validation / test splits);
2. ``hands``: MediaPipe hand keypoints on the real video (the embedded ``cup.mp4`` by default);
3. ``flow`` + ``pseudolabel``: responsibility maps from DIS flow on the training clips and the video;
4. ``train``: a short CPU training run of the U-Net with query/key heads on the pseudo-labels;
5. ``calibrate``: prototypes and thresholds on the validation clips;
6. ``eval``: the model and the Thresholded Responsibility baseline on the held-out test clips;
7. ``predict``: masks on frames of the real video;
8. ``eval --images``: the model on real photos with hand masks, when the project's data folder is there
   (``$COHESIV_DATA`` or ``shared/data`` beside the checkout), beside the hull of the same hand points;

then ``report.html`` with the pictures, the metrics table and the timings.
Every step resumes: a second ``cohesiv demo`` with the same ``--out`` reuses finished work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from cohesiv.config import AugmentConfig
from cohesiv.config import DemoConfig as DemoConfig  # its old path, kept for one release
from cohesiv.errors import CohesivError
from cohesiv.io import FrameReader, HandTracks, read_hands, read_image, write_hands, write_image
from cohesiv.io.dataset import read_manifest, read_sample
from cohesiv.model import ModelConfig
from cohesiv.report import Section, write_report
from cohesiv.responsibility.labeler import PseudoLabelConfig
from cohesiv.responsibility.masks import object_mask
from cohesiv.train.config import TrainConfig

#: Names of the learned model and of its pseudo-label baseline in the demo's metrics.
MODEL_METHOD = "COHESIV (ours, trained on pseudo-labels)"
PSEUDO_METHOD = "Thresholded Responsibility (DIS)"


def default_video() -> Path:
    """The embedded demo clip: a hand holding a cup (OpenCV docs, Apache-2.0/BSD)."""
    return Path(str(resources.files("cohesiv") / "data" / "cup.mp4"))


@dataclass
class DemoResult:
    """What the demo produced: the report path, metrics per method, seconds per stage, notes."""

    report: Path
    metrics: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    real: list = field(default_factory=list)


@contextmanager
def _stage(times: dict, name: str, say: Callable[[str], None]):
    say(f"[demo] {name} ...")
    t0 = time.perf_counter()
    yield
    times[name] = time.perf_counter() - t0
    say(f"[demo] {name} done in {times[name]:.1f} s")


def _round32(n: int) -> int:
    """``n`` rounded to a multiple of 32 (the network's stride), at least 32."""
    return max(32, int(round(n / 32)) * 32)


def _clips(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "hands.json").exists())


@dataclass
class _Clips:
    """The demo's synthetic clip folders per split."""

    train: list[Path]
    val: list[Path]
    test: list[Path]


def _synth(cfg: DemoConfig, out: Path, progress: bool) -> _Clips:
    """Stage 1: the synthetic train / validation / test clips (``cohesiv synth``)."""
    from cohesiv.synth import generate_dataset

    splits = {"train": cfg.train_clips, "val": cfg.val_clips, "test": cfg.test_clips}
    for k, (split, n) in enumerate(splits.items()):
        generate_dataset(
            out / "synth" / split,
            clips=n,
            frames=cfg.frames,
            size=cfg.size,
            seed=cfg.seed + 1000 * k,
            camera="mixed",
            progress=progress,
        )
    return _Clips(*(_clips(out / "synth" / s) for s in ("train", "val", "test")))


def _video_hands(
    video: Path, out: Path, notes: list[str], say: Callable[[str], None], progress: bool
) -> HandTracks | None:
    """Stage 2: the real video's hands (``cohesiv hands``, kept in ``out/video/hands.json``); None when none."""
    hands_file = out / "video" / "hands.json"
    try:
        if hands_file.exists():
            tracks = read_hands(hands_file)
        else:
            from cohesiv.hands import detect_hands

            tracks = detect_hands(video, progress=progress)
            write_hands(hands_file, tracks)
        n_with = sum(1 for hs in tracks.frames.values() if hs)
        say(f"[demo] hands found in {n_with} of {len(FrameReader(video))} frames of {video}")
        if n_with == 0:
            notes.append(f"No hand was detected in {video}; the real-video part is skipped.")
            return None
        return tracks
    except (CohesivError, ImportError) as e:
        notes.append(f"Real video skipped: hand detection unavailable ({e}).")
        say(f"[demo] real video skipped: {e}")
        return None


def _pseudolabels(
    cfg: DemoConfig,
    out: Path,
    clips: _Clips,
    video: Path | None,
    video_hands: HandTracks | None,
    say: Callable[[str], None],
    progress: bool,
) -> tuple[PseudoLabelConfig, list[Path]]:
    """Stage 3: pseudo-label datasets of the training clips and the video; ``(their config, folders)``."""
    from cohesiv.responsibility.dataset import ClipSource, write_dataset

    # egocentric cameras move: fit the camera motion instead of assuming a static background
    plcfg = PseudoLabelConfig(background="homography", forearm=cfg.forearm)
    sources = [ClipSource(path=c, hands=read_hands(c / "hands.json")) for c in clips.train]
    summary = write_dataset(sources, out / "pseudo" / "synth", plcfg, viz=False, progress=progress)
    say(summary.to_text())
    datasets = [out / "pseudo" / "synth"]
    if video is not None and video_hands is not None:
        n = len(FrameReader(video))
        frames = [t for t in range(0, n, cfg.video_every) if video_hands.hands_at(t)]
        vsum = write_dataset(
            [ClipSource(path=video, hands=video_hands, frames=frames, name="video")],
            out / "pseudo" / "video",
            plcfg,
            viz=True,
            progress=progress,
        )
        say(vsum.to_text())
        datasets.append(out / "pseudo" / "video")
    return plcfg, datasets


def _train_run(cfg: DemoConfig, run: Path, datasets: list[Path], progress: bool) -> TrainConfig:
    """Stage 4: the short CPU training run (resumed when ``run`` holds one); its config."""
    from cohesiv.train import make_config, train

    tcfg = make_config(
        data=tuple(str(d) for d in datasets),
        out=str(run),
        steps=cfg.steps,
        size=cfg.train_size,
        batch=cfg.batch,
        seed=cfg.seed,
        save_every=50,
        image_every=0,
        model=ModelConfig(embed_dim=cfg.embed_dim, head_dim=cfg.head_dim),
        augment=AugmentConfig(grayscale=cfg.grayscale),
    )
    train(tcfg, resume=(run / "config.yaml").exists(), progress=progress)
    return tcfg


def _calibrate(
    cfg: DemoConfig, run: Path, val: list[Path], say: Callable[[str], None], progress: bool
) -> None:
    """Stage 5: prototypes and thresholds on the validation clips (``cohesiv calibrate``)."""
    from cohesiv.eval.calibrate import calibrate_run

    # training crops show objects larger than a whole frame resized to the crop size, so the
    # calibration also tries the clips' own size (128 -> 192 raised the demo's All mIoU by ~30 points)
    sizes = cfg.calibrate_sizes or (cfg.train_size, _round32(max(cfg.size)))
    calib = calibrate_run(run, val, size=sizes, objective=cfg.calibrate_objective, progress=progress)
    if len(calib.get("sizes", {})) > 1:
        tried = ", ".join(f"{k}: {v:.1f}" for k, v in calib["sizes"].items())
        say(f"[demo] network size {calib['size']} (validation {calib['objective']} mIoU by size: {tried})")
    say(f"[demo] thresholds {calib.get('thresholds')}")


def _evaluate(run: Path, clips: _Clips, plcfg: PseudoLabelConfig, out: Path, progress: bool) -> dict:
    """Stage 6: the model and the baselines on the held-out clips; metrics per method (also ``metrics.json``)."""
    from cohesiv.eval.driver import write_metrics
    from cohesiv.eval.runner import build_baseline, evaluate_run, run_baseline

    metrics: dict = {MODEL_METHOD: evaluate_run(run, clips.test, progress=progress)}
    base = build_baseline("responsibility", config=plcfg)  # the very pseudo-labels (label_frame)
    metrics[PSEUDO_METHOD], _ = run_baseline(base, clips.test, val=clips.val, progress=progress)
    fb = build_baseline("flow", flow="dis", background="homography")
    metrics["Flow baseline (DIS)"], _ = run_baseline(fb, clips.test, val=clips.val, progress=progress)
    write_metrics(out / "metrics.json", metrics)
    return metrics


def _short_run_notes(cfg: DemoConfig, metrics: dict) -> list[str]:
    """The report's note when the model does not beat its pseudo-labels on All and Pair."""
    model_all = metrics[MODEL_METHOD]["All"]["mIoU"]
    pseudo_all = metrics[PSEUDO_METHOD]["All"]["mIoU"]
    model_pair = metrics[MODEL_METHOD]["Pair"]["mIoU"]
    pseudo_pair = metrics[PSEUDO_METHOD]["Pair"]["mIoU"]
    if model_all >= pseudo_all and model_pair >= pseudo_pair:
        return []
    return [
        f"The model's {cfg.steps} training steps are too few for it to beat its pseudo-labels on both All "
        f"and Pair (All {model_all:.1f} vs {pseudo_all:.1f}, Pair {model_pair:.1f} vs {pseudo_pair:.1f}). "
        "Longer runs on more clips do (README, Results: bench/real.py --no-real, bench/experiment.py); "
        "'cohesiv demo --steps N --clips N' trains longer."
    ]


def run_demo(cfg: DemoConfig, *, say: Callable[[str], None] = print, progress: bool = True) -> DemoResult:
    """Run the pipeline of the module docstring and write ``cfg.out/report.html``.

    Returns:
        :class:`DemoResult`.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    notes: list[str] = []
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    run = out / "run"

    with _stage(times, "synth", say):
        clips = _synth(cfg, out, progress)
    video, video_hands = cfg.video, None
    if video is not None:
        with _stage(times, "hands", say):
            video_hands = _video_hands(video, out, notes, say, progress)
    with _stage(times, "pseudolabel", say):
        plcfg, datasets = _pseudolabels(cfg, out, clips, video, video_hands, say, progress)
    with _stage(times, "train", say):
        tcfg = _train_run(cfg, run, datasets, progress)
    with _stage(times, "calibrate", say):
        _calibrate(cfg, run, clips.val, say, progress)
    with _stage(times, "eval", say):
        metrics = _evaluate(run, clips, plcfg, out, progress)
    short_run = _short_run_notes(cfg, metrics)
    # 7. pictures: pseudo-labels, predictions on test clips and on the video
    with _stage(times, "predict", say):
        pictures = _pictures(
            out, run, datasets, clips.test, video if video_hands is not None else None, video_hands, cfg
        )
    # 8. real photos with hand masks (when the data folder is there)
    with _stage(times, "real images", say):
        real_tables, fig_real, real_notes = _real_images(run, cfg, figs, say, progress)

    sections = _report_sections(
        cfg,
        tcfg,
        clips,
        video,
        notes,
        short_run,
        metrics,
        pictures,
        (real_tables, fig_real, real_notes),
        times,
    )
    report = write_report(out / "report.html", "cohesiv demo", sections)
    (out / "timings.json").write_text(json.dumps(times, indent=2))
    real_lines = []
    for title, cols, rows in real_tables:
        real_lines.append(f"Real images, {title}:")
        real_lines += [
            f"  {r[0]:45s} " + "  ".join(f"{c} {v:5.1f}" for c, v in zip(cols[1:], r[1:])) for r in rows
        ]
    return DemoResult(
        report=report, metrics=metrics, times=times, notes=notes + short_run + real_notes, real=real_lines
    )


def _report_sections(
    cfg: DemoConfig,
    tcfg: TrainConfig,
    clips: _Clips,
    video: Path | None,
    notes: list[str],
    short_run: list[str],
    metrics: dict,
    pictures: tuple[list, list, list],
    real: tuple[list, list, list],
    times: dict[str, float],
) -> list[Section]:
    """The report's sections: what ran, the metrics, the pictures, the real photos, the timings."""
    fig_pseudo, fig_pred, fig_video = pictures
    real_tables, fig_real, real_notes = real
    enc, weights = tcfg.model.encoder_name, tcfg.model.encoder_weights
    init = {"imagenet": "ImageNet weights bundled with an installed package", None: "random init"}.get(
        weights, f"weights {weights}"
    )
    return [
        Section(
            "What ran",
            [
                "cohesiv learns to segment hands and the objects they hold from unlabeled video. Optical flow "
                "(DIS) and hand points give per-hand responsibility maps (pseudo-labels); a U-Net with "
                "query/key heads is trained on them and then segments a single image given a hand point.",
                f"Synthetic clips: {len(clips.train)} train / {len(clips.val)} validation / {len(clips.test)} "
                f"test, {cfg.frames} frames at {cfg.size[0]}x{cfg.size[1]}. Real video: "
                f"{video if video is not None else 'none'}. Training: {cfg.steps} steps, encoder {enc} ({init}; "
                f"embedding F={cfg.embed_dim}, heads A={cfg.head_dim}), {cfg.train_size}x{cfg.train_size} "
                f"crops, batch {cfg.batch}, on the CPU. Person masks of the pseudo-labels: dilated hull of "
                f"the hand keypoints{' plus a forearm band' if cfg.forearm else ''}.",
                *notes,
            ],
        ),
        Section(
            "Metrics on held-out synthetic clips (mIoU %, higher is better)",
            [
                "Thresholds of the baselines and of the model were fitted on the validation clips. "
                "The paper's 100DOH figures (All / Pair / Hand / Obj): COHESIV 51.9 / 46.5 / 53.6 / 29.3, "
                "thresholded responsibility 44.5 / 37.0, flow 29.3 / 21.5 / 12.9 / 12.1 (different data: "
                "for orientation only).",
                *short_run,
            ],
            tables=[_metrics_table(metrics)],
        ),
        Section(
            "Pseudo-labels (frame, flow, responsibility per hand, person/object masks)", figures=fig_pseudo
        ),
        Section("Predictions on held-out synthetic frames (single image + query point)", figures=fig_pred),
        Section("Real video: pseudo-labels and predictions", figures=fig_video),
        Section(
            "Real photos with hand masks (the model vs the hull of the same hand points)",
            [
                "Hands from MediaPipe on each photo; every method gets the same hands. The floor is each "
                "hand's dilated convex hull of its points (no object). real-hand-masks-hof has human-made "
                "binary hand masks (All-hands IoU: union of the hand masks); hands23-demo-silver has EgoHOS "
                "labels made from the Hands23 detector's predictions (silver, not truth). Pictures: ground "
                "truth, the model, the hull.",
                *real_notes,
            ],
            tables=real_tables,
            figures=fig_real,
        ),
        Section(
            "Timings",
            tables=[("seconds per stage", ["stage", "seconds"], [[k, v] for k, v in times.items()])],
        ),
    ]


def _real_images(run: Path, cfg: DemoConfig, figs: Path, say: Callable[[str], None], progress: bool):
    """Score the run on the real image sets; return (tables, figures, notes) for the report."""
    if cfg.real_images == ():
        return [], [], ["Not scored on real images (--no-real-images, or --quick)."]
    from cohesiv.eval import images

    sets = list(cfg.real_images) if cfg.real_images is not None else images.find_image_sets()
    if not sets:
        return [], [], ["No real image set found (set COHESIV_DATA to the data folder); not scored."]
    tables, fig, notes = [], [], []
    for path in sets:
        viz = figs / f"real_{path.name}"
        try:
            res = images.run_image_eval(path, run=run, viz=viz, progress=progress)
        except (CohesivError, ImportError) as e:
            notes.append(f"{path}: not scored ({e}).")
            continue
        d = res["detection"]
        tasks = ["All-hands"] if res["kind"] == "binary" else ["All", "Pair", "Hand", "Obj"]
        rows = [[name, *(m.get(t, {}).get("mIoU") for t in tasks)] for name, m in res["methods"].items()]
        tables.append(
            (
                f"{path.name}: {res['n_images']} images, {d['gt_hands']} hands, {d['found']} found, "
                f"{d['missed']} missed, {d['false']} false detections (mIoU %)",
                ["method", *tasks],
                rows,
            )
        )
        say(f"[demo] {path.name}: " + ", ".join(f"{r[0]} {r[1]:.1f}" for r in rows) + f" ({tasks[0]} mIoU)")
        fig += [(p, f"{path.name} {p.stem}") for p in sorted(viz.glob("*.png"))[:3]]
    return tables, fig, notes


def _metrics_table(metrics: dict) -> tuple[str, list[str], list[list]]:
    rows = []
    for name, m in metrics.items():
        rows.append(
            [
                name,
                *(m.get(task, {}).get("mIoU") for task in ("All", "Pair", "Hand", "Obj")),
                m.get("Obj", {}).get("false_object_rate"),
                m.get("n_images"),
                m.get("n_hands"),
            ]
        )
    return (
        "mIoU % per task",
        ["method", "All", "Pair", "Hand", "Obj", "false-object rate", "images", "hands"],
        rows,
    )


def _pictures(out, run, datasets, test_clips, video, video_hands, cfg):
    """Write the report's pictures; return (pseudo-label figs, synthetic prediction figs, video figs)."""
    from cohesiv.model import Predictor
    from cohesiv.viz import caption, label_overlay, tile

    figs = out / "figures"
    fig_pseudo, fig_pred, fig_video = [], [], []
    for ds in datasets:
        viz = sorted((Path(ds) / "viz").glob("*.png")) if (Path(ds) / "viz").is_dir() else []
        target = fig_video if Path(ds).name == "video" else fig_pseudo
        for p in viz[:: max(1, len(viz) // 4)][:4]:
            target.append((p, f"pseudo-label {p.stem}"))
        if not viz:
            man = read_manifest(ds)
            for rec in man[:: max(1, len(man) // 3)][:3]:
                path = _pseudolabel_picture(Path(ds), rec, figs)
                target.append((path, f"pseudo-label {rec['id']}"))

    predictor = Predictor.from_run(run)

    def show(image, hands, name):
        pred = predictor.predict(image, [h.query for h in hands], [h.side for h in hands])
        over = label_overlay(image, pred.label, pred.queries, pred.sides)
        path = figs / f"pred_{name}.png"
        write_image(path, tile([caption(image, "input"), caption(over, "prediction")], cols=2))
        return path

    for clip in test_clips[:3]:
        hands = read_hands(clip / "hands.json")
        t = min(hands.frames) if hands.frames else 0
        img = read_image(sorted((clip / "frames").glob("*.png"))[t])
        fig_pred.append((show(img, hands.hands_at(t), clip.name), f"{clip.name} frame {t}"))

    overview_ds = next((Path(d) for d in datasets if Path(d).name == "video"), Path(datasets[0]))
    man = read_manifest(overview_ds)
    if man:
        rec = man[len(man) // 2]
        path = _overview_picture(overview_ds, rec, predictor, figs / "overview.png")
        (fig_video if overview_ds.name == "video" else fig_pseudo).insert(
            0, (path, "overview: frame, flow, responsibility, person/object masks, prediction")
        )

    if video is not None and video_hands is not None:
        with_hands = [t for t in sorted(video_hands.frames) if video_hands.hands_at(t)]
        pick = set(with_hands[:: max(1, len(with_hands) // 4)][:4])
        for t, img in enumerate(FrameReader(video)):
            if t in pick:
                fig_video.append((show(img, video_hands.hands_at(t), f"video_{t:04d}"), f"video frame {t}"))
    return fig_pseudo, fig_pred, fig_video


def _pseudolabel_picture(ds: Path, rec: dict, figs: Path) -> Path:
    from cohesiv.viz import pseudolabel_panel

    img = read_image(ds / rec["image"])
    r, person, valid = read_sample(ds / rec["sample"])
    pts = [np.asarray(h.get("points", []), np.float32).reshape(-1, 2) for h in rec["hands"]]
    path = figs / f"pseudo_{rec['id']}.png"
    write_image(path, pseudolabel_panel(img, r, person, object_mask(r, person), valid, pts))
    return path


def _overview_picture(ds: Path, rec: dict, predictor, path: Path) -> Path:
    """One strip: frame, DIS flow to the next frame, responsibility, person/object masks, prediction."""
    from cohesiv.flow import estimate_flow, flow_to_color
    from cohesiv.viz import (
        OBJECT_COLOR,
        PERSON_COLOR,
        caption,
        label_overlay,
        mask_overlay,
        responsibility_overlay,
        tile,
    )

    img = read_image(ds / rec["image"])
    r, person, _ = read_sample(ds / rec["sample"])
    obj = object_mask(r, person)
    tiles = [caption(img, "frame")]
    clip = Path(rec["clip"])
    try:
        reader = FrameReader(clip)
        nxt = reader.frame(min(int(rec["frame"]) + 1, len(reader) - 1))
        tiles.append(caption(np.ascontiguousarray(flow_to_color(estimate_flow(img, nxt))), "flow (DIS)"))
    except (CohesivError, IndexError, OSError):
        pass
    hands = rec["hands"]
    tiles.append(caption(responsibility_overlay(img, r[1:].max(0)), "responsibility (pseudo-label)"))
    tiles.append(caption(mask_overlay(img, [person, obj], [PERSON_COLOR, OBJECT_COLOR]), "person / object"))
    pred = predictor.predict(img, [h["query"] for h in hands], [h.get("side") for h in hands])
    tiles.append(caption(label_overlay(img, pred.label, pred.queries, pred.sides), "prediction (image only)"))
    write_image(path, tile(tiles, cols=len(tiles)))
    return path
