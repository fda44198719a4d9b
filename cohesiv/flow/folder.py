"""The flow stage as a folder: a clip's flows written as ``.flo`` files, colour images and valid masks.

What ``cohesiv flow`` runs (the command parses its arguments and calls :func:`write_flow_folder`).
The layout is :mod:`cohesiv.flow.store`'s. Frames are streamed through the package's one sliding
flow window (:class:`cohesiv.flow.FlowCache`, as ``cohesiv pseudolabel``): each pair is computed at
most once, and ``.flo`` files already in the folder are read instead of computed (unless
``overwrite``). Finished files are kept: a re-run with the same settings computes only what is missing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cohesiv.config import FlowFolderOptions
from cohesiv.flow.cache import FlowCache, StreamingFrames
from cohesiv.flow.consistency import forward_backward_valid
from cohesiv.flow.estimator import FlowEstimator, flow_to_color
from cohesiv.flow.store import check_flow_config, color_file, flow_file, valid_file, write_flow_config
from cohesiv.io import FrameReader, atomic_write_bytes, write_flo


@dataclass
class FlowFolderSummary:
    """What :func:`write_flow_folder` did.

    Attributes:
        computed: flows computed (the others were read from the folder or already complete).
        skipped: pairs whose files were all there already.
        seconds: time spent computing flows.
        estimator: ``repr`` of the estimator.
    """

    computed: int
    skipped: int
    seconds: float
    estimator: str

    def to_text(self, out: str | Path) -> str:
        """One line for people."""
        per_pair = f", {1000 * self.seconds / self.computed:.1f} ms per pair" if self.computed else ""
        return (
            f"{self.computed} flows computed ({self.estimator}{per_pair}), {self.skipped} flows already done; "
            f"wrote {out}"
        )


def _write_png(path: Path, image: np.ndarray) -> None:
    """Write ``(H, W, 3)`` RGB or ``(H, W)`` uint8 as PNG, atomically, with fast (level 1) compression."""
    import cv2

    bgr = image[..., ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes())


def _pairs(i: int, options: FlowFolderOptions) -> list[tuple[int, int]]:
    """The pairs (a, b) that frame i completes: (i - k, i) and, with ``backward``, (i, i - k)."""
    out = []
    for k in options.offsets:
        t = i - k
        if t >= 0:
            out += [(t, i), (i, t)] if options.backward else [(t, i)]
    return out


def write_flow_folder(
    clip: str | Path,
    out: str | Path,
    estimator: FlowEstimator,
    options: FlowFolderOptions = FlowFolderOptions(),
    *,
    progress: bool = True,
) -> FlowFolderSummary:
    """Compute the flows of a clip and write them into ``out`` (layout: :mod:`cohesiv.flow.store`).

    Args:
        clip: a video file or a folder of images.
        out: the output folder (created; a re-run resumes in it).
        estimator: the flow method; its ``config`` is written to ``flow.json`` and must match the one
            there (unless ``options.overwrite``).
        options: offsets, backward flows, tolerances, colour images, overwrite.
        progress: a progress bar on stderr.

    Returns:
        :class:`FlowFolderSummary`.

    Raises:
        InputError: an unreadable clip, or a folder written with other settings.
    """
    from tqdm import tqdm

    if estimator.config.method == "dis" and options.color:
        import torch

        # torch only draws the colour images here: small per-frame ops, for which intra-op
        # threads cost more than they give (4x slower on a busy 2-core machine)
        torch.set_num_threads(1)
    out = Path(out)
    reader = FrameReader(clip)
    n = len(reader)
    if not options.overwrite:
        check_flow_config(out, estimator.config, reader.path)
    out.mkdir(parents=True, exist_ok=True)
    write_flow_config(
        out,
        estimator.config,
        clip=str(reader.path.resolve()),
        size=list(reader.size),
        n_frames=n,
        offsets=list(options.offsets),
        backward=bool(options.backward),
        alpha=options.alpha,
        beta=options.beta,
    )

    def outputs(t: int, s: int) -> list[Path]:
        files = [flow_file(out, t, s)]
        if options.color:
            files.append(color_file(out, t, s))
        if options.backward:
            files.append(valid_file(out, t, s))
        return files

    reach = max(options.offsets)
    frames = StreamingFrames(reader, keep=reach + 2)
    cache = FlowCache(
        estimator,
        frames,
        max_frames=reach + 2,
        cache_dir=None if options.overwrite else out,
        clip=None if options.overwrite else reader.path,
    )
    n_skipped = 0
    bar = tqdm(total=n, desc="flow", unit="frame", file=sys.stderr, disable=None if progress else True)
    for i in range(n):
        try:
            frames(i)
        except IndexError:  # the video ended earlier than its frame count said
            break
        for a, b in _pairs(i, options):
            if not options.overwrite and all(p.exists() for p in outputs(a, b)):
                n_skipped += 1
                continue
            flow = cache.get(a, b)
            if options.overwrite:
                write_flo(flow_file(out, a, b), flow)
            if options.color:
                _write_png(color_file(out, a, b), flow_to_color(flow))
            if options.backward:
                ok = forward_backward_valid(flow, cache.get(b, a), alpha=options.alpha, beta=options.beta)
                _write_png(valid_file(out, a, b), ok.astype(np.uint8) * 255)
        bar.update(1)
    bar.close()
    return FlowFolderSummary(cache.stats.computed, n_skipped, cache.stats.seconds, repr(estimator))
