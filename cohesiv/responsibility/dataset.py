"""The pseudo-label dataset writer (the I/O layer of ``cohesiv pseudolabel``).

The format (ids, manifest, sample ``.npz``, quantisation) is owned by :mod:`cohesiv.io.dataset`; its
names stay importable from here. Layout of a dataset folder (docs/LAYOUT.md)::

    dataset.json            the config that made the labels (a re-run must match it)
    manifest.jsonl          one line per finished sample (rebuilt from the sidecars at the end of each run)
    images/<id>.png         the frame, (H, W, 3) uint8 RGB
    samples/<id>.npz        responsibility float16 (N+1, H, W) (channel k = hands[k-1]; rounded to
                            multiples of 1/2048), person uint8 (H, W) {0, 1}, valid uint8 (H, W) {0, 1}
                            (1 where the flow is forward-backward consistent in at least half of the
                            offsets; all ones without the check); the responsibility is stored
                            uncompressed, the masks deflated (np.load reads both)
    samples/<id>.json       sidecar: the sample's manifest line plus its statistics; written last,
                            so its presence marks the sample finished (a frame skipped because no
                            hand could be fitted gets a sidecar with "skipped" and no manifest line)
    viz/<id>.png            optional overlays (--viz)

Every file is written atomically (temporary name, then rename): after ``kill -9`` at most the
sample in progress is lost, and a re-run skips finished samples. Each clip is decoded once,
streamed with a sliding window of the frames t-max|k| .. t+max|k|; each flow pair is computed
at most once per run (the forward flow of one frame is the backward flow of another).
Hands that cannot be fitted at any offset are removed from their sample (their channel would be
all zero); the manifest lists only the hands whose channel is in the sample.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cohesiv.errors import CohesivError, InputError
from cohesiv.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from cohesiv.io.dataset import (
    DATASET_FILE,
    DATASET_VERSION,
    RESPONSIBILITY_STEPS,
    clip_name,
    image_file,
    quantize,
    read_manifest,
    rebuild_manifest,
    sample_file,
    sample_id,
    save_npz,
    sidecar_path,
    write_sample,
)
from cohesiv.io.frames import FrameReader
from cohesiv.io.hands import HandTracks, check_tracks_match_clip
from cohesiv.io.images import read_image
from cohesiv.responsibility.labeler import (
    FLOW_SOURCES,
    PseudoLabelConfig,
    flow_pairs,
    label_frame,
    usable_offsets,
)
from cohesiv.responsibility.masks import object_mask

__all__ = [
    "DATASET_VERSION",
    "FLOW_SOURCES",
    "RESPONSIBILITY_STEPS",
    "ClipSource",
    "PseudoLabelConfig",
    "Summary",
    "clip_name",
    "quantize",
    "read_manifest",
    "rebuild_manifest",
    "sample_id",
    "save_npz",
    "write_dataset",
]


#: A flow source: ``flow_fn(frame_a, frame_b, a, b) -> (2, H, W)`` float32 flow from frame index
#: ``a`` to frame index ``b`` of the current clip (frames are ``(H, W, 3)`` uint8 RGB).
FlowFn = Callable[[np.ndarray, np.ndarray, int, int], np.ndarray]


@dataclass
class Summary:
    """What a run did (returned by :func:`write_dataset`; the command prints :meth:`to_text`).

    Attributes:
        samples_written: samples labeled and written in this run.
        samples_done_before: samples found finished (skipped: resume).
        frames_without_hands: selected frames with no hand in the tracks (skipped).
        frames_no_fitted_hand: frames where no hand could be fitted at any offset (skipped).
        frames_no_offsets: frames with no other frame within the offsets (skipped).
        frames_other_shards: frames left to other ``--shard`` workers.
        hands_dropped: drop reason -> count over hands x offsets (a hand dropped at one offset is
            still labeled from the others).
        hands_removed: hands dropped at every offset (removed from their sample).
        camera_fallbacks: offsets where the camera fit failed and the static background was used.
        times: stage -> wall seconds (decode, flow, consistency, responsibility, masks, write, viz).
        cpu: stage -> CPU seconds of the process (all threads) in that stage.
        wall: seconds for the whole run.
        wall_cpu: CPU seconds for the whole run.
    """

    samples_written: int = 0
    samples_done_before: int = 0
    frames_without_hands: int = 0
    frames_no_fitted_hand: int = 0
    frames_no_offsets: int = 0
    frames_other_shards: int = 0
    hands_dropped: Counter = field(default_factory=Counter)
    hands_removed: int = 0
    camera_fallbacks: int = 0
    times: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
    wall: float = 0.0
    wall_cpu: float = 0.0

    def add_time(self, stage: str, seconds: float, cpu_seconds: float = 0.0) -> None:
        """Accumulate wall ``seconds`` into ``times[stage]`` and CPU seconds into ``cpu[stage]``."""
        self.times[stage] = self.times.get(stage, 0.0) + seconds
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu_seconds

    def to_text(self) -> str:
        """A few human-readable lines."""
        lines = [
            f"samples written: {self.samples_written} (already finished: {self.samples_done_before}; "
            f"other shards: {self.frames_other_shards})",
            f"frames skipped: {self.frames_without_hands} without hands, "
            f"{self.frames_no_fitted_hand} with no hand that could be fitted"
            + (
                f", {self.frames_no_offsets} with no frame within the offsets"
                if self.frames_no_offsets
                else ""
            ),
        ]
        if self.hands_dropped:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(self.hands_dropped.items()))
            lines.append(
                f"hand fits dropped (hand x offset): {why}; hands removed entirely: {self.hands_removed}"
            )
        if self.camera_fallbacks:
            lines.append(f"camera fit failed (static background used) at {self.camera_fallbacks} offsets")
        if self.times:
            total = sum(self.times.values())
            parts = ", ".join(
                f"{k} {v:.2f}s ({100 * v / max(total, 1e-9):.0f}%)" for k, v in self.times.items()
            )
            lines.append(f"time per stage: {parts}")
        if self.samples_written and self.wall > 0:
            lines.append(
                f"wall {self.wall:.1f}s, {self.samples_written / self.wall:.2f} labeled frames per second"
            )
        return "\n".join(lines)


@dataclass
class ClipSource:
    """One clip to label.

    Attributes:
        path: the clip (video file or frame folder).
        hands: its hand tracks.
        frames: frame indices to label (None: every frame that has hands).
        person_masks: optional folder of person masks (``<frame:06d>.png``, or named like the
            clip's frame files); non-zero pixels are person.
        name: name used in sample ids (default: the clip's file or folder stem).
    """

    path: Path
    hands: HandTracks
    frames: Sequence[int] | None = None
    person_masks: Path | None = None
    name: str | None = None


def parse_frame_spec(spec: str, n_frames: int) -> list[int]:
    """Parse ``--frames``: ``"start:stop:step"`` (Python slice, parts optional) or ``"0,10,20"``.

    Args:
        spec: the specification.
        n_frames: number of frames in the clip (slices are clamped to it).

    Returns:
        Sorted unique frame indices.

    Raises:
        ValueError: malformed spec, a listed index outside the clip, or a non-positive step.
    """
    spec = spec.strip()
    usage = f"--frames must look like 0:100:5 or 0,10,20; got {spec!r}"
    if ":" in spec:
        parts = [p.strip() for p in spec.split(":")]
        try:
            if len(parts) > 3:
                raise ValueError
            vals = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
        except ValueError:
            raise ValueError(usage) from None
        if vals[2] is not None and vals[2] <= 0:
            raise ValueError(f"--frames step must be positive, got {spec!r}")
        return list(range(n_frames))[slice(*vals)]
    try:
        idx = sorted({int(p) for p in spec.split(",") if p.strip()})
    except ValueError:
        raise ValueError(usage) from None
    bad = [i for i in idx if not 0 <= i < n_frames]
    if bad:
        raise ValueError(f"--frames: frame {bad[0]} is outside the clip (0..{n_frames - 1})")
    return idx


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``--shard i/n`` (0 <= i < n) into ``(i, n)``; None gives ``(0, 1)``."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n, e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def _check_dataset_json(root: Path, config: PseudoLabelConfig) -> bool:
    """Raise InputError when ``root/dataset.json`` holds another config; return whether it exists."""
    path = root / DATASET_FILE
    if not path.is_file():
        return False
    want = config.to_dict()
    try:
        have = json.loads(path.read_text(encoding="utf-8")).get("config", {})
    except (json.JSONDecodeError, AttributeError):
        raise InputError(path, "corrupt dataset.json; remove it or write to a new --out") from None
    defaults = PseudoLabelConfig().to_dict()  # keys added later read as their defaults
    diff = [k for k in want if k != "object_threshold" and have.get(k, defaults[k]) != want[k]]
    if diff:
        k = diff[0]
        raise InputError(
            path,
            f"dataset was made with {k}={have.get(k, defaults[k])!r} but this run asks for {k}={want[k]!r}; "
            "labels would be mixed: write to a new --out (or delete the folder)",
        )
    return True


def _write_dataset_json(root: Path, config: PseudoLabelConfig) -> None:
    from cohesiv import __version__

    text = json.dumps(
        {"version": DATASET_VERSION, "cohesiv": __version__, "config": config.to_dict()}, indent=2
    )
    atomic_write_text(root / DATASET_FILE, text + "\n")


def _remove_stale_temporaries(root: Path, sids: set[str]) -> None:
    """Delete temporary files of the samples ``sids`` left by a killed run (only this worker writes them).

    One listing per folder per run (not per sample: a glob per sample grows with the dataset).
    Temporary names are ``.tmp-<sid>-<random><suffix>`` (:func:`cohesiv.io.atomic.atomic_path`).
    """
    for sub in ("images", "samples", "viz"):
        folder = root / sub
        if not folder.is_dir():
            continue
        for p in folder.glob(".tmp-*"):
            if p.name[len(".tmp-") :].rsplit("-", 1)[0] in sids:
                p.unlink(missing_ok=True)


def _is_done(root: Path, sid: str) -> bool:
    return sidecar_path(root, sid).is_file()


def _encode_png(image: np.ndarray) -> bytes:
    import cv2

    arr = image[..., ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise CohesivError("cannot encode PNG")
    return buf.tobytes()


def _read_person_mask(src: ClipSource, reader: FrameReader, t: int, size: tuple[int, int]) -> np.ndarray:
    d = Path(src.person_masks)
    cands = [d / (src.name or clip_name(src.path)) / f"{t:06d}.png", d / f"{t:06d}.png"]
    if reader.is_folder:
        cands.append(d / f"{reader.files[t].stem}.png")
    for c in cands:
        if c.is_file():
            m = np.asarray(read_image(c))[..., 0]
            if m.shape != (size[1], size[0]):
                raise InputError(
                    c, f"person mask is {m.shape[1]}x{m.shape[0]}, frames are {size[0]}x{size[1]}"
                )
            return m
    raise InputError(d, f"no person mask for frame {t} (looked for {', '.join(c.name for c in cands)})")


@dataclass
class _ClipPlan:
    """One clip's share of a run: the frames this worker labels.

    Attributes:
        src: the clip.
        name: its name in sample ids (unique in the run).
        reader: its frames.
        n: its frame count.
        todo: the frame indices to label, in order.
    """

    src: ClipSource
    name: str
    reader: FrameReader
    n: int
    todo: list[int]


@dataclass
class _Output:
    """Where and how a run writes its samples (shared by every clip).

    Attributes:
        root: the dataset folder.
        config: the label settings.
        summary: the run's counts and times (updated in place).
        viz: also write overlays.
        bar: the progress bar (tqdm) or None.
        after_sample: called with each finished sample's id, or None.
        flow_thread: compute the next frame's flows in a second thread (see :func:`write_dataset`).
    """

    root: Path
    config: PseudoLabelConfig
    summary: Summary
    viz: bool = False
    bar: Any = None
    after_sample: Callable[[str], None] | None = None
    flow_thread: bool = False


class _Timer:
    def __init__(self, summary: Summary, stage: str) -> None:
        self.summary, self.stage = summary, stage

    def __enter__(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def __exit__(self, *exc) -> None:
        self.summary.add_time(self.stage, time.perf_counter() - self.t0, time.process_time() - self.c0)


def write_dataset(
    clips: Sequence[ClipSource],
    out: str | Path,
    config: PseudoLabelConfig,
    flow_fn: Callable[[ClipSource], FlowFn] | None = None,
    valid_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    shard: tuple[int, int] = (0, 1),
    viz: bool = False,
    progress: bool = True,
    after_sample: Callable[[str], None] | None = None,
    flow_thread: bool | None = None,
) -> Summary:
    """Label clips with averaged responsibility maps and write the pseudo-label dataset.

    Frames without hands are skipped (counted). Samples are numbered over all clips in order
    (clip order, then frame order, counting frames that have hands); shard ``(i, n)`` takes the
    samples whose number is ``i`` modulo ``n``, so shards split the work deterministically and
    never overlap.

    Args:
        clips: the clips, with their hands and frame selection.
        out: the dataset folder (created; re-runs resume in it).
        config: label settings; must match ``out/dataset.json`` when it exists.
        flow_fn: ``flow_fn(clip) -> FlowFn`` giving the flow source for a clip; default builds
            one from ``config`` (:func:`make_flow_fn`).
        valid_fn: ``valid_fn(flow_fw, flow_bw) -> (H, W) bool``; default
            ``cohesiv.flow.forward_backward_valid``. Only used when ``config.fb_check``.
        shard: ``(i, n)``.
        viz: also write ``viz/<id>.png`` overlays.
        progress: show a progress bar (stderr).
        after_sample: called with the sample id after each sample is finished (tests use it
            to simulate an interruption).
        flow_thread: compute the next frame's flows in a second thread while a frame is labeled
            (OpenCV releases the GIL; the samples are the same either way). None: only when a core
            is free at the start of the run (:func:`cohesiv.threads.auto_threads` >= 2): on a busy
            CPU the thread made labelling 4-9 % slower in 3 of 4 runs (bench/flow_labels.py, load
            5-8 on 2 cores).

    Returns:
        A :class:`Summary`.

    Raises:
        InputError: unreadable clips, hands that do not fit a clip, a config that differs from
            the one stored in ``out``.
    """
    t_start, c_start = time.perf_counter(), time.process_time()
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(root, "--out must be a folder")
    have_json = _check_dataset_json(root, config)
    summary = Summary()
    shard_i, shard_n = shard
    if flow_fn is None:
        estimator = []  # built once, on first use (RAFT loads its weights once)

        def flow_fn(clip: ClipSource) -> FlowFn:
            if config.flow != "gt" and not estimator:
                estimator.append(make_estimator(config))
            return make_flow_fn(clip, config, estimator[0] if estimator else None)

    if config.fb_check and valid_fn is None:
        from cohesiv.flow import forward_backward_valid as valid_fn
    names = _unique_names(clips)

    # plan: which samples each clip has to write
    plans = []
    counter = 0
    for src, name in zip(clips, names):
        reader = FrameReader(src.path)
        n = len(reader)
        check_tracks_match_clip(src.hands, reader.size, n, src.path)
        frames = range(n) if src.frames is None else src.frames
        todo = []
        for t in frames:
            if not 0 <= t < n:
                raise InputError(src.path, f"frame {t} is outside the clip (0..{n - 1})")
            if not src.hands.hands_at(t):
                summary.frames_without_hands += 1
                continue
            mine = counter % shard_n == shard_i
            counter += 1
            if not mine:
                summary.frames_other_shards += 1
            elif _is_done(root, sample_id(name, t)):
                summary.samples_done_before += 1
            else:
                todo.append(t)
        if todo:
            plans.append(_ClipPlan(src, name, reader, n, todo))
    flows = [flow_fn(p.src) for p in plans]  # fails early (e.g. --flow gt on a real clip)

    for sub in ("images", "samples") + (("viz",) if viz else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(root, {sample_id(p.name, t) for p in plans for t in p.todo})
    if not have_json:
        _write_dataset_json(root, config)
    total = sum(len(p.todo) for p in plans)
    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(
            total=total, unit="frame", desc="pseudolabel", dynamic_ncols=True, leave=False, disable=None
        )
    if flow_thread is None:
        from cohesiv.threads import auto_threads

        flow_thread = auto_threads() >= 2
    output = _Output(
        root, config, summary, viz=viz, bar=bar, after_sample=after_sample, flow_thread=flow_thread
    )
    try:
        for plan, flow in zip(plans, flows):
            _label_clip(plan, flow, valid_fn, output)
    finally:
        if bar is not None:
            bar.close()
        rebuild_manifest(root)
        summary.wall = time.perf_counter() - t_start
        summary.wall_cpu = time.process_time() - c_start
    return summary


def _unique_names(clips: Sequence[ClipSource]) -> list[str]:
    names = [c.name or clip_name(Path(c.path)) for c in clips]
    counts = Counter(names)
    out = []
    for c, nm in zip(clips, names):
        if counts[nm] > 1:
            h = hashlib.sha1(str(Path(c.path).resolve()).encode()).hexdigest()[:6]
            nm = f"{nm}-{h}"
        out.append(nm)
    if len(set(out)) != len(out):
        dup = next(nm for nm, k in Counter(out).items() if k > 1)
        raise InputError(None, f"clip {dup!r} is given twice")
    return out


def _label_clip(
    plan: _ClipPlan,
    flow: FlowFn,
    valid_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
    output: _Output,
) -> None:
    """Label and write the frames ``plan.todo`` of one clip, streamed once through a sliding flow window."""
    from cohesiv.flow.cache import FlowCache, StreamingFrames

    src, name, reader, n, todo = plan.src, plan.name, plan.reader, plan.n, plan.todo
    root, config, summary, viz = output.root, output.config, output.summary, output.viz
    bar, after_sample = output.bar, output.after_sample

    reach = max(abs(k) for k in config.offsets)
    frames = StreamingFrames(reader, keep=2 * reach + 2)  # one forward decode of a video
    # prefetch: the next frame's flows are computed in a second thread while this one is labeled
    cache = FlowCache(None, frames, max_frames=2 * reach + 2, pair_flow=flow, prefetch=output.flow_thread)

    def timer(stage: str) -> _Timer:
        return _Timer(summary, stage)

    def have(s: int) -> bool:
        try:
            with timer("decode"):
                cache.frame(s)
            return True
        except IndexError:  # the video ended earlier than its frame count said
            return False

    w, h = reader.size
    for i, t in enumerate(todo):
        if not have(t):
            continue
        hands = src.hands.hands_at(t)
        sid = sample_id(name, t)
        offs = [k for k in usable_offsets(config.offsets, t, n) if have(t + k)]
        image = cache.frame(t)  # held here: prefetching reads frames ahead of the window
        with timer("decode"):  # mostly reading the frames ahead; the flows run in the worker thread
            cache.prefetch(flow_pairs(t, offs, config.fb_check))  # only the first frame's are new
            if i + 1 < len(todo):
                t_next = todo[i + 1]
                cache.prefetch(flow_pairs(t_next, usable_offsets(config.offsets, t_next, n), config.fb_check))
        with timer("masks"):
            given = None if src.person_masks is None else _read_person_mask(src, reader, t, (w, h))
        labels = label_frame(
            cache.get,
            t,
            offs,
            [hd.points for hd in hands],
            (w, h),
            config,
            image=image,
            person_given=given,
            valid_fn=valid_fn,
            timer=timer,
        )
        if labels is None:  # a one-frame clip, or offsets longer than the clip
            summary.frames_no_offsets += 1
            atomic_write_text(
                root / "samples" / f"{sid}.json", json.dumps({"skipped": "no other frame within the offsets"})
            )
            continue
        if not _write_sample(src, name, reader, t, hands, labels, root, config, summary, viz, image):
            continue
        if bar is not None:
            bar.update(1)
        if after_sample is not None:
            after_sample(sid)
    cache.close()


def _write_sample(src, name, reader, t, hands, labels, root, config, summary, viz, image) -> bool:
    """Write one labeled frame (image, npz, optional overlay, then the sidecar that marks it done).

    Returns False when no hand could be fitted (a "skipped" sidecar is written instead).
    """
    info = labels.info
    sid = sample_id(name, t)
    summary.hands_dropped.update(info["dropped"])
    summary.camera_fallbacks += len(info["camera_fallbacks"])
    keep = labels.kept
    summary.hands_removed += len(hands) - len(keep)
    side_path = sidecar_path(root, sid)
    stats = {
        "offsets": info["offsets"],
        "fitted_offsets": [info["fitted_offsets"][j] for j in range(len(hands))],
        "dropped": info["dropped"],
    }
    if not keep:
        summary.frames_no_fitted_hand += 1
        atomic_write_text(side_path, json.dumps({"skipped": "no hand could be fitted", "stats": stats}))
        return False
    r = labels.responsibility
    if len(keep) < len(hands):  # removed hands have all-zero channels: sums stay 1
        r = r[[0] + [j + 1 for j in keep]]
        hands = [hands[j] for j in keep]
    w, h = reader.size
    entry = {
        "id": sid,
        "clip": str(src.path),
        "frame": int(t),
        "image": image_file(sid),
        "sample": sample_file(sid),
        "size": [int(w), int(h)],
        "hands": [
            {
                "id": hd.id,
                "side": hd.side,
                "query": [float(hd.query[0]), float(hd.query[1])],
                "points": [[round(float(x), 3), round(float(y), 3)] for x, y in hd.points],
                **({"stop_at_wrist": True} if config.stop_at_wrist and len(hd.points) == 21 else {}),
            }
            for hd in hands
        ],
    }
    with _Timer(summary, "write"):
        frame_file = reader.files[t] if reader.is_folder else None
        if frame_file is not None and frame_file.suffix.lower() == ".png":
            with atomic_path(root / entry["image"]) as tmp:  # already a PNG: copy, do not re-encode
                shutil.copyfile(frame_file, tmp)
        else:
            atomic_write_bytes(root / entry["image"], _encode_png(image))
        write_sample(root / entry["sample"], r, labels.person, labels.valid)
    if viz:
        with _Timer(summary, "viz"):
            _write_viz(
                root / "viz" / f"{sid}.png",
                image,
                r,
                labels.person,
                labels.valid,
                hands,
                config,
                labels.flows,
            )
    with _Timer(summary, "write"):
        atomic_write_text(side_path, json.dumps({"entry": entry, "stats": stats}))
    summary.samples_written += 1
    return True


def _write_viz(path, image, r, person, valid, hands, config, flows) -> None:
    from cohesiv import viz as V

    obj = object_mask(r, person, config.object_threshold)
    flow = flows.get(1, next(iter(flows.values()))) if flows else None
    panel = V.pseudolabel_panel(
        image, r, person=person, obj=obj, valid=valid, hand_points=[h.points for h in hands], flow=flow
    )
    atomic_write_bytes(path, _encode_png(panel))


def make_estimator(config: PseudoLabelConfig):
    """Build the ``cohesiv.flow.FlowEstimator`` the config asks for (DIS or RAFT).

    Raises:
        CohesivError: the flow module is unavailable (or RAFT without weights).
    """
    try:
        from cohesiv.flow import FlowEstimator
    except ImportError as e:
        raise CohesivError(f"flow module unavailable ({e})") from None
    kwargs = {"method": config.flow}
    if config.flow == "dis" and config.flow_preset is not None:
        kwargs["preset"] = config.flow_preset
    if config.flow == "raft":
        kwargs.update(raft_weights=config.raft_weights, raft_model=config.raft_model)
    return FlowEstimator(**kwargs)


def make_flow_fn(clip: ClipSource, config: PseudoLabelConfig, estimator=None) -> FlowFn:
    """Build the flow source of a clip: an estimator (``dis``/``raft``) or exact flow (``gt``).

    Args:
        clip: the clip.
        config: the label settings (``config.flow`` picks the source).
        estimator: a ``FlowEstimator`` to reuse (default: :func:`make_estimator`).

    Raises:
        InputError: ``gt`` flow for a clip without ``scene.json``.
        CohesivError: the flow or synth module is unavailable.
    """
    if config.flow == "gt":
        clip_dir = Path(clip.path)
        if not (clip_dir.is_dir() and (clip_dir / "scene.json").is_file()):
            raise InputError(
                clip_dir, "--flow gt needs a clip folder written by 'cohesiv synth' (with scene.json)"
            )
        try:
            from cohesiv.synth import exact_flow
        except ImportError as e:
            raise CohesivError(
                f"--flow gt needs cohesiv.synth.exact_flow, which is unavailable ({e})"
            ) from None
        return lambda a_img, b_img, a, b: np.asarray(exact_flow(clip_dir, a, b), np.float32)
    est = make_estimator(config) if estimator is None else estimator
    return lambda a_img, b_img, a, b: est(a_img, b_img)
